//! The thread cache: per size class, an array stack of free blocks. malloc
//! pops, free pushes; both are a test and a few loads and stores when they
//! hit.
//! Capacity adapts per class: a class that keeps missing or overflowing
//! doubles its room (up to a byte budget), one that stays idle gives it back.

use crate::size_class::{per_class, BIN_STRIDE, CLASS_SIZE, NUM_CLASSES, SMALL_LIMIT};

/// A stack of free blocks whose newest block sits in the bin itself, so
/// that malloc's result is one load from the bin, not a load of the slot
/// address and then of the slot.
///
/// With `n` blocks e1..en cached: `head` is en (null when n = 0), slots
/// `base[1]..base[n-1]` hold e1..e(n-1), and `top` is `base + (n - 1)`, one below
/// `base` when the bin is empty. `base[0]` is always null, so the pop that
/// empties the bin loads null into `head` with no test, and so is the slot
/// below it, so that `*top` (the second newest block, or null) can always
/// be read. `limit` is `base + cap - 1`: push finds the bin full
/// when `top` reaches it. All four null (the sentinel's bins, and the fast
/// bins of a heap in checked mode) make every pop and every push miss.
#[repr(C)]
pub struct Bin {
    head: *mut u8,
    top: *mut *mut u8,
    base: *mut *mut u8,
    limit: *mut *mut u8,
}

const _: () = assert!(core::mem::size_of::<Bin>() == BIN_STRIDE);

impl Bin {
    pub const EMPTY: Bin = Bin {
        head: core::ptr::null_mut(),
        top: core::ptr::null_mut(),
        base: core::ptr::null_mut(),
        limit: core::ptr::null_mut(),
    };

    /// An empty bin over `slots` (`cap + 1` entries, the first null: slot
    /// areas are fresh zeroed mappings, and nothing writes to untouched
    /// pages here, which would make a new heap's slot area resident) with
    /// room for `cap` blocks (at least 1).
    pub fn new(slots: *mut *mut u8, cap: usize) -> Bin {
        // SAFETY: the caller's slot array has cap + 1 entries.
        debug_assert!(cap >= 1 && unsafe { (*slots).is_null() });
        let mut b = Bin { head: core::ptr::null_mut(), top: slots.wrapping_sub(1), base: slots, limit: slots };
        b.set_cap(cap);
        b
    }

    /// The most recently pushed block, if any.
    #[inline(always)]
    pub fn pop(&mut self) -> Option<*mut u8> {
        let p = self.head;
        if p.is_null() {
            return None;
        }
        // SAFETY: a block in head means n >= 1, so top is within
        // base[0..n-1] (base[0] being the null that ends the stack).
        unsafe { self.head = *self.top };
        self.top = self.top.wrapping_sub(1);
        Some(p)
    }

    /// The most recently pushed block (null when empty): free compares with
    /// it, which catches a block freed twice in a row for one load it makes
    /// anyway, without touching the block.
    #[inline(always)]
    pub fn newest(&self) -> *mut u8 {
        self.head
    }

    /// The block pushed before the newest (null if none), for free's second
    /// compare: one more load of a slot push is about to write next to.
    /// Only for a bin with room (one with slots).
    #[inline(always)]
    pub fn second_newest(&self) -> *mut u8 {
        // SAFETY: top is within the bin's slots, or on the null slot kept
        // below base when the bin is empty.
        unsafe { *self.top }
    }

    /// Whether `push` would keep a block.
    #[inline(always)]
    pub fn has_room(&self) -> bool {
        self.top < self.limit
    }

    /// Keeps `p`; false (and nothing kept) when the bin is full.
    #[inline(always)]
    pub fn push(&mut self, p: *mut u8) -> bool {
        if self.top >= self.limit {
            return false;
        }
        self.top = self.top.wrapping_add(1);
        // SAFETY: top was below limit = base + cap - 1, so the new top is at
        // most base + cap - 1, within the cap + 1 slots; when the bin was
        // empty it is base[0], which gets head's null back.
        unsafe { *self.top = self.head };
        self.head = p;
        true
    }

    /// `push`, but `p` goes below the newest block, so that the next pop
    /// hands out that one and `p` waits (hardened mode's delayed reuse).
    #[inline(always)]
    pub fn push_below_newest(&mut self, p: *mut u8) -> bool {
        if self.head.is_null() {
            return self.push(p);
        }
        if self.top >= self.limit {
            return false;
        }
        self.top = self.top.wrapping_add(1);
        // SAFETY: as in push: the new top is within the cap + 1 slots, and
        // above base[0] since the bin held a block.
        unsafe { *self.top = p };
        true
    }

