//! Size classes: 8, then 16-byte steps to 128, then four classes per doubling
//! up to 4 KiB, eight from 4 to 8 KiB and four again up to 32 KiB. Internal
//! waste stays at or below 25% for every size above 48, and 12.5% between
//! 4 and 8 KiB (a page plus a header, as sqlite's page cache asks for,
//! wasted 15-20% in a 5 KiB block); above 8 KiB each extra class is one
//! more partial slab of up to 256 KiB per thread, which cost more than the
//! finer fit saved (docs/ARCHITECTURE.md, Tiers). Below 48 the 16-byte
//! steps win: every class above 8 is a multiple of 16, so malloc's result
//! is 16-byte aligned whenever the block could hold a 16-byte-aligned type
//! (compilers assume it of malloc).
//!
//! After those come the aligned classes, powers of two from 128 B to 32 KiB,
//! for requests aligned to more than a cache line: slabs of the ordinary
//! classes start at a per-slab offset (see `superslab`), so their blocks are
//! only 64-byte aligned; slabs of the aligned classes start on their unit.
//!
//! Each class also has its slab span (64 KiB units) and a divisibility magic
//! that lets `free` check "is this a block boundary?" with one multiply.

/// Classes that malloc's sizes map to.
const SIZE_CLASSES: usize = 45;
/// The class of 4 KiB, the last with four classes per doubling below it.
const PAGE_CLASS: usize = 28;
/// The first aligned class (128 bytes); class `ALIGNED_FIRST + k` holds
/// `128 << k` bytes.
const ALIGNED_FIRST: usize = SIZE_CLASSES;
const ALIGNED_MIN: usize = 128;
pub const NUM_CLASSES: usize = SIZE_CLASSES + 9;
/// Blocks of ordinary classes are aligned to this much at least.
pub const BLOCK_ALIGN: usize = 64;
/// The largest size served from slabs; bigger blocks get their own mapping.
pub const MAX_SMALL: usize = 32 * 1024;
pub const UNIT_SHIFT: usize = 16;
pub const UNIT_SIZE: usize = 1 << UNIT_SHIFT;
/// A slab holds at least this many blocks (mid classes span several units).
const MIN_BLOCKS_PER_SLAB: usize = 8;

const fn class_size_of(c: usize) -> usize {
    if c >= ALIGNED_FIRST {
        ALIGNED_MIN << (c - ALIGNED_FIRST)
    } else if c == 0 {
        8
    } else if c <= 8 {
        16 * c
    } else if c <= PAGE_CLASS {
        quarter_step_size(128, c - 9)
    } else if c <= PAGE_CLASS + 8 {
        4096 + 512 * (c - PAGE_CLASS) // eight per doubling to 8 KiB
    } else {
        quarter_step_size(8192, c - PAGE_CLASS - 9)
    }
}

/// Size of the `k`-th (from 0) of the classes four per doubling above
/// `from` bytes.
const fn quarter_step_size(from: usize, k: usize) -> usize {
    let base = from << (k / 4);
    base + (base / 4) * (k % 4 + 1)
}

/// `quarter_step_size` the other way: the class of a size whose `s = size -
/// 1` has its top bit at `w`, among the classes four per doubling that
/// start with class `first` for top bit `w0`.
#[inline(always)]
const fn quarter_step_class(first: usize, w0: usize, s: usize, w: usize) -> usize {
    first + (w - w0) * 4 + ((s >> (w - 2)) & 3)
}

/// A `[u32; NUM_CLASSES]` of `f(class)`, built at compile time (`f` is a
/// `const fn` of the class index).
macro_rules! per_class {
    ($f:expr) => {{
        let mut t = [0u32; $crate::size_class::NUM_CLASSES];
        let mut c = 0;
        while c < $crate::size_class::NUM_CLASSES {
            t[c] = $f(c) as u32;
            c += 1;
        }
        t
    }};
}
pub(crate) use per_class;

/// Block size of each class.
pub static CLASS_SIZE: [u32; NUM_CLASSES] = per_class!(class_size_of);

