/* memory — how much memory an allocator needs for many small live blocks.
 *
 * Allocates N blocks of S bytes, writes every byte, keeps them all, reads
 * VmRSS and VmHWM from /proc/self/status, then frees them all, allocates a
 * little (as a program would go on doing) and reads VmRSS again. With -w,
 * it then goes on allocating a little for that many seconds (a block of
 * 16..4096 bytes every millisecond, the oldest of 64 freed) and reads VmRSS
 * once more: memory an allocator gives back lazily is back by then.
 *
 * Output, one line, values in KiB:
 *   memory blocks=N size=S baseline_kib=B live_kib=L peak_kib=P data_kib=D
 *          overhead_kib=O after_free_kib=F start_kib=S0 after_wait_kib=W
 * baseline: RSS before the blocks; live: RSS with all blocks live; peak:
 * VmHWM (the process's peak RSS); data: N*S; overhead: live - baseline - data
 * (negative means less than the bytes asked for, which cannot happen with a
 * real allocator); after_free: RSS after freeing everything; after_wait:
 * RSS after the -w phase (equal to after_free without -w), to compare with
 * start: RSS when the program started (before its pointer array). */
#define _GNU_SOURCE
#include "bench_common.h"


int main(int argc, char **argv)
{
    bench_name = "memory";
    bench_usage = "[-n blocks] [-s size] [-w seconds]";

    uint64_t blocks = 1048576, size = 16;
    double wait = 0;

    opterr = 0; /* our own one-line message instead of getopt's */
    int c;
    while ((c = getopt(argc, argv, ":n:s:w:")) != -1) {
        switch (c) {
        case 'n': blocks = parse_u64('n', optarg, 1, 1ULL << 30); break;
        case 's': size = parse_u64('s', optarg, 1, 1ULL << 30); break;
        case 'w': wait = parse_seconds('w', optarg, 600.0); break;
        default: bad_option(c);
        }
    }
    check_operands(argc, argv, 0, 0);
    if (blocks * size > (1ULL << 36))
        usage_error("blocks * size is more than 64 GiB");

    long start = proc_status_kib("VmRSS");
    /* The pointer array comes from mmap, not the allocator under test, and is
     * touched before the baseline so it is not counted as overhead. */
    size_t array_bytes;
    void **ptrs = map_pointers(blocks, &array_bytes);
    memset(ptrs, 0, array_bytes);

    long baseline = proc_status_kib("VmRSS");
    fill_blocks(ptrs, blocks, (size_t)size);
    long live = proc_status_kib("VmRSS");
    long peak = proc_status_kib("VmHWM");
    long data = (long)((blocks * size) / 1024);

    for (uint64_t i = 0; i < blocks; i++)
        free(ptrs[i]);
    /* A little allocation after the big free, as a program would go on
     * doing: some allocators return memory lazily, on their next call. */
    void *few[64];
    for (int i = 0; i < 64; i++) {
        few[i] = malloc((size_t)size);
        if (few[i] == NULL)
            die_oom("malloc", (size_t)size);
        memset(few[i], i, (size_t)size);
    }
    long after = proc_status_kib("VmRSS");
    for (int i = 0; i < 64; i++)
        free(few[i]);
    munmap(ptrs, array_bytes);

    long after_wait = after;
    if (wait > 0) {
        void *ring[64] = { 0 };
        uint64_t rng = rng_seed(7, 0);
        double end = now_sec() + wait;
        for (unsigned k = 0; now_sec() < end; k++) {
            free(ring[k % 64]);
            size_t n = rng_size(&rng, 16, 4096);
            ring[k % 64] = malloc(n);
            if (ring[k % 64] == NULL)
                die_oom("malloc", n);
            touch_block(ring[k % 64], n, (unsigned char)k);
            struct timespec ms = { 0, 1000000 };
            nanosleep(&ms, NULL);
        }
        after_wait = proc_status_kib("VmRSS");
        for (int i = 0; i < 64; i++)
            free(ring[i]);
    }

    printf("memory blocks=%llu size=%llu baseline_kib=%ld live_kib=%ld peak_kib=%ld "
           "data_kib=%ld overhead_kib=%ld after_free_kib=%ld start_kib=%ld after_wait_kib=%ld\n",
           (unsigned long long)blocks, (unsigned long long)size, baseline, live, peak,
           data, live - baseline - data, after, start, after_wait);
    return 0;
}
