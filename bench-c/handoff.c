/* handoff — threads that keep a changing set of blocks and hand batches of
 * fresh blocks to each other: a server whose workers pass work items on.
 *
 * T threads each own a table of W slots. A round frees f slots and fills a
 * new blocks into slots (each slot walked with its own prime stride, so the
 * slots freed and filled are scattered over the table and a refilled slot's
 * old block is freed first), frees every batch other threads handed it,
 * and every other round allocates a batch of a blocks for the next thread
 * in turn and hands it over (a lock-free stack per thread; at most 4
 * batches wait for one thread, the sender yields meanwhile). f and a vary
 * round by round around -o (a from o/2 to 3o/2, f 80% of that), so the
 * live set breathes. Sizes are skewed to the small end: min + (max - min)
 * * u^3 for u uniform in [0, 1); a third of the blocks come from calloc,
 * a third from memalign(8) and a third from memalign(16), and each block is
 * written on every page (what a program that fills its blocks pays).
 *
 * Output, one line:  handoff threads=T slots=W ops=o rounds=R min=A max=B
 *                    mallocs=N ops_per_sec=X seconds=S peak_kib=K
 * where one op is a malloc or a free (of own or handed blocks) and peak_kib
 * is VmHWM, the process's peak RSS. */
#define _GNU_SOURCE
#include "bench_common.h"

#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

struct batch {
    struct batch *next;
    size_t len;
    void *blocks[];
};

struct worker {
    _Alignas(64) _Atomic(struct batch *) inbox;
    atomic_uint pending; /* batches in the inbox */
    uint64_t ops;
    uint64_t mallocs;
    unsigned index;
};

#define MAX_PENDING 4

static struct worker *g_workers;
static unsigned g_threads;
static size_t g_slots, g_ops, g_rounds, g_min, g_max;
static uint64_t g_seed;
static pthread_barrier_t g_barrier;
static atomic_uint g_running;

