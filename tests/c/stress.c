/* stress: N threads doing random malloc/calloc/realloc/posix_memalign/
 * aligned_alloc/free across every size tier, handing blocks to each other
 * through shared exchange slots. Every block is filled with a pattern derived
 * from its address and size, and verified before every realloc and free (and
 * after realloc, over the kept prefix, before it is refilled).
 *
 *   stress [-t threads] [-s seconds | -n ops_per_thread] [-S seed]
 *
 * Prints one line: stress threads=T ops=N failures=F seconds=S; exit 1 on any
 * failure, 2 on bad arguments. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../bench-c/bench_common.h"

#define LOCAL_SLOTS 256
#define EXCHANGE_SLOTS 1024

struct block {
    unsigned char *p;
    size_t size;
    uint64_t tag; /* pattern seed, independent of the address after realloc */
};

static struct block exchange[EXCHANGE_SLOTS];
static pthread_mutex_t exchange_lock[EXCHANGE_SLOTS];
static atomic_ullong total_ops, failures;
static atomic_int stop;
static uint64_t ops_per_thread;
static uint64_t seed;

static unsigned char pattern(uint64_t tag, size_t i)
{
    return (unsigned char)((tag >> ((i & 7) * 8)) ^ (i * 131));
}

/* Fills or checks a whole block for small sizes; for big ones the first and
 * last 4 KiB and every 4 KiB in between, which catches any page-level loss. */
#define STRIDE_FROM 65536
static void fill(struct block *b)
{
    if (b->size <= STRIDE_FROM) {
        for (size_t i = 0; i < b->size; i++)
            b->p[i] = pattern(b->tag, i);
        return;
    }
    for (size_t i = 0; i < b->size; i += (i < 4096 || i + 4096 >= b->size) ? 1 : 4096)
        b->p[i] = pattern(b->tag, i);
}

static int check(const struct block *b, size_t upto)
{
    size_t n = upto < b->size ? upto : b->size;
    if (b->size <= STRIDE_FROM) {
        for (size_t i = 0; i < n; i++)
            if (b->p[i] != pattern(b->tag, i))
                return 0;
        return 1;
    }
    for (size_t i = 0; i < n; i += (i < 4096 || i + 4096 >= b->size) ? 1 : 4096)
        if (b->p[i] != pattern(b->tag, i))
            return 0;
    return 1;
}

static void fail(const char *what, const struct block *b)
{
    atomic_fetch_add(&failures, 1);
    fprintf(stderr, "stress: %s: block %p size %zu\n", what, (void *)b->p, b->size);
}

/* Sizes across the tiers: mostly small, some mid, a few big. */
static size_t pick_size(uint64_t *r)
{
    uint64_t x = rng_next(r) % 1000;
    if (x < 700)
        return 1 + rng_next(r) % 1024;
    if (x < 930)
        return 1025 + rng_next(r) % (32 * 1024);
    if (x < 995)
        return 32 * 1024 + rng_next(r) % (1 << 20);
    return (1 << 20) + rng_next(r) % (8 << 20);
}

static void release(struct block *b)
{
    if (b->p == NULL)
        return;
    if (!check(b, b->size))
        fail("corrupted before free", b);
    free(b->p);
    b->p = NULL;
}

static void allocate(struct block *b, uint64_t *r)
{
    size_t size = pick_size(r);
    unsigned char *p = NULL;
    switch (rng_next(r) % 5) {
    case 0:
        p = calloc(1, size);
        if (p != NULL)
            for (size_t i = 0; i < size; i += (size > STRIDE_FROM ? 4093 : 1))
                if (p[i] != 0) {
                    struct block z = { p, size, 0 };
                    fail("calloc memory not zero", &z);
                    break;
                }
        break;
    case 1: {
        size_t align = (size_t)8 << (rng_next(r) % 10); /* 8 .. 4096 */
        if (posix_memalign((void **)&p, align, size) != 0)
            p = NULL;
        else if ((uintptr_t)p % align != 0) {
            struct block z = { p, size, 0 };
            fail("posix_memalign misaligned", &z);
        }
        break;
    }
    case 2: {
        size_t align = (size_t)16 << (rng_next(r) % 8);
        p = aligned_alloc(align, size);
        if (p != NULL && (uintptr_t)p % align != 0) {
            struct block z = { p, size, 0 };
            fail("aligned_alloc misaligned", &z);
        }
        break;
    }
    default:
        p = malloc(size);
    }
    if (p == NULL) {
        struct block z = { NULL, size, 0 };
        fail("allocation returned NULL", &z);
        return;
    }
    if (malloc_usable_size(p) < size) {
        struct block z = { p, size, 0 };
        fail("usable size below the request", &z);
    }
    b->p = p;
    b->size = size;
    b->tag = rng_next(r);
    fill(b);
}

