/* A library loaded with RTLD_DEEPBIND: its malloc binds to glibc's own,
 * whatever the program preloads or links (deepbind_test.c). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void *lib_malloc(size_t n) { return malloc(n); }

void *lib_calloc(size_t n, size_t size) { return calloc(n, size); }

void *lib_memalign(size_t align, size_t n) {
    void *p = NULL;
    return posix_memalign(&p, align, n) == 0 ? p : NULL;
}

char *lib_strdup(const char *s) { return strdup(s); }

static void *in_thread(void *arg) { return malloc(*(size_t *)arg); }

/* A block from a thread of its own: glibc serves it from a thread arena. */
void *lib_malloc_in_thread(size_t n) {
    pthread_t t;
    void *p = NULL;
    if (pthread_create(&t, NULL, in_thread, &n) != 0) return NULL;
    pthread_join(t, &p);
    return p;
}
