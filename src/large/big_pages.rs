//! Where a big block's pages come from, and the count of bytes hakmem holds
//! for big blocks (live or cached). Pages come from fresh mappings, or from
//! BigCache ranges moved in with mremap (`bigcache::fill`): those pages are
//! already resident, so the program does not fault them in again. A block
//! made of several moved ranges records them as pieces, because mremap
//! extends one kernel mapping at a time, and before Linux 6.17 moves one
//! at a time: each piece lies inside one mapping, or, where one mremap
//! moves several (`os::moves_many_mappings`), is a freed block's whole
//! range, which only moves.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::config;
use crate::os;

/// At most this many pieces per block: each is a kernel mapping (VMA) of
/// its own, and the kernel limits how many a process has (65,530 by
/// default). 8 by measurement: with 4, a block too big for three cached
/// ranges faulted in a fresh rest (bigblocks: 1.9x the page faults of 8);
/// 16 gained nothing more.
pub const MAX_PIECES: usize = 8;

/// The parts of a big mapping in order from its base, in bytes (0: unused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Pieces([usize; MAX_PIECES]);

impl Pieces {
    pub const EMPTY: Pieces = Pieces([0; MAX_PIECES]);

    pub fn whole(bytes: usize) -> Self {
        let mut p = Self::EMPTY;
        p.0[0] = bytes;
        p
    }

    pub fn count(&self) -> usize {
        self.0.iter().take_while(|&&n| n != 0).count()
    }

    pub fn is_full(&self) -> bool {
        self.count() == MAX_PIECES
    }

    /// Appends a piece (there must be room).
    pub fn push(&mut self, bytes: usize) {
        let n = self.count();
        self.0[n] = bytes;
    }

    /// Each piece's offset from the base and length.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.0[..self.count()].iter().scan(0, |off, &len| {
            let at = *off;
            *off += len;
            Some((at, len))
        })
    }

    /// Offset and length of the last piece (there is one).
    pub fn last(&self) -> (usize, usize) {
        self.iter().last().unwrap_or((0, 0))
    }

    /// Makes the last piece `bytes` long.
    pub fn set_last(&mut self, bytes: usize) {
        let n = self.count();
        self.0[n - 1] = bytes;
    }

    /// Keeps only the first `n` pieces.
    pub fn truncate(&mut self, n: usize) {
        self.0[n..].iter_mut().for_each(|len| *len = 0);
    }

    /// Cuts the mapping to its first `at` bytes; calls `gone` with each range
    /// (offset, length) past the cut.
    pub fn cut(&mut self, at: usize, mut gone: impl FnMut(usize, usize)) {
        let mut kept = 0;
        let before = *self;
        for (i, (off, len)) in before.iter().enumerate() {
            if off >= at {
                gone(off, len);
            } else {
                if off + len > at {
                    gone(at, off + len - at);
                    self.0[i] = at - off;
                }
                kept = i + 1;
            }
        }
        self.truncate(kept);
    }
}

/// Bytes of big mappings held, live or cached.
static MAPPED_BYTES: AtomicUsize = AtomicUsize::new(0);

pub fn mapped_bytes() -> usize {
    MAPPED_BYTES.load(Ordering::Relaxed)
}

/// A fresh mapping of `size` bytes aligned to `align`; None when the kernel
/// refuses (the caller may release what is cached and try again).
pub fn map_fresh(size: usize, align: usize) -> Option<usize> {
    let base = os::map_aligned(size, align);
    if base.is_null() {
        return None;
    }
    os::huge_pages(base, size, config::huge_page_advice());
    MAPPED_BYTES.fetch_add(size, Ordering::Relaxed);
    Some(base as usize)
}

/// Fresh pages right at `addr` if nothing is mapped there.
pub fn map_at(addr: usize, size: usize) -> bool {
    let ok = os::map_at(addr as *mut u8, size);
    if ok {
        os::huge_pages(addr as *mut u8, size, config::huge_page_advice());
        MAPPED_BYTES.fetch_add(size, Ordering::Relaxed);
    }
    ok
}

/// Extends the kernel mapping ending at `addr + len` in place to `new_len`.
pub fn extend_mapping(addr: usize, len: usize, new_len: usize) -> bool {
    let ok = os::extend_mapping(addr as *mut u8, len, new_len);
    if ok {
        MAPPED_BYTES.fetch_add(new_len - len, Ordering::Relaxed);
    }
    ok
}

/// Moves the pages of `src..src+len` (inside one kernel mapping) over
/// `dst..dst+new_len` (ours: what was there is dropped), extending them
/// with fresh pages to `new_len`. False if the kernel refused (nothing moved).
pub fn move_range(src: usize, len: usize, new_len: usize, dst: usize) -> bool {
    let ok = os::move_pages(src as *mut u8, len, new_len, dst as *mut u8);
    if ok {
        // The source range now sits where `new_len` bytes were.
        MAPPED_BYTES.fetch_sub(len, Ordering::Relaxed);
    }
    ok
}

/// Returns a range that is neither a live block nor cached to the kernel
/// (its page map entries, if any, are the caller's business).
pub fn unmap_range(addr: usize, len: usize) {
    os::unmap(addr as *mut u8, len);
    MAPPED_BYTES.fetch_sub(len, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_list_offsets_and_cut_into_what_goes() {
        let mut p = Pieces::whole(4 << 20);
        p.push(1 << 20);
        p.push(3 << 20);
        assert_eq!(p.count(), 3);
        let all: Vec<_> = p.iter().collect();
        assert_eq!(all, [(0, 4 << 20), (4 << 20, 1 << 20), (5 << 20, 3 << 20)]);
        assert_eq!(p.last(), (5 << 20, 3 << 20));
        let mut gone = Vec::new();
        p.cut(4 << 20 | 4096, |off, len| gone.push((off, len)));
        assert_eq!(gone, [((4 << 20) + 4096, (1 << 20) - 4096), (5 << 20, 3 << 20)]);
        assert_eq!(p.iter().collect::<Vec<_>>(), [(0, 4 << 20), (4 << 20, 4096)]);
        p.cut(4 << 20, |_, _| {});
        assert_eq!(p, Pieces::whole(4 << 20));
        for n in 1..MAX_PIECES {
            assert!(!p.is_full());
            p.push(n);
        }
        assert!(p.is_full());
        p.set_last(9);
        assert_eq!(p.last().1, 9);
    }
}
