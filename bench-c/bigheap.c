/* bigheap: a large working set touched at random, where TLB reach decides
 * the time (what HAKMEM_THP is about).  Allocates blocks of MIN..MAX bytes
 * until MIB MiB are live, writing each; then STEPS rounds each read and
 * write one random word of one random block, with one block in 64 freed
 * and allocated anew (so the heap keeps changing); then frees everything.
 *
 *   bigheap [-g MIB] [-m MIN] [-M MAX] [-n STEPS] [-S SEED]
 *
 * Prints one line:
 *   ops_per_sec=<steps per second of the random phase> seconds=<whole run>
 *   fill_seconds=<allocating and writing> peak_kib=<VmHWM> */
#include "bench_common.h"

int main(int argc, char **argv)
{
    bench_name = "bigheap";
    bench_usage = "[-g MIB] [-m MIN] [-M MAX] [-n STEPS] [-S SEED]";
    uint64_t mib = 1024, min = 64, max = 4096, steps = 20000000, seed = 42;
    int c;
    while ((c = getopt(argc, argv, ":g:m:M:n:S:")) != -1) {
        switch (c) {
        case 'g': mib = parse_u64('g', optarg, 1, 1 << 20); break;
        case 'm': min = parse_u64('m', optarg, 8, 1 << 20); break;
        case 'M': max = parse_u64('M', optarg, 8, 1 << 20); break;
        case 'n': steps = parse_u64('n', optarg, 1, 1ULL << 40); break;
        case 'S': seed = parse_u64('S', optarg, 0, UINT64_MAX); break;
        default: bad_option(c);
        }
    }
    check_operands(argc, argv, min, max);

    uint64_t rng = rng_seed(seed, 0);
    uint64_t target = mib << 20, live = 0;
    uint64_t n = target / ((min + max) / 2) + 1, count = 0;
    size_t bytes;
    void **ptrs = map_pointers(n, &bytes);
    size_t *sizes = (size_t *)map_pointers(n, &bytes);
    double t0 = now_sec();
    while (live < target && count < n) {
        size_t s = rng_size(&rng, min, max);
        char *p = malloc(s);
        if (!p)
            die_oom("malloc", s);
        memset(p, (int)(count & 0xff), s);
        ptrs[count] = p;
        sizes[count++] = s;
        live += s;
    }
    double t1 = now_sec();
    uint64_t sum = 0;
    for (uint64_t i = 0; i < steps; i++) {
        uint64_t k = rng_below(&rng, count);
        uint64_t *w = (uint64_t *)ptrs[k] + rng_below(&rng, sizes[k] / 8);
        sum += *w;
        *w = sum;
        if ((i & 63) == 0) {
            free(ptrs[k]);
            size_t s = rng_size(&rng, min, max);
            char *p = malloc(s);
            if (!p)
                die_oom("malloc", s);
            memset(p, 1, s);
            ptrs[k] = p;
            sizes[k] = s;
        }
    }
    double t2 = now_sec();
    for (uint64_t i = 0; i < count; i++)
        free(ptrs[i]);
    double t3 = now_sec();
    printf("ops_per_sec=%.0f seconds=%.3f fill_seconds=%.3f peak_kib=%ld blocks=%llu check=%llu\n",
           (double)steps / (t2 - t1), t3 - t0, t1 - t0, proc_status_kib("VmHWM"),
           (unsigned long long)count, (unsigned long long)(sum & 0xff));
    return 0;
}
