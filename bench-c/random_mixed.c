/* random_mixed — random frees and mallocs over a table of slots.
 *
 * Each thread owns a table of W slots.  Each step picks a random slot, frees
 * whatever is there and mallocs a block of random size in [min, max] (always
 * `min` when min == max), writing its first bytes and its last byte.  Threads
 * never share blocks: this measures the single-thread fast paths (and their
 * scaling when -t > 1).
 *
 * Output, one line:  random_mixed threads=T steps=N slots=W min=A max=B
 *                    seed=S seconds=X ops=O ops_per_sec=Y
 * where steps is per thread and one op is one step (a free plus a malloc). */
#define _GNU_SOURCE
#include "bench_common.h"

#include <pthread.h>

struct job {
    uint64_t rng;
    double seconds; /* time this thread spent in its loop */
};

static uint64_t g_steps;
static size_t g_slots, g_min, g_max;
static pthread_barrier_t g_barrier;

static void *run(void *arg)
{
    struct job *job = arg;
    void **table = calloc(g_slots, sizeof(void *));
    if (table == NULL)
        die_oom("calloc", g_slots * sizeof(void *));
    uint64_t rng = job->rng;

    pthread_barrier_wait(&g_barrier); /* all threads start together */
    double start = now_sec();
    for (uint64_t step = 0; step < g_steps; step++) {
        size_t i = (size_t)rng_below(&rng, g_slots);
        free(table[i]);
        size_t size = rng_size(&rng, g_min, g_max);
        void *p = malloc(size);
        if (p == NULL)
            die_oom("malloc", size);
        touch_block(p, size, (unsigned char)step);
        table[i] = p;
    }
    job->seconds = now_sec() - start;

    for (size_t i = 0; i < g_slots; i++)
        free(table[i]);
    free(table);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_name = "random_mixed";
    bench_usage = "[-n steps] [-w slots] [-m min] [-M max] [-t threads] [-S seed]";

    uint64_t steps = 10000000, slots = 4096, min = 16, max = 1024, threads = 1, seed = 42;

    opterr = 0; /* our own one-line message instead of getopt's */
    int c;
    while ((c = getopt(argc, argv, ":n:w:m:M:t:S:")) != -1) {
        switch (c) {
        case 'n': steps = parse_u64('n', optarg, 1, 1ULL << 40); break;
        case 'w': slots = parse_u64('w', optarg, 1, 1ULL << 26); break;
        case 'm': min = parse_u64('m', optarg, 1, 1ULL << 30); break;
        case 'M': max = parse_u64('M', optarg, 1, 1ULL << 30); break;
        case 't': threads = parse_u64('t', optarg, 1, 1024); break;
        case 'S': seed = parse_u64('S', optarg, 0, UINT64_MAX); break;
        default: bad_option(c);
        }
    }
    check_operands(argc, argv, min, max);

    g_steps = steps;
    g_slots = (size_t)slots;
    g_min = (size_t)min;
    g_max = (size_t)max;

    struct job *jobs = calloc(threads, sizeof *jobs);
    pthread_t *tids = calloc(threads, sizeof *tids);
    if (jobs == NULL || tids == NULL)
        die_oom("calloc", threads * sizeof *jobs);
    if (pthread_barrier_init(&g_barrier, NULL, (unsigned)threads) != 0) {
        fprintf(stderr, "random_mixed: pthread_barrier_init failed\n");
        return 1;
    }
    for (uint64_t t = 0; t < threads; t++) {
        jobs[t].rng = rng_seed(seed, t);
        bench_thread(&tids[t], run, &jobs[t]);
    }
    /* The slowest thread's loop time: all ops were done within it. */
    double seconds = 0.0;
    for (uint64_t t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        if (jobs[t].seconds > seconds)
            seconds = jobs[t].seconds;
    }
    pthread_barrier_destroy(&g_barrier);
    free(jobs);
    free(tids);

    uint64_t ops = steps * threads;
    printf("random_mixed threads=%llu steps=%llu slots=%llu min=%llu max=%llu seed=%llu "
           "seconds=%.3f ops=%llu ops_per_sec=%.1f\n",
           (unsigned long long)threads, (unsigned long long)steps,
           (unsigned long long)slots, (unsigned long long)min, (unsigned long long)max,
           (unsigned long long)seed, seconds, (unsigned long long)ops,
           seconds > 0 ? (double)ops / seconds : 0.0);
    return 0;
}
