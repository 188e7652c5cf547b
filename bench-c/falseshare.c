/* falseshare — threads that each write their own small objects all the
 * time: fast only if the allocator never puts two threads' objects on one
 * cache line.
 *
 * T threads each run I iterations of: malloc an object of s bytes, write
 * and read back every byte of it R times, free it. In passive mode (-p) the
 * main thread allocates the T first objects one after another (so they are
 * neighbours) and hands one to each thread, which frees it before its first
 * iteration: an allocator that gives that memory back to the freeing thread
 * keeps the threads' objects on shared lines (the passive false sharing of
 * a producer that allocates for its workers).
 *
 * Output, one line:  falseshare threads=T mode=active|passive size=s
 *                    iterations=I repeats=R ops_per_sec=X seconds=S
 * where one op is one byte written and read back. */
#define _GNU_SOURCE
#include "bench_common.h"

#include <pthread.h>

struct job {
    char *first; /* passive mode: the object main allocated for this thread */
    uint64_t sum;
};

static size_t g_size;
static uint64_t g_iterations, g_repeats;
static pthread_barrier_t g_barrier;

static void *run(void *arg)
{
    struct job *job = arg;
    uint64_t sum = 0;
    free(job->first);
    pthread_barrier_wait(&g_barrier);
    for (uint64_t i = 0; i < g_iterations; i++) {
        volatile char *obj = malloc(g_size);
        if (obj == NULL)
            die_oom("malloc", g_size);
        for (uint64_t r = 0; r < g_repeats; r++)
            for (size_t k = 0; k < g_size; k++) {
                obj[k] = (char)(k + r);
                sum += (unsigned char)obj[k];
            }
        free((void *)obj);
    }
    job->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    bench_name = "falseshare";
    bench_usage = "[-t threads] [-s size] [-i iterations] [-r repeats] [-p]";

    uint64_t threads = 2, size = 8, iterations = 1000, repeats = 100000;
    int passive = 0;
    opterr = 0;
    int c;
    while ((c = getopt(argc, argv, ":t:s:i:r:p")) != -1) {
        switch (c) {
        case 't': threads = parse_u64('t', optarg, 1, 1024); break;
        case 's': size = parse_u64('s', optarg, 1, 1 << 20); break;
        case 'i': iterations = parse_u64('i', optarg, 1, 1ULL << 40); break;
        case 'r': repeats = parse_u64('r', optarg, 1, 1ULL << 40); break;
        case 'p': passive = 1; break;
        default: bad_option(c);
        }
    }
    check_operands(argc, argv, 1, 1);
    g_size = (size_t)size;
    g_iterations = iterations;
    g_repeats = repeats;

    struct job *jobs = calloc(threads, sizeof *jobs);
    pthread_t *tids = calloc(threads, sizeof *tids);
    if (jobs == NULL || tids == NULL)
        die_oom("calloc", threads * sizeof *jobs);
    for (uint64_t i = 0; passive && i < threads; i++) {
        jobs[i].first = malloc(g_size);
        if (jobs[i].first == NULL)
            die_oom("malloc", g_size);
    }
    pthread_barrier_init(&g_barrier, NULL, (unsigned)threads + 1);
    for (uint64_t i = 0; i < threads; i++)
        bench_thread(&tids[i], run, &jobs[i]);
    pthread_barrier_wait(&g_barrier);
    double t0 = now_sec();
    uint64_t sum = 0;
    for (uint64_t i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        sum += jobs[i].sum;
    }
    double elapsed = now_sec() - t0;
    /* Each byte k of repeat r read back k + r: the sum says no write was lost. */
    uint64_t want = 0;
    for (uint64_t r = 0; r < repeats; r++)
        for (size_t k = 0; k < g_size; k++)
            want += (unsigned char)(char)(k + r);
    if (sum != want * iterations * threads) {
        fprintf(stderr, "falseshare: the objects read back wrong bytes\n");
        return 1;
    }
    double ops = (double)threads * (double)iterations * (double)repeats * (double)g_size;
    printf("falseshare threads=%llu mode=%s size=%zu iterations=%llu repeats=%llu ops_per_sec=%.1f "
           "seconds=%.3f\n",
           (unsigned long long)threads, passive ? "passive" : "active", g_size,
           (unsigned long long)iterations, (unsigned long long)repeats, ops / elapsed, elapsed);
    free(tids);
    free(jobs);
    return 0;
}
