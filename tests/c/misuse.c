/* misuse — one heap-misuse case per run, to see which ones an allocator
 * catches (scripts/misuse.sh runs them all under each allocator).
 *
 *   misuse --list          the case names, one per line
 *   misuse KIND SIZE       SIZE is small (56 B), medium (60000 B, the pool
 *                          tier) or large (4000000 B, a big block)
 *
 * Prints "addr=0x…" (the block the case misuses) first. If the misuse went
 * unnoticed it prints "survived" and exits 0; an allocator that made the
 * misuse harmless (refused the size, handed out a different block, a
 * non-executable heap) makes it print "clean" and exit 3; an allocator that
 * caught it aborts (or faults) on its own. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every case is a bug on purpose: the compiler's warnings about them are
 * the point, not a problem. */
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Warray-bounds"

static void *volatile sink; /* keeps the compiler from seeing through the cases */

static void show(void *p)
{
    printf("addr=%p\n", p);
    fflush(stdout);
}

static int survived(void)
{
    puts("survived");
    return 0;
}

static int clean(void)
{
    puts("clean");
    return 3;
}

/* Writes n bytes starting at p (through sink, so it is not optimised out). */
static void scribble(char *p, size_t n)
{
    memset(p, 0x41, n);
    sink = p;
}

/* scribble, by memcpy from a block of its own (as an overlong copy does). */
static void copy_over(char *p, size_t n)
{
    char *src = malloc(n);
    memset(src, 0x42, n);
    memcpy(p, src, n);
    sink = p;
}

/* Frees a few blocks of the same size, so a check of the newest free alone
 * does not see the next double free. */
static void churn(size_t n)
{
    void *b[8];
    for (int i = 0; i < 8; i++)
        b[i] = malloc(n);
    for (int i = 0; i < 8; i++)
        free(b[i]);
}

static int overflow(size_t n, size_t by, int via_memcpy)
{
    char *p = malloc(n);
    show(p);
    if (via_memcpy)
        copy_over(p, n + by);
    else
        scribble(p + n, by);
    free(p);
    churn(n);
    return survived();
}

static int underflow(size_t n, size_t by, int via_memcpy)
{
    char *p = malloc(n);
    show(p);
    if (via_memcpy)
        copy_over(p - by, by);
    else
        scribble(p - by, by);
    free(p);
    churn(n);
    return survived();
}

/* calloc of a block whose memory a freed block left written must still
 * hand out zeros (not misuse, but what the suite's "zeroing" case asks). */
static int calloc_zeroed(size_t n)
{
    char *p = malloc(n);
    show(p);
    memset(p, 0x43, n);
    free(p);
    for (int i = 0; i < 4; i++) {
        unsigned char *q = calloc(1, n);
        for (size_t j = 0; j < n; j++)
            if (q[j] != 0)
                return survived();
        memset(q, 0x44, n);
        free(q);
    }
    return clean();
}

static int double_free(size_t n, const char *how)
{
    char *p = malloc(n), *q = malloc(n);
    show(p);
    free(p);
    if (strcmp(how, "delayed") == 0)
        churn(n);
    else if (strcmp(how, "interleaved") == 0)
        free(q), q = NULL;
    else if (strcmp(how, "after_reuse") == 0) {
        sink = malloc(n); /* most allocators hand p straight back */
    }
    free(p);
    free(q);
    return survived();
}

static int bad_free(size_t n, const char *how)
{
    char local[64];
    char *p = malloc(n), *target;
    if (strcmp(how, "stack") == 0)
        target = local;
    else if (strcmp(how, "alloca") == 0)
        target = __builtin_alloca(n < 4096 ? n : 4096);
    else if (strcmp(how, "unaligned") == 0)
        target = p + 1;
    else if (strcmp(how, "near") == 0)
        target = p + 16;
    else /* far: inside no block at all */
        target = p + (64u << 20);
    show(target);
    sink = target;
    free(sink);
    return survived();
}

static int write_after_free(size_t n)
{
    char *p = malloc(n);
    show(p);
    free(p);
    scribble(p, n < 64 ? n : 64);
    churn(n);
    sink = malloc(n);
    sink = malloc(n);
    return survived();
}

static int immediate_reuse(size_t n)
{
    char *p = malloc(n);
    show(p);
    free(p);
    char *q = malloc(n);
    return q == p ? survived() : clean();
}

