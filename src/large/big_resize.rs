//! realloc of a big block that stays big, without copying it: a shrink gives
//! its tail to BigCache; a growth extends the mapping where it is (with
//! cached pages moved in when there are any, else fresh ones), or moves its
//! pieces with mremap into a new 2 MiB-aligned range and extends them there.

use core::ptr;

use crate::large::big::{self, round_size, BigHeader};
use crate::large::big_pages::{self, Pieces};
use crate::large::bigcache;
use crate::os::pagemap::{self, REGION_SIZE};

/// Resizes the live big block whose header is `h` to `size` bytes (its
/// tail follows). The block's new address, or None (the caller copies)
/// when it cannot grow without a copy.
pub fn resize(h: *mut BigHeader, size: usize) -> Option<*mut u8> {
    if size > isize::MAX as usize / 2 {
        return None;
    }
    // SAFETY: h is a live big header owned by the caller's block.
    let (old_map, offset) = unsafe { ((*h).map_size, (*h).offset) };
    let new_map = round_size(size + offset);
    let grown = if new_map < old_map {
        shrink(h, new_map);
        true
    } else {
        new_map == old_map || grow_in_place(h, new_map)
    };
    if grown {
        // SAFETY: as above.
        unsafe { (*h).map_size = new_map };
        big::set_asked(h, size);
        return Some((h as usize + offset) as *mut u8);
    }
    let q = move_and_grow(h, new_map)?;
    // The header moved with the block.
    big::set_asked((q as usize - offset) as *mut BigHeader, size);
    Some(q)
}

fn shrink(h: *mut BigHeader, new_map: usize) {
    // SAFETY: h is a live big header owned by the caller's block.
    let (old_map, pieces) = unsafe { ((*h).map_size, &mut (*h).pieces) };
    let base = h as usize;
    // Regions entirely past the new end stop being ours first.
    let keep = new_map.div_ceil(REGION_SIZE);
    pagemap::set(base + keep * REGION_SIZE, old_map.div_ceil(REGION_SIZE) - keep, pagemap::NONE);
    pieces.cut(new_map, |off, len| {
        if !bigcache::put(base + off, len) {
            big_pages::unmap_range(base + off, len);
        }
    });
}

/// Extends the block where it is: with cached pages moved into fresh space
/// after it when the cache has some, else by extending its last piece.
fn grow_in_place(h: *mut BigHeader, new_map: usize) -> bool {
    // SAFETY: h is a live big header owned by the caller's block.
    let (old_map, offset, pieces) = unsafe { ((*h).map_size, (*h).offset, &mut (*h).pieces) };
    let base = h as usize;
    let (end, extra) = (base + old_map, new_map - old_map);
    let room = !pieces.is_full();
    let grown = if room && bigcache::cached_bytes() > 0 && big_pages::map_at(end, extra) {
        bigcache::fill(end, extra, pieces);
        true
    } else {
        let (off, len) = pieces.last();
        if big_pages::extend_mapping(base + off, len, len + extra) {
            pieces.set_last(len + extra);
            true
        } else if room && big_pages::map_at(end, extra) {
            pieces.push(extra);
            true
        } else {
            false
        }
    };
    if grown {
        big::mark(base, new_map, offset);
    }
    grown
}

/// Moves the block's pieces into a new range of `new_map` bytes and grows
/// it there: with cached pages when it has room for them, else by moving
/// its last piece with an extension.
fn move_and_grow(h: *mut BigHeader, new_map: usize) -> Option<*mut u8> {
    // SAFETY: h is a live big header owned by the caller's block.
    let (old_map, offset, mut pieces) = unsafe { ((*h).map_size, (*h).offset, (*h).pieces) };
    if offset > REGION_SIZE {
        return None;
    }
    let base = h as usize;
    // The old range leaves the page map before it is unmapped, so that no
    // entry of ours can land on a mapping someone else gets there.
    big::unmark(base, old_map);
    let Some(target) = big_pages::map_fresh(new_map, REGION_SIZE) else {
        big::mark(base, old_map, offset);
        return None;
    };
    let extra = new_map - old_map;
    let before = pieces;
    let n = before.count();
    // With room, the extra pages are a piece of their own (cached ones, or
    // the new range's fresh rest): the last piece may span several kernel
    // mappings (`big::free`), and mremap grows only one.
    let room = !before.is_full();
    for (i, (off, len)) in before.iter().enumerate() {
        let grow = if i == n - 1 && !room { extra } else { 0 };
        if !big_pages::move_range(base + off, len, len + grow, target + off) {
            // The kernel refused (out of mappings): the rest is copied into
            // the new range, whose pages from `off` on are still fresh.
            // SAFETY: both ranges are ours, old_map - off bytes long, distinct.
            unsafe { ptr::copy_nonoverlapping((base + off) as *const u8, (target + off) as *mut u8, old_map - off) };
            big_pages::unmap_range(base + off, old_map - off);
            pieces.truncate(i);
            pieces.push(new_map - off);
            return Some(finish(target, new_map, offset, pieces));
        }
    }
    if !room {
        pieces.set_last(pieces.last().1 + extra);
    } else if bigcache::cached_bytes() > 0 {
        bigcache::fill(target + old_map, extra, &mut pieces);
    } else {
        pieces.push(extra);
    }
    Some(finish(target, new_map, offset, pieces))
}

