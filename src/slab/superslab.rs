//! A SuperSlab: a 2 MiB region aligned to 2 MiB. Unit 0 (the first 64 KiB)
//! holds this header; units 1..32 are handed out as slabs. `p & !(2 MiB - 1)`
//! finds the header of any block, and per-unit bytes map a block to its slab
//! and class without touching the slab's own metadata.

use crate::os::pagemap::REGION_SIZE;
use crate::slab::size_class::{is_block_start, UNIT_SHIFT};
use crate::slab::slab::Slab;
use core::ptr;

pub const SS_SIZE: usize = REGION_SIZE;
pub const UNITS: usize = SS_SIZE >> UNIT_SHIFT;
pub const MAGIC: u64 = 0x68616b6d_656d5353; // "hakmemSS"
/// `unit_class` of a unit that holds no slab.
pub const NO_CLASS: u8 = 255;

#[repr(C)]
pub struct SuperSlab {
    pub magic: u64,
    /// Bit i set: unit i is in use (bit 0, the header, always is).
    pub used_units: u32,
    /// Links on the registry's list of SuperSlabs with free units.
    pub next: *mut SuperSlab,
    pub prev: *mut SuperSlab,
    pub listed: bool,
    /// Class of the slab covering each unit, NO_CLASS if none.
    pub unit_class: [u8; UNITS],
    /// First unit of the slab covering each unit.
    pub unit_head: [u8; UNITS],
    /// Metadata of the slab starting at each unit.
    pub slabs: [Slab; UNITS],
}

const _: () = assert!(core::mem::size_of::<SuperSlab>() <= 1 << UNIT_SHIFT);

/// The SuperSlab holding address `a` (only meaningful if the page map says
/// SUPERSLAB for it).
#[inline(always)]
pub fn of(a: usize) -> *mut SuperSlab {
    (a & !(SS_SIZE - 1)) as *mut SuperSlab
}

/// Class of the block at `a` if `a` is the start of a block of a live slab.
/// The caller knows `a` lies in a SuperSlab.
#[inline(always)]
pub fn block_class(a: usize) -> Option<usize> {
    let ss = of(a);
    let unit = (a >> UNIT_SHIFT) & (UNITS - 1);
    // SAFETY: the page map said a SuperSlab lives here, so its header is mapped.
    let (class, head) = unsafe { ((*ss).unit_class[unit], (*ss).unit_head[unit] as usize) };
    let offset = a - (ss as usize + (head << UNIT_SHIFT));
    if is_block_start(class, offset) {
        Some(class as usize)
    } else {
        None
    }
}

/// The slab holding the block at `a` (the caller has checked `block_class`).
#[inline(always)]
pub fn slab_of(a: usize) -> *mut Slab {
    let ss = of(a);
    let unit = (a >> UNIT_SHIFT) & (UNITS - 1);
    // SAFETY: as for block_class.
    unsafe {
        let head = (*ss).unit_head[unit] as usize;
        ptr::addr_of_mut!((*ss).slabs[head])
    }
}

impl SuperSlab {
    /// Initialises a freshly mapped (zeroed) region's header.
    pub fn init(&mut self) {
        self.magic = MAGIC;
        self.used_units = 1;
        self.next = ptr::null_mut();
        self.prev = ptr::null_mut();
        self.listed = false;
        self.unit_class = [NO_CLASS; UNITS];
        self.unit_head = [0; UNITS];
    }

    /// First of `n` consecutive free units, if any.
    pub fn find_free_units(&self, n: usize) -> Option<usize> {
        let free = !self.used_units;
        let want = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
        (1..=UNITS - n).find(|&i| (free >> i) & want == want)
    }

    /// Claims units `first..first+n` for a slab of `class`; returns the slab.
    pub fn claim(&mut self, first: usize, n: usize, class: usize, size: usize) -> *mut Slab {
        for u in first..first + n {
            self.used_units |= 1 << u;
            self.unit_class[u] = class as u8;
            self.unit_head[u] = first as u8;
        }
        let start = (self as *mut SuperSlab as usize + (first << UNIT_SHIFT)) as *mut u8;
        let slab = &mut self.slabs[first];
        slab.init(start, class, size, n);
        slab
    }

    /// Gives a slab's units back; its blocks stop being valid at once.
    pub fn release(&mut self, first: usize, n: usize) {
        for u in first..first + n {
            self.used_units &= !(1 << u);
            self.unit_class[u] = NO_CLASS;
            self.unit_head[u] = 0;
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
        assert_eq!(ss.unit_head[5], 2);
        assert_eq!(ss.unit_class[5], 30);
        assert_eq!(ss.find_free_units(26), Some(6));
        assert_eq!(ss.find_free_units(27), None);
        ss.release(2, 4);
        assert_eq!(ss.unit_class[3], NO_CLASS);
        assert_eq!(ss.find_free_units(4), Some(2));
        ss.release(1, 1);
        assert!(ss.is_empty());
    }

    #[test]
    fn slab_index_round_trips() {
        let mut ss = boxed();
        let s = ss.claim(7, 1, 2, 32);
        assert_eq!(ss.unit_of(s), 7);
    }
}
