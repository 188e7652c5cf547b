//! Blocks glibc's own malloc handed out: a library loaded with
//! RTLD_DEEPBIND binds malloc to glibc's, and what it returns may reach
//! hakmem's free, realloc or malloc_usable_size. Such a pointer goes back
//! to glibc instead of aborting; one nobody handed out (the stack, the
//! inside of a block) is still reported.
//!
//! A pointer the page map does not know is glibc's when its chunk header
//! reads right, looked at through `os::process::read_memory` (a wild
//! pointer cannot fault here): 16-byte aligned, a size of at least 32 bytes
//! in 16-byte steps, and then one of glibc's three kinds of chunk:
//! - in the brk heap (hakmem never uses brk), ending inside it, and marked
//!   in use by the next chunk's header;
//! - in a heap of a thread arena (64 MiB-aligned, with its size at its
//!   base), ending inside it, marked in use the same way;
//! - a mapping of its own (the mmapped bit), page-aligned and whole pages.
//!
//! glibc's free makes its own checks of what passes these.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::os::process::{heap_start, program_break, read_memory};
use crate::os::PAGE;

const PREV_INUSE: usize = 1;
const IS_MMAPPED: usize = 2;
const NON_MAIN_ARENA: usize = 4;
const FLAGS: usize = 7;
const MIN_CHUNK: usize = 32;
/// glibc's HEAP_MAX_SIZE on 64-bit: thread arenas' heaps are aligned to it.
const ARENA_HEAP: usize = 64 << 20;

/// glibc's free and malloc_usable_size, found on first use (0: not yet;
/// 1: not found).
static GLIBC_FREE: AtomicUsize = AtomicUsize::new(0);
static GLIBC_USABLE: AtomicUsize = AtomicUsize::new(0);

/// Frees `p` through glibc if glibc handed it out; false otherwise.
pub fn free(p: usize) -> bool {
    if !is_glibc_chunk(p) {
        return false;
    }
    let Some(f) = glibc(&GLIBC_FREE, c"free") else {
        return false;
    };
    // SAFETY: glibc's own free, given a chunk its malloc handed out.
    let f: extern "C" fn(*mut libc::c_void) = unsafe { core::mem::transmute(f) };
    f(p as *mut libc::c_void);
    true
}

/// glibc's usable size of `p` if glibc handed it out.
pub fn usable(p: usize) -> Option<usize> {
    if !is_glibc_chunk(p) {
        return None;
    }
    let f = glibc(&GLIBC_USABLE, c"malloc_usable_size")?;
    // SAFETY: glibc's own malloc_usable_size, given one of its chunks.
    let f: extern "C" fn(*mut libc::c_void) -> usize = unsafe { core::mem::transmute(f) };
    Some(f(p as *mut libc::c_void))
}

/// The address of glibc's `name`: the next definition after hakmem's in
/// the lookup order: libc's.
fn glibc(slot: &AtomicUsize, name: &core::ffi::CStr) -> Option<usize> {
    let mut f = slot.load(Ordering::Acquire);
    if f == 0 {
        // SAFETY: a NUL-terminated name; dlsym may allocate (through
        // hakmem, re-entered with no hakmem lock held).
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        if f == 0 {
            f = 1;
        }
        slot.store(f, Ordering::Release);
    }
    (f != 1).then_some(f)
}

/// Where the brk heap starts (0: unknown), read once.
fn brk_heap_start() -> usize {
    static START: AtomicUsize = AtomicUsize::new(usize::MAX);
    let mut s = START.load(Ordering::Relaxed);
    if s == usize::MAX {
        s = heap_start();
        START.store(s, Ordering::Relaxed);
    }
    s
}

/// The word at `addr`, if it can be read.
fn word(addr: usize) -> Option<usize> {
    let mut b = [0u8; 8];
    read_memory(addr, &mut b).then(|| usize::from_ne_bytes(b))
}

/// Whether `p` is the start of a block glibc's malloc handed out.
fn is_glibc_chunk(p: usize) -> bool {
    if !p.is_multiple_of(16) || p < PAGE {
        return false;
    }
    let chunk = p - 16;
    let (Some(prev_size), Some(head)) = (word(chunk), word(chunk + 8)) else {
        return false;
    };
    let size = head & !FLAGS;
    if size < MIN_CHUNK || !size.is_multiple_of(16) {
        return false;
    }
    if head & IS_MMAPPED != 0 {
        // Its mapping starts prev_size bytes before it (memalign's offset).
        let Some(start) = chunk.checked_sub(prev_size) else {
            return false;
        };
        let span = prev_size.wrapping_add(size);
        return start.is_multiple_of(PAGE) && span.is_multiple_of(PAGE) && word(start + span - 8).is_some();
    }
    let end = chunk.wrapping_add(size);
    let within = if head & NON_MAIN_ARENA != 0 {
        // A thread arena's heap: heap_info { ar_ptr, prev, size, … } at its base.
        let heap = chunk & !(ARENA_HEAP - 1);
        word(heap + 16).is_some_and(|len| len <= ARENA_HEAP && end < heap + len)
    } else {
        let start = brk_heap_start();
        start != 0 && chunk >= start && end < program_break()
    };
    // The next chunk's header says this one is in use.
    within && word(end + 8).is_some_and(|next| next & PREV_INUSE != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_chunks_are_recognised_and_nothing_else() {
        // Unit tests run on the system malloc: these are glibc's.
        // SAFETY: plain libc allocations, freed below.
        let (small, big) = unsafe { (libc::malloc(100) as usize, libc::malloc(8 << 20) as usize) };
        assert!(is_glibc_chunk(small) && is_glibc_chunk(big));
        assert!(!is_glibc_chunk(small + 16), "inside a block");
        assert!(!is_glibc_chunk(small + 1), "misaligned");
        let local = [0u64; 8];
        assert!(!is_glibc_chunk(local.as_ptr() as usize + 32), "the stack");
        assert!(!is_glibc_chunk(0x10), "unmapped");
        assert!(!is_glibc_chunk(0x7fff_ffff_0000), "unmapped");
        let thread = std::thread::spawn(|| {
            // SAFETY: as above.
            unsafe { libc::malloc(300) as usize }
        });
        let arena = thread.join().unwrap();
        assert!(is_glibc_chunk(arena), "a thread arena's block");
        assert!(usable(small).is_some_and(|n| n >= 100));
        assert!(free(small) && free(big) && free(arena));
    }
}
