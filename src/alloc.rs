//! Where every allocation call goes. The fast paths (a cache hit in malloc,
//! room in the cache in free) are inlined into the exported functions; the
//! rest of this file is the first stop of every miss.

use core::ptr;

use crate::bootstrap;
use crate::diag;
use crate::large::big;
use crate::os::pagemap;
use crate::slab::size_class::{class_of, CLASS_SIZE, MAX_SMALL, NUM_CLASSES};
use crate::slab::superslab;
use crate::thread::heap::give_back_remote;
use crate::thread::lifecycle::{thread_init, with_orphan_heap};
use crate::thread::tls::{self, BUSY, NEW};

/// malloc without errno: null means no memory.
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    if size <= MAX_SMALL {
        return malloc_class(class_of(size));
    }
    big::alloc(size, 0).0
}

#[inline(always)]
fn malloc_class(c: usize) -> *mut u8 {
    let heap = tls::heap();
    // SAFETY: the TLS heap is this thread's own (or the read-only-in-practice
    // sentinel, whose bins are empty so pop does not write); c < NUM_CLASSES.
    let p = unsafe { (*heap).bins.get_unchecked_mut(c).pop() };
    if !p.is_null() {
        return p;
    }
    malloc_miss(c)
}

#[cold]
#[inline(never)]
fn malloc_miss(c: usize) -> *mut u8 {
    let t = tls::current();
    // SAFETY: t is this thread's record.
    let (heap, state) = unsafe { ((*t).heap, (*t).state) };
    if heap != tls::sentinel() {
        // SAFETY: a live heap belongs to this thread alone.
        return unsafe { (*heap).refill(c) };
    }
    match state {
        NEW => {
            if thread_init(t) {
                malloc_class(c)
            } else {
                ptr::null_mut()
            }
        }
        BUSY => {
            // Blocks of a class are aligned to the size's power-of-two factor.
            let size = CLASS_SIZE[c] as usize;
            bootstrap::alloc(size, size & size.wrapping_neg())
        }
        _ => with_orphan_heap(|h| match h {
            Some(h) => {
                let p = h.bins[c].pop();
                if p.is_null() {
                    h.refill(c)
                } else {
                    p
                }
            }
            None => ptr::null_mut(),
        }),
    }
}

/// free of a non-null pointer. `who` names the C function for reports.
#[inline(always)]
pub fn free(p: *mut u8, who: &str) {
    let a = p as usize;
    if pagemap::kind(a) == pagemap::SUPERSLAB {
        if let Some(c) = superslab::block_class(a) {
            let heap = tls::heap();
            // SAFETY: as in malloc_class.
            if unsafe { (*heap).bins.get_unchecked_mut(c).push(p) } {
                return;
            }
            return free_small_miss(p, c);
        }
    }
    free_other(p, who)
}

#[cold]
#[inline(never)]
fn free_small_miss(p: *mut u8, c: usize) {
    let t = tls::current();
    // SAFETY: t is this thread's record.
    let (heap, state) = unsafe { ((*t).heap, (*t).state) };
    if heap != tls::sentinel() {
        // SAFETY: a live heap belongs to this thread alone.
        return unsafe { (*heap).overflow(c, p) };
    }
    // A thread that only frees still gets a cache: it batches the CASes.
    if state == NEW && thread_init(t) {
        return free(p, "free");
    }
    give_back_remote(p);
}

/// free of anything that is not a valid slab block.
#[cold]
#[inline(never)]
fn free_other(p: *mut u8, who: &str) {
    let a = p as usize;
    match pagemap::kind(a) {
        pagemap::BOOTSTRAP => {}
        k if k >= pagemap::BIG_HEAD => match big::header_of(a, k) {
            Some(h) => big::free(h),
            None => diag::invalid_pointer(who, a),
        },
        _ => diag::invalid_pointer(who, a),
    }
}

/// Usable size of a live block; reports and aborts if `p` is not one.
pub fn usable_size(p: *const u8, who: &str) -> usize {
    let a = p as usize;
    match pagemap::kind(a) {
        pagemap::SUPERSLAB => match superslab::block_class(a) {
            Some(c) => CLASS_SIZE[c] as usize,
            None => diag::invalid_pointer(who, a),
        },
        pagemap::BOOTSTRAP => bootstrap::usable(p),
        k if k >= pagemap::BIG_HEAD => match big::header_of(a, k) {
            Some(h) => big::usable(h),
            None => diag::invalid_pointer(who, a),
        },
        _ => diag::invalid_pointer(who, a),
    }
}

/// A block of `size` bytes aligned to `align` (a power of two); null if
/// impossible or out of memory.
pub fn aligned(align: usize, size: usize) -> *mut u8 {
    if align <= 8 {
        return malloc(size);
    }
    if size <= MAX_SMALL && align <= MAX_SMALL {
        // Blocks of a class are aligned to its size's largest power-of-two
        // factor (slabs start 64 KiB-aligned), so find a class it divides.
        let mut c = class_of(size.max(align));
        while c < NUM_CLASSES {
            if CLASS_SIZE[c] as usize % align == 0 {
                return malloc_class(c);
            }
            c += 1;
        }
    }
    big::alloc(size, align).0
}

/// calloc without errno: n * size zeroed bytes; null on overflow or no memory.
pub fn calloc(n: usize, size: usize) -> *mut u8 {
    let Some(total) = n.checked_mul(size) else {
        return ptr::null_mut();
    };
    if total > MAX_SMALL {
        let (p, fresh) = big::alloc(total, 0);
        if !p.is_null() && !fresh {
            // SAFETY: p has at least total bytes.
            unsafe { ptr::write_bytes(p, 0, total) };
        }
        return p;
    }
    let p = malloc(total);
    if !p.is_null() {
        // SAFETY: p has at least total bytes.
        unsafe { ptr::write_bytes(p, 0, total) };
    }
    p
}

/// realloc of a non-null block to a non-zero size; null (old block intact)
/// when out of memory.
pub fn realloc(p: *mut u8, size: usize, who: &str) -> *mut u8 {
    let old = usable_size(p, who);
    // Keep the block when it fits and would not waste more than half of it.
    if size <= old && size > old / 2 {
        return p;
    }
    let q = malloc(size);
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks have at least min(old, size) bytes and are distinct.
    unsafe { ptr::copy_nonoverlapping(p, q, old.min(size)) };
    free(p, who);
    q
}