/// The smallest class's size: a unit holds at most UNIT_SIZE / SMALLEST blocks.
pub const SMALLEST: usize = class_size_of(0);

/// Sizes up to this take the table lookup; above it, a short formula.
pub const SMALL_LIMIT: usize = 1024;

/// A class's bin offset in a heap counted in 8-byte words (bins are 32
/// bytes): the malloc fast path reaches the bin with one scaled index.
pub const BIN_WORDS_PER_CLASS: usize = 4;
/// Size of a thread cache bin: class `c`'s bin is at byte `c * BIN_STRIDE`
/// of a heap. Here, below both the thread cache and the slabs, because a
/// slab unit's record holds its class's bin offset for free's fast path.
pub const BIN_STRIDE: usize = BIN_WORDS_PER_CLASS * 8;

/// Entries of SMALL_BIN_WORD.
pub const SMALL_LUT_LEN: usize = SMALL_LIMIT + 1;

/// For sizes 0..=SMALL_LIMIT, indexed by the size itself (no scaling on
/// malloc's path): the smallest class's bin offset in words (class *
/// BIN_WORDS_PER_CLASS). A static, not a copy in each heap: its load then
/// does not wait for the heap pointer's, one load less in the chain that
/// ends in malloc's result.
pub static SMALL_BIN_WORD: [u8; SMALL_LUT_LEN] = {
    let mut t = [0u8; SMALL_LUT_LEN];
    let mut size = 0;
    while size < t.len() {
        let mut c = 0;
        while class_size_of(c) < size {
            c += 1;
        }
        t[size] = (c * BIN_WORDS_PER_CLASS) as u8;
        size += 1;
    }
    t
};

/// The class serving `size` (which must be at most MAX_SMALL).
#[inline(always)]
pub fn class_of(size: usize) -> usize {
    if size <= SMALL_LIMIT {
        SMALL_BIN_WORD[size] as usize / BIN_WORDS_PER_CLASS
    } else {
        let s = size - 1;
        let w = (usize::BITS - 1 - s.leading_zeros()) as usize; // >= 10
        if w < 12 {
            quarter_step_class(9, 7, s, w) // from 128
        } else if w == 12 {
            PAGE_CLASS + 1 + ((s >> 9) & 7)
        } else {
            quarter_step_class(PAGE_CLASS + 9, 13, s, w) // from 8 KiB
        }
    }
}

/// Whether slabs of class `c` start at a per-slab offset (every class but
/// the aligned ones).
#[inline]
pub fn is_colored(c: usize) -> bool {
    c < ALIGNED_FIRST
}

/// The class for `size` bytes aligned to `align` (a power of two above 8),
/// if a slab class can serve it.
pub fn aligned_class_of(align: usize, size: usize) -> Option<usize> {
    let need = size.max(align);
    if need > MAX_SMALL {
        return None;
    }
    if align <= BLOCK_ALIGN {
        // The smallest class that fits and that the alignment divides.
        return (class_of(need)..SIZE_CLASSES).find(|&c| (CLASS_SIZE[c] as usize).is_multiple_of(align));
    }
    let k = need.next_power_of_two().trailing_zeros() - ALIGNED_MIN.trailing_zeros();
    Some(ALIGNED_FIRST + k as usize)
}

/// How many 64 KiB units a slab of class `c` spans.
pub const fn units_for(c: usize) -> usize {
    let need = class_size_of(c) * MIN_BLOCKS_PER_SLAB;
    if need <= UNIT_SIZE {
        1
    } else {
        need.div_ceil(UNIT_SIZE)
    }
}

const fn build_magic() -> [u64; 256] {
    // Entries past NUM_CLASSES stay 0: the boundary test then always fails,
    // which is what a unit that holds no slab must answer.
    let mut t = [0u64; 256];
    let mut c = 0;
    while c < NUM_CLASSES {
        t[c] = u64::MAX / class_size_of(c) as u64 + 1;
        c += 1;
    }
    t
}

/// ceil(2^64 / size) per class: for offsets below 2^32, `off * magic < magic`
/// (wrapping) exactly when `off` is a multiple of the size.
const DIV_MAGIC: [u64; 256] = build_magic();

