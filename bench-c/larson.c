/* larson — our implementation of the Larson–Krishnan "server" benchmark.
 *
 * T lineages, each an array of N live chunks of random size in [min, max].
 * A thread works one round on its lineage's array: each step frees a random
 * chunk and allocates a new one of random size, writing a few bytes into it.
 * When the round ends the thread starts a NEW thread on the same array and
 * exits, so blocks keep being freed by threads that did not allocate them
 * (and by threads whose allocating thread is gone).  The main thread
 * allocates the initial chunks and frees the last ones, so those are
 * cross-thread too.  The run ends after -s seconds (a stop flag) or after
 * -r rounds per lineage.
 *
 * Output, one line:  larson threads=T chunks=N min=A max=B seconds=S
 *                    rounds=R threads_created=C ops=O ops_per_sec=X
 * where one op is one step (one free plus one malloc). */
#define _GNU_SOURCE
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>

struct lineage {
    void **chunks;
    uint64_t rng;
    uint64_t ops;        /* steps done by all threads of this lineage */
    uint64_t rounds;     /* thread lifetimes completed */
    pthread_t prev;      /* the thread that handed the array over, to join */
    int has_prev;
};

static size_t g_chunks, g_min, g_max;
static uint64_t g_steps_per_round, g_max_rounds; /* g_max_rounds 0: timed run */
static atomic_int g_stop;
static atomic_ullong g_threads_created;

static pthread_mutex_t g_done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_done_cond = PTHREAD_COND_INITIALIZER;
static unsigned g_done;

static void *worker(void *arg);

static void start_thread(struct lineage *l)
{
    pthread_t t;
    bench_thread(&t, worker, l);
    atomic_fetch_add_explicit(&g_threads_created, 1, memory_order_relaxed);
}

static void *worker(void *arg)
{
    struct lineage *l = arg;
    /* Reap the predecessor so thread exits are part of the measured work and
     * no thread is still tearing down when main frees the chunks. */
    if (l->has_prev)
        pthread_join(l->prev, NULL);

    void **chunks = l->chunks;
    uint64_t rng = l->rng, step;
    for (step = 0; step < g_steps_per_round; step++) {
        /* Checking the flag every 64 steps keeps it off the hot path. */
        if ((step & 63) == 0 && atomic_load_explicit(&g_stop, memory_order_relaxed))
            break;
        size_t i = (size_t)rng_below(&rng, g_chunks);
        free(chunks[i]);
        size_t size = rng_size(&rng, g_min, g_max);
        void *p = malloc(size);
        if (p == NULL)
            die_oom("malloc", size);
        touch_block(p, size, (unsigned char)step);
        chunks[i] = p;
    }
    l->rng = rng;
    l->ops += step;
    l->rounds++;
    l->prev = pthread_self();
    l->has_prev = 1;

    int finished = atomic_load_explicit(&g_stop, memory_order_relaxed) ||
                   (g_max_rounds != 0 && l->rounds >= g_max_rounds);
    if (!finished) {
        start_thread(l); /* the successor joins us */
        return NULL;
    }
    pthread_mutex_lock(&g_done_lock);
    g_done++;
    pthread_cond_signal(&g_done_cond);
    pthread_mutex_unlock(&g_done_lock);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_name = "larson";
    bench_usage = "[-t threads] [-n chunks] [-m min] [-M max] [-s seconds | -r rounds] "
                  "[-i steps_per_round] [-S seed]";

    uint64_t threads = 4, chunks = 1024, min = 16, max = 1024, rounds = 0, steps = 0, seed = 42;
    double seconds = 2.0;
    int have_seconds = 0;

    opterr = 0; /* our own one-line message instead of getopt's */
    int c;
    while ((c = getopt(argc, argv, ":t:n:m:M:s:r:i:S:")) != -1) {
        switch (c) {
        case 't': threads = parse_u64('t', optarg, 1, 1024); break;
        case 'n': chunks = parse_u64('n', optarg, 1, 1ULL << 24); break;
        case 'm': min = parse_u64('m', optarg, 1, 1ULL << 30); break;
        case 'M': max = parse_u64('M', optarg, 1, 1ULL << 30); break;
        case 's': seconds = parse_seconds('s', optarg, 3600.0); have_seconds = 1; break;
        case 'r': rounds = parse_u64('r', optarg, 1, 1ULL << 32); break;
        case 'i': steps = parse_u64('i', optarg, 1, 1ULL << 40); break;
        case 'S': seed = parse_u64('S', optarg, 0, UINT64_MAX); break;
        default: bad_option(c);
        }
    }
    check_operands(argc, argv, min, max);
    if (have_seconds && rounds != 0)
        usage_error("-s and -r exclude each other");

    g_chunks = (size_t)chunks;
    g_min = (size_t)min;
    g_max = (size_t)max;
    /* Like the original's num_rounds * chperthread with num_rounds = 100. */
    g_steps_per_round = steps ? steps : 100 * chunks;
    g_max_rounds = rounds;

    struct lineage *lin = calloc(threads, sizeof *lin);
    if (lin == NULL)
        die_oom("calloc", threads * sizeof *lin);
    for (uint64_t t = 0; t < threads; t++) {
        lin[t].rng = rng_seed(seed, t);
        lin[t].chunks = malloc(chunks * sizeof(void *));
        if (lin[t].chunks == NULL)
            die_oom("malloc", chunks * sizeof(void *));
        /* Warm-up in the main thread, as the original does. */
        for (uint64_t i = 0; i < chunks; i++) {
            size_t size = rng_size(&lin[t].rng, g_min, g_max);
            void *p = malloc(size);
            if (p == NULL)
                die_oom("malloc", size);
            touch_block(p, size, (unsigned char)i);
            lin[t].chunks[i] = p;
        }
    }

    double start = now_sec();
    for (uint64_t t = 0; t < threads; t++)
        start_thread(&lin[t]);

    if (rounds == 0) {
        /* Timed run: sleep until the deadline, then raise the stop flag. */
        double deadline = start + seconds;
        for (double now = now_sec(); now < deadline; now = now_sec()) {
            double left = deadline - now;
            struct timespec ts = { (time_t)left, (long)((left - (double)(time_t)left) * 1e9) };
            nanosleep(&ts, NULL);
        }
        atomic_store(&g_stop, 1);
    }
    pthread_mutex_lock(&g_done_lock);
    while (g_done < threads)
        pthread_cond_wait(&g_done_cond, &g_done_lock);
    pthread_mutex_unlock(&g_done_lock);
    /* Each lineage's last thread recorded itself as prev before finishing. */
    for (uint64_t t = 0; t < threads; t++)
        pthread_join(lin[t].prev, NULL);
    double elapsed = now_sec() - start;

    uint64_t ops = 0, total_rounds = 0;
    for (uint64_t t = 0; t < threads; t++) {
        ops += lin[t].ops;
        total_rounds += lin[t].rounds;
        for (uint64_t i = 0; i < chunks; i++)
            free(lin[t].chunks[i]);
        free(lin[t].chunks);
    }
    free(lin);

    printf("larson threads=%llu chunks=%llu min=%llu max=%llu seconds=%.2f rounds=%llu "
           "threads_created=%llu ops=%llu ops_per_sec=%.1f\n",
           (unsigned long long)threads, (unsigned long long)chunks,
           (unsigned long long)min, (unsigned long long)max, elapsed,
           (unsigned long long)total_rounds,
           (unsigned long long)atomic_load(&g_threads_created),
           (unsigned long long)ops, (double)ops / elapsed);
    return 0;
}