/* Whether the mapping holding p may be executed, from /proc/self/maps. */
static int exec_heap(size_t n)
{
    char *p = malloc(n);
    show(p);
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    uintptr_t a = (uintptr_t)p;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && a >= lo && a < hi)
            return perms[2] == 'x' ? survived() : clean();
    }
    return survived();
}

/* An impossible request must fail with the right errno. */
static int impossible(const char *how)
{
    void *p = NULL;
    int ok;
    errno = 0;
    if (strcmp(how, "huge_malloc") == 0)
        ok = (p = malloc(SIZE_MAX - 4096)) == NULL && errno == ENOMEM;
    else if (strcmp(how, "huge_calloc") == 0)
        ok = (p = calloc(SIZE_MAX / 16, 32)) == NULL && errno == ENOMEM;
    else if (strcmp(how, "huge_realloc") == 0) {
        void *q = malloc(16);
        ok = (p = realloc(q, SIZE_MAX - 4096)) == NULL && errno == ENOMEM;
    } else if (strcmp(how, "huge_memalign") == 0)
        ok = posix_memalign(&p, 64, SIZE_MAX - 4096) == ENOMEM;
    else /* bad_alignment */
        ok = posix_memalign(&p, 24, 64) == EINVAL;
    show(p);
    return ok ? clean() : survived();
}

static int zero_size(int write)
{
    char *p = malloc(0);
    show(p);
    if (write)
        scribble(p, 32);
    else
        sink = (void *)(uintptr_t)p[20];
    free(p);
    churn(1);
    return survived();
}

static const char *const kinds[] = {
    "overflow_1", "overflow_32", "overflow_1m", "memcpy_overflow_1", "memcpy_overflow_32", "memcpy_overflow_1m",
    "underflow_1", "underflow_32", "underflow_1m", "memcpy_underflow_1", "memcpy_underflow_32",
    "double_free_immediate", "double_free_delayed", "double_free_interleaved", "double_free_after_reuse",
    "invalid_free_stack", "invalid_free_alloca", "invalid_free_unaligned", "invalid_free_near", "invalid_free_far",
    "write_after_free", "immediate_reuse", "exec_heap",
    "huge_malloc", "huge_calloc", "huge_realloc", "huge_memalign", "bad_alignment",
    "zero_size_write", "zero_size_read", "calloc_zeroed",
};

/* How many bytes a case name's suffix says: "1", "32" or "1m". */
static size_t by_of(const char *suffix)
{
    return strcmp(suffix, "1") == 0 ? 1 : strcmp(suffix, "32") == 0 ? 32 : (size_t)1 << 20;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            puts(kinds[i]);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: misuse --list | misuse KIND small|medium|large\n");
        return 2;
    }
    const char *k = argv[1];
    size_t n = strcmp(argv[2], "small") == 0 ? 56 : strcmp(argv[2], "medium") == 0 ? 60000 : 4000000;
    if (strcmp(argv[2], "small") && strcmp(argv[2], "medium") && strcmp(argv[2], "large")) {
        fprintf(stderr, "misuse: unknown size %s\n", argv[2]);
        return 2;
    }
    if (strncmp(k, "overflow_", 9) == 0)
        return overflow(n, by_of(k + 9), 0);
    if (strncmp(k, "memcpy_overflow_", 16) == 0)
        return overflow(n, by_of(k + 16), 1);
    if (strncmp(k, "underflow_", 10) == 0)
        return underflow(n, by_of(k + 10), 0);
    if (strncmp(k, "memcpy_underflow_", 17) == 0)
        return underflow(n, by_of(k + 17), 1);
    if (strcmp(k, "calloc_zeroed") == 0)
        return calloc_zeroed(n);
    if (strncmp(k, "double_free_", 12) == 0)
        return double_free(n, k + 12);
    if (strncmp(k, "invalid_free_", 13) == 0)
        return bad_free(n, k + 13);
    if (strcmp(k, "write_after_free") == 0)
        return write_after_free(n);
    if (strcmp(k, "immediate_reuse") == 0)
        return immediate_reuse(n);
    if (strcmp(k, "exec_heap") == 0)
        return exec_heap(n);
    if (strncmp(k, "huge_", 5) == 0 || strcmp(k, "bad_alignment") == 0)
        return impossible(k);
    if (strncmp(k, "zero_size_", 10) == 0)
        return zero_size(strcmp(k + 10, "write") == 0);
    fprintf(stderr, "misuse: unknown kind %s (misuse --list)\n", k);
    return 2;
}