static void resize(struct block *b, uint64_t *r)
{
    if (!check(b, b->size)) {
        fail("corrupted before realloc", b);
        return;
    }
    size_t size = pick_size(r);
    unsigned char *q = realloc(b->p, size);
    if (q == NULL) {
        fail("realloc returned NULL", b);
        return;
    }
    size_t kept = b->size < size ? b->size : size;
    struct block moved = { q, b->size, b->tag };
    if (!check(&moved, kept))
        fail("realloc lost contents", &moved);
    b->p = q;
    b->size = size;
    b->tag = rng_next(r);
    fill(b);
}

static void *worker(void *arg)
{
    uint64_t r = seed ^ (0x9e3779b97f4a7c15ULL * (uintptr_t)arg) ^ 1;
    struct block local[LOCAL_SLOTS];
    memset(local, 0, sizeof local);
    uint64_t ops = 0;
    while (ops_per_thread ? ops < ops_per_thread : !atomic_load_explicit(&stop, memory_order_relaxed)) {
        struct block *b = &local[rng_next(&r) % LOCAL_SLOTS];
        uint64_t what = rng_next(&r) % 10;
        if (b->p == NULL) {
            allocate(b, &r);
        } else if (what < 4) {
            release(b);
        } else if (what < 6) {
            resize(b, &r);
        } else {
            /* Swap with a shared slot: the other block is then freed or
             * resized by this thread, mine by whoever takes it next. */
            size_t e = rng_next(&r) % EXCHANGE_SLOTS;
            pthread_mutex_lock(&exchange_lock[e]);
            struct block t = exchange[e];
            exchange[e] = *b;
            *b = t;
            pthread_mutex_unlock(&exchange_lock[e]);
        }
        ops++;
    }
    for (int i = 0; i < LOCAL_SLOTS; i++)
        release(&local[i]);
    atomic_fetch_add(&total_ops, ops);
    return NULL;
}

static void usage(const char *msg)
{
    fprintf(stderr, "stress: %s; usage: stress [-t threads] [-s seconds | -n ops_per_thread] [-S seed]\n", msg);
    exit(2);
}

static uint64_t number(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *s == '\0' || *end != '\0' || *s == '-')
        usage(what);
    return v;
}

int main(int argc, char **argv)
{
    uint64_t threads = 4, seconds = 0;
    bench_name = "stress";
    (void)bench_usage;
    seed = 1;
    int c;
    opterr = 0;
    while ((c = getopt(argc, argv, "t:s:n:S:")) != -1) {
        switch (c) {
        case 't': threads = number(optarg, "-t needs a thread count"); break;
        case 's': seconds = number(optarg, "-s needs seconds"); break;
        case 'n': ops_per_thread = number(optarg, "-n needs an operation count"); break;
        case 'S': seed = number(optarg, "-S needs a number"); break;
        default: usage("unknown option");
        }
    }
    if (optind != argc || threads < 1 || threads > 256)
        usage("bad arguments");
    if (seconds == 0 && ops_per_thread == 0)
        ops_per_thread = 200000;
    /* Under `make test`, prove the allocator under test is hakmem. */
    Dl_info info;
    if (getenv("HAKTEST_EXPECT_HAKMEM") != NULL &&
        (dladdr((void *)malloc, &info) == 0 || info.dli_fname == NULL ||
         strstr(info.dli_fname, "libhakmem") == NULL)) {
        fprintf(stderr, "stress: malloc is not hakmem's\n");
        return 1;
    }
    for (int i = 0; i < EXCHANGE_SLOTS; i++)
        pthread_mutex_init(&exchange_lock[i], NULL);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t *tids = calloc(threads, sizeof *tids);
    if (tids == NULL)
        usage("out of memory");
    for (uint64_t t = 0; t < threads; t++)
        if (pthread_create(&tids[t], NULL, worker, (void *)(uintptr_t)(t + 1)) != 0)
            usage("pthread_create failed");
    if (seconds > 0 && ops_per_thread == 0) {
        sleep((unsigned)seconds);
        atomic_store(&stop, 1);
    }
    for (uint64_t t = 0; t < threads; t++)
        pthread_join(tids[t], NULL);
    free(tids);
    for (int i = 0; i < EXCHANGE_SLOTS; i++)
        release(&exchange[i]);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    unsigned long long f = atomic_load(&failures);
    printf("stress threads=%llu ops=%llu failures=%llu seconds=%.1f\n", (unsigned long long)threads,
           (unsigned long long)atomic_load(&total_ops), f,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    return f != 0;
}
