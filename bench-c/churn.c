/* churn — thread churn: T short-lived threads (in batches of B running at
 * once), each allocating K blocks of min..max bytes (-m/-M, 16..2048 by
 * default) and exiting; the blocks are freed by the main thread after their
 * thread has gone. Reports RSS (VmRSS, VmHWM from /proc/self/status) at the
 * end and at its peak.
 *
 * Output, one line: churn threads=T blocks=K final_kib=F peak_kib=P seconds=S
 * (plus min=A max=B after blocks= when -m or -M is given, and
 * after_wait_kib=W after final_kib= with -w MS: VmRSS again after MS quiet
 * milliseconds). */
#define _GNU_SOURCE
#include "bench_common.h"

#include <pthread.h>

#define MAX_BATCH 256

static uint64_t g_blocks;
static size_t g_min = 16, g_max = 2048;

struct job {
    uint64_t seed;
    void **out;
};

static void *worker(void *arg)
{
    struct job *j = arg;
    uint64_t rng = rng_seed(j->seed, 1);
    for (uint64_t i = 0; i < g_blocks; i++) {
        size_t n = rng_size(&rng, g_min, g_max);
        j->out[i] = malloc(n);
        if (j->out[i] == NULL)
            die_oom("malloc", n);
        touch_block(j->out[i], n, (unsigned char)i);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_name = "churn";
    bench_usage = "[-t threads] [-b batch] [-k blocks_per_thread] [-m min] [-M max] [-w wait_ms]";
    uint64_t threads = 20000, batch = 64, blocks = 16, min = 16, max = 2048, wait_ms = 0;
    int have_range = 0;
    opterr = 0;
    int c;
    while ((c = getopt(argc, argv, ":t:b:k:m:M:w:")) != -1) {
        switch (c) {
        case 't': threads = parse_u64('t', optarg, 1, 10000000); break;
        case 'b': batch = parse_u64('b', optarg, 1, MAX_BATCH); break;
        case 'k': blocks = parse_u64('k', optarg, 1, 100000); break;
        case 'm': min = parse_u64('m', optarg, 1, 1ULL << 30); have_range = 1; break;
        case 'M': max = parse_u64('M', optarg, 1, 1ULL << 30); have_range = 1; break;
        case 'w': wait_ms = parse_u64('w', optarg, 1, 60000); break;
        default: bad_option(c);
        }
    }
    check_operands(argc, argv, min, max);
    if (batch * blocks * max > (1ULL << 36))
        usage_error("batch * blocks_per_thread * max is more than 64 GiB live");
    g_blocks = blocks;
    g_min = (size_t)min;
    g_max = (size_t)max;

    static struct job jobs[MAX_BATCH];
    static pthread_t tids[MAX_BATCH];
    for (uint64_t b = 0; b < batch; b++) {
        jobs[b].out = calloc(blocks, sizeof(void *));
        if (jobs[b].out == NULL)
            die_oom("calloc", blocks * sizeof(void *));
    }
    double t0 = now_sec();
    for (uint64_t done = 0; done < threads; done += batch) {
        uint64_t n = threads - done < batch ? threads - done : batch;
        for (uint64_t b = 0; b < n; b++) {
            jobs[b].seed = done + b;
            bench_thread(&tids[b], worker, &jobs[b]);
        }
        for (uint64_t b = 0; b < n; b++)
            pthread_join(tids[b], NULL);
        /* The threads are gone; their blocks are freed here. */
        for (uint64_t b = 0; b < n; b++)
            for (uint64_t i = 0; i < blocks; i++)
                free(jobs[b].out[i]);
    }
    double secs = now_sec() - t0;
    /* The default line stays as it always was; a size range names itself. */
    char range[64] = "";
    if (have_range)
        snprintf(range, sizeof range, " min=%llu max=%llu", (unsigned long long)min,
                 (unsigned long long)max);
    long final_kib = proc_status_kib("VmRSS");
    /* -w: RSS again after that many quiet milliseconds (an allocator that
     * gives memory back after a delay has done so by then). */
    char waited[64] = "";
    if (wait_ms > 0) {
        usleep((useconds_t)(wait_ms * 1000));
        snprintf(waited, sizeof waited, " after_wait_kib=%ld", proc_status_kib("VmRSS"));
    }
    printf("churn threads=%llu blocks=%llu%s final_kib=%ld%s peak_kib=%ld seconds=%.2f\n",
           (unsigned long long)threads, (unsigned long long)blocks, range, final_kib, waited,
           proc_status_kib("VmHWM"), secs);
    return 0;
}
