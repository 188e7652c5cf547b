/* Run under valgrind's memcheck by tests/valgrind.sh: hakmem's blocks must
 * get memcheck's reports, one of each kind below, and nothing else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAK_PRELOADED
#include <dlfcn.h>
/* Preloaded: hakmem's own function, found at run time. */
static size_t hak_usable_size(const void *p) {
    size_t (*f)(const void *) = (size_t (*)(const void *))dlsym(RTLD_DEFAULT, "hak_usable_size");
    return f ? f(p) : 0;
}
#else
#include "hakmem.h"
#endif

static void *volatile sink;

/* Leaks: a slab block and a pool block, each lost on return. */
__attribute__((noinline)) static void leak_small(void) { sink = malloc(100); sink = NULL; }
__attribute__((noinline)) static void leak_pool(void) { sink = malloc(200000); sink = NULL; }

/* A write to a block after it was freed (on purpose). */
#pragma GCC diagnostic ignored "-Wuse-after-free"
__attribute__((noinline)) static void use_after_free(void) {
    volatile char *p = malloc(64);
    p[0] = 1;
    free((void *)p);
    p[10] = 2; /* a volatile store: the compiler keeps it */
}

int main(void) {
    /* Clean work across the tiers: no report may come of it. */
    void *keep[300];
    for (int i = 0; i < 300; i++) {
        size_t n = (size_t)(i * 997) % 70000 + 1;
        keep[i] = i % 3 ? malloc(n) : calloc(1, n);
        memset(keep[i], i, n);
        if (i % 7 == 0) keep[i] = realloc(keep[i], n * 2 + 8);
    }
    for (int i = 0; i < 300; i++) free(keep[i]);
    void *big = malloc(5 << 20);
    memset(big, 3, 5 << 20);
    free(big);

    void *volatile q = malloc(100);
    size_t usable = hak_usable_size(q); /* hakmem's own: proof it served */
    free(q);
    leak_small();
    leak_pool();
    use_after_free();
    printf("valgrind_test: done (a 100-byte block had %zu usable bytes)\n", usable);
    return 0;
}
