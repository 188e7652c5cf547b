/* api_test — checks every allocation function hakmem exports.
 *
 * Built twice:
 *   build/api_test        linked with -lhakmem (HAK_LINKED defined): the
 *                         standard names bind to libhakmem.so at link time;
 *   build/api_test_plain  an ordinary program; run it plain to check it
 *                         against glibc, or with LD_PRELOAD=libhakmem.so and
 *                         HAKTEST_EXPECT_HAKMEM=1 to check hakmem.
 * The checks that only hakmem can pass (symbol origin, the hak_ API, the exact
 * "invalid pointer" aborts, aligned_alloc rejecting non-powers of two) run only
 * when hakmem is the allocator; the rest must pass under glibc too.
 *
 * Results go through hide() so the compiler cannot reason about them from the
 * allocation attributes in the headers (alloc_align, calloc-is-zero, dead
 * malloc/free pairs): we want the allocator's behaviour, not gcc's beliefs. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAK_LINKED
#include "hakmem.h"
#endif

/* Exports that glibc 2.36's headers do not declare. */
void cfree(void *ptr);
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);
void *__libc_malloc(size_t size);
void __libc_free(void *ptr);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *ptr, size_t size);
void *__libc_memalign(size_t alignment, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);
int __posix_memalign(void **memptr, size_t alignment, size_t size);

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* ---------------------------------------------------------------- checks */

static int n_pass, n_fail, n_skip;
static bool hakmem_mode; /* hakmem is the allocator under test */

static bool check(bool ok, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool check(bool ok, int line, const char *fmt, ...)
{
    if (ok) {
        n_pass++;
        return true;
    }
    n_fail++;
    if (n_fail <= 1000) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "FAIL api_test.c:%d: ", line);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    } else if (n_fail == 1001) {
        fprintf(stderr, "(further failures not printed)\n");
    }
    return false;
}
#define CHECK(cond, ...) check((cond), __LINE__, __VA_ARGS__)

static void skip(const char *what)
{
    n_skip++;
    printf("skip: %s\n", what);
}

/* Hides a pointer's origin from the optimizer (and makes stores to it escape). */
static inline void *hide(void *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

/* Calls for deliberately bad arguments go through volatile pointers so gcc
 * neither warns (-Walloc-size-larger-than, -Wfree-nonheap-object) nor folds. */
static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void *(*volatile v_reallocarray)(void *, size_t, size_t) = reallocarray;
static void *(*volatile v_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void *(*volatile v_memalign)(size_t, size_t) = memalign;
static void *(*volatile v_valloc)(size_t) = valloc;
static void *(*volatile v_pvalloc)(size_t) = pvalloc;
static int (*volatile v_posix_memalign)(void **, size_t, size_t) = posix_memalign;
static void (*volatile v_free)(void *) = free;
static size_t (*volatile v_usable)(void *) = malloc_usable_size;

/* ------------------------------------------------- the exports under test */

/* The extra exports: bound at link time in the linked build, looked up at run
 * time in the plain build (glibc lacks some; those checks are then skipped). */
static void (*f_cfree)(void *);
static void (*f_free_sized)(void *, size_t);
static void (*f_free_aligned_sized)(void *, size_t, size_t);
static void *(*f_libc_malloc)(size_t);
static void (*f_libc_free)(void *);
static void *(*f_libc_calloc)(size_t, size_t);
static void *(*f_libc_realloc)(void *, size_t);
static void *(*f_libc_memalign)(size_t, size_t);
static void *(*f_libc_valloc)(size_t);
static void *(*f_libc_pvalloc)(size_t);
static int (*f_posix_memalign_)(void **, size_t, size_t);
static void *(*f_hak_malloc)(size_t);
static void (*f_hak_free)(void *);
static void *(*f_hak_calloc)(size_t, size_t);
static void *(*f_hak_realloc)(void *, size_t);
static void *(*f_hak_aligned_alloc)(size_t, size_t);
static size_t (*f_hak_usable_size)(const void *);
static const char *(*f_hak_version)(void);

#ifdef HAK_LINKED
#define BIND(var, sym) (var = sym)
#else
#define BIND(var, sym) (*(void **)&(var) = dlsym(RTLD_DEFAULT, #sym))
#endif

static void bind_exports(void)
{
    BIND(f_cfree, cfree);
    BIND(f_free_sized, free_sized);
    BIND(f_free_aligned_sized, free_aligned_sized);
    BIND(f_libc_malloc, __libc_malloc);
    BIND(f_libc_free, __libc_free);
    BIND(f_libc_calloc, __libc_calloc);
    BIND(f_libc_realloc, __libc_realloc);
    BIND(f_libc_memalign, __libc_memalign);
    BIND(f_libc_valloc, __libc_valloc);
    BIND(f_libc_pvalloc, __libc_pvalloc);
    BIND(f_posix_memalign_, __posix_memalign);
    BIND(f_hak_malloc, hak_malloc);
    BIND(f_hak_free, hak_free);
    BIND(f_hak_calloc, hak_calloc);
    BIND(f_hak_realloc, hak_realloc);
    BIND(f_hak_aligned_alloc, hak_aligned_alloc);
    BIND(f_hak_usable_size, hak_usable_size);
    BIND(f_hak_version, hak_version);
}

/* True if the function is there; otherwise a failure under hakmem (which must
 * export it) and a skip under glibc. */
static bool have(const void *fn, const char *name)
{
    if (fn)
        return true;
    if (hakmem_mode) {
        CHECK(false, "%s is not exported", name);
    } else {
        char msg[128];
        snprintf(msg, sizeof msg, "%s (not exported by this allocator)", name);
        skip(msg);
    }
    return false;
}

/* ------------------------------------------------------------- test data */

/* 0 … 64 MiB, dense around the tier edges (16, 1 KiB, 32 KiB, 1 MiB). */
static const size_t SIZES[] = {
    0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 23, 24, 25, 31, 32, 33, 48,
    63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1000,
    1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097, 8191, 8192, 8193,
    16383, 16384, 16385, 30000, 32767, 32768, 32769, 40000, 65535, 65536,
    65537, 100000, 131072, 262145, 524288, MiB - 1, MiB, MiB + 1,
    2 * MiB, 4 * MiB + 1, 16 * MiB + 3, 64 * MiB,
};
#define N_SIZES (sizeof SIZES / sizeof SIZES[0])

/* One representative size per tier, for the tests that loop over tiers. */
static const size_t TIER_SIZES[] = {
    1, 16, 24, 100, 1024, 1025, 4000, 32768, 32769, 100 * KiB, MiB + 1, 5 * MiB,
};
#define N_TIER (sizeof TIER_SIZES / sizeof TIER_SIZES[0])

#define MIN_ALIGN_SHIFT 3  /* 8 B   */
#define MAX_ALIGN_SHIFT 22 /* 4 MiB */

static size_t page_size;

/* A byte pattern that depends on the position and a seed. */
static inline unsigned char pat(size_t i, unsigned seed)
{
    return (unsigned char)(seed * 31u + i * 7u + (i >> 9) + (i >> 17));
}

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = pat(i, seed);
}

/* Index of the first byte that differs from the pattern, or n. */
static size_t verify(const void *p, size_t n, unsigned seed)
{
    const unsigned char *c = hide((void *)p);
    for (size_t i = 0; i < n; i++)
        if (c[i] != pat(i, seed))
            return i;
    return n;
}

/* Index of the first non-zero byte, or n. */
static size_t first_nonzero(const void *p, size_t n)
{
    const unsigned char *c = hide((void *)p);
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return i;
    return n;
}

static bool aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

/* The alignment malloc(n) must give: 16 once an object of that size could need
 * it (max_align_t), else the largest power of two not above n. */
static size_t malloc_min_align(size_t n)
{
    size_t a = 16;
    while (a > 1 && a > n)
        a >>= 1;
    return a;
}

/* Resident set size in bytes, from /proc/self/statm. */
static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * page_size;
}

