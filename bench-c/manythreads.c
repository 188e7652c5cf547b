/* manythreads — more threads than cores, each hammering mixed sizes and
 * trading blocks with the others, started afresh every round.
 *
 * For R rounds, T threads are started; each makes N steps: allocate a block
 * (sizes 16..256 B mostly, one in 100 up to 100 times larger, one in 1000
 * up to 1000 times), free a random block of its own two times in three,
 * and one time in four swap one of its blocks with a random slot of a
 * shared table (an atomic exchange: the block it gets back was allocated by
 * another thread, maybe of an earlier round). A thread frees what it holds
 * before it exits; between rounds the main thread frees half of the shared
 * table. Every block is written whole and checked whole before its free.
 *
 * Output, one line:  manythreads threads=T rounds=R steps=N ops_per_sec=X
 *                    seconds=S peak_kib=K
 * where one op is a malloc or a free. */
#define _GNU_SOURCE
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>

#define SHARED 1024

static _Atomic(uint64_t *) g_shared[SHARED];
static uint64_t g_steps, g_seed;
static atomic_ullong g_ops;

/* A block of n words, word i holding n - i. */
static uint64_t *make(size_t n)
{
    uint64_t *p = malloc(n * sizeof *p);
    if (p == NULL)
        die_oom("malloc", n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = n - i;
    return p;
}

static void check_and_free(uint64_t *p)
{
    if (p == NULL)
        return;
    uint64_t n = p[0];
    for (uint64_t i = 0; i < n; i++)
        if (p[i] != n - i) {
            fprintf(stderr, "manythreads: block %p damaged at word %llu\n", (void *)p, (unsigned long long)i);
            exit(1);
        }
    free(p);
}

static size_t words(uint64_t *rng)
{
    size_t n = (size_t)2 << rng_below(rng, 5); /* 16..256 bytes */
    uint64_t r = rng_below(rng, 1000);
    if (r == 0)
        n *= 1 + rng_below(rng, 1000);
    else if (r < 10)
        n *= 1 + rng_below(rng, 100);
    return n;
}

static void *run(void *arg)
{
    uint64_t rng = rng_seed(g_seed, (uint64_t)(uintptr_t)arg);
    size_t cap = (size_t)g_steps, top = 0;
    size_t bytes;
    uint64_t **mine = (uint64_t **)map_pointers(cap, &bytes);
    uint64_t ops = 0;
    for (uint64_t s = 0; s < g_steps; s++) {
        mine[top++] = make(words(&rng));
        ops++;
        if (rng_below(&rng, 3) < 2) {
            size_t i = (size_t)rng_below(&rng, top);
            if (mine[i] != NULL) {
                check_and_free(mine[i]);
                ops++;
            }
            mine[i] = NULL;
        }
        if (rng_below(&rng, 4) == 0) {
            size_t i = (size_t)rng_below(&rng, top);
            mine[i] = atomic_exchange(&g_shared[rng_below(&rng, SHARED)], mine[i]);
        }
    }
    for (size_t i = 0; i < top; i++)
        if (mine[i] != NULL) {
            check_and_free(mine[i]);
            ops++;
        }
    munmap(mine, bytes);
    atomic_fetch_add(&g_ops, ops);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_name = "manythreads";
    bench_usage = "[-t threads] [-r rounds] [-n steps] [-S seed]";

    uint64_t threads = 8, rounds = 20, steps = 20000, seed = 42;
    opterr = 0;
    int c;
    while ((c = getopt(argc, argv, ":t:r:n:S:")) != -1) {
        switch (c) {
        case 't': threads = parse_u64('t', optarg, 1, 4096); break;
        case 'r': rounds = parse_u64('r', optarg, 1, 1ULL << 30); break;
        case 'n': steps = parse_u64('n', optarg, 1, 1ULL << 30); break;
        case 'S': seed = parse_u64('S', optarg, 0, UINT64_MAX); break;
        default: bad_option(c);
        }
    }
    check_operands(argc, argv, 1, 1);
    g_steps = steps;
    g_seed = seed;

    pthread_t *tids = calloc(threads, sizeof *tids);
    if (tids == NULL)
        die_oom("calloc", threads * sizeof *tids);
    uint64_t rng = rng_seed(seed, 0);
    uint64_t freed = 0;
    double t0 = now_sec();
    for (uint64_t r = 0; r < rounds; r++) {
        for (uint64_t i = 0; i < threads; i++)
            bench_thread(&tids[i], run, (void *)(uintptr_t)(r * threads + i + 1));
        for (uint64_t i = 0; i < threads; i++)
            pthread_join(tids[i], NULL);
        for (size_t i = 0; i < SHARED; i++)
            if (r + 1 == rounds || rng_below(&rng, 2) == 0) {
                uint64_t *p = atomic_exchange(&g_shared[i], NULL);
                if (p != NULL) {
                    check_and_free(p);
                    freed++;
                }
            }
    }
    double elapsed = now_sec() - t0;
    long peak = proc_status_kib("VmHWM");
    double ops = (double)(atomic_load(&g_ops) + freed);
    printf("manythreads threads=%llu rounds=%llu steps=%llu ops_per_sec=%.1f seconds=%.3f peak_kib=%ld\n",
           (unsigned long long)threads, (unsigned long long)rounds, (unsigned long long)steps,
           ops / elapsed, elapsed, peak);
    free(tids);
    return 0;
}
