/* hak_stat: the live numbers, checked against known allocations.
 *
 *   stat_test          statistics off: footprint numbers only
 *   stat_test counted  run with HAKMEM_STATS=1: the counts too
 *
 * Linked with -lhakmem, single-threaded except where a thread is the point. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"

static int failures;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "stat_test: FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
            failures++;                                                   \
        }                                                                 \
    } while (0)

static uint64_t stat(const char *name) {
    uint64_t v = 0;
    if (hak_stat(name, &v) != 0) {
        fprintf(stderr, "stat_test: FAIL hak_stat(%s): %s\n", name, strerror(errno));
        failures++;
    }
    return v;
}

/* The first class whose blocks hold `size` bytes. */
static int class_for(size_t size) {
    uint64_t n = stat("classes");
    for (uint64_t c = 0; c < n; c++) {
        char name[64];
        snprintf(name, sizeof name, "class.%llu.size", (unsigned long long)c);
        if (stat(name) >= size) return (int)c;
    }
    return -1;
}

static uint64_t class_stat(int c, const char *field) {
    char name[64];
    snprintf(name, sizeof name, "class.%d.%s", c, field);
    return stat(name);
}

static void errors(void) {
    uint64_t v;
    errno = 0;
    CHECK(hak_stat("no_such_number", &v) == -1 && errno == ENOENT, "unknown name: errno %d", errno);
    errno = 0;
    CHECK(hak_stat(NULL, &v) == -1 && errno == EINVAL, "NULL name: errno %d", errno);
    errno = 0;
    CHECK(hak_stat("mapped", NULL) == -1 && errno == EINVAL, "NULL out: errno %d", errno);
    errno = 0;
    CHECK(hak_stat("class.100000.size", &v) == -1 && errno == ENOENT, "class past the last: errno %d", errno);
}

/* 8 MiB in one block: active and mapped grow by it; freed and trimmed, the
 * bytes returned to the kernel grow by it and BigCache is empty. */
static void big_block(void) {
    const size_t size = 8u << 20;
    uint64_t active = stat("active"), returned = stat("returned");
    char *p = malloc(size);
    CHECK(p != NULL, "malloc(8 MiB)");
    memset(p, 1, size);
    CHECK(stat("active") >= active + size, "active %llu did not grow by 8 MiB from %llu",
          (unsigned long long)stat("active"), (unsigned long long)active);
    CHECK(stat("mapped") >= stat("active"), "mapped below active");
    CHECK(stat("big_blocks") >= 1, "no live big block");
    free(p);
    hak_trim();
    CHECK(stat("bigcache") == 0, "BigCache holds %llu bytes after a trim", (unsigned long long)stat("bigcache"));
    CHECK(stat("returned") >= returned + size, "returned grew by %llu, not 8 MiB",
          (unsigned long long)(stat("returned") - returned));
    CHECK(stat("resident") <= stat("mapped"), "resident above mapped");
}

#define N 1000
static void *blocks[N];

static void *free_all(void *arg) {
    (void)arg;
    for (int i = 0; i < N; i++) free(blocks[i]);
    return NULL;
}

/* 1,000 blocks of 100 bytes: their class's live count and `allocated` grow
 * by exactly that; freed by another thread, remote_frees counts them. */
static void counted(void) {
    int c = class_for(100);
    CHECK(c >= 0, "no class holds 100 bytes");
    uint64_t size = class_stat(c, "size");
    uint64_t live = class_stat(c, "live"), mallocs = class_stat(c, "mallocs");
    uint64_t allocated = stat("allocated"), remote = stat("remote_frees");
    for (int i = 0; i < N; i++) blocks[i] = malloc(100);
    CHECK(class_stat(c, "live") == live + N, "class %d live %llu, wanted %llu", c,
          (unsigned long long)class_stat(c, "live"), (unsigned long long)(live + N));
    CHECK(class_stat(c, "mallocs") == mallocs + N, "class %d mallocs", c);
    CHECK(class_stat(c, "peak") >= live + N, "class %d peak", c);
    CHECK(stat("allocated") == allocated + N * size, "allocated %llu, wanted %llu",
          (unsigned long long)stat("allocated"), (unsigned long long)(allocated + N * size));
    uint64_t cached = class_stat(c, "cached");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_all, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);
    CHECK(class_stat(c, "live") == live, "class %d live %llu after the frees", c,
          (unsigned long long)class_stat(c, "live"));
    /* pthread_create's own small allocations (glibc's thread state) stay. */
    CHECK(stat("allocated") - allocated < 4096, "allocated %llu after the frees, from %llu",
          (unsigned long long)stat("allocated"), (unsigned long long)allocated);
    CHECK(stat("remote_frees") >= remote + N, "remote_frees grew by %llu, not %d",
          (unsigned long long)(stat("remote_frees") - remote), N);
    /* The freeing thread exited: its cache went back to the slabs. */
    CHECK(class_stat(c, "cached") == cached, "class %d cached %llu blocks, then %llu", c,
          (unsigned long long)cached, (unsigned long long)class_stat(c, "cached"));
    CHECK(stat("thread_cache") >= cached * size, "thread_cache below class %d's", c);
    CHECK(stat("threads") >= 1, "no thread counted");
}

int main(int argc, char **argv) {
    int with_counts = argc > 1 && strcmp(argv[1], "counted") == 0;
    free(malloc(1)); /* the thread gets its heap */
    errors();
    big_block();
    if (with_counts) {
        counted();
    } else {
        uint64_t v;
        errno = 0;
        CHECK(hak_stat("allocated", &v) == -1 && errno == ENOTSUP, "allocated without stats: errno %d", errno);
        errno = 0;
        CHECK(hak_stat("class.3.live", &v) == -1 && errno == ENOTSUP, "class live without stats: errno %d", errno);
        CHECK(stat("class.3.size") > 0, "class sizes are always there");
    }
    if (failures) return 1;
    printf("stat_test: ok (%s; mapped %llu, resident %llu, returned %llu bytes)\n",
           with_counts ? "counted" : "footprint", (unsigned long long)stat("mapped"),
           (unsigned long long)stat("resident"), (unsigned long long)stat("returned"));
    return 0;
}
