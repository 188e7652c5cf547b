//! A slab's own free blocks as one bit per block, kept in its SuperSlab's
//! header. A thread giving blocks back sets their bits and a refill takes
//! the lowest ones, so neither touches the blocks themselves: a free list
//! threaded through the blocks wrote a link into each block given back, long
//! after the program last touched it, and a refill then followed those links
//! one cache miss after another (docs/ARCHITECTURE.md, "Free bits").

/// Bits for `limit` words at `words`, `count` of them set, none below word
/// `scan`.
#[repr(C)]
pub struct FreeBits {
    words: *mut u64,
    count: u32,
    scan: u32,
    limit: u32,
}

/// Bits per word.
const WORD_BITS: usize = 64;

/// Words that hold `n` bits.
pub const fn words_for(n: usize) -> usize {
    n.div_ceil(WORD_BITS)
}

impl FreeBits {
    pub const NONE: FreeBits = FreeBits { words: core::ptr::null_mut(), count: 0, scan: 0, limit: 0 };

    /// Bits for `n` blocks over `words` (at least `words_for(n)` of them),
    /// cleared: no block is free yet.
    pub fn new(words: *mut u64, n: usize) -> FreeBits {
        let limit = words_for(n);
        // SAFETY: the caller gives `limit` words that only this slab uses.
        unsafe { core::ptr::write_bytes(words, 0, limit) };
        FreeBits { words, count: 0, scan: 0, limit: limit as u32 }
    }

    /// How many blocks are free.
    #[inline]
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Marks block `i` free; false if it already was (a block given back
    /// twice).
    #[inline]
    pub fn set(&mut self, i: usize) -> bool {
        let (w, bit) = (i / WORD_BITS, 1u64 << (i % WORD_BITS));
        debug_assert!(w < self.limit as usize);
        // SAFETY: i is a block index of the slab, so w is below limit.
        let word = unsafe { &mut *self.words.add(w) };
        if *word & bit != 0 {
            return false;
        }
        *word |= bit;
        self.count += 1;
        self.scan = self.scan.min(w as u32);
        true
    }

    /// Takes up to `want` free blocks, lowest first, handing each index to
    /// `each`; returns how many.
    #[inline]
    pub fn take(&mut self, want: usize, mut each: impl FnMut(usize)) -> usize {
        let want = want.min(self.count as usize);
        let (mut got, mut w) = (0, self.scan as usize);
        while got < want && w < self.limit as usize {
            // SAFETY: w is below limit, within the slab's words.
            let slot = unsafe { &mut *self.words.add(w) };
            let mut word = *slot;
            while word != 0 && got < want {
                each(w * WORD_BITS + word.trailing_zeros() as usize);
                word &= word - 1;
                got += 1;
            }
            *slot = word;
            if word == 0 {
                w += 1;
            }
        }
        self.count -= got as u32;
        self.scan = w as u32;
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_lowest_free_blocks_and_refuses_a_second_set() {
        let mut words = vec![u64::MAX; 4];
        let mut b = FreeBits::new(words.as_mut_ptr(), 200);
        assert_eq!(b.count(), 0);
        assert_eq!(b.take(5, |_| panic!("no block is free")), 0);
        for i in [199, 3, 64, 70, 5] {
            assert!(b.set(i));
        }
        assert!(!b.set(64));
        assert_eq!(b.count(), 5);
        let mut got = vec![];
        assert_eq!(b.take(3, |i| got.push(i)), 3);
        assert_eq!(got, [3, 5, 64]);
        assert!(b.set(4));
        got.clear();
        assert_eq!(b.take(10, |i| got.push(i)), 3);
        assert_eq!(got, [4, 70, 199]);
        assert_eq!(b.count(), 0);
        assert!(b.set(70));
    }
}
