//! Big blocks (above the slab tier): each has a mapping of its own, aligned to
//! 2 MiB so the page map can lead `free` to its header. Freed mappings go to
//! BigCache before the kernel.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::large::bigcache;
use crate::os::clock::now_ms;
use crate::os::{self, pagemap, PAGE};
use crate::stats::{self, Counter};

/// At the base of every big mapping.
#[repr(C)]
pub struct BigHeader {
    pub magic: u64,
    pub map_size: usize,
    /// User pointer minus base; 0 while the mapping sits in BigCache.
    pub offset: usize,
    /// Link in BigCache.
    pub next: *mut BigHeader,
    /// When the mapping entered BigCache (`os::clock::now_ms`).
    pub cached_at: u64,
}

const MAGIC: u64 = 0x68616b6d_656d4247; // "hakmemBG"
const HEADER: usize = 64;
const REGION: usize = pagemap::REGION_SIZE;
/// Alignments above this would put the block beyond what the page map can
/// point back from.
pub const MAX_ALIGN: usize = REGION << 6;
const _: () = assert!(MAX_ALIGN / REGION <= pagemap::BIG_MAX_DISTANCE);

/// Big mappings held (live or in BigCache), and their bytes (for mallinfo).
static MAPPINGS: AtomicUsize = AtomicUsize::new(0);
static MAPPED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// How many big mappings hakmem holds, and their bytes.
pub fn footprint() -> (usize, usize) {
    (MAPPINGS.load(Ordering::Relaxed), MAPPED_BYTES.load(Ordering::Relaxed))
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
    let offset = align.max(HEADER);
    let map_size = round_size(size + offset);
    let mut fresh = false;
    let mut map_size = map_size;
    let mut h = if align <= REGION { bigcache::take(map_size) } else { ptr::null_mut() };
    if !h.is_null() {
        // SAFETY: a cached mapping's header is ours; it may be bigger.
        let cached = unsafe { (*h).map_size };
        if cached - map_size > map_size / 4 {
            trim(h as usize, cached, map_size);
        } else {
            map_size = cached;
        }
    }
    if h.is_null() {
        stats::add(Counter::BigCacheMisses, 1);
        h = os::map_aligned(map_size, align.max(REGION)) as *mut BigHeader;
        if h.is_null() && bigcache::purge(now_ms(), true) {
            // Out of address space (ulimit -v) or memory: cached mappings
            // of other sizes go first.
            h = os::map_aligned(map_size, align.max(REGION)) as *mut BigHeader;
        }
        if h.is_null() {
            return (ptr::null_mut(), false);
        }
        MAPPINGS.fetch_add(1, Ordering::Relaxed);
        MAPPED_BYTES.fetch_add(map_size, Ordering::Relaxed);
        fresh = true;
    } else {
        stats::add(Counter::BigCacheHits, 1);
    }
    // SAFETY: h is the base of a mapping of map_size bytes that we own.
    unsafe {
        (*h).magic = MAGIC;
        (*h).map_size = map_size;
        (*h).offset = offset;
        (*h).next = ptr::null_mut();
    }
    let base = h as usize;
    let regions = map_size.div_ceil(REGION);
    pagemap::set(base, regions, pagemap::BIG_TAIL);
    let distance = offset / REGION;
    pagemap::set(base + offset, 1, pagemap::BIG_HEAD + distance as u8);
    stats::add(Counter::BigBlocks, 1);
    ((base + offset) as *mut u8, fresh)
}

/// The header of the big block at `p` if `p` is one (the page map said
/// BIG_HEAD + distance for p's region).
pub fn header_of(p: usize, kind: u8) -> Option<*mut BigHeader> {
    let distance = (kind - pagemap::BIG_HEAD) as usize;
    let base = (p & !(REGION - 1)).checked_sub(distance * REGION)?;
    let h = base as *mut BigHeader;
    // SAFETY: the page map marks a region BIG_HEAD only while a mapping whose
    // header lies `distance` regions below is live.
    let ok = unsafe { (*h).magic == MAGIC && (*h).offset != 0 && base + (*h).offset == p };
    ok.then_some(h)
}

/// Usable bytes of the block whose header is `h`.
pub fn usable(h: *mut BigHeader) -> usize {
    // SAFETY: h is a live big header.
    unsafe { (*h).map_size - (*h).offset }
}

