/* bigblocks — big allocations: each step frees a random one of W slots and
 * allocates a block of random size in [min, max] (64 KiB .. 16 MiB by
 * default), touching every page of it; a third of the steps realloc a slot
 * instead (growing or shrinking it). Reports the time and the peak RSS.
 *
 * Output, one line: bigblocks steps=N slots=W seconds=S peak_kib=P */
#define _GNU_SOURCE
#include "bench_common.h"

#include <fcntl.h>

static long peak_kib(void)
{
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strstr(buf, "VmHWM:");
    return p ? strtol(p + 6, NULL, 10) : 0;
}

static void touch_pages(unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i += 4096)
        p[i] = v;
    p[n - 1] = v;
}

int main(int argc, char **argv)
{
    bench_name = "bigblocks";
    bench_usage = "[-n steps] [-w slots] [-m min] [-M max] [-S seed]";
    uint64_t steps = 4000, slots = 16, min = 64 << 10, max = 16 << 20, seed = 42;
    opterr = 0;
    int c;
    while ((c = getopt(argc, argv, ":n:w:m:M:S:")) != -1) {
        switch (c) {
        case 'n': steps = parse_u64('n', optarg, 1, 1ULL << 32); break;
        case 'w': slots = parse_u64('w', optarg, 1, 4096); break;
        case 'm': min = parse_u64('m', optarg, 1, 1ULL << 32); break;
        case 'M': max = parse_u64('M', optarg, 1, 1ULL << 32); break;
        case 'S': seed = parse_u64('S', optarg, 0, UINT64_MAX); break;
        default: bad_option(c);
        }
    }
    check_operands(argc, argv, min, max);

    unsigned char **table = calloc(slots, sizeof *table);
    size_t *sizes = calloc(slots, sizeof *sizes);
    if (table == NULL || sizes == NULL)
        die_oom("calloc", slots * sizeof *table);
    uint64_t rng = rng_seed(seed, 0);
    double t0 = now_sec();
    for (uint64_t s = 0; s < steps; s++) {
        size_t i = (size_t)rng_below(&rng, slots);
        size_t n = rng_size(&rng, min, max);
        if (table[i] != NULL && rng_below(&rng, 3) == 0) {
            unsigned char *q = realloc(table[i], n);
            if (q == NULL)
                die_oom("realloc", n);
            table[i] = q;
        } else {
            free(table[i]);
            table[i] = malloc(n);
            if (table[i] == NULL)
                die_oom("malloc", n);
        }
        sizes[i] = n;
        touch_pages(table[i], n, (unsigned char)s);
    }
    double secs = now_sec() - t0;
    for (size_t i = 0; i < slots; i++)
        free(table[i]);
    printf("bigblocks steps=%llu slots=%llu seconds=%.3f peak_kib=%ld\n", (unsigned long long)steps,
           (unsigned long long)slots, secs, peak_kib());
    free(table);
    free(sizes);
    return 0;
}