/// The boundary magic of class `c`; 0 (never a boundary) past the classes.
pub const fn block_magic(c: usize) -> u64 {
    DIV_MAGIC[c]
}

/// Whether `offset` (from a slab's start, below 2^32) is a multiple of the
/// size whose magic is `magic`. A magic of 0 answers no for every offset.
#[inline(always)]
pub fn is_block_start(magic: u64, offset: u32) -> bool {
    is_scaled_block_start(magic, (offset as u64).wrapping_mul(magic))
}

/// `is_block_start` given `offset * magic` (wrapping), which a caller may
/// have computed as `address * magic - start * magic`.
#[inline(always)]
pub fn is_scaled_block_start(magic: u64, scaled: u64) -> bool {
    scaled < magic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_grow_and_end_at_max_small() {
        for c in (1..SIZE_CLASSES).chain(ALIGNED_FIRST + 1..NUM_CLASSES) {
            assert!(CLASS_SIZE[c] > CLASS_SIZE[c - 1]);
        }
        assert_eq!(CLASS_SIZE[SIZE_CLASSES - 1] as usize, MAX_SMALL);
        assert_eq!(CLASS_SIZE[NUM_CLASSES - 1] as usize, MAX_SMALL);
    }

    #[test]
    fn aligned_requests_get_a_class_their_alignment_divides() {
        for shift in 4..=15 {
            let align = 1usize << shift;
            for size in [1, align - 1, align, align + 16, 3 * align, MAX_SMALL] {
                let Some(c) = aligned_class_of(align, size) else {
                    assert!(size.max(align) > MAX_SMALL);
                    continue;
                };
                let got = CLASS_SIZE[c] as usize;
                assert!(got >= size && got.is_multiple_of(align), "align {align} size {size}");
                assert_eq!(is_colored(c), align <= BLOCK_ALIGN, "align {align} size {size}");
            }
        }
        assert_eq!(aligned_class_of(64, MAX_SMALL + 1), None);
    }

    #[test]
    fn every_size_gets_the_smallest_class_that_fits() {
        for size in 0..=MAX_SMALL {
            let c = class_of(size);
            assert!(c < NUM_CLASSES, "size {size}");
            assert!(CLASS_SIZE[c] as usize >= size, "size {size} class {c}");
            if c > 0 {
                assert!((CLASS_SIZE[c - 1] as usize) < size, "size {size} not smallest");
            }
        }
    }

    #[test]
    fn waste_is_at_most_a_quarter_above_48_bytes_and_an_eighth_from_4_to_8_kib() {
        for size in 49..=MAX_SMALL {
            let got = CLASS_SIZE[class_of(size)] as usize;
            assert!((got - size) * 4 <= got, "size {size} -> {got}");
            assert!(!(4096..=8192).contains(&size) || (got - size) * 8 <= got, "size {size} -> {got}");
        }
        assert_eq!(CLASS_SIZE[PAGE_CLASS], 4096);
    }

    #[test]
    fn classes_above_8_are_16_byte_multiples() {
        for c in 1..NUM_CLASSES {
            assert_eq!(CLASS_SIZE[c] % 16, 0);
        }
    }

    #[test]
    fn block_start_test_matches_division() {
        for c in 0..NUM_CLASSES {
            let size = CLASS_SIZE[c] as usize;
            let span = units_for(c) * UNIT_SIZE;
            for off in (0..span).step_by(7).chain([0, size, size - 1, size + 1]) {
                let got = is_block_start(block_magic(c), off as u32);
                assert_eq!(got, off % size == 0, "class {c} off {off}");
            }
        }
        assert!(!is_block_start(block_magic(255), 0));
        assert!(!is_block_start(block_magic(NUM_CLASSES), 64));
    }

    #[test]
    fn slabs_hold_at_least_eight_blocks_in_at_most_eight_units() {
        for c in 0..NUM_CLASSES {
            let units = units_for(c);
            assert!(units <= 8);
            assert!(units * UNIT_SIZE / CLASS_SIZE[c] as usize >= 8);
        }
    }
}
