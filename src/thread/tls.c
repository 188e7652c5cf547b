/* The thread's hakmem state, reached with one %fs-relative load.
 *
 * initial-exec keeps every access a fixed offset from the thread pointer: no
 * __tls_get_addr call (which may itself call malloc) and no lazy allocation.
 * `heap` starts at the shared empty sentinel, so the fast path needs no
 * "is this thread set up?" test: the sentinel's caches are empty and full at
 * once, every operation misses, and the miss sets the thread up. */

extern char hak_sentinel_heap[];

struct hak_tls {
    void *heap;          /* this thread's Heap, or the sentinel          */
    unsigned long state; /* 0 new, 1 busy in a slow path, 2 live, 3 gone */
};

__attribute__((tls_model("initial-exec"), aligned(16)))
__thread struct hak_tls hak_tls = { hak_sentinel_heap, 0 };
