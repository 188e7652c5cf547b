//! Checked mode: with statistics (HAKMEM_STATS), hardening (HAKMEM_HARDEN),
//! profiling (HAKMEM_PROF) or valgrind on, a heap's fast bins stay empty
//! and have no room, so every malloc and free of a slab block comes here,
//! to the same bins one step later. Default mode pays nothing for any of
//! them: its fast paths have no test for them. Every
//! miss on a live heap comes through here (`alloc_miss`, `free_miss`), so the
//! mode is tested in this file alone; whether statistics and hardening are
//! on is `config`'s to say.
//!
//! Hardening marks each freed block: its second word holds the block's
//! address encoded with the process key, and handing the block out clears it.
//! A free that finds the mark is a double free, whichever thread freed first
//! and wherever the block waits (cache, slab list, remote list: those use the
//! first word only). Blocks of the 8-byte class have no second word, so
//! hardened mode serves those requests from the 16-byte class. It also
//! caches a freed block below the newest one, so that the next malloc of
//! its class is not handed the block just freed.
//!
//! Under valgrind, each block handed out and freed here is announced to
//! memcheck (`valgrind.rs`), which then reports leaks and uses after free.

use crate::config;
use crate::diag;
use crate::os::random;
use crate::size_class::CLASS_SIZE;
use crate::slab::free_mark;
use crate::stats;
use crate::thread::heap::Heap;
use crate::valgrind;

/// malloc's miss on the thread's own heap, whose fast bin for `c` is empty:
/// checked mode's bins, or a refill.
#[inline]
pub fn alloc_miss(h: &mut Heap, c: usize) -> *mut u8 {
    if !h.checked {
        return h.refill(c);
    }
    checked_alloc(h, c)
}

/// malloc on a heap no fast path reaches (the orphan heap): its bins, then
/// its slabs.
pub fn alloc(h: &mut Heap, c: usize) -> *mut u8 {
    if !h.checked {
        return h.alloc(c);
    }
    checked_alloc(h, c)
}

#[inline(always)]
fn checked_alloc(h: &mut Heap, c: usize) -> *mut u8 {
    if config::stats() {
        return alloc_counted(h, c);
    }
    take(h, c).0
}

/// free's miss on a live heap: checked mode's checks and bins, or an
/// overflow of the full bin.
#[inline]
pub fn free_miss(h: &mut Heap, c: usize, p: *mut u8) {
    if !h.checked {
        return h.overflow(c, p);
    }
    if h.mark_key != 0 {
        check_and_mark(p, c, h.mark_key);
    }
    valgrind::freelike(p);
    if config::stats() {
        return free_counted(h, c, p);
    }
    put(h, c, p);
}

/// The key free marks are encoded with: the process key when hardened, 0
/// (no marks) otherwise.
#[inline]
pub fn mark_key() -> usize {
    if config::harden() {
        random::secret()
    } else {
        0
    }
}

#[inline(never)]
fn alloc_counted(h: &mut Heap, c: usize) -> *mut u8 {
    let (p, class, hit) = take(h, c);
    if !p.is_null() {
        stats::class_alloc(class, hit);
    }
    p
}

#[inline(never)]
fn free_counted(h: &mut Heap, c: usize, p: *mut u8) {
    let hit = put(h, c, p);
    stats::class_free(c, hit);
}

/// A block for class `c` (the class it came from, and whether the cache
/// had it), with its free mark cleared.
#[inline(always)]
fn take(h: &mut Heap, c: usize) -> (*mut u8, usize, bool) {
    let key = h.mark_key;
    let c = if key != 0 { c.max(1) } else { c };
    let (p, hit) = match h.checked_bin(c).pop() {
        Some(p) => (p, true),
        None => (h.refill(c), false),
    };
    if valgrind::active() {
        h.checked_bin(c).scrub_above_top();
        valgrind::malloclike(p, CLASS_SIZE[c] as usize, false);
    }
    if key != 0 && !p.is_null() {
        if let Some(at) = free_mark::check_and_clear(p, CLASS_SIZE[c] as usize, key) {
            diag::write_after_free(p as usize + at, p as usize, "malloc was to hand it out");
        }
    }
    (p, c, hit)
}

/// Caches `p`; false if the bin was full (and overflowed).
#[inline(always)]
fn put(h: &mut Heap, c: usize, p: *mut u8) -> bool {
    let kept = if h.mark_key != 0 { h.checked_bin(c).push_below_newest(p) } else { h.checked_bin(c).push(p) };
    if kept {
        return true;
    }
    h.overflow(c, p);
    false
}

/// The checks and counts of a free that does not go through a heap.
pub fn note_free(c: usize, p: *mut u8) {
    let key = mark_key();
    if key != 0 {
        check_and_mark(p, c, key);
    }
    valgrind::freelike(p);
    stats::class_free(c, false);
}

/// Reports `p`, a block of class `c`, if it carries the free mark, then
/// marks and poisons it.
#[inline]
fn check_and_mark(p: *mut u8, c: usize, key: usize) {
    // p is the start of a block of a live slab (free checked it); blocks are
    // at least 16 bytes in hardened mode.
    if free_mark::is_marked(p, key) {
        diag::double_free("free", p as usize);
    }
    free_mark::mark(p, CLASS_SIZE[c] as usize, key);
}