/// Frees the big block whose header is `h`.
pub fn free(h: *mut BigHeader) {
    // SAFETY: h is a live big header being given up by its only user; offset
    // 0 marks it as no longer a live block.
    let offset = unsafe { core::mem::replace(&mut (*h).offset, 0) };
    if offset <= REGION && bigcache::put(h) {
        return;
    }
    unmap(h);
}

/// Resizes the live big block whose header is `h` to `size` bytes without
/// copying it: the tail is unmapped when it shrinks; when it grows the
/// mapping is extended in place, or its pages are moved (mremap) into a new
/// 2 MiB-aligned range. The block's new address, or None (the caller
/// copies) when neither works.
pub fn resize(h: *mut BigHeader, size: usize) -> Option<*mut u8> {
    if size > isize::MAX as usize / 2 {
        return None;
    }
    // SAFETY: h is a live big header owned by the caller's block.
    let (old_map, offset) = unsafe { ((*h).map_size, (*h).offset) };
    let base = h as usize;
    let new_map = round_size(size + offset);
    if new_map == old_map {
        return Some((base + offset) as *mut u8);
    }
    if new_map < old_map {
        trim(base, old_map, new_map);
        // SAFETY: as above.
        unsafe { (*h).map_size = new_map };
        return Some((base + offset) as *mut u8);
    }
    if os::grow_in_place(base as *mut u8, old_map, new_map) {
        pagemap::set(base, new_map.div_ceil(REGION), pagemap::BIG_TAIL);
        pagemap::set(base + offset, 1, pagemap::BIG_HEAD + (offset / REGION) as u8);
        MAPPED_BYTES.fetch_add(new_map - old_map, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { (*h).map_size = new_map };
        return Some((base + offset) as *mut u8);
    }
    if offset > REGION {
        return None;
    }
    let target = os::map_aligned(new_map, REGION);
    if target.is_null() {
        return None;
    }
    // The old range leaves the page map before it is unmapped, so that no
    // entry of ours can land on a mapping someone else gets there.
    pagemap::set(base, old_map.div_ceil(REGION), pagemap::NONE);
    if !os::move_pages(base as *mut u8, old_map, new_map, target) {
        pagemap::set(base, old_map.div_ceil(REGION), pagemap::BIG_TAIL);
        pagemap::set(base + offset, 1, pagemap::BIG_HEAD + (offset / REGION) as u8);
        os::unmap(target, new_map);
        return None;
    }
    let nh = target as *mut BigHeader;
    // SAFETY: the header moved with its pages; the new range is ours.
    unsafe { (*nh).map_size = new_map };
    pagemap::set(target as usize, new_map.div_ceil(REGION), pagemap::BIG_TAIL);
    pagemap::set(target as usize + offset, 1, pagemap::BIG_HEAD + (offset / REGION) as u8);
    MAPPED_BYTES.fetch_add(new_map - old_map, Ordering::Relaxed);
    Some((target as usize + offset) as *mut u8)
}

/// Cuts the mapping at `base` from `old` to `new` bytes (page multiples).
fn trim(base: usize, old: usize, new: usize) {
    // Regions entirely past the new end stop being ours before they go.
    let keep = new.div_ceil(REGION);
    pagemap::set(base + keep * REGION, old.div_ceil(REGION) - keep, pagemap::NONE);
    os::unmap((base + new) as *mut u8, old - new);
    MAPPED_BYTES.fetch_sub(old - new, Ordering::Relaxed);
}

/// Returns the mapping whose header is `h` (not a live block) to the kernel.
pub fn unmap(h: *mut BigHeader) {
    // SAFETY: h heads a mapping nobody uses any more.
    let map_size = unsafe { (*h).map_size };
    pagemap::set(h as usize, map_size.div_ceil(REGION), pagemap::NONE);
    os::unmap(h as *mut u8, map_size);
    MAPPINGS.fetch_sub(1, Ordering::Relaxed);
    MAPPED_BYTES.fetch_sub(map_size, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::round_size;

    #[test]
    fn rounding_wastes_at_most_a_quarter_and_is_page_aligned() {
        for n in (1..(64usize << 20)).step_by(4093) {
            let r = round_size(n);
            assert!(r >= n && r % 4096 == 0);
            assert!(r - n <= r / 4 + 4096, "{n} -> {r}");
        }
    }
}