static size_t skewed_size(uint64_t *rng)
{
    double u = (double)(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
    return g_min + (size_t)((double)(g_max - g_min) * u * u * u);
}

/* A block of n bytes, written on every page and stamped with n. */
static void *make_block(uint64_t *rng, size_t n)
{
    void *p;
    switch (rng_below(rng, 3)) {
    case 0: p = calloc(1, n); break;
    case 1: p = memalign(8, n); break;
    default: p = memalign(16, n); break;
    }
    if (p == NULL)
        die_oom("malloc", n);
    unsigned char *b = p;
    for (size_t off = 4096; off < n; off += 4096)
        b[off] = 1;
    b[n - 1] = 1;
    memcpy(b, &n, sizeof n);
    return p;
}

static void check_and_free(void *p)
{
    /* The stamp (its size, written by its maker) must still be there. */
    size_t n;
    memcpy(&n, p, sizeof n);
    if (n < g_min || n > g_max) {
        fprintf(stderr, "handoff: block %p holds %zu where its size was written\n", p, n);
        exit(1);
    }
    free(p);
}

/* Frees every batch handed to w so far; returns the blocks freed. */
static uint64_t drain(struct worker *w)
{
    uint64_t n = 0;
    unsigned taken = 0;
    struct batch *b = atomic_exchange_explicit(&w->inbox, NULL, memory_order_acquire);
    while (b != NULL) {
        struct batch *next = b->next;
        for (size_t i = 0; i < b->len; i++)
            check_and_free(b->blocks[i]);
        n += b->len + 1;
        free(b);
        b = next;
        taken++;
    }
    atomic_fetch_sub(&w->pending, taken);
    return n;
}

static void hand_to(struct worker *to, struct batch *b)
{
    atomic_fetch_add(&to->pending, 1);
    struct batch *head = atomic_load_explicit(&to->inbox, memory_order_relaxed);
    do
        b->next = head;
    while (!atomic_compare_exchange_weak_explicit(&to->inbox, &head, b, memory_order_release,
                                                  memory_order_relaxed));
}

/* The first prime at least `from` that does not divide n. */
static size_t stride_for(size_t n, size_t from)
{
    for (size_t s = from;; s++) {
        int prime = s > 1;
        for (size_t d = 2; d * d <= s && prime; d++)
            prime = s % d != 0;
        if (prime && n % s != 0)
            return s;
    }
}

static void *run(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = rng_seed(g_seed, w->index + 1);
    size_t bytes;
    void **table = map_pointers(g_slots, &bytes);
    size_t fill_at = 0, free_at = 0;
    size_t fill_stride = stride_for(g_slots, 7 + w->index), free_stride = stride_for(g_slots, 31 + w->index);
    uint64_t ops = 0, mallocs = 0;
    unsigned next = (w->index + 1) % g_threads;

    pthread_barrier_wait(&g_barrier);
    for (size_t round = 0; round < g_rounds; round++) {
        size_t fills = g_ops / 2 + (size_t)rng_below(&rng, g_ops + 1);
        size_t frees = fills * 4 / 5;
        for (size_t i = 0; i < frees; i++) {
            if (table[free_at] != NULL) {
                check_and_free(table[free_at]);
                table[free_at] = NULL;
                ops++;
            }
            free_at = (free_at + free_stride) % g_slots;
        }
        ops += drain(w);
        for (size_t i = 0; i < fills; i++) {
            if (table[fill_at] != NULL) {
                check_and_free(table[fill_at]);
                ops++;
            }
            table[fill_at] = make_block(&rng, skewed_size(&rng));
            fill_at = (fill_at + fill_stride) % g_slots;
        }
        ops += fills;
        mallocs += fills;
        if (g_threads > 1 && round % 2 == 0) {
            struct batch *b = malloc(sizeof *b + fills * sizeof(void *));
            if (b == NULL)
                die_oom("malloc", sizeof *b + fills * sizeof(void *));
            b->len = fills;
            for (size_t i = 0; i < fills; i++)
                b->blocks[i] = make_block(&rng, skewed_size(&rng));
            ops += fills + 1;
            mallocs += fills + 1;
            /* At most MAX_PENDING batches wait for a thread: a receiver the
             * scheduler left out (more threads than cores) must not make
             * the peak RSS a measure of the scheduler. */
            while (atomic_load(&g_workers[next].pending) >= MAX_PENDING) {
                ops += drain(w);
                sched_yield();
            }
            hand_to(&g_workers[next], b);
            next = (next + 1) % g_threads;
            if (next == w->index)
                next = (next + 1) % g_threads;
        }
    }
    /* Keep taking handed batches until every thread has stopped handing. */
    atomic_fetch_sub(&g_running, 1);
    while (atomic_load(&g_running) > 0)
        ops += drain(w);
    ops += drain(w);
    for (size_t i = 0; i < g_slots; i++)
        if (table[i] != NULL) {
            check_and_free(table[i]);
            ops++;
        }
    munmap(table, bytes);
    w->ops = ops;
    w->mallocs = mallocs;
    return NULL;
}

int main(int argc, char **argv)
{
    bench_name = "handoff";
    bench_usage = "[-t threads] [-w slots] [-o ops] [-r rounds] [-m min] [-M max] [-S seed]";

    uint64_t threads = 2, slots = 1000, ops = 100, rounds = 2000, min = 16, max = 16000, seed = 42;
    opterr = 0;
    int c;
    while ((c = getopt(argc, argv, ":t:w:o:r:m:M:S:")) != -1) {
        switch (c) {
        case 't': threads = parse_u64('t', optarg, 1, 1024); break;
        case 'w': slots = parse_u64('w', optarg, 1, 1ULL << 28); break;
        case 'o': ops = parse_u64('o', optarg, 1, 1ULL << 20); break;
        case 'r': rounds = parse_u64('r', optarg, 1, 1ULL << 40); break;
        case 'm': min = parse_u64('m', optarg, 8, 1ULL << 30); break;
        case 'M': max = parse_u64('M', optarg, 8, 1ULL << 30); break;
        case 'S': seed = parse_u64('S', optarg, 0, UINT64_MAX); break;
        default: bad_option(c);
        }
    }
    check_operands(argc, argv, min, max);
    g_threads = (unsigned)threads;
    g_slots = (size_t)slots;
    g_ops = (size_t)ops;
    g_rounds = (size_t)rounds;
    g_min = (size_t)min;
    g_max = (size_t)max;
    g_seed = seed;
    atomic_store(&g_running, g_threads);

    g_workers = aligned_alloc(64, threads * sizeof *g_workers);
    pthread_t *tids = calloc(threads, sizeof *tids);
    if (g_workers == NULL || tids == NULL)
        die_oom("calloc", threads * sizeof *g_workers);
    memset(g_workers, 0, threads * sizeof *g_workers);
    pthread_barrier_init(&g_barrier, NULL, g_threads + 1);
    for (unsigned i = 0; i < g_threads; i++) {
        g_workers[i].index = i;
        bench_thread(&tids[i], run, &g_workers[i]);
    }
    pthread_barrier_wait(&g_barrier);
    double t0 = now_sec();
    for (unsigned i = 0; i < g_threads; i++)
        pthread_join(tids[i], NULL);
    double elapsed = now_sec() - t0;
    long peak = proc_status_kib("VmHWM");

    uint64_t total = 0, mallocs = 0;
    for (unsigned i = 0; i < g_threads; i++) {
        total += g_workers[i].ops;
        mallocs += g_workers[i].mallocs;
    }
    printf("handoff threads=%u slots=%zu ops=%zu rounds=%zu min=%zu max=%zu mallocs=%llu "
           "ops_per_sec=%.1f seconds=%.3f peak_kib=%ld\n",
           g_threads, g_slots, g_ops, g_rounds, g_min, g_max, (unsigned long long)mallocs,
           (double)total / elapsed, elapsed, peak);
    free(tids);
    free(g_workers);
    return 0;
}
