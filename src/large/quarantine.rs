//! Hardened mode's quarantine of freed big blocks. A freed big mapping is
//! not unmapped at once but made inaccessible where it is: its pages go
//! back to the kernel, its addresses stay taken. A later use of the block
//! then faults (and the fault handler says it was freed), a second free is
//! named a double free, and the next big block cannot be given the same
//! addresses, so neither hides the other. The oldest of `HELD` ranges is
//! unmapped when another comes, and all of them by a forced purge
//! (malloc_trim, or a mapping that failed: under `ulimit -v` their address
//! space may be what the next mapping needs). Until then they count as
//! mapped.

use core::cell::UnsafeCell;

use crate::large::big_pages;
use crate::os::{self, pagemap};
use crate::sync::SpinLock;

/// Freed ranges kept inaccessible: address space only, no memory.
const HELD: usize = 16;

struct Ring {
    lock: SpinLock,
    /// (address, length) of each held range; length 0 is an empty slot.
    ranges: UnsafeCell<[(usize, usize); HELD]>,
    /// The slot the next range goes to (it holds the oldest one).
    next: UnsafeCell<usize>,
}

// SAFETY: ranges and next are touched only with the lock held.
unsafe impl Sync for Ring {}

static RING: Ring = Ring { lock: SpinLock::new(), ranges: UnsafeCell::new([(0, 0); HELD]), next: UnsafeCell::new(0) };

/// Holds the freed big mapping at `base` (`len` bytes, 2 MiB-aligned, out
/// of the page map already): inaccessible and marked FREED_BIG, or unmapped
/// if the kernel would not change it.
pub fn hold(base: usize, len: usize) {
    if !os::make_inaccessible(base as *mut u8, len) {
        big_pages::unmap_range(base, len);
        return;
    }
    pagemap::set(base, len.div_ceil(pagemap::REGION_SIZE), pagemap::FREED_BIG);
    let oldest = {
        let _g = RING.lock.lock();
        // SAFETY: the ring lock is held.
        let (ranges, next) = unsafe { (&mut *RING.ranges.get(), &mut *RING.next.get()) };
        let oldest = core::mem::replace(&mut ranges[*next], (base, len));
        *next = (*next + 1) % HELD;
        oldest
    };
    if oldest.1 != 0 {
        pagemap::set(oldest.0, oldest.1.div_ceil(pagemap::REGION_SIZE), pagemap::NONE);
        big_pages::unmap_range(oldest.0, oldest.1);
    }
}

/// Unmaps every held range; true if there was one.
pub fn release_all() -> bool {
    let mut any = false;
    loop {
        let range = {
            let _g = RING.lock.lock();
            // SAFETY: the ring lock is held.
            let ranges = unsafe { &mut *RING.ranges.get() };
            ranges.iter_mut().find(|r| r.1 != 0).map(core::mem::take)
        };
        let Some((base, len)) = range else {
            return any;
        };
        pagemap::set(base, len.div_ceil(pagemap::REGION_SIZE), pagemap::NONE);
        big_pages::unmap_range(base, len);
        any = true;
    }
}

/// The lock fork holds across the fork.
pub fn fork_lock() -> &'static SpinLock {
    &RING.lock
}
