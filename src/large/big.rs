//! Big blocks (above the pool tier, or aligned beyond a page): each has a
//! mapping of its own, aligned to 2 MiB so the page map can lead `free` to
//! its header. Freed mappings go to BigCache before the kernel, and a new
//! block is built from cached ranges when there are any (big_pages.rs):
//! used where one is, or moved (mremap, no copy) into a 2 MiB-aligned
//! range. Resizing is in big_resize.rs. Hardened, freed mappings are held
//! inaccessible for a while instead (quarantine.rs).

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::canary;
use crate::config;
use crate::diag;
use crate::large::big_pages::{self, Pieces};
use crate::large::bigcache;
use crate::large::quarantine;
use crate::os::pagemap::{self, REGION_SIZE};
use crate::os::{self, random, PAGE};
use crate::slab::free_mark::{self, MARKED_BYTES};
use crate::stats::{self, Counter, Footprint};
use crate::valgrind;

/// At the base of every big mapping.
#[repr(C)]
pub struct BigHeader {
    pub magic: u64,
    pub map_size: usize,
    /// User pointer minus base; 0 once the block is freed.
    pub offset: usize,
    /// Offsets of the last two blocks freed from this mapping's range,
    /// newest first (0: none): a block built on the range starts elsewhere
    /// than the newest, and a second free of either is told apart from an
    /// invalid pointer (`was_freed`, `was_reused`).
    pub freed: [usize; 2],
    /// Bytes asked for: the usable size, past which the tail lies.
    pub asked: usize,
    pub pieces: Pieces,
}

const MAGIC: u64 = 0x68616b6d_656d4247; // "hakmemBG"
const HEADER: usize = 128;
/// How much later than the block freed last from a range the next block
/// built on it starts (at least: an alignment's worth when that is more).
const REUSE_SHIFT: usize = 64;
// The header's last bytes are the block's front guard (`canary`), so that
// a write before the block's start is found.
const _: () = assert!(core::mem::size_of::<BigHeader>() <= HEADER - canary::FRONT_GUARD);
/// Alignments above this would put the block beyond what the page map can
/// point back from.
pub const MAX_ALIGN: usize = REGION_SIZE << 6;
const _: () = assert!(MAX_ALIGN / REGION_SIZE <= pagemap::BIG_MAX_DISTANCE);

/// Live big blocks.
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);

/// Live big blocks now.
pub fn live_blocks() -> usize {
    LIVE_BLOCKS.load(Ordering::Relaxed)
}

/// How many big mappings hakmem holds (live blocks and cached ranges).
pub fn mappings() -> usize {
    live_blocks() + bigcache::cached_ranges()
}

/// Bytes of big mappings: all of them, of live blocks, and cached (those
/// stay resident until the purge unmaps them).
pub fn footprint() -> Footprint {
    let (mapped, cached) = (big_pages::mapped_bytes(), bigcache::cached_bytes());
    Footprint { mapped, in_use: mapped.saturating_sub(cached), dirty: cached }
}

/// Rounds a mapping size to four steps per doubling (whole pages), so freed
/// mappings fit later requests of nearby sizes.
pub fn round_size(n: usize) -> usize {
    let n = os::align_up(n, PAGE);
    let w = (usize::BITS - 1 - (n - 1).leading_zeros()) as usize;
    let step = (1usize << w.saturating_sub(2)).max(PAGE);
    os::align_up(n, step)
}

/// A big block of `size` bytes aligned to `align` (a power of two). Returns
/// the block and whether its memory is known to be zero; null when the size
/// is impossible or the kernel has no memory.
pub fn alloc(size: usize, align: usize) -> (*mut u8, bool) {
    if align > MAX_ALIGN || size > isize::MAX as usize / 2 {
        return (ptr::null_mut(), false);
    }
    let mut offset = align.max(HEADER);
    // At least a byte past the block's start, so the region the page map
    // marks BIG_HEAD for it is inside its mapping even for size 0.
    let end = size.max(1) + offset;
    let map_size = round_size(end);
    let reused = if align <= REGION_SIZE { from_cache(map_size) } else { None };
    let (base, pieces, zero, freed) = match reused {
        Some((base, pieces, freed)) => (base, pieces, false, freed),
        None => match big_pages::map_fresh(map_size, align.max(REGION_SIZE)) {
            Some(base) => (base, Pieces::whole(map_size), true, [0; 2]),
            None => return (ptr::null_mut(), false),
        },
    };
    // A program that frees a big block and keeps its pointer must not find
    // the next block at the same address (a second free would free that
    // one, silently). The rounding leaves room for it but for sizes within
    // `shift` of a step (docs/ARCHITECTURE.md, "Big blocks").
    let shift = align.max(REUSE_SHIFT);
    if freed[0] == offset && map_size - end >= shift {
        offset += shift;
    }
    let h = base as *mut BigHeader;
    // SAFETY: h is the base of a mapping of map_size bytes that we own.
    unsafe { h.write(BigHeader { magic: MAGIC, map_size, offset, freed, asked: size, pieces }) };
    canary::write_front_guard(base + offset);
    set_asked(h, size);
    mark(base, map_size, offset);
    LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
    stats::add(Counter::BigBlocks, 1);
    ((base + offset) as *mut u8, zero)
}

