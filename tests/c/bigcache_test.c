/* bigcache_test — a freed big block made of several cached ranges goes back
 * to BigCache whole (linked with -lhakmem; run with a long purge delay).
 *
 * Seven big blocks of 2 MiB mappings are written and freed into BigCache.
 * A block of 16 MiB is then built from those seven ranges and 2 MiB of
 * fresh pages (eight pieces, the most a block has), written and freed; a
 * block of its size allocated next must be that block's pages again, so
 * writing it faults (almost) no page. Piece by piece, the freed block would
 * splinter into eight ranges, and the next block, again seven of them and
 * fresh pages, would fault in 2 MiB. That needs a kernel that
 * moves several mappings with one mremap (Linux 6.17 on); on an older one
 * the test checks only that BigCache kept the seven blocks, and says so.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "hakmem.h"

#define MIB (1UL << 20)
#define PAGE 4096UL

static int failures;
#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "bigcache_test: FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
            failures++;                                                         \
        }                                                                       \
    } while (0)

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* One byte per page; returns the page faults it took. */
static long write_pages(unsigned char *p, size_t n, unsigned char seed)
{
    long before = minor_faults();
    for (size_t i = 0; i < n; i += PAGE)
        p[i] = (unsigned char)(seed ^ (i / PAGE));
    return minor_faults() - before;
}

static bool pages_hold(const unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i += PAGE)
        if (p[i] != (unsigned char)(seed ^ (i / PAGE)))
            return false;
    return true;
}

/* The kernel's answer to moving a range of two mappings in one call. */
static bool kernel_moves_many_mappings(void)
{
    int rw = PROT_READ | PROT_WRITE, anon = MAP_PRIVATE | MAP_ANONYMOUS;
    char *a = mmap(NULL, 2 * PAGE, rw, anon, -1, 0), *b = mmap(NULL, PAGE, rw, anon, -1, 0);
    char *t = mmap(NULL, 2 * PAGE, rw, anon, -1, 0);
    if (a == MAP_FAILED || b == MAP_FAILED || t == MAP_FAILED)
        return false;
    a[0] = b[0] = 1;
    bool ok = mremap(b, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, a + PAGE) != MAP_FAILED &&
              mremap(a, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, t) != MAP_FAILED;
    munmap(a, 2 * PAGE);
    munmap(t, 2 * PAGE);
    return ok;
}

int main(void)
{
    /* Sizes whose mappings (a page of header room, four sizes per
     * doubling) are 2 and 16 MiB exactly. */
    enum { N = 7 };
    const size_t n = 2 * MIB - PAGE, total = 16 * MIB - PAGE;
    /* First what maps regions of their own (a SuperSlab for stdio's
     * buffer, the purge thread's heap): a tier mapping a region unmaps
     * the oldest cached range to make way. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    bool moves_many = kernel_moves_many_mappings();
    printf("bigcache_test: one mremap moves %s\n", moves_many ? "several mappings" : "one mapping");
    hak_free(hak_malloc(64 * MIB));
    unsigned char *part[N];
    for (int i = 0; i < N; i++) {
        part[i] = hak_malloc(n);
        CHECK(part[i] != NULL, "malloc(%zu)", n);
        write_pages(part[i], n, (unsigned char)i);
    }
    for (int i = 0; i < N; i++)
        hak_free(part[i]);
    uint64_t cached = 0;
    CHECK(hak_stat("bigcache", &cached) == 0 && cached >= N * n, "BigCache holds %llu bytes, not %zu",
          (unsigned long long)cached, N * n);

    unsigned char *whole = hak_malloc(total);
    CHECK(whole != NULL, "malloc(%zu)", total);
    long built = write_pages(whole, total, 0x5a);
    uintptr_t was = (uintptr_t)whole;
    hak_free(whole);

    /* The block built where one was just freed starts a cache line later
     * in the same pages (docs/ARCHITECTURE.md, "Big blocks"). */
    unsigned char *again = hak_malloc(total);
    CHECK(again != NULL, "malloc(%zu)", total);
    bool same = (uintptr_t)again == was + 64 && pages_hold(again - 64, total, 0x5a);
    long faults = write_pages(again, total, 0xa5);
    if (moves_many)
        CHECK(same && faults < 64, "the block of %zu bytes faulted %ld pages (%s the freed one's pages)",
              total, faults, same ? "holding" : "not");
    else
        printf("bigcache_test: faults not checked (%ld)\n", faults);
    hak_free(again);
    if (failures)
        return 1;
    printf("bigcache_test: ok (%zu bytes built from cached ranges, %ld faults, then %ld reused whole)\n", total,
           built, faults);
    return 0;
}
