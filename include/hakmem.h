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

#ifdef __cplusplus
}
#endif

#endif /* HAKMEM_H */
