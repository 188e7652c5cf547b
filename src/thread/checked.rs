//! Checked mode: with statistics (HAKMEM_STATS) or hardening (HAKMEM_HARDEN)
//! on, a heap's fast bins stay empty and have no room, so every malloc and
//! free of a slab block comes here, to the same bins one step later. Default
//! mode pays nothing for either: its fast paths have no test for them.
//!
//! Hardening marks each freed block: its second word holds the block's
//! address encoded with the process key, and handing the block out clears it.
//! A free that finds the mark is a double free, whichever thread freed first
//! and wherever the block waits (cache, slab list, remote list: those use the
//! first word only). Blocks of the 8-byte class have no second word, so
//! hardened mode serves those requests from the 16-byte class.

use crate::config;
use crate::diag;
use crate::init;
use crate::slab::registry;
use crate::stats;
use crate::thread::heap::Heap;

/// malloc's slow path in checked mode.
pub fn alloc(h: &mut Heap, c: usize) -> *mut u8 {
    let harden = config::harden();
    let c = if harden { c.max(1) } else { c };
    let (p, hit) = match h.bin(c).pop() {
        Some(p) => (p, true),
        None => (h.refill(c), false),
    };
    if !p.is_null() {
        if harden {
            // SAFETY: p is a block of at least 16 bytes that we own.
            unsafe { *mark_slot(p) = 0 };
        }
        stats::class_alloc(c, hit);
    }
    p
}

/// free's slow path in checked mode.
pub fn free(h: &mut Heap, c: usize, p: *mut u8) {
    registry::maybe_purge();
    check_and_mark(p);
    let hit = h.bin(c).push(p);
    if !hit {
        h.overflow(c, p);
    }
    stats::class_free(c, hit);
}

/// The checks and counts of a free that does not go through a heap.
pub fn note_free(c: usize, p: *mut u8) {
    check_and_mark(p);
    stats::class_free(c, false);
}

fn check_and_mark(p: *mut u8) {
    if config::harden() {
        let mark = p as usize ^ init::secret();
        // SAFETY: p is the start of a block of a live slab (free checked it);
        // blocks are at least 16 bytes in hardened mode.
        unsafe {
            if *mark_slot(p) == mark {
                diag::double_free("free", p as usize);
            }
            *mark_slot(p) = mark;
        }
    }
}

fn mark_slot(p: *mut u8) -> *mut usize {
    // SAFETY (of the callers' use): the second word of a block of 16+ bytes.
    p.cast::<usize>().wrapping_add(1)
}