/* ------------------------------------------------------------------ tests */

/* Under hakmem every export must resolve to libhakmem.so, whether linked or
 * preloaded; checked with dladdr on the address the program actually uses. */
static void test_symbol_origin(void)
{
    struct { const char *name; void *linked; } syms[] = {
#ifdef HAK_LINKED
#define SYM(s) { #s, (void *)&s }
#else
#define SYM(s) { #s, NULL }
#endif
        SYM(malloc), SYM(free), SYM(calloc), SYM(realloc),
        SYM(posix_memalign), SYM(aligned_alloc), SYM(memalign), SYM(valloc),
        SYM(pvalloc), SYM(malloc_usable_size), SYM(reallocarray), SYM(cfree),
        SYM(free_sized), SYM(free_aligned_sized), SYM(__libc_malloc),
        SYM(__libc_free), SYM(__libc_calloc), SYM(__libc_realloc),
        SYM(__libc_memalign), SYM(__libc_valloc), SYM(__libc_pvalloc),
        SYM(__posix_memalign), SYM(hak_malloc), SYM(hak_free),
        SYM(hak_calloc), SYM(hak_realloc), SYM(hak_aligned_alloc),
        SYM(hak_usable_size), SYM(hak_version),
#undef SYM
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *global = dlsym(RTLD_DEFAULT, syms[i].name);
        void *addr = syms[i].linked ? syms[i].linked : global;
        if (!CHECK(addr != NULL, "symbol %s not found", syms[i].name))
            continue;
        if (syms[i].linked)
            CHECK(global == syms[i].linked,
                  "%s: link-time address %p differs from dlsym's %p",
                  syms[i].name, syms[i].linked, global);
        Dl_info info;
        bool found = dladdr(addr, &info) != 0 && info.dli_fname != NULL;
        CHECK(found && strstr(info.dli_fname, "libhakmem.so") != NULL,
              "%s resolves to %s, not libhakmem.so", syms[i].name,
              found ? info.dli_fname : "(unknown)");
    }
}

/* malloc: every size at once (so overlaps show), aligned, usable >= size, the
 * whole usable size writable and still intact after all the others. */
