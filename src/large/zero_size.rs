//! Hardened mode's malloc(0): a unique address in a 2 MiB region no access
//! may touch, so a program that reads or writes the block it asked no bytes
//! for faults at once, and the fault handler (`large/guard_page.rs`) names
//! the block, instead of the access landing in a canary or a neighbour.
//! Slots are 256 bytes apart, so an access up to 255 bytes in is told
//! apart from the next block; a free slot is taken again only after the
//! cursor has gone round all 8,192 (reuse as late as the region allows).
//! When every slot is live, malloc(0) gets an ordinary block.

use core::ptr;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::diag;
use crate::os::pagemap::{self, REGION_SIZE};
use crate::os;

const SLOT: usize = 256;
const SLOTS: usize = REGION_SIZE / SLOT;
const WORDS: usize = SLOTS / 64;

/// The region's address: 0 before the first malloc(0), FAILED if it could
/// not be had (every malloc(0) then gets an ordinary block).
static BASE: AtomicUsize = AtomicUsize::new(0);
const FAILED: usize = 1;
/// Bit s set: slot s holds a live block.
static LIVE: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];
static CURSOR: AtomicUsize = AtomicUsize::new(0);

/// A new malloc(0) block; null when there is no slot (or no region).
pub fn malloc() -> *mut u8 {
    let base = region();
    if base == FAILED {
        return ptr::null_mut();
    }
    let start = CURSOR.fetch_add(1, Ordering::Relaxed) % SLOTS;
    // A word at a time from the cursor's, skipping live slots; the first
    // word comes round again at the end for the slots below the cursor.
    for i in 0..=WORDS {
        let w = (start / 64 + i) % WORDS;
        let mut free = !LIVE[w].load(Ordering::Relaxed);
        if i == 0 {
            free &= u64::MAX << (start % 64);
        }
        while free != 0 {
            let bit = 1u64 << free.trailing_zeros();
            if LIVE[w].fetch_or(bit, Ordering::Acquire) & bit == 0 {
                let s = w * 64 + bit.trailing_zeros() as usize;
                CURSOR.store(s + 1, Ordering::Relaxed);
                return (base + s * SLOT) as *mut u8;
            }
            free &= !bit;
        }
    }
    ptr::null_mut()
}

/// free of `p`, which lies in the region (the page map said so).
pub fn free(p: *mut u8, who: &str) {
    let (w, bit) = live_bit(p, who);
    if LIVE[w].fetch_and(!bit, Ordering::Release) & bit == 0 {
        diag::double_free(who, p as usize);
    }
}

/// malloc_usable_size of `p`, a block of the region: none.
pub fn usable(p: *mut u8, who: &str) -> usize {
    let (w, bit) = live_bit(p, who);
    if LIVE[w].load(Ordering::Relaxed) & bit == 0 {
        diag::invalid_pointer(who, p as usize);
    }
    0
}

/// The word and bit of `p`'s slot; reported if `p` starts no slot.
fn live_bit(p: *mut u8, who: &str) -> (usize, u64) {
    let off = (p as usize).wrapping_sub(BASE.load(Ordering::Acquire));
    if off >= REGION_SIZE || !off.is_multiple_of(SLOT) {
        diag::invalid_pointer(who, p as usize);
    }
    let s = off / SLOT;
    (s / 64, 1u64 << (s % 64))
}

/// The block whose slot holds `at` (for the fault handler's report).
pub fn block_at(at: usize) -> usize {
    at & !(SLOT - 1)
}

/// The region, mapped and closed to every access on first use.
fn region() -> usize {
    let base = BASE.load(Ordering::Acquire);
    if base != 0 {
        return base;
    }
    let p = os::map_aligned(REGION_SIZE, REGION_SIZE);
    // SAFETY: p is a fresh mapping of REGION_SIZE bytes that nobody else
    // knows of yet; mprotect allocates nothing.
    let closed = !p.is_null() && unsafe { libc::mprotect(p as *mut libc::c_void, REGION_SIZE, libc::PROT_NONE) } == 0;
    if !closed && !p.is_null() {
        os::unmap(p, REGION_SIZE);
    }
    let mine = if closed { p as usize } else { FAILED };
    if closed {
        // Before the region is published: a free of its first block must
        // find it in the page map.
        pagemap::set(mine, 1, pagemap::ZERO_SIZE);
    }
    match BASE.compare_exchange(0, mine, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => mine,
        Err(theirs) => {
            // Another thread's region won: ours goes back unused.
            if closed {
                pagemap::set(mine, 1, pagemap::NONE);
                os::unmap(p, REGION_SIZE);
            }
            theirs
        }
    }
}
