//! BigCache's table: free big ranges sorted by size, in pages of its own
//! (mmap, never the heap). It doubles when full and halves when three
//! quarters empty, so it has no capacity to run out of, and `release` gives
//! its page back once the cache is empty.

use core::mem::size_of;
use core::ptr;

use crate::os::{self, PAGE};

/// A free range: page-aligned, inside one kernel mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub addr: usize,
    pub size: usize,
    /// When it was freed (`os::clock::now_ms`).
    pub freed_at: u64,
}

pub struct SizeTable {
    ranges: *mut Range,
    len: usize,
    cap: usize,
}

/// Entries in the first page; the table never shrinks below it.
const MIN_CAP: usize = PAGE / size_of::<Range>();

impl SizeTable {
    pub const fn new() -> Self {
        SizeTable { ranges: ptr::null_mut(), len: 0, cap: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Range {
        debug_assert!(i < self.len);
        // SAFETY: i < len <= cap, within the table's mapping.
        unsafe { *self.ranges.add(i) }
    }

    /// Index of the first range of at least `size` bytes (`len` if none).
    pub fn first_fit(&self, size: usize) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.get(mid).size < size {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Index of the range freed longest ago (the table must not be empty).
    pub fn oldest(&self) -> usize {
        (0..self.len).min_by_key(|&i| self.get(i).freed_at).unwrap_or(0)
    }

    /// Adds a range in size order; false if the table is full and no memory
    /// is left to grow it.
    pub fn insert(&mut self, r: Range) -> bool {
        if self.len == self.cap && !self.resize((self.cap * 2).max(MIN_CAP)) {
            return false;
        }
        let i = self.first_fit(r.size);
        // SAFETY: len < cap: shifting [i, len) up by one stays in the mapping.
        unsafe {
            ptr::copy(self.ranges.add(i), self.ranges.add(i + 1), self.len - i);
            *self.ranges.add(i) = r;
        }
        self.len += 1;
        true
    }

    /// Removes and returns range `i`.
    pub fn remove(&mut self, i: usize) -> Range {
        let r = self.get(i);
        // SAFETY: i < len: shifting (i, len) down by one stays in the mapping.
        unsafe { ptr::copy(self.ranges.add(i + 1), self.ranges.add(i), self.len - i - 1) };
        self.len -= 1;
        if self.len <= self.cap / 4 && self.cap > MIN_CAP {
            // A failed shrink only keeps the bigger table.
            self.resize(self.cap / 2);
        }
        r
    }

    /// Gives the table's memory back if it holds nothing.
    pub fn release(&mut self) {
        if self.len == 0 && self.cap > 0 {
            os::unmap(self.ranges as *mut u8, Self::bytes(self.cap));
            *self = SizeTable::new();
        }
    }

    fn bytes(cap: usize) -> usize {
        os::align_up(cap * size_of::<Range>(), PAGE)
    }

    fn resize(&mut self, cap: usize) -> bool {
        let fresh = os::map(Self::bytes(cap)) as *mut Range;
        if fresh.is_null() {
            return false;
        }
        if self.cap > 0 {
            // SAFETY: both mappings hold at least len ranges; distinct.
            unsafe { ptr::copy_nonoverlapping(self.ranges, fresh, self.len) };
            os::unmap(self.ranges as *mut u8, Self::bytes(self.cap));
        }
        self.ranges = fresh;
        self.cap = cap;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(size: usize, freed_at: u64) -> Range {
        Range { addr: size * 3, size, freed_at }
    }

    #[test]
    fn stays_sorted_and_finds_the_smallest_fit() {
        let mut t = SizeTable::new();
        for (i, s) in [5usize, 1, 9, 3, 7, 3].into_iter().enumerate() {
            assert!(t.insert(range(s << 20, i as u64)));
        }
        let sizes: Vec<usize> = (0..t.len()).map(|i| t.get(i).size >> 20).collect();
        assert_eq!(sizes, [1, 3, 3, 5, 7, 9]);
        assert_eq!(t.get(t.first_fit(4 << 20)).size, 5 << 20);
        assert_eq!(t.get(t.first_fit(3 << 20)).size, 3 << 20);
        assert_eq!(t.first_fit(10 << 20), t.len());
        assert_eq!(t.get(t.oldest()).size, 5 << 20);
        assert_eq!(t.remove(t.first_fit(6 << 20)).size, 7 << 20);
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn grows_past_a_page_and_shrinks_back() {
        let mut t = SizeTable::new();
        let n = MIN_CAP * 5;
        for i in 0..n {
            assert!(t.insert(range((n - i) * PAGE, i as u64)));
        }
        assert!(t.cap >= n);
        for i in 0..n {
            assert_eq!(t.get(i).size, (i + 1) * PAGE);
        }
        while t.len() > 1 {
            t.remove(t.len() / 2);
        }
        assert_eq!(t.cap, MIN_CAP);
        t.release();
        assert_eq!(t.cap, MIN_CAP, "a table still in use keeps its page");
        t.remove(0);
        t.release();
        assert_eq!(t.cap, 0);
        assert!(t.insert(range(PAGE, 0)));
    }
}