/// The key that says a freed block's mark lies past the header at `base`:
/// the program cannot write it into a block of its own by chance.
fn freed_magic(base: usize) -> u64 {
    (base ^ random::secret()).rotate_left(11) as u64 ^ MAGIC
}

/// Marks the block freed at `base + offset` (the header at `base`).
fn mark_freed(base: usize, offset: usize) {
    // SAFETY: base is the header of a block just freed, still mapped, with
    // MARKED_BYTES of it past the block's start: the block is bigger than
    // the pool's, or (aligned beyond a page) starts on a page of its own.
    unsafe {
        let h = base as *mut BigHeader;
        (*h).magic = freed_magic(base);
        (*h).freed = [offset, (*h).freed[0]];
    }
    free_mark::mark((base + offset) as *mut u8, MARKED_BYTES, random::secret());
}

/// `freed` of the header of the cached range at `addr` (of `len` bytes),
/// if the range starts with a freed block.
fn freed_offsets(addr: usize, len: usize) -> Option<[usize; 2]> {
    if len < HEADER {
        return None;
    }
    let h = addr as *const BigHeader;
    // SAFETY: the range is cached, mapped and ours, and holds a header's
    // bytes; a purged one reads as zero, which no freed magic is.
    let (magic, freed) = unsafe { ((*h).magic, (*h).freed) };
    (magic == freed_magic(addr) && freed[0] + MARKED_BYTES <= len).then_some(freed)
}

/// Whether `p` is a big block that was freed and waits in BigCache (for a
/// report to name a second free of it).
pub fn was_freed(p: usize) -> bool {
    let base = p & !(REGION_SIZE - 1);
    bigcache::starts_range(base, |len| freed_offsets(base, len).is_some_and(|f| f.contains(&(p - base))))
}

/// Whether `p`, which the page map puts in a live big block's first region
/// (`kind` BIG_HEAD + 0), is one of the blocks freed last from that
/// mapping, whose range the live one reuses: a second free of it.
pub fn was_reused(p: usize, kind: u8) -> bool {
    let base = p & !(REGION_SIZE - 1);
    let h = base as *const BigHeader;
    // SAFETY: the page map marks a region BIG_HEAD + 0 only while the
    // mapping whose header is at its base is live.
    kind == pagemap::BIG_HEAD && unsafe { (*h).magic == MAGIC && (*h).freed.contains(&(p - base)) }
}

/// Before the cached range at `addr` is used again: if it starts with a
/// block marked freed, reports a write into that block since its free.
/// Returns the range's `freed` (zeros: none).
fn check_freed(addr: usize, len: usize) -> [usize; 2] {
    let Some(freed) = freed_offsets(addr, len) else {
        return [0; 2];
    };
    let block = addr + freed[0];
    if let Some(at) = free_mark::check(block as *mut u8, MARKED_BYTES, random::secret()) {
        diag::write_after_free(block + at, block, "malloc was to use its memory again");
    }
    freed
}

/// A 2 MiB-aligned mapping of `map_size` bytes built from cached ranges,
/// its pieces, and the offsets of the blocks freed last from it when it is
/// the range they left (zeros otherwise); None when the cache is empty.
fn from_cache(map_size: usize) -> Option<(usize, Pieces, [usize; 2])> {
    let Some((addr, len)) = bigcache::take(map_size) else {
        stats::add(Counter::BigCacheMisses, 1);
        return None;
    };
    stats::add(Counter::BigCacheHits, 1);
    let freed = check_freed(addr, len);
    let mut pieces = Pieces::whole(len);
    if addr % REGION_SIZE == 0 {
        if len == map_size {
            return Some((addr, pieces, freed));
        }
        if big_pages::map_at(addr + len, map_size - len) {
            bigcache::fill(addr + len, map_size - len, &mut pieces);
            return Some((addr, pieces, freed));
        }
    }
    let Some(target) = big_pages::map_fresh(map_size, REGION_SIZE) else {
        big_pages::unmap_range(addr, len);
        return None;
    };
    if !big_pages::move_range(addr, len, len, target) {
        big_pages::unmap_range(addr, len);
        return Some((target, Pieces::whole(map_size), [0; 2]));
    }
    if len < map_size {
        bigcache::fill(target + len, map_size - len, &mut pieces);
    }
    Some((target, pieces, [0; 2]))
}

/// Page map entries of a block: BIG_TAIL over its regions, BIG_HEAD plus
/// the distance to its header on the region holding the user pointer.
pub fn mark(base: usize, map_size: usize, offset: usize) {
    pagemap::set(base, map_size.div_ceil(REGION_SIZE), pagemap::BIG_TAIL);
    pagemap::set(base + offset, 1, pagemap::BIG_HEAD + (offset / REGION_SIZE) as u8);
}

pub fn unmark(base: usize, map_size: usize) {
    pagemap::set(base, map_size.div_ceil(REGION_SIZE), pagemap::NONE);
}