    pub fn count(&self) -> usize {
        if self.head.is_null() {
            0
        } else {
            (self.top as usize - self.base as usize) / SLOT + 1
        }
    }

    pub fn cap(&self) -> usize {
        if self.base.is_null() {
            0
        } else {
            (self.limit as usize - self.base as usize) / SLOT + 1
        }
    }

    /// Changes the capacity (`count() <= cap <=` the array's length - 1).
    pub fn set_cap(&mut self, cap: usize) {
        debug_assert!(cap >= 1 && self.count() <= cap);
        self.limit = self.base.wrapping_add(cap - 1);
    }

    /// Under valgrind: nulls the slots above the stack, so that no stale
    /// copy of a block handed out lingers there for memcheck's leak check
    /// to count as a reference to it. Slots above the stack are kept all
    /// null: a pop or a refill leaves copies right above it, a flush a run
    /// of them, so the scrub stops at the first null.
    pub fn scrub_above_top(&mut self) {
        if self.base.is_null() {
            return;
        }
        // base[0], the null that ends the stack, is never a copy.
        let mut s = self.top.wrapping_add(1).max(self.base.wrapping_add(1));
        let end = self.limit.wrapping_add(1);
        // SAFETY: base..=base + cap are the bin's slots (limit is base +
        // cap - 1), and nothing else uses them while their heap's owner
        // runs this.
        unsafe {
            while s <= end && !(*s).is_null() {
                *s = core::ptr::null_mut();
                s = s.add(1);
            }
        }
    }

    /// Lays the cached blocks out in a plain array for the slow paths:
    /// returns it and how many blocks it holds, oldest first. The bin reads
    /// as empty until `settle`; nothing may push to it in between.
    pub fn spill(&mut self) -> (*mut *mut u8, usize) {
        let n = self.count();
        if n > 0 {
            // SAFETY: n <= cap, so base[n] is within the cap + 1 slots.
            unsafe { *self.base.add(n) = self.head };
            self.head = core::ptr::null_mut();
        }
        self.top = self.base.wrapping_sub(1);
        (self.base.wrapping_add(1), n)
    }

    /// Takes back the first `n` blocks of the array `spill` returned.
    pub fn settle(&mut self, n: usize) {
        debug_assert!(n <= self.cap());
        if n == 0 {
            self.head = core::ptr::null_mut();
            self.top = self.base.wrapping_sub(1);
        } else {
            // SAFETY: base[n] is within the array and holds block n.
            self.head = unsafe { *self.base.add(n) };
            self.top = self.base.wrapping_add(n - 1);
        }
    }
}

const SLOT: usize = core::mem::size_of::<*mut u8>();

/// Bytes of blocks one class may keep cached at most: classes of the fast
/// path's sizes (up to SMALL_LIMIT), and the larger ones, whose blocks
/// cost a program more to use than a refill costs, and whose bytes left
/// cached in each thread kept slabs resident under hand-offs between
/// threads (docs/ARCHITECTURE.md, "Refills warm the fullest slab").
const BIN_BYTES: usize = 256 * 1024;
const LARGE_BIN_BYTES: usize = 64 * 1024;
const MAX_SLOTS: usize = 2048;
const MIN_SLOTS: usize = 8;
const START_SLOTS: usize = 64;

const fn max_cap_of(c: usize) -> usize {
    let size = CLASS_SIZE[c] as usize;
    let n = if size <= SMALL_LIMIT { BIN_BYTES } else { LARGE_BIN_BYTES } / size;
    if n > MAX_SLOTS {
        MAX_SLOTS
    } else if n < MIN_SLOTS {
        MIN_SLOTS
    } else {
        n
    }
}

/// The most slots each class's bin can grow to.
pub static MAX_CAP: [u32; NUM_CLASSES] = per_class!(max_cap_of);