static void test_malloc_sizes(void)
{
    void *blocks[N_SIZES];
    size_t usable[N_SIZES];
    for (size_t i = 0; i < N_SIZES; i++) {
        size_t n = SIZES[i];
        errno = 0;
        void *p = blocks[i] = hide(malloc(n));
        usable[i] = 0;
        if (!CHECK(p != NULL, "malloc(%zu) = NULL (errno %d)", n, errno))
            continue;
        CHECK(aligned(p, malloc_min_align(n)), "malloc(%zu) = %p not %zu-aligned",
              n, p, malloc_min_align(n));
        usable[i] = malloc_usable_size(p);
        CHECK(usable[i] >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, usable[i]);
        fill(p, usable[i], (unsigned)i);
    }
    for (size_t i = 0; i < N_SIZES; i++) {
        if (!blocks[i])
            continue;
        size_t bad = verify(blocks[i], usable[i], (unsigned)i);
        CHECK(bad == usable[i], "malloc(%zu) block overwritten at byte %zu "
              "(blocks overlap?)", SIZES[i], bad);
        CHECK(malloc_usable_size(blocks[i]) == usable[i],
              "malloc_usable_size(malloc(%zu)) changed", SIZES[i]);
        free(blocks[i]);
    }
    /* malloc(0) gives a unique, freeable block, as glibc does. */
    void *a = hide(malloc(0)), *b = hide(malloc(0));
    CHECK(a && b && a != b, "malloc(0) twice = %p, %p", a, b);
    free(a);
    free(b);
}

/* The aligned allocators, as one signature so one loop serves them all. */
typedef void *(*aligned_fn)(size_t alignment, size_t size);
static void *via_posix_memalign(size_t a, size_t n)
{
    void *p = (void *)0x1;
    int rc = posix_memalign(&p, a, n);
    if (rc) {
        errno = rc;
        return NULL;
    }
    return p;
}
static void *via_posix_memalign_(size_t a, size_t n)
{
    void *p = (void *)0x1;
    int rc = f_posix_memalign_(&p, a, n);
    if (rc) {
        errno = rc;
        return NULL;
    }
    return p;
}
static void *via_aligned_alloc(size_t a, size_t n) { return aligned_alloc(a, n); }
static void *via_memalign(size_t a, size_t n) { return memalign(a, n); }

/* Every size x every power-of-two alignment 8 … 4 MiB. */
static void aligned_matrix(const char *name, aligned_fn fn, size_t max_size)
{
    for (size_t i = 0; i < N_SIZES && SIZES[i] <= max_size; i++) {
        size_t n = SIZES[i];
        for (int s = MIN_ALIGN_SHIFT; s <= MAX_ALIGN_SHIFT; s++) {
            size_t a = (size_t)1 << s;
            errno = 0;
            void *p = hide(fn(a, n));
            if (!CHECK(p != NULL, "%s(%zu, %zu) = NULL (errno %d)", name, a, n, errno))
                continue;
            size_t u = malloc_usable_size(p);
            if (CHECK(aligned(p, a), "%s(%zu, %zu) = %p misaligned", name, a, n, p) &&
                CHECK(u >= n, "%s(%zu, %zu): usable size %zu", name, a, n, u)) {
                memset(p, 0xa5, u);
                hide(p);
            }
            free(p);
        }
    }
}

static void test_aligned(void)
{
    aligned_matrix("posix_memalign", via_posix_memalign, SIZE_MAX);
    aligned_matrix("aligned_alloc", via_aligned_alloc, SIZE_MAX);
    aligned_matrix("memalign", via_memalign, SIZE_MAX);
    /* The aliases: the same matrix up to 2 MiB (the big sizes take the same
     * path as above and only cost time). */
    if (have((void *)f_posix_memalign_, "__posix_memalign"))
        aligned_matrix("__posix_memalign", via_posix_memalign_, 2 * MiB);
    if (have((void *)f_libc_memalign, "__libc_memalign"))
        aligned_matrix("__libc_memalign", f_libc_memalign, 2 * MiB);
    if (hakmem_mode && have((void *)f_hak_aligned_alloc, "hak_aligned_alloc"))
        aligned_matrix("hak_aligned_alloc", f_hak_aligned_alloc, 2 * MiB);
}

/* valloc and pvalloc: page-aligned; pvalloc rounds the size up to pages. */
static void page_allocs(const char *name, void *(*fn)(size_t), bool round_up)
{
    for (size_t i = 0; i < N_SIZES && SIZES[i] <= 8 * MiB; i++) {
        size_t n = SIZES[i];
        void *p = hide(fn(n));
        if (!CHECK(p != NULL, "%s(%zu) = NULL", name, n))
            continue;
        size_t want = round_up ? (n + page_size - 1) / page_size * page_size : n;
        size_t u = malloc_usable_size(p);
        CHECK(aligned(p, page_size), "%s(%zu) = %p not page-aligned", name, n, p);
        if (CHECK(u >= want, "%s(%zu): usable size %zu < %zu", name, n, u, want)) {
            fill(p, u, 3);
            CHECK(verify(p, u, 3) == u, "%s(%zu): contents lost", name, n);
        }
        free(p);
    }
}

static void test_page_aligned(void)
{
    page_allocs("valloc", valloc, false);
    page_allocs("pvalloc", pvalloc, true);
    if (have((void *)f_libc_valloc, "__libc_valloc"))
        page_allocs("__libc_valloc", f_libc_valloc, false);
    if (have((void *)f_libc_pvalloc, "__libc_pvalloc"))
        page_allocs("__libc_pvalloc", f_libc_pvalloc, true);
}

