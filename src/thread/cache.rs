//! The thread cache: per size class, an array stack of free blocks. malloc
//! pops, free pushes; both are a compare and a load or store when they hit.
//! Capacity adapts per class: a class that keeps missing or overflowing
//! doubles its room (up to a byte budget), one that stays idle gives it back.

use crate::slab::size_class::{CLASS_SIZE, NUM_CLASSES};

#[repr(C)]
pub struct Bin {
    pub slots: *mut *mut u8,
    pub count: u32,
    pub cap: u32,
}

impl Bin {
    pub const EMPTY: Bin = Bin { slots: core::ptr::null_mut(), count: 0, cap: 0 };

    #[inline(always)]
    pub fn pop(&mut self) -> *mut u8 {
        if self.count == 0 {
            return core::ptr::null_mut();
        }
        self.count -= 1;
        // SAFETY: count < cap <= the slot array's length.
        unsafe { *self.slots.add(self.count as usize) }
    }

    #[inline(always)]
    pub fn push(&mut self, p: *mut u8) -> bool {
        if self.count >= self.cap {
            return false;
        }
        // SAFETY: count < cap <= the slot array's length.
        unsafe { *self.slots.add(self.count as usize) = p };
        self.count += 1;
        true
    }
}

/// Bytes of blocks one class may keep cached at most.
const BIN_BYTES: usize = 256 * 1024;
const MAX_SLOTS: usize = 2048;
const MIN_SLOTS: usize = 8;
const START_SLOTS: u32 = 64;

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
pub fn start_cap(c: usize) -> u32 {
    START_SLOTS.min(MAX_CAP[c])
}

/// A floor for shrinking: an idle class keeps this much room.
pub fn min_cap(c: usize) -> u32 {
    (MIN_SLOTS as u32 * 2).min(MAX_CAP[c])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_stacks_with_a_hard_capacity() {
        let mut store = [core::ptr::null_mut::<u8>(); 4];
        let mut b = Bin { slots: store.as_mut_ptr(), count: 0, cap: 2 };
        assert!(b.pop().is_null());
        assert!(b.push(1 as *mut u8));
        assert!(b.push(2 as *mut u8));
        assert!(!b.push(3 as *mut u8));
        assert_eq!(b.pop() as usize, 2);
        assert_eq!(b.pop() as usize, 1);
        assert!(b.pop().is_null());
        store[0] = core::ptr::null_mut();
    }

    #[test]
    fn capacities_respect_slot_and_byte_budgets() {
        assert_eq!(MAX_CAP[1], 2048);
        for c in 0..NUM_CLASSES {
            assert!(MAX_CAP[c] as usize <= MAX_SLOTS);
            assert!(start_cap(c) <= MAX_CAP[c] && min_cap(c) <= MAX_CAP[c]);
        }
        assert_eq!(SLOT_OFFSET[1], MAX_CAP[0] as usize);
    }
}