/// Slot offsets of each class within a heap's slot area, and its total.
const fn build_offsets() -> ([usize; NUM_CLASSES], usize) {
    let mut t = [0usize; NUM_CLASSES];
    let mut at = 0;
    let mut c = 0;
    while c < NUM_CLASSES {
        t[c] = at + 1; // past the null read below an empty stack
        at += max_cap_of(c) + 2; // and the null that ends the stack
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
        let mut store = [core::ptr::null_mut::<u8>(); 5];
        let mut b = Bin::new(store.as_mut_ptr(), 2);
        assert_eq!(b.pop(), None);
        assert!(b.push(std::ptr::dangling_mut::<u8>()));
        assert!(b.push(2 as *mut u8));
        assert!(!b.push(3 as *mut u8));
        assert_eq!((b.count(), b.cap()), (2, 2));
        assert_eq!(b.pop(), Some(2 as *mut u8));
        assert_eq!(b.pop(), Some(std::ptr::dangling_mut::<u8>()));
        assert_eq!(b.pop(), None);
        assert_eq!(b.count(), 0);
    }

    #[test]
    fn spill_and_settle_round_trip_in_age_order() {
        let mut store = [core::ptr::null_mut::<u8>(); 5];
        let mut b = Bin::new(store.as_mut_ptr(), 2);
        b.set_cap(4);
        for i in 1..=3 {
            assert!(b.push(i as *mut u8));
        }
        let (slots, n) = b.spill();
        assert_eq!(n, 3);
        assert_eq!(b.pop(), None);
        // SAFETY: spill laid out n blocks from slots.
        let got: [usize; 3] = core::array::from_fn(|i| unsafe { *slots.add(i) } as usize);
        assert_eq!(got, [1, 2, 3]);
        // SAFETY: as above; the caller may rewrite the array before settling.
        unsafe { *slots.add(1) = 9 as *mut u8 };
        b.settle(2);
        assert_eq!(b.count(), 2);
        assert_eq!(b.pop(), Some(9 as *mut u8));
        assert_eq!(b.pop(), Some(std::ptr::dangling_mut::<u8>()));
        assert_eq!(b.pop(), None);
        let (_, n) = b.spill();
        assert_eq!(n, 0);
        b.settle(0);
        assert!(b.push(4 as *mut u8));
        assert_eq!(b.pop(), Some(4 as *mut u8));
    }

    #[test]
    fn the_second_newest_is_the_block_below_the_head() {
        // store[0] is the null slot below the bin.
        let mut store = [core::ptr::null_mut::<u8>(); 6];
        let mut b = Bin::new(store.as_mut_ptr().wrapping_add(1), 4);
        assert!(b.second_newest().is_null());
        assert!(b.push(16 as *mut u8));
        assert!(b.second_newest().is_null());
        assert!(b.push(32 as *mut u8));
        assert!(b.push(48 as *mut u8));
        assert_eq!((b.newest(), b.second_newest()), (48 as *mut u8, 32 as *mut u8));
        b.pop();
        b.pop();
        assert_eq!((b.newest(), b.second_newest()), (16 as *mut u8, core::ptr::null_mut()));
        b.pop();
        assert!(b.second_newest().is_null() && b.has_room());
    }

    #[test]
    fn a_block_pushed_below_the_newest_is_popped_second() {
        let mut store = [core::ptr::null_mut::<u8>(); 5];
        let mut b = Bin::new(store.as_mut_ptr(), 3);
        assert!(b.push_below_newest(16 as *mut u8));
        assert!(b.push_below_newest(32 as *mut u8));
        assert!(b.push_below_newest(48 as *mut u8));
        assert!(!b.push_below_newest(64 as *mut u8));
        let order: Vec<usize> = (0..3).map(|_| b.pop().unwrap() as usize).collect();
        assert_eq!(order, [16, 48, 32]);
        assert_eq!(b.pop(), None);
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
        let cap = |size| MAX_CAP[crate::size_class::class_of(size)] as usize;
        assert_eq!(cap(1024) * 1024, BIN_BYTES, "the fast path's classes keep the larger budget");
        assert_eq!(cap(2048) * 2048, LARGE_BIN_BYTES);
        assert_eq!(cap(16384), MIN_SLOTS, "the largest classes keep the floor");
        for c in 0..NUM_CLASSES {
            assert!(MAX_CAP[c] as usize <= MAX_SLOTS);
            assert!(start_cap(c) <= MAX_CAP[c] as usize && min_cap(c) <= MAX_CAP[c] as usize);
        }
        assert_eq!((SLOT_OFFSET[0], SLOT_OFFSET[1]), (1, MAX_CAP[0] as usize + 3));
    }
}
