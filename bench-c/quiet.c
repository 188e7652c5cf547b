/* quiet — a burst, then a quiet period: does freed memory go back?
 *
 * Allocates N blocks of S bytes, writing every byte, frees them all, and then
 * for W seconds either sleeps without a single allocator call (-q, "sleep")
 * or keeps the allocator's fast path busy with small malloc(64)/free pairs,
 * one pair every I microseconds (-a, the default, "active"), and reads VmRSS.
 * An allocator that returns memory only from its slow paths (on a later
 * refill, a later big free) keeps it in both modes; one that purges on a
 * timer from any call gives it back in active mode; only a background
 * purge (or purging at free) gives it back in sleep mode.
 *
 * Output, one line, values in KiB:
 *   quiet blocks=N size=S mode=sleep|active wait=W start_kib=S0 live_kib=L
 *         after_free_kib=F after_wait_kib=A growth_kib=G pairs=P
 * start: VmRSS when the program started; live: with all blocks live;
 * after_free: right after the last free; after_wait: after the quiet period;
 * growth: after_wait - start (what the burst left resident); pairs: the
 * malloc/free pairs done while waiting (0 in sleep mode). */
#define _GNU_SOURCE
#include "bench_common.h"


int main(int argc, char **argv)
{
    bench_name = "quiet";
    bench_usage = "[-n blocks] [-s size] [-w seconds] [-q | -a] [-i interval_us]";

    uint64_t blocks = 1048576, size = 16, interval_us = 10;
    double wait = 1.0;
    int sleep_mode = 0, have_q = 0, have_a = 0;

    opterr = 0; /* our own one-line message instead of getopt's */
    int c;
    while ((c = getopt(argc, argv, ":n:s:w:qai:")) != -1) {
        switch (c) {
        case 'n': blocks = parse_u64('n', optarg, 1, 1ULL << 30); break;
        case 's': size = parse_u64('s', optarg, 1, 1ULL << 32); break;
        case 'w': wait = parse_seconds('w', optarg, 600.0); break;
        case 'q': sleep_mode = 1; have_q = 1; break;
        case 'a': sleep_mode = 0; have_a = 1; break;
        case 'i': interval_us = parse_u64('i', optarg, 1, 1000000); break;
        default: bad_option(c);
        }
    }
    check_operands(argc, argv, 0, 0);
    if (have_q && have_a)
        usage_error("-q and -a exclude each other");
    if (blocks * size > (1ULL << 36))
        usage_error("blocks * size is more than 64 GiB");

    long start = proc_status_kib("VmRSS");
    /* The pointer array comes from mmap, not the allocator under test, and
     * goes back before the last reading, so it is not counted as growth. */
    size_t array_bytes;
    void **ptrs = map_pointers(blocks, &array_bytes);
    fill_blocks(ptrs, blocks, (size_t)size);
    long live = proc_status_kib("VmRSS");
    for (uint64_t i = 0; i < blocks; i++)
        free(ptrs[i]);
    munmap(ptrs, array_bytes);
    long after_free = proc_status_kib("VmRSS");

    uint64_t pairs = 0;
    double end = now_sec() + wait;
    if (sleep_mode) {
        /* No allocator call at all: nanosleep and the clock do not allocate. */
        for (double now = now_sec(); now < end; now = now_sec()) {
            double left = end - now;
            struct timespec ts = { (time_t)left, (long)((left - (double)(time_t)left) * 1e9) };
            nanosleep(&ts, NULL);
        }
    } else {
        struct timespec gap = { (time_t)(interval_us / 1000000),
                                (long)(interval_us % 1000000) * 1000 };
        while (now_sec() < end) {
            unsigned char *p = malloc(64);
            if (p == NULL)
                die_oom("malloc", 64);
            touch_block(p, 64, (unsigned char)pairs);
            /* The block escapes, so the compiler cannot drop the pair. */
            __asm__ volatile("" : : "r"(p) : "memory");
            free(p);
            pairs++;
            nanosleep(&gap, NULL);
        }
    }
    long after_wait = proc_status_kib("VmRSS");

    printf("quiet blocks=%llu size=%llu mode=%s wait=%g start_kib=%ld live_kib=%ld "
           "after_free_kib=%ld after_wait_kib=%ld growth_kib=%ld pairs=%llu\n",
           (unsigned long long)blocks, (unsigned long long)size,
           sleep_mode ? "sleep" : "active", wait, start, live, after_free, after_wait,
           after_wait - start, (unsigned long long)pairs);
    return 0;
}