/* realloc keeps min(old, new) bytes while the block grows from 1 B to 20 MB
 * and shrinks back to 5 B, crossing every tier both ways. */
static void realloc_chain(const char *name, void *(*re)(void *, size_t))
{
    static const size_t steps[] = {
        1, 2, 7, 15, 16, 17, 24, 100, 500, 1023, 1024, 1025, 3000, 8192,
        32767, 32768, 32769, 70000, 300000, MiB - 1, MiB, MiB + 1, 3 * MiB,
        8 * MiB, 20000000, 20000001, 12 * MiB, 2 * MiB, MiB + 1, MiB,
        600000, 40000, 32769, 32768, 32767, 5000, 1025, 1024, 1023, 200, 17,
        16, 15, 8, 5,
    };
    void *p = NULL;
    size_t have_n = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i];
        void *q = hide(re(p, n));
        if (!CHECK(q != NULL, "%s(%p, %zu) = NULL", name, p, n))
            break;
        size_t keep = have_n < n ? have_n : n;
        size_t bad = verify(q, keep, (unsigned)i);
        CHECK(bad == keep, "%s %zu -> %zu: byte %zu of the kept %zu changed",
              name, have_n, n, bad, keep);
        CHECK(malloc_usable_size(q) >= n, "%s to %zu: usable size %zu", name, n,
              malloc_usable_size(q));
        fill(q, n, (unsigned)i + 1); /* the next step checks this pattern */
        p = q;
        have_n = n;
    }
    free(p);

    /* Byte-by-byte growth and shrinkage (the in-place paths). */
    p = NULL;
    bool ok = true;
    for (size_t n = 1; n <= 600 && ok; n++) {
        unsigned char *q = hide(re(p, n));
        ok = q != NULL && (n == 1 || verify(q, n - 1, 9) == n - 1);
        if (q)
            q[n - 1] = pat(n - 1, 9);
        p = q;
    }
    for (size_t n = 599; n >= 1 && ok; n--) {
        void *q = hide(re(p, n));
        ok = q != NULL && verify(q, n, 9) == n;
        p = q;
    }
    CHECK(ok, "%s growing/shrinking by one byte lost contents", name);
    free(p);
}

static void test_realloc(void)
{
    realloc_chain("realloc", realloc);
    if (have((void *)f_libc_realloc, "__libc_realloc"))
        realloc_chain("__libc_realloc", f_libc_realloc);
    if (hakmem_mode && have((void *)f_hak_realloc, "hak_realloc"))
        realloc_chain("hak_realloc", f_hak_realloc);

    /* realloc(NULL, n) is malloc(n). */
    for (size_t i = 0; i < N_TIER; i++) {
        size_t n = TIER_SIZES[i];
        void *p = hide(realloc(NULL, n));
        if (CHECK(p != NULL, "realloc(NULL, %zu) = NULL", n)) {
            CHECK(malloc_usable_size(p) >= n, "realloc(NULL, %zu): usable %zu", n,
                  malloc_usable_size(p));
            CHECK(aligned(p, malloc_min_align(n)), "realloc(NULL, %zu) misaligned", n);
            fill(p, n, 4);
            free(p);
        }
    }
    void *z = hide(realloc(NULL, 0));
    CHECK(z != NULL, "realloc(NULL, 0) = NULL (glibc gives a block)");
    free(z);

    /* realloc(p, 0) frees p and returns NULL, as glibc does. */
    for (size_t i = 0; i < N_TIER; i++) {
        void *p = hide(malloc(TIER_SIZES[i]));
        void *q = v_realloc(p, 0);
        CHECK(q == NULL, "realloc(malloc(%zu), 0) = %p, want NULL", TIER_SIZES[i], q);
        if (q)
            free(q);
    }

    /* Blocks from the aligned allocators can be resized; the content moves. */
    for (int s = 4; s <= MAX_ALIGN_SHIFT; s += 3) {
        size_t a = (size_t)1 << s;
        void *p = hide(aligned_alloc(a, 3000));
        if (!CHECK(p != NULL, "aligned_alloc(%zu, 3000) = NULL", a))
            continue;
        fill(p, 3000, 5);
        void *q = v_realloc(p, 3 * MiB); /* failure keeps p */
        if (CHECK(q != NULL, "realloc(aligned block, 3 MiB) = NULL")) {
            CHECK(verify(q, 3000, 5) == 3000, "realloc of a %zu-aligned block lost "
                  "contents", a);
            free(q);
        } else {
            free(p);
        }
    }

    /* reallocarray: the checked array form. */
    int *arr = NULL;
    size_t len = 0;
    bool ok = true;
    for (size_t n = 4; n <= 1 << 20 && ok; n *= 4) {
        int *q = v_reallocarray(arr, n, sizeof *q);
        ok = CHECK(q != NULL, "reallocarray(arr, %zu, %zu) = NULL", n, sizeof *q);
        if (!ok)
            break;
        for (size_t k = 0; k < len; k++)
            if (q[k] != (int)(k * 2654435761u)) {
                ok = CHECK(false, "reallocarray to %zu ints lost element %zu", n, k);
                break;
            }
        for (size_t k = len; k < n; k++)
            q[k] = (int)(k * 2654435761u);
        arr = q;
        len = n;
    }
    free(arr);
}

