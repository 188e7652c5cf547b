/* Shared pieces of the benchmark harnesses: argument parsing that rejects bad
 * input with exit code 2, a fast per-thread PRNG, a monotonic clock and the
 * out-of-memory exit.  Header-only so each harness stays one translation unit. */
#ifndef HAKMEM_BENCH_COMMON_H
#define HAKMEM_BENCH_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

/* Set by each harness before parsing: its name and its one-line usage. */
static const char *bench_name = "bench";
static const char *bench_usage = "";

/* Bad arguments: one line on stderr (problem; usage) and exit code 2. */
__attribute__((noreturn, format(printf, 1, 2)))
static inline void usage_error(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s; usage: %s %s\n", bench_name, msg, bench_name, bench_usage);
    exit(2);
}

/* The end of every harness's getopt switch: `case ':'` and `default`. */
__attribute__((noreturn))
static inline void bad_option(int c)
{
    if (c == ':')
        usage_error("-%c needs a value", optopt);
    usage_error("unknown option '-%c'", optopt);
}

/* After the options: no operands, and a size range that is one. */
static inline void check_operands(int argc, char **argv, uint64_t min, uint64_t max)
{
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (min > max)
        usage_error("min %llu is larger than max %llu", (unsigned long long)min,
                    (unsigned long long)max);
}

/* malloc returned NULL (or a thread could not start): the run is invalid. */
__attribute__((noreturn))
static inline void die_oom(const char *what, size_t size)
{
    /* No stdio buffering games: write straight to fd 2, which cannot allocate. */
    char msg[160];
    int n = snprintf(msg, sizeof msg, "%s: %s(%zu) failed\n", bench_name, what, size);
    if (n > 0 && write(2, msg, (size_t)n) < 0) { /* nothing more we can do */ }
    _exit(1);
}

/* Unsigned decimal integer within [lo, hi]; anything else is a usage error. */
static inline uint64_t parse_u64(char opt, const char *s, uint64_t lo, uint64_t hi)
{
    if (s == NULL || *s == '\0')
        usage_error("-%c needs a number", opt);
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9')
            usage_error("-%c: '%s' is not a non-negative integer", opt, s);
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE || *end != '\0')
        usage_error("-%c: '%s' is out of range", opt, s);
    if (v < lo || v > hi)
        usage_error("-%c: %s is outside %llu..%llu", opt, s,
                    (unsigned long long)lo, (unsigned long long)hi);
    return (uint64_t)v;
}

/* Positive finite decimal number no larger than hi (seconds). */
static inline double parse_seconds(char opt, const char *s, double hi)
{
    if (s == NULL || *s == '\0')
        usage_error("-%c needs a number", opt);
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || !(v > 0.0) || v > hi)
        usage_error("-%c: '%s' is not a number of seconds in (0, %g]", opt, s, hi);
    return v;
}

/* splitmix64: turns any seed (0 included) into a well-mixed PRNG state. */
static inline uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* xorshift64*: a few cycles per number, plenty for picking slots and sizes. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* A non-zero xorshift state for stream `stream` of seed `seed`. */
static inline uint64_t rng_seed(uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    uint64_t s = splitmix64(&x);
    return s ? s : 0x853c49e6748fea9bULL;
}

/* Uniform-enough number in [0, n): the high word of a 64x64-bit product
 * (multiply-shift), not `% n`. With n known only at run time, `%` is a 64-bit
 * division, and the two a random_mixed step needs cost about 17 ns on our
 * 2-core EPYC: half of a step, spent in the harness whatever the allocator. */
static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

/* Uniform-enough size in [min, max]. */
static inline size_t rng_size(uint64_t *s, size_t min, size_t max)
{
    if (min == max)
        return min;
    return min + (size_t)rng_below(s, (uint64_t)(max - min + 1));
}

static inline double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One field of /proc/self/status in KiB ("VmRSS", "VmHWM"), read with read()
 * into a stack buffer so that measuring does not itself allocate.  A missing
 * file or field ends the run: a harness must not print a made-up number. */
static inline long proc_status_kib(const char *key)
{
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "%s: open /proc/self/status: %s\n", bench_name, strerror(errno));
        exit(1);
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';

    size_t klen = strlen(key);
    for (char *line = buf; line != NULL && *line != '\0';) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':')
            return strtol(line + klen + 1, NULL, 10); /* "  1234 kB" */
        char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    fprintf(stderr, "%s: no %s in /proc/self/status\n", bench_name, key);
    exit(1);
}

/* Starts a thread running fn(arg) into *t; if it cannot, says why and
 * ends the harness (exit status 1). */
static inline void bench_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int err = pthread_create(t, NULL, fn, arg);
    if (err != 0) {
        fprintf(stderr, "%s: pthread_create: %s\n", bench_name, strerror(err));
        exit(1);
    }
}

/* An array for n pointers from mmap, not from the allocator under test, so
 * it is never counted as the allocator's memory; *bytes gets its size. */
static inline void **map_pointers(uint64_t n, size_t *bytes)
{
    *bytes = (size_t)n * sizeof(void *);
    void **ptrs = mmap(NULL, *bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ptrs == MAP_FAILED)
        die_oom("mmap", *bytes);
    return ptrs;
}

/* n blocks of size bytes into ptrs, each written whole (block i with the low
 * byte of i), so that every page of them is resident. */
static inline void fill_blocks(void **ptrs, uint64_t n, size_t size)
{
    for (uint64_t i = 0; i < n; i++) {
        unsigned char *p = malloc(size);
        if (p == NULL)
            die_oom("malloc", size);
        memset(p, (int)(i & 0xff), size);
        ptrs[i] = p;
    }
}

/* Touch a fresh block the way a program would: its first bytes and its last. */
static inline void touch_block(void *p, size_t size, unsigned char v)
{
    unsigned char *b = p;
    size_t head = size < 8 ? size : 8;
    memset(b, v, head);
    b[size - 1] = v;
}

#endif
