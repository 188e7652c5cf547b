//! The OS layer: every byte hakmem manages comes from here, as anonymous
//! mappings, and every other question hakmem asks the kernel goes through
//! here too (`clock`, `process`, `random`; the page map is hakmem's own
//! record of what it mapped). Nothing in this module allocates; each call
//! is one system call, but the question asked once of `moves_many_mappings`.

pub mod clock;
pub mod pagemap;
pub mod process;
pub mod random;

use core::ptr;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Bytes given back to the kernel (unmapped or decommitted) since start.
static RETURNED: AtomicU64 = AtomicU64::new(0);

pub fn returned_bytes() -> u64 {
    RETURNED.load(Ordering::Relaxed)
}

pub const PAGE: usize = 4096;

#[inline]
pub const fn align_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

/// Maps `size` bytes of fresh zeroed memory, or null when the kernel refuses.
pub fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address the kernel picks
    // touches no existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p as *mut u8
    }
}

/// Maps `size` bytes aligned to `align` (a power of two, at least a page) by
/// mapping `size + align` and trimming both ends; null on failure.
pub fn map_aligned(size: usize, align: usize) -> *mut u8 {
    let Some(span) = size.checked_add(align) else {
        return ptr::null_mut();
    };
    let raw = map(span);
    if raw.is_null() {
        return raw;
    }
    let start = align_up(raw as usize, align);
    let head = start - raw as usize;
    let tail = span - head - size;
    if head > 0 {
        unmap_spare(raw, head);
    }
    if tail > 0 {
        unmap_spare((start + size) as *mut u8, tail);
    }
    start as *mut u8
}