/* calloc memory is zero even when it reuses a block just filled with 0xff. */
static void calloc_dirty(const char *name, void *(*cal)(size_t, size_t))
{
    enum { K = 8 };
    for (size_t i = 0; i < N_TIER; i++) {
        size_t n = TIER_SIZES[i];
        void *blk[K];
        for (int r = 0; r < 3; r++) {
            for (int k = 0; k < K; k++) {
                blk[k] = hide(malloc(n));
                if (blk[k])
                    memset(blk[k], 0xff, malloc_usable_size(blk[k]));
                hide(blk[k]);
            }
            for (int k = 0; k < K; k++)
                free(blk[k]);
            /* Alternate the factors: n x 1, 1 x n. */
            for (int k = 0; k < K; k++) {
                void *p = hide(k & 1 ? cal(n, 1) : cal(1, n));
                if (!CHECK(p != NULL, "%s(%zu) = NULL", name, n))
                    continue;
                size_t nz = first_nonzero(p, n);
                CHECK(nz == n, "%s(1, %zu) after dirty free: byte %zu is not zero",
                      name, n, nz);
                memset(p, 0xff, n); /* dirty it for the next round */
                free(hide(p));
            }
        }
    }
    /* Multi-element products, in every tier. */
    static const size_t dims[][2] = {
        {3, 5}, {10, 100}, {1000, 33}, {4096, 8}, {7, 100000}, {100, 100000},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        size_t n = dims[i][0] * dims[i][1];
        void *p = hide(cal(dims[i][0], dims[i][1]));
        if (CHECK(p != NULL, "%s(%zu, %zu) = NULL", name, dims[i][0], dims[i][1])) {
            CHECK(first_nonzero(p, n) == n, "%s(%zu, %zu) not zero", name,
                  dims[i][0], dims[i][1]);
            CHECK(malloc_usable_size(p) >= n, "%s(%zu, %zu): usable size %zu", name,
                  dims[i][0], dims[i][1], malloc_usable_size(p));
            free(p);
        }
    }
    void *z = hide(cal(0, 16));
    CHECK(z != NULL, "%s(0, 16) = NULL (glibc gives a block)", name);
    free(z);
}

static void test_calloc(void)
{
    calloc_dirty("calloc", calloc);
    if (have((void *)f_libc_calloc, "__libc_calloc"))
        calloc_dirty("__libc_calloc", f_libc_calloc);
    if (hakmem_mode && have((void *)f_hak_calloc, "hak_calloc"))
        calloc_dirty("hak_calloc", f_hak_calloc);
}

/* Requests that cannot be met: NULL and ENOMEM, nothing else disturbed. */
static void test_bad_sizes(void)
{
    const size_t huge[] = {
        SIZE_MAX, SIZE_MAX - 15, (size_t)PTRDIFF_MAX + 1, (size_t)1 << 50,
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        size_t n = huge[i];
        errno = 0;
        void *p = v_malloc(n);
        CHECK(p == NULL && errno == ENOMEM, "malloc(%#zx) = %p errno %d, want NULL "
              "ENOMEM", n, p, errno);
        errno = 0;
        p = v_calloc(1, n);
        CHECK(p == NULL && errno == ENOMEM, "calloc(1, %#zx) = %p errno %d", n, p, errno);
        errno = 0;
        p = v_aligned_alloc(64, n);
        CHECK(p == NULL && errno == ENOMEM, "aligned_alloc(64, %#zx) = %p errno %d", n,
              p, errno);
        errno = 0;
        p = v_memalign(4096, n);
        CHECK(p == NULL && errno == ENOMEM, "memalign(4096, %#zx) = %p errno %d", n,
              p, errno);
        errno = 0;
        p = v_valloc(n);
        CHECK(p == NULL && errno == ENOMEM, "valloc(%#zx) = %p errno %d", n, p, errno);
        errno = 0;
        p = v_pvalloc(n);
        CHECK(p == NULL && errno == ENOMEM, "pvalloc(%#zx) = %p errno %d", n, p, errno);
        void *m = (void *)0x1234;
        int rc = v_posix_memalign(&m, 64, n);
        CHECK(rc == ENOMEM && m == (void *)0x1234, "posix_memalign(64, %#zx) = %d, "
              "*memptr %p", n, rc, m);
    }

    /* n * size overflows. */
    const size_t ovf[][2] = {
        {SIZE_MAX / 2 + 1, 2}, {(size_t)1 << 32, (size_t)1 << 32}, {SIZE_MAX, SIZE_MAX},
        {3, SIZE_MAX / 3 + 1},
    };
    for (size_t i = 0; i < sizeof ovf / sizeof ovf[0]; i++) {
        errno = 0;
        void *p = v_calloc(ovf[i][0], ovf[i][1]);
        CHECK(p == NULL && errno == ENOMEM, "calloc(%#zx, %#zx) = %p errno %d",
              ovf[i][0], ovf[i][1], p, errno);
        errno = 0;
        p = v_reallocarray(NULL, ovf[i][0], ovf[i][1]);
        CHECK(p == NULL && errno == ENOMEM, "reallocarray(NULL, %#zx, %#zx) = %p "
              "errno %d", ovf[i][0], ovf[i][1], p, errno);
    }

    /* A failed realloc / reallocarray leaves the old block as it was. */
    for (size_t i = 0; i < N_TIER; i++) {
        size_t n = TIER_SIZES[i];
        void *p = hide(malloc(n));
        if (!p)
            continue;
        fill(p, n, 6);
        for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
            errno = 0;
            void *q = v_realloc(p, huge[k]);
            CHECK(q == NULL && errno == ENOMEM, "realloc(malloc(%zu), %#zx) = %p "
                  "errno %d", n, huge[k], q, errno);
        }
        errno = 0;
        void *q = v_reallocarray(p, (size_t)1 << 33, (size_t)1 << 33);
        CHECK(q == NULL && errno == ENOMEM, "reallocarray(malloc(%zu), 2^33, 2^33) "
              "= %p errno %d", n, q, errno);
        CHECK(verify(p, n, 6) == n, "failed realloc damaged the %zu-byte block", n);
        CHECK(malloc_usable_size(p) >= n, "failed realloc shrank the block");
        free(p);
    }
}

