//! The tiers above the slabs, behind one small API for alloc/: the pool
//! (32 KiB < size <= 1 MiB: page runs in shared 2 MiB regions, pool.rs) and
//! big blocks (their own mappings, big.rs, reused through BigCache).

pub mod big;
pub mod big_pages;
pub mod big_resize;
pub mod bigcache;
pub mod guard_page;
pub mod pool;
pub mod pool_region;
pub mod quarantine;
pub mod size_table;
pub mod zero_size;

use crate::os::clock::now_ms;
use crate::os::{pagemap, PAGE};

/// Whether a page-map kind is one of these tiers'.
#[inline]
pub fn owns(kind: u8) -> bool {
    kind == pagemap::POOL || kind >= pagemap::BIG_HEAD
}

/// A block of `size` bytes (more than the slabs serve, or aligned beyond
/// what they offer) aligned to `align`, a power of two. Returns the block
/// and whether it reads as zero; null when the size is impossible or the
/// kernel has no memory.
pub fn alloc(size: usize, align: usize) -> (*mut u8, bool) {
    if !is_big(size, align) {
        return pool::alloc(size);
    }
    big::alloc(size, align)
}

/// Whether `alloc(size, align)` makes a big block (a mapping of its own).
#[inline]
pub fn is_big(size: usize, align: usize) -> bool {
    size > pool::MAX_SIZE || align > PAGE
}

/// Frees the block at `p`, whose page-map kind is `kind` (`owns(kind)`);
/// false if `p` is not a live block.
pub fn free(p: usize, kind: u8) -> bool {
    if kind == pagemap::POOL {
        return pool::free(p, now_ms());
    }
    match big::header_of(p, kind) {
        Some(h) => {
            big::free(h);
            true
        }
        None => false,
    }
}

/// Whether `p`, of page-map kind `kind`, is a pool or big block that was
/// freed: whether a free refused was a double free or an invalid pointer.
pub fn was_freed(p: usize, kind: u8) -> bool {
    match kind {
        pagemap::POOL => pool::was_freed(p),
        // A freed big block's regions leave the page map, until a new
        // block reuses its range.
        pagemap::NONE => big::was_freed(p),
        k => big::was_reused(p, k),
    }
}

/// Usable size of the live block at `p` (kind as for `free`), or None.
pub fn usable(p: usize, kind: u8) -> Option<usize> {
    if kind == pagemap::POOL {
        return pool::usable(p);
    }
    big::header_of(p, kind).map(big::usable)
}

/// Resizes a live pool or big block to `size` bytes (more than the slabs
/// serve) without copying it; the new address, or None when the caller must
/// copy (no room).
pub fn resize(p: usize, kind: u8, size: usize) -> Option<*mut u8> {
    if kind == pagemap::POOL {
        return pool::resize(p, size);
    }
    if kind < pagemap::BIG_HEAD {
        return None;
    }
    let h = big::header_of(p, kind)?;
    big::check(h);
    big_resize::resize(h, size)
}

/// When the next purge of free pool runs or cached big ranges is due
/// (u64::MAX: nothing waits).
#[inline]
pub fn purge_due() -> u64 {
    pool::PURGE_DUE.get().min(bigcache::PURGE_DUE.get())
}

/// Gives back what waited the purge delay (everything when `force`); true
/// if anything was given back.
pub fn purge(now: u64, force: bool) -> bool {
    let pool = pool::purge(now, force);
    let held = force && quarantine::release_all();
    bigcache::purge(now, force) | pool | held
}

pub fn lock_for_fork() {
    pool::lock_for_fork();
    bigcache::fork_lock().acquire();
    quarantine::fork_lock().acquire();
}

pub fn unlock_after_fork() {
    quarantine::fork_lock().release();
    bigcache::fork_lock().release();
    pool::unlock_after_fork();
}
