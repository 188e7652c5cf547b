//! A SuperSlab: a 2 MiB region aligned to 2 MiB. Unit 0 (the first 64 KiB)
//! holds this header; units 1..32 are handed out as slabs. `p & !(2 MiB - 1)`
//! finds the header of any block, and a per-unit record maps a block to its
//! slab and class without touching the slab's own metadata.

use core::ptr;

use crate::diag;
use crate::os::pagemap::{self, REGION_SIZE};
use crate::size_class::{block_magic, is_colored, is_scaled_block_start, BIN_STRIDE, BLOCK_ALIGN, SMALLEST, UNIT_SHIFT};
use crate::slab::free_bits;
use crate::slab::slab::{Block, Slab};

pub const UNITS: usize = REGION_SIZE >> UNIT_SHIFT;
pub const MAGIC: u64 = 0x68616b6d_656d5353; // "hakmemSS"

/// What `free` needs to know about the unit a pointer falls in, laid out so
/// that the check "is this a block boundary?" and the step to the thread's
/// bin are a handful of instructions.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Unit {
    /// The class's boundary magic (`size_class::block_magic`); 0 for a unit
    /// that holds no slab, so every address in it fails the check.
    pub magic: u64,
    /// The slab's start address times `magic` (wrapping): `a * magic -
    /// start_magic` is `(a - start) * magic`, so the boundary test needs no
    /// subtraction of the start first.
    pub start_magic: u64,
    /// The low 32 bits of the slab's start address.
    pub slab_start: u32,
    /// The class's bin offset in a heap: class * BIN_STRIDE.
    pub bin_offset: u32,
    /// `magic` again: the test compares against this copy, so the compiler
    /// folds both loads into the multiply and the compare instead of
    /// loading `magic` into a register of its own (one instruction less on
    /// free's path). It also pads a record to 32 bytes, so that finding it
    /// is a shift and a mask.
    pub bound: u64,
}

impl Unit {
    const NONE: Unit = Unit { magic: 0, start_magic: 0, slab_start: 0, bin_offset: 0, bound: 0 };
}

const _: () = assert!(core::mem::size_of::<Unit>() == 32);

/// A SuperSlab's links on one of the registry's lists.
#[repr(C)]
pub struct Links {
    pub next: *mut SuperSlab,
    pub prev: *mut SuperSlab,
}

impl Links {
    pub const NONE: Links = Links { next: ptr::null_mut(), prev: ptr::null_mut() };
}

#[repr(C)]
pub struct SuperSlab {
    pub magic: u64,
    /// Bit i set: unit i is in use (bit 0, the header, always is).
    pub used_units: u32,
    /// Links on the registry's list of SuperSlabs with free units.
    pub room: Links,
    pub listed: bool,
    /// Links on the registry's list of every SuperSlab.
    pub all: Links,
    /// Free units whose pages may still be resident (set when a slab is
    /// released, cleared when the purge gives them back or a slab reuses them).
    pub dirty_units: u32,
    /// When the oldest of `dirty_units` became dirty (`os::clock::now_ms`).
    pub dirty_since: u64,
    /// When the SuperSlab last became empty.
    pub empty_since: u64,
    /// The slab covering each unit.
    pub units: [Unit; UNITS],
    /// Metadata of the slab starting at each unit.
    pub slabs: [Slab; UNITS],
    /// Each unit's share of free bits for slabs of at most NARROW_BLOCKS
    /// blocks per unit (every class from 64 bytes up): a slab over units
    /// `i..i+n` uses those of all its units (`Slab::bits`). Packed together,
    /// they make one or two pages of the header resident, not eight.
    narrow_bits: [[u64; NARROW_WORDS]; UNITS],
    /// The same for slabs of more blocks (the classes below 64 bytes),
    /// touched only by them.
    wide_bits: [[u64; WIDE_WORDS]; UNITS],
}

/// Blocks per unit the narrow bits hold: those of the 64-byte class.
const NARROW_BLOCKS: usize = (1 << UNIT_SHIFT) / 64;
const NARROW_WORDS: usize = free_bits::words_for(NARROW_BLOCKS);
/// Words of free bits per unit for the smallest class.
const WIDE_WORDS: usize = free_bits::words_for((1 << UNIT_SHIFT) / SMALLEST);

const _: () = assert!(core::mem::size_of::<SuperSlab>() <= 1 << UNIT_SHIFT);

/// The SuperSlab holding address `a` (only meaningful if the page map says
/// SUPERSLAB for it).
#[inline(always)]
pub fn of(a: usize) -> *mut SuperSlab {
    (a & !(REGION_SIZE - 1)) as *mut SuperSlab
}

/// The record of the unit holding `a`. The caller knows `a` lies in a
/// SuperSlab.
#[inline(always)]
fn unit_record(a: usize) -> &'static Unit {
    let u = (a >> UNIT_SHIFT) & (UNITS - 1);
    // SAFETY: the page map said a SuperSlab lives here, so its header is
    // mapped for as long as any of its blocks can be freed.
    unsafe { &*ptr::addr_of!((*of(a)).units).cast::<Unit>().add(u) }
}