/* Bad alignments: EINVAL and *memptr untouched. */
static void test_bad_alignment(void)
{
    const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 40, 48, 100, 4097};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *m = (void *)0x5678;
        int rc = v_posix_memalign(&m, bad[i], 16);
        CHECK(rc == EINVAL && m == (void *)0x5678, "posix_memalign(align %zu) = %d, "
              "*memptr %p; want EINVAL, untouched", bad[i], rc, m);
        if (f_posix_memalign_) {
            m = (void *)0x5678;
            rc = f_posix_memalign_(&m, bad[i], 16);
            CHECK(rc == EINVAL && m == (void *)0x5678, "__posix_memalign(align %zu) "
                  "= %d, *memptr %p", bad[i], rc, m);
        }
    }
    /* glibc 2.36 rounds such alignments up; hakmem promises EINVAL. */
    if (hakmem_mode) {
        const size_t nonpow2[] = {3, 24, 100, 4097};
        for (size_t i = 0; i < sizeof nonpow2 / sizeof nonpow2[0]; i++) {
            errno = 0;
            void *p = v_aligned_alloc(nonpow2[i], 16);
            CHECK(p == NULL && errno == EINVAL, "aligned_alloc(%zu, 16) = %p errno %d, "
                  "want NULL EINVAL", nonpow2[i], p, errno);
            if (f_hak_aligned_alloc) {
                errno = 0;
                p = f_hak_aligned_alloc(nonpow2[i], 16);
                CHECK(p == NULL && errno == EINVAL, "hak_aligned_alloc(%zu, 16) = %p "
                      "errno %d", nonpow2[i], p, errno);
            }
        }
    }
}

/* Repeated alloc+touch+release must not grow the RSS: proof `release` really
 * gives the memory back (a no-op free would leak `rounds * size`). */
typedef void (*release_fn)(void *p, size_t alignment, size_t size);
static void release_free(void *p, size_t a, size_t n) { (void)a; (void)n; free(p); }
static void release_cfree(void *p, size_t a, size_t n) { (void)a; (void)n; f_cfree(p); }
static void release_sized(void *p, size_t a, size_t n) { (void)a; f_free_sized(p, n); }
static void release_aligned_sized(void *p, size_t a, size_t n) { f_free_aligned_sized(p, a, n); }
static void release_libc(void *p, size_t a, size_t n) { (void)a; (void)n; f_libc_free(p); }
static void release_hak(void *p, size_t a, size_t n) { (void)a; (void)n; f_hak_free(p); }

static void check_release(const char *name, release_fn rel, bool use_aligned)
{
    static const struct { size_t size, rounds; } runs[] = {
        {256, 400000}, {20000, 6000}, {MiB, 256},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        size_t n = runs[r].size, a = 64;
        size_t before = rss_bytes();
        size_t leak = n * runs[r].rounds;
        for (size_t i = 0; i < runs[r].rounds; i++) {
            void *p = hide(use_aligned ? aligned_alloc(a, n) : malloc(n));
            if (!p)
                break;
            memset(p, (int)i, n);
            rel(hide(p), a, n);
        }
        size_t after = rss_bytes();
        size_t grew = after > before ? after - before : 0;
        CHECK(grew < leak / 4, "%s: %zu x alloc(%zu)+%s grew RSS by %zu KiB: not freed?",
              name, runs[r].rounds, n, name, grew / 1024);
    }
    /* errno survives a release, in every tier. */
    for (size_t i = 0; i < N_TIER; i++) {
        size_t n = TIER_SIZES[i], a = 64;
        void *p = hide(use_aligned ? aligned_alloc(a, n) : malloc(n));
        if (!p)
            continue;
        errno = 1234;
        rel(p, a, n);
        CHECK(errno == 1234, "%s of a %zu-byte block changed errno to %d", name, n, errno);
    }
}

