/* purge_test — freed memory goes back to the kernel (linked with -lhakmem).
 *
 *   purge_test          (a) a burst of small, pool and big blocks freed, then
 *                       a quiet half second (up to two on a loaded machine)
 *                       with no allocator call: RSS is
 *                       back within 2 MiB of the start, and hakmem's purge
 *                       thread ("hakmem-purge") exists;
 *                       (b) the same in a forked child, while the parent's
 *                       threads allocate and free (fork during purges);
 *                       (c) first of all, producer/consumer: 64-byte blocks
 *                       allocated by one thread and freed by another are
 *                       reused, so the peak RSS stays small;
 *                       (d) a thread whose cache was left holding blocks
 *                       of every slab of a class, then calls only malloc
 *                       and free that its cache serves: the slabs still
 *                       go back (hak_stat "active" falls).
 *   purge_test off      run with HAKMEM_PURGE_THREAD=0: no purge thread, and
 *                       the quiet burst stays resident (so (a) can fail).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "purge_thread.h"

static int failures;
#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "purge_test: FAIL %s:%d: ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
            failures++;                                                         \
        }                                                                       \
    } while (0)

/* A /proc/self/status field in KiB, read without allocating. */
static long status_kib(const char *key)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strstr(buf, key);
    return p ? strtol(p + strlen(key) + 1, NULL, 10) : -1;
}

/* A burst of 200,000 small, 500 pool and 8 big blocks, written and freed;
 * then half a second with no allocator call. Returns the RSS growth in KiB. */
static long quiet_burst(void)
{
    enum { SMALL = 200000, POOL = 500, BIG = 8 };
    static void *small[SMALL], *pool[POOL], *big[BIG];
    /* The pointer arrays are the test's own memory: resident before. */
    memset(small, 0, sizeof small);
    memset(pool, 0, sizeof pool);
    memset(big, 0, sizeof big);
    long start = status_kib("VmRSS:");
    for (int i = 0; i < SMALL; i++) {
        small[i] = malloc(16 + i % 200);
        memset(small[i], 1, 16);
    }
    for (int i = 0; i < POOL; i++)
        memset(pool[i] = malloc(100 * 1024), 2, 100 * 1024);
    for (int i = 0; i < BIG; i++)
        memset(big[i] = malloc(4 << 20), 3, 4 << 20);
    for (int i = 0; i < SMALL; i++)
        free(small[i]);
    for (int i = 0; i < POOL; i++)
        free(pool[i]);
    for (int i = 0; i < BIG; i++)
        free(big[i]);
    /* Half a second is five purge delays; a loaded machine gets up to
     * three more halves (the purge thread may wait for a CPU). */
    usleep(500 * 1000);
    long growth = status_kib("VmRSS:") - start;
    for (int retry = 0; retry < 3 && growth > 2048; retry++) {
        usleep(500 * 1000);
        growth = status_kib("VmRSS:") - start;
    }
    return growth;
}

static volatile int stop_churn;
static void *churn(void *arg)
{
    (void)arg;
    while (!stop_churn) {
        void *p[256];
        for (int i = 0; i < 256; i++)
            p[i] = malloc(i % 2 ? 64 : 50000);
        for (int i = 0; i < 256; i++)
            free(p[i]);
    }
    return NULL;
}

/* (d): 200,000 blocks of 64 bytes (about 200 slabs), freed a column at a
 * time so that the blocks the cache keeps (the last freed) lie in every
 * slab; then a second of malloc(64)/free pairs, all cache hits. */
static void fast_path_only(void)
{
    enum { N = 200000, PER_SLAB = 1024 };
    static void *b[N];
    uint64_t start = 0, before = 0, after = 0;
    CHECK(hak_stat("active", &start) == 0, "hak_stat(active) failed");
    for (int i = 0; i < N; i++)
        memset(b[i] = malloc(64), 5, 64);
    for (int j = 0; j < PER_SLAB; j++)
        for (int i = j; i < N; i += PER_SLAB)
            free(b[i]);
    hak_stat("active", &before);
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < 1000; k++) {
            for (int i = 0; i < 64; i++)
                b[i] = malloc(64);
            for (int i = 0; i < 64; i++)
                free(b[i]);
            usleep(500);
        }
        hak_stat("active", &after);
        if (after < start + (1u << 20))
            break; /* a loaded machine gets a second second */
    }
    CHECK(after < start + (1u << 20),
          "a thread that only hit its cache kept its slabs: %llu bytes active (%llu before, %llu after the frees)",
          (unsigned long long)after, (unsigned long long)start, (unsigned long long)before);
    CHECK(before > start + (8u << 20), "the frees left only %llu bytes active (%llu before): is (d) testing anything?",
          (unsigned long long)before, (unsigned long long)start);
}

/* Producer/consumer over a small ring of batches. */
enum { BATCH = 2000, RING = 8, BATCHES = 2000 };
static void **ring[RING];
static int head, tail;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void *consumer(void *arg)
{
    (void)arg;
    for (int b = 0; b < BATCHES; b++) {
        pthread_mutex_lock(&mu);
        while (head == tail)
            pthread_cond_wait(&cv, &mu);
        void **batch = ring[tail % RING];
        tail++;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
        for (int i = 0; i < BATCH; i++)
            free(batch[i]);
        free(batch);
    }
    return NULL;
}

static void producer_consumer(void)
{
    pthread_t c;
    pthread_create(&c, NULL, consumer, NULL);
    for (int b = 0; b < BATCHES; b++) {
        void **batch = malloc(BATCH * sizeof *batch);
        for (int i = 0; i < BATCH; i++)
            memset(batch[i] = malloc(64), 4, 64);
        pthread_mutex_lock(&mu);
        while (head - tail == RING)
            pthread_cond_wait(&cv, &mu);
        ring[head % RING] = batch;
        head++;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
    pthread_join(c, NULL);
    /* 4 M blocks of 64 B passed, at most RING+2 batches (1.3 MB) live. */
    long peak = status_kib("VmHWM:");
    CHECK(peak < 16 * 1024, "producer/consumer peak RSS %ld KiB (blocks freed by the consumer are not reused)", peak);
}

int main(int argc, char **argv)
{
    bool off = argc > 1 && strcmp(argv[1], "off") == 0;
    CHECK(hak_version() != NULL, "not linked with hakmem");
    if (!off)
        producer_consumer(); /* first: its check reads the process's peak */
    long growth = quiet_burst();
    if (off) {
        CHECK(!purge_thread_exists(), "HAKMEM_PURGE_THREAD=0 but a purge thread runs");
        CHECK(growth > 8 * 1024, "without the purge thread the burst still went back (%ld KiB): is (a) testing anything?", growth);
    } else {
        CHECK(growth <= 2048, "a quiet program kept %ld KiB of freed memory resident after the purge delay", growth);
        CHECK(purge_thread_exists(), "no hakmem-purge thread");
        fast_path_only();

        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, churn, NULL);
        for (int k = 0; k < 20; k++) {
            pid_t pid = fork();
            if (pid == 0) {
                long g = k == 0 ? quiet_burst() : 0;
                void *p = malloc(1000);
                free(p);
                _exit(g <= 2048 ? 0 : 3);
            }
            int st = 0;
            waitpid(pid, &st, 0);
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "forked child %d failed (status %d)", k, st);
            usleep(20 * 1000);
        }
        stop_churn = 1;
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
    }
    printf("purge_test: %s: %d failure(s), quiet burst growth %ld KiB\n", off ? "off" : "on", failures, growth);
    return failures != 0;
}
