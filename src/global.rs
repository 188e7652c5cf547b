//! `HakMem`: hakmem as a Rust global allocator, on the same core as the C
//! exports (`#[global_allocator] static A: hakmem::HakMem = hakmem::HakMem;`).
//! `realloc` and `alloc_zeroed` go to hakmem's own realloc and calloc paths
//! rather than the trait's allocate-copy-free defaults.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

use crate::alloc;

/// The allocator; a unit struct, so it can be a `static`.
pub struct HakMem;

/// Alignment every malloc block has (the 8-byte class is only 8-aligned).
const MALLOC_ALIGN: usize = 8;

// SAFETY: every block comes from hakmem's core, which hands out distinct,
// suitably aligned blocks of at least the requested size, and takes back
// exactly the blocks it handed out.
unsafe impl GlobalAlloc for HakMem {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            alloc::malloc(layout.size())
        } else {
            alloc::aligned(layout.align(), layout.size())
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        alloc::free(p, "dealloc");
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            return alloc::calloc(1, layout.size());
        }
        let p = alloc::aligned(layout.align(), layout.size());
        if !p.is_null() {
            // SAFETY: p has at least layout.size() bytes.
            ptr::write_bytes(p, 0, layout.size());
        }
        p
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // new_size > 0 by the trait's contract, as alloc::realloc needs.
            return alloc::realloc(p, new_size, "realloc");
        }
        // SAFETY: the caller's layout with the new size is valid per the
        // trait's contract.
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let q = self.alloc(new_layout);
        if !q.is_null() {
            // SAFETY: both blocks have at least min(old, new) bytes.
            ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
            self.dealloc(p, layout);
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_honoured() {
        let a = HakMem;
        for align in [1usize, 8, 16, 64, 4096, 1 << 21] {
            for size in [1usize, 24, 1000, 40_000, 3 << 20] {
                let l = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; blocks freed with their layout.
                unsafe {
                    let p = a.alloc_zeroed(l);
                    assert!(!p.is_null() && (p as usize).is_multiple_of(align));
                    assert!((0..size).all(|i| *p.add(i) == 0));
                    ptr::write_bytes(p, 7, size);
                    let q = a.realloc(p, l, size * 2);
                    assert!(!q.is_null() && (q as usize).is_multiple_of(align));
                    assert!((0..size).all(|i| *q.add(i) == 7));
                    a.dealloc(q, Layout::from_size_align(size * 2, align).unwrap());
                }
            }
        }
    }
}