static void test_free(void)
{
    errno = 1234;
    free(NULL);
    CHECK(errno == 1234, "free(NULL) changed errno to %d", errno);
    size_t u0 = v_usable(NULL);
    CHECK(u0 == 0, "malloc_usable_size(NULL) = %zu", u0);
    errno = 1234;
    void *p = hide(malloc(64 * MiB));
    errno = 1234;
    free(p);
    CHECK(errno == 1234, "free of a 64 MiB block changed errno to %d", errno);

    check_release("free", release_free, false);
    if (have((void *)f_cfree, "cfree"))
        check_release("cfree", release_cfree, false);
    if (have((void *)f_free_sized, "free_sized"))
        check_release("free_sized", release_sized, false);
    if (have((void *)f_free_aligned_sized, "free_aligned_sized"))
        check_release("free_aligned_sized", release_aligned_sized, true);
    if (have((void *)f_libc_free, "__libc_free"))
        check_release("__libc_free", release_libc, false);
    if (hakmem_mode && have((void *)f_hak_free, "hak_free"))
        check_release("hak_free", release_hak, false);
    if (f_cfree) {
        f_cfree(NULL);
        CHECK(true, "cfree(NULL)");
    }
    if (f_free_sized) {
        f_free_sized(NULL, 0);
        CHECK(true, "free_sized(NULL, 0)");
    }
}

/* __libc_malloc and the hak_ functions hand out the same blocks as malloc:
 * any of them can free any other's. */
static void test_aliases(void)
{
    if (have((void *)f_libc_malloc, "__libc_malloc")) {
        for (size_t i = 0; i < N_SIZES && SIZES[i] <= 16 * MiB; i++) {
            size_t n = SIZES[i];
            void *p = hide(f_libc_malloc(n));
            if (!CHECK(p != NULL, "__libc_malloc(%zu) = NULL", n))
                continue;
            size_t u = malloc_usable_size(p);
            CHECK(u >= n && aligned(p, malloc_min_align(n)),
                  "__libc_malloc(%zu) = %p, usable %zu", n, p, u);
            fill(p, u, 8);
            CHECK(verify(p, u, 8) == u, "__libc_malloc(%zu): contents lost", n);
            if (i & 1)
                free(p);
            else if (f_libc_free)
                f_libc_free(p);
        }
        /* malloc'd blocks freed with __libc_free. */
        if (f_libc_free)
            for (size_t i = 0; i < N_TIER; i++)
                f_libc_free(hide(malloc(TIER_SIZES[i])));
    }
    if (!hakmem_mode)
        return;
    if (have((void *)f_hak_malloc, "hak_malloc") && have((void *)f_hak_free, "hak_free") &&
        have((void *)f_hak_usable_size, "hak_usable_size")) {
        for (size_t i = 0; i < N_SIZES && SIZES[i] <= 16 * MiB; i++) {
            size_t n = SIZES[i];
            void *p = hide(f_hak_malloc(n));
            if (!CHECK(p != NULL, "hak_malloc(%zu) = NULL", n))
                continue;
            size_t u = f_hak_usable_size(p);
            CHECK(u >= n, "hak_usable_size(hak_malloc(%zu)) = %zu", n, u);
            CHECK(u == malloc_usable_size(p), "hak_usable_size %zu != "
                  "malloc_usable_size %zu", u, malloc_usable_size(p));
            CHECK(aligned(p, malloc_min_align(n)), "hak_malloc(%zu) = %p misaligned", n, p);
            fill(p, u, 10);
            CHECK(verify(p, u, 10) == u, "hak_malloc(%zu): contents lost", n);
            if (i & 1)
                free(p); /* hak_ blocks go back through free … */
            else
                f_hak_free(p);
        }
        for (size_t i = 0; i < N_TIER; i++) /* … and malloc's through hak_free */
            f_hak_free(hide(malloc(TIER_SIZES[i])));
        errno = 0;
        void *p = ((void *(*volatile)(size_t))f_hak_malloc)(SIZE_MAX);
        CHECK(p == NULL && errno == ENOMEM, "hak_malloc(SIZE_MAX) = %p errno %d", p, errno);
        if (f_hak_calloc) {
            errno = 0;
            p = ((void *(*volatile)(size_t, size_t))f_hak_calloc)(SIZE_MAX / 2 + 1, 2);
            CHECK(p == NULL && errno == ENOMEM, "hak_calloc overflow = %p errno %d", p,
                  errno);
        }
        if (f_hak_realloc) {
            p = f_hak_realloc(hide(f_hak_malloc(100)), 0);
            CHECK(p == NULL, "hak_realloc(p, 0) = %p, want NULL", p);
        }
        f_hak_free(NULL);
    }
    if (have((void *)f_hak_version, "hak_version")) {
        const char *v = f_hak_version();
        CHECK(v != NULL && v[0] >= '0' && v[0] <= '9' && strchr(v, '.') != NULL,
              "hak_version() = \"%s\"", v ? v : "(null)");
#ifdef HAK_EXPECTED_VERSION
        CHECK(v != NULL && strcmp(v, HAK_EXPECTED_VERSION) == 0,
              "hak_version() = \"%s\", Cargo.toml says \"%s\"", v ? v : "(null)",
              HAK_EXPECTED_VERSION);
#endif
    }
}

/* ------------------------------------------------- invalid pointer aborts */

