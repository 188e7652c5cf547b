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

/* Returns free memory to the kernel now (as malloc_trim(0) does): the
 * calling thread's cached blocks, empty slabs and SuperSlabs, and cached big
 * mappings.  Returns 1 if any memory was released, 0 otherwise. */
int hak_trim(void);

#ifdef __cplusplus
}
#endif

#endif /* HAKMEM_H */