/// The header of the big block at `p` if `p` is one (the page map said
/// BIG_HEAD + distance for p's region).
pub fn header_of(p: usize, kind: u8) -> Option<*mut BigHeader> {
    let distance = (kind - pagemap::BIG_HEAD) as usize;
    let base = (p & !(REGION_SIZE - 1)).checked_sub(distance * REGION_SIZE)?;
    let h = base as *mut BigHeader;
    // SAFETY: the page map marks a region BIG_HEAD only while a mapping whose
    // header lies `distance` regions below is live.
    let ok = unsafe { (*h).magic == MAGIC && (*h).offset != 0 && base + (*h).offset == p };
    ok.then_some(h)
}

/// Usable bytes of the block whose header is `h`: those asked for.
pub fn usable(h: *mut BigHeader) -> usize {
    // SAFETY: h is a live big header.
    unsafe { (*h).asked }
}

/// The block of `h` now holds `size` bytes (it has room for them): its
/// tail moves past them.
pub fn set_asked(h: *mut BigHeader, size: usize) {
    // SAFETY: h is a live big header owned by the caller's block.
    let (map_size, offset) = unsafe {
        (*h).asked = size;
        ((*h).map_size, (*h).offset)
    };
    canary::write_page_tail(h as usize + offset, size, map_size - offset - size);
}

/// Reports a write just before or past the block of `h` (its front guard
/// or tail changed).
pub fn check(h: *mut BigHeader) {
    // SAFETY: h is a live big header.
    let (map_size, offset, size) = unsafe { ((*h).map_size, (*h).offset, (*h).asked) };
    canary::check_page_guards(h as usize + offset, size, map_size - offset - size, true);
}

/// Frees the big block whose header is `h`, its guards checked first: its
/// mapping leaves the page map (a second free is then reported) and its
/// pieces go to BigCache or the kernel.
pub fn free(h: *mut BigHeader) {
    check(h);
    // SAFETY: h is a live big header being given up by its only user; offset
    // 0 marks it as no longer a live block.
    let (map_size, mut pieces, offset) =
        unsafe { ((*h).map_size, (*h).pieces, core::mem::replace(&mut (*h).offset, 0)) };
    let base = h as usize;
    unmark(base, map_size);
    LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    if config::harden() {
        return quarantine::hold(base, map_size);
    }
    if offset > REGION_SIZE {
        big_pages::unmap_range(base, map_size);
        return;
    }
    // Not under valgrind: memcheck was told the block is freed (and
    // BigCache keeps nothing then).
    if !valgrind::active() {
        mark_freed(base, offset);
    }
    // Where one mremap moves several mappings, the block goes back as one
    // range: the cache then keeps ranges as big as the blocks freed, where
    // piece by piece it splintered into ranges too small to build a block
    // from (docs/ARCHITECTURE.md, "Big-block reuse").
    if pieces.count() > 1 && os::moves_many_mappings() {
        pieces = Pieces::whole(map_size);
    }
    for (off, len) in pieces.iter() {
        if !bigcache::put(base + off, len) {
            big_pages::unmap_range(base + off, len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_starts_inside_its_own_mapping_whatever_its_alignment() {
        for align in [REGION_SIZE, REGION_SIZE * 2, REGION_SIZE * 8] {
            for size in [0, 1, PAGE, REGION_SIZE] {
                let (p, _) = alloc(size, align);
                assert_eq!(p as usize % align, 0);
                let h = header_of(p as usize, pagemap::kind(p as usize)).unwrap();
                // SAFETY: h is the live block's header.
                let map_size = unsafe { (*h).map_size };
                assert!((p as usize) < h as usize + map_size, "align {align} size {size}");
                assert!(usable(h) >= size);
                free(h);
                assert_eq!(pagemap::kind(p as usize), pagemap::NONE);
            }
        }
    }

    #[test]
    fn a_block_built_where_one_was_freed_starts_elsewhere() {
        let size = 3 << 20;
        let (p, _) = alloc(size, 16);
        let base = p as usize & !(REGION_SIZE - 1);
        free(header_of(p as usize, pagemap::kind(p as usize)).unwrap());
        assert!(was_freed(p as usize) || pagemap::kind(p as usize) != pagemap::NONE);
        // Other tests may take the cached range first: only a block on the
        // same range says anything.
        let (q, _) = alloc(size, 16);
        if q as usize & !(REGION_SIZE - 1) == base {
            assert_ne!(q, p);
            assert!(was_reused(p as usize, pagemap::kind(p as usize)));
            assert!(!was_reused(p as usize + 16, pagemap::kind(p as usize)));
        }
        free(header_of(q as usize, pagemap::kind(q as usize)).unwrap());
    }

    #[test]
    fn rounding_wastes_at_most_a_quarter_and_is_page_aligned() {
        for n in (1..(64usize << 20)).step_by(4093) {
            let r = round_size(n);
            assert!(r >= n && r.is_multiple_of(4096));
            assert!(r - n <= r / 4 + 4096, "{n} -> {r}");
        }
    }
}