static volatile size_t sink;
static void op_free(void *p) { v_free(p); }
static void op_realloc(void *p) { sink = (size_t)v_realloc(p, 100); }
static void op_usable(void *p) { sink = v_usable(p); }

/* Runs op(bad) in a child with stderr piped back; hakmem must abort (SIGABRT)
 * after printing "hakmem: <fn>(): invalid pointer <bad as %p>". */
static void expect_abort(const char *fn, void (*op)(void *), void *bad, const char *what)
{
    int fds[2];
    if (!CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno)))
        return;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        signal(SIGABRT, SIG_DFL);
        alarm(10); /* a hang must not hang the suite */
        op(bad);
        _exit(0); /* reaching here means hakmem accepted the pointer */
    }
    close(fds[1]);
    if (!CHECK(pid > 0, "fork: %s", strerror(errno))) {
        close(fds[0]);
        return;
    }
    char out[4096];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fds[0], out + len, sizeof out - 1 - len)) > 0 ||
           (r < 0 && errno == EINTR))
        if (r > 0)
            len += (size_t)r;
    out[len] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);

    char want[128];
    snprintf(want, sizeof want, "hakmem: %s(): invalid pointer %p", fn, bad);
    const char *hit = strstr(out, want);
    /* The address must end there: 0x1234 must not match 0x12345. */
    char next = hit ? hit[strlen(want)] : '\0';
    bool exact = hit && !((next >= '0' && next <= '9') || (next >= 'a' && next <= 'f'));
    for (char *c = out; *c; c++) /* one-line failure messages */
        if (*c == '\n')
            *c = ' ';
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
          "%s(%s %p): child %s %d, want SIGABRT; stderr: \"%s\"", fn, what, bad,
          WIFSIGNALED(status) ? "killed by signal" : "exited with",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), out);
    CHECK(exact, "%s(%s %p): stderr lacks \"%s\"; got \"%s\"", fn, what, bad, want, out);
}

static char static_array[256] __attribute__((aligned(64)));

static void test_invalid_pointers(void)
{
    char stack_buf[128] __attribute__((aligned(64)));
    memset(stack_buf, 0, sizeof stack_buf);
    char *small = hide(malloc(64));
    char *big = hide(malloc(100 * KiB));
    void *page = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    CHECK(page != MAP_FAILED, "mmap: %s", strerror(errno));
    const struct { const char *what; void *ptr; } bad[] = {
        {"stack address", hide(stack_buf)},
        {"interior of 64 B block", small ? small + 8 : NULL},
        {"interior of 100 KiB block", big ? big + 16 : NULL},
        {"static array", hide(static_array)},
        {"mmap page", page},
    };
    const struct { const char *fn; void (*op)(void *); } ops[] = {
        {"free", op_free}, {"realloc", op_realloc}, {"malloc_usable_size", op_usable},
    };
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++)
            if (bad[b].ptr && bad[b].ptr != MAP_FAILED)
                expect_abort(ops[o].fn, ops[o].op, bad[b].ptr, bad[b].what);
    /* The parent's blocks are still fine. */
    free(small);
    free(big);
    if (page != MAP_FAILED)
        munmap(page, page_size);
}

/* mallinfo2 counts what hakmem serves in every tier above the slabs: a
 * pool block (32 KiB-1 MiB) in `arena`, a big block in `hblkhd`, both in
 * `uordblks` while live. */
static void test_mallinfo(void)
{
    static const size_t SIZES[] = {300 * KiB, 5 * MiB};
    for (size_t i = 0; i < sizeof SIZES / sizeof SIZES[0]; i++) {
        size_t n = SIZES[i];
        struct mallinfo2 before = mallinfo2();
        unsigned char *p = v_malloc(n);
        if (!CHECK(p != NULL, "malloc(%zu)", n))
            continue;
        p[0] = p[n - 1] = 1;
        struct mallinfo2 live = mallinfo2();
        CHECK(live.uordblks >= before.uordblks + n, "mallinfo2 after malloc(%zu): uordblks %zu -> %zu",
              n, before.uordblks, live.uordblks);
        CHECK(live.arena + live.hblkhd >= live.uordblks,
              "mallinfo2 after malloc(%zu): arena %zu + hblkhd %zu < uordblks %zu", n, live.arena,
              live.hblkhd, live.uordblks);
        v_free(p);
    }
}

int main(void)
{
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    bind_exports();
#ifdef HAK_LINKED
    hakmem_mode = true;
    const char *variant = "linked";
#else
    const char *variant = "plain";
    /* The test script says when hakmem must be there; a preload without the
     * variable is still recognised by hakmem's own API being present. */
    hakmem_mode = getenv("HAKTEST_EXPECT_HAKMEM") != NULL || f_hak_version != NULL;
#endif
    printf("api_test (%s): testing %s\n", variant, hakmem_mode ? "hakmem" : "the system malloc");

    if (hakmem_mode)
        test_symbol_origin();
    test_malloc_sizes();
    test_aligned();
    test_page_aligned();
    test_realloc();
    test_calloc();
    test_bad_sizes();
    test_bad_alignment();
    test_free();
    test_aliases();
    if (hakmem_mode) {
        test_invalid_pointers();
        test_mallinfo();
    }

    printf("api_test: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
