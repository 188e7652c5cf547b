//! The bootstrap arena: where allocations made from inside hakmem's own
//! set-up go (glibc's pthread functions may call malloc while a thread is
//! being set up). A bump allocator over 2 MiB chunks under a lock; its blocks
//! are never reused, and free accepts them and does nothing. Such calls are a
//! handful per thread at most.

use core::cell::UnsafeCell;
use core::ptr;

use crate::os::pagemap::{self, REGION_SIZE};
use crate::os;
use crate::stats::{self, Counter};
use crate::sync::SpinLock;

/// Each block is preceded by its usable size.
const HEADER: usize = 16;

struct Arena {
    lock: SpinLock,
    /// Next free byte and end of the current chunk.
    cursor: UnsafeCell<(usize, usize)>,
}
// SAFETY: `cursor` is only touched with `lock` held.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena { lock: SpinLock::new(), cursor: UnsafeCell::new((0, 0)) };

/// A block of `size` bytes aligned to `align` (a power of two); null if the
/// kernel has no memory or the request cannot be met.
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    let align = align.max(HEADER);
    let Some(need) = size.checked_add(align + HEADER) else {
        return ptr::null_mut();
    };
    if need > REGION_SIZE / 4 {
        return alloc_own_chunk(size, align, need);
    }
    let _g = ARENA.lock.lock();
    // SAFETY: the arena lock is held.
    let cur = unsafe { &mut *ARENA.cursor.get() };
    let mut p = os::align_up(cur.0 + HEADER, align);
    if cur.0 == 0 || p + size > cur.1 {
        let chunk = map_chunk(REGION_SIZE);
        if chunk == 0 {
            return ptr::null_mut();
        }
        *cur = (chunk, chunk + REGION_SIZE);
        p = os::align_up(chunk + HEADER, align);
    }
    cur.0 = p + size;
    finish(p, size)
}

fn alloc_own_chunk(size: usize, align: usize, need: usize) -> *mut u8 {
    let bytes = os::align_up(need, REGION_SIZE);
    let chunk = map_chunk(bytes);
    if chunk == 0 {
        return ptr::null_mut();
    }
    finish(os::align_up(chunk + HEADER, align), size)
}

fn map_chunk(bytes: usize) -> usize {
    let c = os::map_aligned(bytes, REGION_SIZE) as usize;
    if c != 0 {
        pagemap::set(c, bytes / REGION_SIZE, pagemap::BOOTSTRAP);
    }
    c
}

fn finish(p: usize, size: usize) -> *mut u8 {
    // SAFETY: p - HEADER lies inside the chunk, after the previous block.
    unsafe { *((p - 8) as *mut usize) = size };
    stats::add(Counter::BootstrapBlocks, 1);
    p as *mut u8
}

/// Usable size of a bootstrap block.
pub fn usable(p: *const u8) -> usize {
    // SAFETY: the page map said p is in the arena: its size precedes it.
    unsafe { *((p as usize - 8) as *const usize) }
}

/// The lock fork holds across the fork (`init::fork_prepare`).
pub fn fork_lock() -> &'static SpinLock {
    &ARENA.lock
}
