//! The page map: one byte per 2 MiB region of the 47-bit user address space,
//! saying what hakmem keeps there. `free` asks it before reading any header,
//! so a pointer hakmem never handed out is reported instead of followed.
//!
//! The table is a zero-initialised static (64 MiB of .bss): the kernel commits
//! its pages only when hakmem first writes a region's entry, and it needs no
//! initialisation, so a lookup is valid before anything else has run.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, Ordering};

pub const REGION_SHIFT: usize = 21;
pub const REGION_SIZE: usize = 1 << REGION_SHIFT;
const ADDRESS_BITS: usize = 47;
const ENTRIES: usize = 1 << (ADDRESS_BITS - REGION_SHIFT);

/// Nothing of hakmem's.
pub const NONE: u8 = 0;
/// A SuperSlab: its header is at the region's base.
pub const SUPERSLAB: u8 = 1;
/// The bootstrap arena (blocks handed out to nested calls).
pub const BOOTSTRAP: u8 = 2;
/// Inside a big block, not the region holding its start.
pub const BIG_TAIL: u8 = 3;
/// A pool region (page runs of 32 KiB to 1 MiB): its header is at the
/// region's base.
pub const POOL: u8 = 4;
/// A freed big block's range, held inaccessible for a while (hardened
/// mode, `large/quarantine.rs`).
pub const FREED_BIG: u8 = 5;
/// A SuperSlab whose next free is to take the slow way (`knock`); every
/// lookup but free's fast path (`fast_kind`) reads it as SUPERSLAB.
pub const SUPERSLAB_KNOCKED: u8 = 6;
/// Hardened mode's region of malloc(0) blocks, closed to every access
/// (`large/zero_size.rs`).
pub const ZERO_SIZE: u8 = 7;
/// A big block starts in this region; its header is `kind - BIG_HEAD`
/// regions below this region's base (more than 0 only for huge alignments).
pub const BIG_HEAD: u8 = 16;
pub const BIG_MAX_DISTANCE: usize = (u8::MAX - BIG_HEAD) as usize;

/// Whether `kind` is one of a big block's regions.
#[inline]
pub fn is_big(kind: u8) -> bool {
    kind == BIG_TAIL || kind >= BIG_HEAD
}

struct Table(UnsafeCell<[u8; ENTRIES]>);
// SAFETY: every access goes through an AtomicU8 view of one byte.
unsafe impl Sync for Table {}

static TABLE: Table = Table(UnsafeCell::new([0; ENTRIES]));

#[inline(always)]
fn entry(index: usize) -> &'static AtomicU8 {
    // SAFETY: callers keep `index < ENTRIES`; AtomicU8 has u8's layout.
    unsafe { AtomicU8::from_ptr((TABLE.0.get() as *mut u8).add(index)) }
}

/// What hakmem keeps in the region holding `addr` (NONE for non-canonical or
/// kernel addresses).
#[inline(always)]
pub fn kind(addr: usize) -> u8 {
    let k = fast_kind(addr);
    if k == SUPERSLAB_KNOCKED {
        SUPERSLAB
    } else {
        k
    }
}

/// `kind` for free's fast path: a knocked SuperSlab is not SUPERSLAB here,
/// so its next free takes the slow way, which answers the knock.
#[inline(always)]
pub fn fast_kind(addr: usize) -> u8 {
    let mut index = addr >> REGION_SHIFT;
    // An empty asm hides how index was made, so the compiler tests it as is
    // (one compare) instead of shifting the address again to test its top
    // bits (two more instructions on free's path).
    // SAFETY: no instructions; index passes through unchanged.
    unsafe { core::arch::asm!("/* {0} */", inout(reg) index, options(pure, nomem, nostack, preserves_flags)) };
    if index >= ENTRIES {
        return NONE;
    }
    // Relaxed: whoever holds a pointer into a region got it from an
    // allocation that happened after the entry was written.
    entry(index).load(Ordering::Relaxed)
}

/// Knocks at the SuperSlab at `addr`: the next free of one of its blocks
/// takes the slow way, so that a thread whose calls all hit its cache
/// still looks at what it was asked. The caller holds the registry's lock,
/// under which SuperSlabs are mapped and unmapped.
pub fn knock(addr: usize) {
    let _ = entry(addr >> REGION_SHIFT).compare_exchange(SUPERSLAB, SUPERSLAB_KNOCKED, Ordering::Relaxed, Ordering::Relaxed);
}

/// If the region holding `addr` is knocked at: makes it a plain SuperSlab
/// again and returns true (one call answers each knock). An unmapping
/// meanwhile stays unmapped: only a knocked entry changes.
pub fn answer(addr: usize) -> bool {
    let index = addr >> REGION_SHIFT;
    index < ENTRIES
        && entry(index).load(Ordering::Relaxed) == SUPERSLAB_KNOCKED
        && entry(index)
            .compare_exchange(SUPERSLAB_KNOCKED, SUPERSLAB, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Marks `count` regions from the one holding `addr`.
pub fn set(addr: usize, count: usize, kind: u8) {
    let first = addr >> REGION_SHIFT;
    for i in first..(first + count).min(ENTRIES) {
        entry(i).store(kind, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_addresses_are_none() {
        assert_eq!(kind(0), NONE);
        assert_eq!(kind(usize::MAX), NONE);
        assert_eq!(kind(1 << 47), NONE);
    }

    #[test]
    fn set_marks_exactly_the_regions_asked() {
        let base = 0x5a5a_0000_0000usize;
        set(base, 3, BIG_TAIL);
        assert_eq!(kind(base - 1), NONE);
        assert_eq!(kind(base), BIG_TAIL);
        assert_eq!(kind(base + 3 * REGION_SIZE - 1), BIG_TAIL);
        assert_eq!(kind(base + 3 * REGION_SIZE), NONE);
        set(base, 3, NONE);
        assert_eq!(kind(base + REGION_SIZE), NONE);
    }

    #[test]
    fn a_knocked_superslab_is_one_but_to_the_fast_path_until_answered() {
        let base = 0x5a5b_0000_0000usize;
        knock(base);
        assert_eq!(kind(base), NONE, "only a SuperSlab is knocked at");
        set(base, 1, SUPERSLAB);
        knock(base);
        assert_eq!((kind(base + 8), fast_kind(base + 8)), (SUPERSLAB, SUPERSLAB_KNOCKED));
        assert!(answer(base + 8));
        assert!(!answer(base + 8), "one answer per knock");
        assert_eq!(fast_kind(base), SUPERSLAB);
        knock(base);
        set(base, 1, NONE);
        assert!(!answer(base), "an unmapped region stays unmapped");
        assert_eq!(fast_kind(base), NONE);
    }
}