/// If `a` is the start of a block of a live slab: its class's bin offset
/// (`Unit::bin_offset`). The caller knows `a` lies in a SuperSlab.
#[inline(always)]
pub fn block_bin_offset(a: usize) -> Option<usize> {
    let unit = unit_record(a);
    // A slab starts at or below every unit it covers, so a - start is in
    // 0..2 MiB; in a unit holding no slab the magic fails every address.
    let scaled = (a as u64).wrapping_mul(unit.magic).wrapping_sub(unit.start_magic);
    is_scaled_block_start(unit.bound, scaled).then_some(unit.bin_offset as usize)
}

/// Class of the block at `a` if `a` is the start of a block of a live slab.
#[inline(always)]
pub fn block_class(a: usize) -> Option<usize> {
    block_bin_offset(a).map(|off| off / BIN_STRIDE)
}

/// The slab holding the block at `a` (the caller has checked `block_class`).
#[inline(always)]
pub fn slab_of(a: usize) -> *mut Slab {
    let ss = of(a);
    let start = unit_record(a).slab_start.wrapping_sub(ss as u32) as usize;
    // SAFETY: as for unit_record; the slab starts within the SuperSlab, so
    // its unit index is below UNITS.
    unsafe { ptr::addr_of_mut!((*ss).slabs[start >> UNIT_SHIFT]) }
}

/// Checks `next`, the link of free block `from` on a list that spans slabs
/// (a heap's inbox): null or the start of a block of some live slab;
/// anything else is reported.
pub fn check_link(from: *mut Block, next: *mut Block) -> *mut Block {
    let a = next as usize;
    if !next.is_null() && (pagemap::kind(a) != pagemap::SUPERSLAB || block_bin_offset(a).is_none()) {
        diag::corrupted_free_list(from as usize);
    }
    next
}

/// Where a slab's first block starts past the slab's first unit: a whole
/// number of cache lines (BLOCK_ALIGN) that differs from slab to slab.
/// Blocks of a class whose size is several lines with a large power-of-two
/// factor (256, 512, 1024 bytes) sit at the same few offsets in every page,
/// so their first lines fall in a few sets of each cache and evict each
/// other; shifted slabs cover the other sets (ARCHITECTURE.md, "Slab
/// colors"). The shift uses the slack past the last whole block, and may
/// cost one block of a slab of 64 or more, never more. It stays below the
/// block size, so no address in front of the first block is a boundary.
fn color(base: usize, span: usize, size: usize) -> usize {
    let blocks = span / size;
    let mut room = span - blocks * size;
    if blocks >= 64 {
        room += size;
    }
    let colors = (room / BLOCK_ALIGN + 1).min(size / BLOCK_ALIGN).min(PAGE_LINES);
    if colors <= 1 {
        return 0;
    }
    // Neighbouring units and SuperSlabs get colors far apart.
    let unit = (base >> UNIT_SHIFT) & (UNITS - 1);
    (unit * 5 + base / REGION_SIZE * 3) % colors * BLOCK_ALIGN
}

/// Colors beyond a page's worth of lines would repeat the same sets.
const PAGE_LINES: usize = crate::os::PAGE / BLOCK_ALIGN;

impl SuperSlab {
    /// Initialises a freshly mapped (zeroed) region's header.
    pub fn init(&mut self) {
        self.magic = MAGIC;
        self.used_units = 1;
        self.room = Links::NONE;
        self.listed = false;
        self.all = Links::NONE;
        self.dirty_units = 0;
        self.dirty_since = 0;
        self.empty_since = 0;
        self.units = [Unit::NONE; UNITS];
    }

    /// First of `n` consecutive free units, if any.
    pub fn find_free_units(&self, n: usize) -> Option<usize> {
        let free = !self.used_units;
        let want = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
        (1..=UNITS - n).find(|&i| (free >> i) & want == want)
    }

    /// Claims units `first..first+n` for a slab of `class`; returns the slab.
    pub fn claim(&mut self, first: usize, n: usize, class: usize, size: usize) -> *mut Slab {
        let base = self as *mut SuperSlab as usize + (first << UNIT_SHIFT);
        let start = if is_colored(class) { base + color(base, n << UNIT_SHIFT, size) } else { base };
        let magic = block_magic(class);
        let record = Unit {
            magic,
            start_magic: (start as u64).wrapping_mul(magic),
            slab_start: start as u32,
            bin_offset: (class * BIN_STRIDE) as u32,
            bound: magic,
        };
        for u in first..first + n {
            self.used_units |= 1 << u;
            self.dirty_units &= !(1 << u);
            self.units[u] = record;
        }
        let blocks = (base + (n << UNIT_SHIFT) - start) / size;
        let bits = if blocks <= NARROW_BLOCKS * n {
            self.narrow_bits[first..].as_mut_ptr().cast::<u64>()
        } else {
            self.wide_bits[first..].as_mut_ptr().cast::<u64>()
        };
        let slab = &mut self.slabs[first];
        slab.init(start as *mut u8, class, size, n, blocks, bits);
        slab
    }

