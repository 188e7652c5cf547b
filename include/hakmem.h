/* hakmem — a fast, lean malloc replacement for x86-64 Linux.
 *
 * Preload it (LD_PRELOAD=libhakmem.so ./app) and every malloc/free of the
 * program goes to hakmem.  Link it (-lhakmem) and the standard functions are
 * hakmem's too; the hak_ functions below are the same allocator under names
 * that never collide with another malloc.
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* malloc(3): a block of at least `size` bytes, 16-byte aligned when size >= 16;
 * NULL with errno = ENOMEM when it cannot be had. */
void *hak_malloc(size_t size);

/* free(3): returns a block from any hak_ or standard allocation function.
 * NULL does nothing; a pointer hakmem did not hand out aborts with a message. */
void hak_free(void *ptr);

/* calloc(3): n * size zeroed bytes; NULL with ENOMEM if the product overflows. */
void *hak_calloc(size_t n, size_t size);

/* realloc(3): resizes keeping the contents; on failure returns NULL and the old
 * block is untouched.  hak_realloc(p, 0) frees p and returns NULL, as glibc does. */
void *hak_realloc(void *ptr, size_t size);

/* aligned_alloc(3): `alignment` must be a power of two (any, up to 128 MiB);
 * otherwise NULL with errno = EINVAL. */
void *hak_aligned_alloc(size_t alignment, size_t size);

/* malloc_usable_size(3): the bytes the block really has (>= what was asked). */
size_t hak_usable_size(const void *ptr);

/* The library version, e.g. "0.1.0". */
const char *hak_version(void);

/* Writes the statistics report (the one HAKMEM_STATS=1 prints at exit) to the
 * file descriptor `fd`.  Per-class counts are gathered only when the process
 * started with HAKMEM_STATS=1.  Returns 0, or -1 with errno set (EBADF for a
 * descriptor that is not open). */
int hak_stats_print(int fd);

/* Reads one live number into *out; cheap enough to call every second (a few
 * locks and list walks, nothing that slows malloc).  Returns 0, or -1 with
 * errno = ENOENT for an unknown name, ENOTSUP for a count while statistics
 * are off (HAKMEM_STATS unset), EINVAL for a NULL argument.
 *
 * Always there (bytes unless noted):
 *   mapped      mapped from the kernel (SuperSlabs, pool regions, big
 *               mappings, thread heaps)
 *   active      slabs and pool runs holding blocks, live big blocks
 *   dirty       free but resident until the purge delay runs out
 *   resident    at most what hakmem has resident: active + dirty + metadata
 *   retained    mapped but given back to the kernel (address space kept)
 *   metadata    thread heaps;  bigcache  big mappings cached for reuse
 *   superslabs, superslabs_peak, big_blocks, threads, purges   (counts)
 *   returned    bytes given back to the kernel since start
 *   peak_rss    the process's peak resident set
 *   classes     how many size classes there are;  class.<c>.size
 * Counted with HAKMEM_STATS=1 (they cost every malloc):
 *   allocated   bytes in blocks the program holds
 *   thread_cache bytes waiting in thread caches
 *   mallocs, frees, remote_frees, cache_hit_percent, every counter of the
 *   exit report (slab_blocks, inbox_sends, bigcache_hits, ...), and per
 *   class class.<c>.mallocs / frees / live / peak / cached (blocks). */
int hak_stat(const char *name, uint64_t *out);

/* Writes a heap profile of the sampled blocks live now (HAKMEM_PROF=1) to
 * `path`, in the format google-pprof reads:
 *   google-pprof --text ./app path      (or --svg for a call graph)
 * Returns 0, or -1 with errno = ENOTSUP when profiling is off, EINVAL for a
 * NULL path, or the error of opening or writing the file. */
int hak_prof_dump(const char *path);

/* Returns free memory to the kernel now (as malloc_trim(0) does): the
 * calling thread's cached blocks, empty slabs and SuperSlabs, and cached big
 * mappings.  Returns 1 if any memory was released, 0 otherwise. */
int hak_trim(void);

#ifdef __cplusplus
}
#endif

#endif /* HAKMEM_H */
