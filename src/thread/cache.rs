//! The thread cache: per size class, an array stack of free blocks. malloc
//! pops, free pushes; both are a compare and a load or store when they hit.
//! Capacity adapts per class: a class that keeps missing or overflowing
//! doubles its room (up to a byte budget), one that stays idle gives it back.

use crate::slab::size_class::{CLASS_SIZE, NUM_CLASSES};

/// A stack of free blocks held as three pointers into its slot array, so
/// that pop and push are a compare and a load or store each: `top` is the
/// next free slot, `base` the array's start, `limit` is `base + capacity`.
/// All three null (the sentinel's bins, and the fast bins of a heap in
/// checked mode) make every pop and every push miss.
#[repr(C)]
pub struct Bin {
    top: *mut *mut u8,
    base: *mut *mut u8,
    limit: *mut *mut u8,
    /// Pads a bin to 32 bytes: a bin's offset in the heap is then the class
    /// times 32, which the fast paths get with a scaled index.
    _pad: usize,
}

/// Size of a bin: class `c`'s bin is at byte `c * BIN_STRIDE` of the heap.
pub const BIN_STRIDE: usize = 32;
const _: () = assert!(core::mem::size_of::<Bin>() == BIN_STRIDE);

impl Bin {
    pub const EMPTY: Bin = Bin {
        top: core::ptr::null_mut(),
        base: core::ptr::null_mut(),
        limit: core::ptr::null_mut(),
        _pad: 0,
    };

    /// An empty bin over `slots` with room for `cap` blocks.
    pub fn new(slots: *mut *mut u8, cap: usize) -> Bin {
        // SAFETY: the caller's slot array has at least `cap` entries.
        let limit = unsafe { slots.add(cap) };
        Bin { top: slots, base: slots, limit, _pad: 0 }
    }

    /// The most recently pushed block, if any.
    #[inline(always)]
    pub fn pop(&mut self) -> Option<*mut u8> {
        if self.top == self.base {
            return None;
        }
        // SAFETY: base < top, so top - 1 is a filled slot of the array.
        unsafe {
            self.top = self.top.sub(1);
            Some(*self.top)
        }
    }

    /// Keeps `p`; false (and nothing kept) when the bin is full.
    #[inline(always)]
    pub fn push(&mut self, p: *mut u8) -> bool {
        if self.top >= self.limit {
            return false;
        }
        // SAFETY: top < limit, within the slot array.
        unsafe {
            *self.top = p;
            self.top = self.top.add(1);
        }
        true
    }

    /// The slot array: blocks `0..count()`, oldest first.
    pub fn slots(&self) -> *mut *mut u8 {
        self.base
    }

    pub fn count(&self) -> usize {
        // SAFETY: top and base point into the same slot array (or are both null).
        unsafe { self.top.offset_from(self.base) as usize }
    }

    pub fn cap(&self) -> usize {
        // SAFETY: as for count.
        unsafe { self.limit.offset_from(self.base) as usize }
    }

    /// Says the first `n` slots hold blocks (`n <= cap()`).
    pub fn set_count(&mut self, n: usize) {
        debug_assert!(n <= self.cap());
        // SAFETY: n <= cap, within the slot array.
        self.top = unsafe { self.base.add(n) };
    }

    /// Changes the capacity (`count() <= cap <= ` the array's length).
    pub fn set_cap(&mut self, cap: usize) {
        debug_assert!(self.count() <= cap);
        // SAFETY: the caller keeps cap within the slot array.
        self.limit = unsafe { self.base.add(cap) };
    }
}

/// Bytes of blocks one class may keep cached at most.
const BIN_BYTES: usize = 256 * 1024;
const MAX_SLOTS: usize = 2048;
const MIN_SLOTS: usize = 8;
const START_SLOTS: usize = 64;

const fn max_cap_of(c: usize) -> usize {
    let n = BIN_BYTES / CLASS_SIZE[c] as usize;
    if n > MAX_SLOTS {
        MAX_SLOTS
    } else if n < MIN_SLOTS {
        MIN_SLOTS
    } else {
        n
    }
}

const fn build_max_cap() -> [u32; NUM_CLASSES] {
    let mut t = [0u32; NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        t[c] = max_cap_of(c) as u32;
        c += 1;
    }
    t
}

/// The most slots each class's bin can grow to.
pub static MAX_CAP: [u32; NUM_CLASSES] = build_max_cap();

/// Slot offsets of each class within a heap's slot area, and its total.
const fn build_offsets() -> ([usize; NUM_CLASSES], usize) {
    let mut t = [0usize; NUM_CLASSES];
    let mut at = 0;
    let mut c = 0;
    while c < NUM_CLASSES {
        t[c] = at;
        at += max_cap_of(c);
        c += 1;
    }
    (t, at)
}

const OFFSETS: ([usize; NUM_CLASSES], usize) = build_offsets();
pub const SLOT_OFFSET: [usize; NUM_CLASSES] = OFFSETS.0;
pub const TOTAL_SLOTS: usize = OFFSETS.1;

/// A bin's capacity when its heap is (re)started.
pub fn start_cap(c: usize) -> usize {
    START_SLOTS.min(MAX_CAP[c] as usize)
}

/// A floor for shrinking: an idle class keeps this much room.
pub fn min_cap(c: usize) -> usize {
    (MIN_SLOTS * 2).min(MAX_CAP[c] as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_stacks_with_a_hard_capacity() {
        let mut store = [core::ptr::null_mut::<u8>(); 4];
        let mut b = Bin::new(store.as_mut_ptr(), 2);
        assert_eq!(b.pop(), None);
        assert!(b.push(1 as *mut u8));
        assert!(b.push(2 as *mut u8));
        assert!(!b.push(3 as *mut u8));
        assert_eq!((b.count(), b.cap()), (2, 2));
        assert_eq!(b.pop(), Some(2 as *mut u8));
        assert_eq!(b.pop(), Some(1 as *mut u8));
        assert_eq!(b.pop(), None);
        b.set_cap(4);
        b.set_count(3);
        assert_eq!(b.pop(), Some(store[2]));
    }

    #[test]
    fn the_empty_bin_misses_both_ways() {
        let mut b = Bin::EMPTY;
        assert_eq!(b.pop(), None);
        assert!(!b.push(8 as *mut u8));
        assert_eq!((b.count(), b.cap()), (0, 0));
    }

    #[test]
    fn capacities_respect_slot_and_byte_budgets() {
        assert_eq!(MAX_CAP[1], 2048);
        for c in 0..NUM_CLASSES {
            assert!(MAX_CAP[c] as usize <= MAX_SLOTS);
            assert!(start_cap(c) <= MAX_CAP[c] as usize && min_cap(c) <= MAX_CAP[c] as usize);
        }
        assert_eq!(SLOT_OFFSET[1], MAX_CAP[0] as usize);
    }
}