    /// Gives a slab's units back; its blocks stop being valid at once.
    pub fn release(&mut self, first: usize, n: usize) {
        for u in first..first + n {
            self.used_units &= !(1 << u);
            self.units[u] = Unit::NONE;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.used_units == 1
    }

    pub fn is_full(&self) -> bool {
        self.used_units == u32::MAX
    }

    /// Index of a slab within this SuperSlab.
    pub fn unit_of(&self, slab: *const Slab) -> usize {
        (slab as usize - ptr::addr_of!(self.slabs) as usize) / core::mem::size_of::<Slab>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed() -> Box<SuperSlab> {
        // SAFETY: all-zero is a valid SuperSlab before init.
        let mut ss: Box<SuperSlab> = unsafe { Box::new(core::mem::zeroed()) };
        ss.init();
        ss
    }

    #[test]
    fn units_are_claimed_contiguously_and_given_back() {
        let mut ss = boxed();
        assert_eq!(ss.find_free_units(1), Some(1));
        ss.claim(1, 1, 0, 8);
        assert_eq!(ss.find_free_units(4), Some(2));
        ss.claim(2, 4, 30, 10240);
        let base = &*ss as *const SuperSlab as usize;
        let start = ss.slabs[2].start as usize;
        assert!(start - (base + (2 << UNIT_SHIFT)) < 4096);
        assert_eq!(ss.units[5].slab_start, start as u32);
        assert_eq!(ss.units[5].bin_offset as usize, 30 * BIN_STRIDE);
        assert_eq!(ss.find_free_units(26), Some(6));
        assert_eq!(ss.find_free_units(27), None);
        ss.release(2, 4);
        assert_eq!(ss.units[3].magic, 0);
        assert_eq!(ss.find_free_units(4), Some(2));
        ss.release(1, 1);
        assert!(ss.is_empty());
    }

    #[test]
    fn free_bits_of_classes_from_64_bytes_keep_to_few_header_pages() {
        use crate::os::{self, resident_pages};
        use crate::size_class::class_of;
        let p = os::map_aligned(REGION_SIZE, REGION_SIZE);
        assert!(!p.is_null());
        // SAFETY: a fresh mapping of ours; small pages, so that residency
        // is counted page by page.
        unsafe { libc::madvise(p.cast(), REGION_SIZE, libc::MADV_NOHUGEPAGE) };
        // SAFETY: a zeroed mapping of REGION_SIZE bytes holds a SuperSlab.
        let ss = unsafe { &mut *(p as *mut SuperSlab) };
        ss.init();
        let header_pages = || resident_pages(p, 1 << UNIT_SHIFT);
        let (c64, c8) = (class_of(64), class_of(8));
        for u in 1..UNITS - 1 {
            ss.claim(u, 1, c64, 64);
        }
        let with_narrow = header_pages();
        assert!(with_narrow <= 4, "{with_narrow} header pages for 30 slabs of 64 B");
        // The smallest class's slab has its own wide bits (block 4095 is
        // past what narrow ones hold), and they work.
        ss.claim(UNITS - 1, 1, c8, 8);
        assert!(header_pages() > with_narrow);
        for i in [0, 4095] {
            assert!(ss.slabs[UNITS - 1].bits.set(i));
        }
        assert_eq!(ss.slabs[UNITS - 2].bits.count(), 0, "a 64-byte slab's bits stay clear");
        let mut got = vec![];
        assert_eq!(ss.slabs[UNITS - 1].bits.take(4, |i| got.push(i)), 2);
        assert_eq!(got, [0, 4095]);
        os::unmap(p, REGION_SIZE);
    }

    #[test]
    fn colors_keep_alignment_and_blocks_and_never_make_a_boundary() {
        use crate::size_class::{CLASS_SIZE, NUM_CLASSES};
        let span = 1 << UNIT_SHIFT;
        let mut seen = [false; PAGE_LINES];
        for c in 0..NUM_CLASSES {
            let size = CLASS_SIZE[c] as usize;
            let span = span * crate::size_class::units_for(c);
            let magic = block_magic(c);
            for unit in 1..UNITS {
                for ss in 0..4 {
                    let base = ss * REGION_SIZE + (unit << UNIT_SHIFT);
                    let color = color(base, span, size);
                    assert_eq!(color % BLOCK_ALIGN, 0);
                    assert!(color == 0 || color < size, "class {c}");
                    let blocks = (span - color) / size;
                    assert!(blocks == span / size || (blocks + 1 == span / size && blocks >= 63), "class {c}");
                    // No address between the unit and the first block passes
                    // free's boundary test.
                    for d in 1..=color as u64 {
                        assert!(!is_scaled_block_start(magic, 0u64.wrapping_sub(d).wrapping_mul(magic)));
                    }
                    if size == 1024 {
                        seen[color / BLOCK_ALIGN] = true;
                    }
                }
            }
        }
        // 1 KiB blocks sit at 16 different line offsets across slabs.
        assert_eq!(seen.iter().filter(|&&s| s).count(), 16);
    }

    #[test]
    fn slab_index_round_trips() {
        let mut ss = boxed();
        let s = ss.claim(7, 1, 2, 32);
        assert_eq!(ss.unit_of(s), 7);
    }
}