/// Records the moved block's new size and pieces in its header (which moved
/// with its first piece) and marks it in the page map.
fn finish(base: usize, map_size: usize, offset: usize, pieces: Pieces) -> *mut u8 {
    let h = base as *mut BigHeader;
    // SAFETY: the header moved with the block's first page; the range is ours.
    unsafe {
        (*h).map_size = map_size;
        (*h).pieces = pieces;
    }
    big::mark(base, map_size, offset);
    (base + offset) as *mut u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::large::{self, big_pages::MAX_PIECES};
    use crate::os::PAGE;

    const MIB: usize = 1 << 20;

    fn minor_faults() -> i64 {
        // SAFETY: getrusage fills the struct it is given.
        let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
        ru.ru_minflt
    }

    fn header(p: *mut u8) -> *mut BigHeader {
        big::header_of(p as usize, pagemap::kind(p as usize)).expect("a live big block")
    }

    /// Bytes 0..len of p follow a pattern of `seed` (one byte per page).
    fn write(p: *mut u8, len: usize, seed: u8) {
        for off in (0..len).step_by(PAGE) {
            // SAFETY: p has at least len bytes.
            unsafe { *p.add(off) = seed ^ (off / PAGE) as u8 };
        }
    }

    fn check(p: *mut u8, len: usize, seed: u8) -> bool {
        // SAFETY: p has at least len bytes.
        (0..len).step_by(PAGE).all(|off| unsafe { *p.add(off) } == seed ^ (off / PAGE) as u8)
    }

    #[test]
    fn growing_a_big_block_moves_its_pages_instead_of_copying() {
        // Only the ends are touched: a copy would fault in every page it
        // reads and writes, a move of page tables faults none.
        let size = 64 * MIB;
        let (mut p, _) = big::alloc(size, 0);
        write(p, PAGE, 1);
        // SAFETY: p has size bytes.
        unsafe { *p.add(size - 1) = 9 };
        for step in 1..=4 {
            let before = minor_faults();
            // A block parked right after this one makes growing in place
            // impossible every other time.
            let (fence, _) = big::alloc(MIB + MIB / 2, 0);
            p = resize(header(p), size * (step + 1)).unwrap();
            assert!(minor_faults() - before < 500, "step {step}: pages were copied");
            assert!(check(p, PAGE, 1));
            // SAFETY: the block still holds the first size bytes.
            assert_eq!(unsafe { *p.add(size - 1) }, 9);
            big::free(header(fence));
        }
        big::free(header(p));
    }

    #[test]
    fn blocks_built_from_cached_pieces_keep_their_contents() {
        // Sizes around the cache's ranges, so that blocks are made of
        // several cached ranges and resized across their pieces.
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let mut live: Vec<(*mut u8, usize, u8)> = Vec::new();
        let mut most_pieces = 1;
        for step in 0..600u32 {
            let size = MIB + next(24 * MIB);
            let seed = step as u8;
            if live.len() < 6 || next(3) == 0 {
                let (p, _) = large::alloc(size, 0);
                write(p, size, seed);
                live.push((p, size, seed));
            } else {
                let i = next(live.len());
                let (p, old, s) = live[i];
                assert!(check(p, old, s), "step {step}: block lost its contents");
                if next(2) == 0 {
                    let q = resize(header(p), size).expect("resized without a copy");
                    assert!(check(q, old.min(size), s), "step {step}: resize lost contents");
                    write(q, size, seed);
                    live[i] = (q, size, seed);
                } else {
                    big::free(header(p));
                    live.swap_remove(i);
                }
            }
            for &(p, _, _) in &live {
                // SAFETY: a live big block's header.
                let (pieces, map_size) = unsafe { ((*header(p)).pieces, (*header(p)).map_size) };
                assert!(pieces.count() <= MAX_PIECES);
                assert_eq!(pieces.iter().map(|(_, len)| len).sum::<usize>(), map_size);
                most_pieces = most_pieces.max(pieces.count());
            }
        }
        assert!(most_pieces > 1, "no block was ever made of cached pieces");
        for (p, size, s) in live {
            assert!(check(p, size, s));
            big::free(header(p));
        }
    }
}