/// Maps `size` bytes of fresh zeroed memory exactly at `p` if nothing is
/// mapped there; false otherwise (nothing changes then).
pub fn map_at(p: *mut u8, size: usize) -> bool {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; a
    // kernel that predates it takes the address as a hint, and a mapping
    // placed elsewhere is returned at once.
    let q = unsafe {
        libc::mmap(
            p as *mut libc::c_void,
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if q == libc::MAP_FAILED {
        return false;
    }
    if q as *mut u8 != p {
        unmap_spare(q as *mut u8, size);
        return false;
    }
    true
}

/// Gives the pages of `p..p + size` (hakmem's, unused) back to the kernel
/// and forbids any access there, keeping the addresses taken; false if the
/// kernel refused (nothing changed then).
pub fn make_inaccessible(p: *mut u8, size: usize) -> bool {
    // SAFETY: MAP_FIXED replaces only the caller's own range, which no
    // block uses any more.
    let q = unsafe {
        libc::mmap(
            p as *mut libc::c_void,
            size,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if q == libc::MAP_FAILED {
        return false;
    }
    RETURNED.fetch_add(size as u64, Ordering::Relaxed);
    true
}

/// Returns a mapping (or a page-aligned part of one) to the kernel.
pub fn unmap(p: *mut u8, size: usize) {
    RETURNED.fetch_add(size as u64, Ordering::Relaxed);
    unmap_spare(p, size);
}

/// Unmaps what a mapping call got and never used (not memory given back).
fn unmap_spare(p: *mut u8, size: usize) {
    // SAFETY: callers pass only ranges that hakmem mapped and no longer uses.
    unsafe {
        libc::munmap(p as *mut libc::c_void, size);
    }
}

/// Tells the kernel the pages' contents are no longer needed: RSS drops now
/// and the next touch gets zeroed pages.
pub fn decommit(p: *mut u8, size: usize) {
    RETURNED.fetch_add(size as u64, Ordering::Relaxed);
    // SAFETY: the range is a page-aligned part of a live hakmem mapping whose
    // contents no block needs any more.
    unsafe {
        libc::madvise(p as *mut libc::c_void, size, libc::MADV_DONTNEED);
    }
}

/// Asks for huge pages over `p..p + size` (`Some(true)`), forbids them
/// (`Some(false)`), or leaves the kernel's policy (`None`).
pub fn huge_pages(p: *mut u8, size: usize, advice: Option<bool>) {
    let Some(on) = advice else {
        return;
    };
    let advice = if on { libc::MADV_HUGEPAGE } else { libc::MADV_NOHUGEPAGE };
    // SAFETY: advice only; the range is a live hakmem mapping.
    unsafe { libc::madvise(p as *mut libc::c_void, size, advice) };
}

/// Whether no mapping covers the page holding `addr` (async-signal-safe:
/// one system call, mincore, which fails with ENOMEM there).
pub fn is_unmapped(addr: usize) -> bool {
    let (mut byte, saved) = (0u8, errno::errno());
    let page = addr & !(PAGE - 1);
    // SAFETY: mincore only reads the page tables and writes one byte.
    let r = unsafe { libc::mincore(page as *mut libc::c_void, PAGE, &mut byte) };
    let unmapped = r != 0 && errno::errno().0 == libc::ENOMEM;
    // A signal handler must leave the interrupted code's errno as it was.
    errno::set_errno(saved);
    unmapped
}

/// Test helper: how many pages of `p..p + len` are resident (an unmapped
/// page counts as not resident). `p` is page-aligned.
#[cfg(test)]
pub fn resident_pages(p: *mut u8, len: usize) -> usize {
    let mut vec = vec![0u8; len.div_ceil(PAGE)];
    // SAFETY: mincore only reads the page tables; vec has a byte per page.
    let r = unsafe { libc::mincore(p as *mut libc::c_void, len, vec.as_mut_ptr()) };
    if r != 0 {
        return 0;
    }
    vec.iter().filter(|&&b| b & 1 != 0).count()
}

/// Extends the mapping at `p` from `old` to `new` bytes where it is, if the
/// address space after it is free.
pub fn extend_mapping(p: *mut u8, old: usize, new: usize) -> bool {
    // SAFETY: p..p+old is a live hakmem mapping; without MREMAP_MAYMOVE the
    // kernel either extends it in place or changes nothing.
    let r = unsafe { libc::mremap(p as *mut libc::c_void, old, new, 0) };
    r != libc::MAP_FAILED
}

/// Moves the pages of the mapping at `p` (`old` bytes) to `target`, which
/// becomes a mapping of `new` bytes (it replaces what was mapped there);
/// `p..p+old` is unmapped. No byte is copied.
pub fn move_pages(p: *mut u8, old: usize, new: usize, target: *mut u8) -> bool {
    // SAFETY: both ranges are hakmem's own mappings: the source is a block
    // being resized by its owner, the target a fresh reservation.
    let r = unsafe {
        libc::mremap(
            p as *mut libc::c_void,
            old,
            new,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            target as *mut libc::c_void,
        )
    };
    r == target as *mut libc::c_void
}

/// Whether one mremap moves a range that spans several kernel mappings
/// (Linux 6.17 on; older kernels refuse with EFAULT). Asked of the kernel
/// once.
pub fn moves_many_mappings() -> bool {
    // 0: not asked yet, 1: yes, 2: no.
    static ANSWER: AtomicU8 = AtomicU8::new(0);
    match ANSWER.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let yes = try_moving_two_mappings();
            ANSWER.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
            yes
        }
    }
}

/// Builds a range of two pages in two kernel mappings and moves it with one
/// call; unmaps what it mapped, and only that.
fn try_moving_two_mappings() -> bool {
    let (a, b, t) = (map(2 * PAGE), map(PAGE), map(2 * PAGE));
    let mut b_mapped = !b.is_null();
    let mut moved = false;
    if !a.is_null() && b_mapped && !t.is_null() {
        // SAFETY: a and b are fresh mappings of ours. Touched, each gets
        // anonymous memory of its own, so the kernel cannot merge b into
        // a's mapping when it moves next to it.
        unsafe {
            *a = 1;
            *b = 2;
        }
        // SAFETY: a + PAGE is the second page of our mapping a.
        if move_pages(b, PAGE, PAGE, unsafe { a.add(PAGE) }) {
            b_mapped = false;
            moved = move_pages(a, 2 * PAGE, 2 * PAGE, t);
        }
    }
    // Moved, a's pages lie at t (which was ours all along).
    let a_mapped = !a.is_null() && !moved;
    for (p, size, mapped) in [(a, 2 * PAGE, a_mapped), (b, PAGE, b_mapped), (t, 2 * PAGE, !t.is_null())] {
        if mapped {
            unmap_spare(p, size);
        }
    }
    moved
}
