//! C++'s operator new and delete in all their forms, so that a C++
//! program's allocations take hakmem's fast paths directly instead of
//! libstdc++'s wrappers around malloc and free. When there is no memory,
//! new hands over (a tail call, so that no Rust frame is left below it) to
//! `cxx_new.c`, which calls the new-handler and throws std::bad_alloc. The
//! size given to a sized delete is not needed to find the block, and is not
//! trusted.

use core::ffi::c_void;

use super as api;
use crate::alloc;

extern "C" {
    fn hak_cxx_new_failed(
        size: usize,
        align: usize,
        nothrow: i32,
        retry: extern "C" fn(usize, usize) -> *mut c_void,
    ) -> *mut c_void;
}

/// An allocation for new: `align` 0 is new's default alignment (malloc's).
#[inline(always)]
fn allocate(size: usize, align: usize) -> *mut c_void {
    let p = if align == 0 { alloc::malloc(size) } else { alloc::aligned(align, size) };
    p.cast()
}

/// The C side's retry after each new-handler call.
extern "C" fn retry(size: usize, align: usize) -> *mut c_void {
    allocate(size, align)
}

#[inline(always)]
fn new(size: usize, align: usize, nothrow: bool) -> *mut c_void {
    let p = allocate(size, align);
    if !p.is_null() {
        return p;
    }
    // SAFETY: a plain C function; it returns a block, null (nothrow), or
    // throws out of this function's caller (this call is in tail position).
    unsafe { hak_cxx_new_failed(size, align, nothrow as i32, retry) }
}

/// `std::nothrow_t` and `std::align_val_t` as they are passed.
type Nothrow = *const c_void;
type Align = usize;

export!(_Znwm, _Znam => (size: usize) -> *mut c_void { new(size, 0, false) });
export!(_ZnwmRKSt9nothrow_t, _ZnamRKSt9nothrow_t => (size: usize, _nt: Nothrow) -> *mut c_void {
    new(size, 0, true)
});
export!(_ZnwmSt11align_val_t, _ZnamSt11align_val_t => (size: usize, align: Align) -> *mut c_void {
    new(size, align, false)
});
export!(_ZnwmSt11align_val_tRKSt9nothrow_t, _ZnamSt11align_val_tRKSt9nothrow_t =>
    (size: usize, align: Align, _nt: Nothrow) -> *mut c_void { new(size, align, true) });

export!(_ZdlPv, _ZdaPv => (p: *mut c_void) { api::free(p, "operator delete") });
export!(_ZdlPvm, _ZdaPvm => (p: *mut c_void, _size: usize) { api::free(p, "operator delete") });
export!(_ZdlPvRKSt9nothrow_t, _ZdaPvRKSt9nothrow_t => (p: *mut c_void, _nt: Nothrow) {
    api::free(p, "operator delete")
});
export!(_ZdlPvSt11align_val_t, _ZdaPvSt11align_val_t => (p: *mut c_void, _align: Align) {
    api::free(p, "operator delete")
});
export!(_ZdlPvmSt11align_val_t, _ZdaPvmSt11align_val_t => (p: *mut c_void, _size: usize, _align: Align) {
    api::free(p, "operator delete")
});
export!(_ZdlPvSt11align_val_tRKSt9nothrow_t, _ZdaPvSt11align_val_tRKSt9nothrow_t =>
    (p: *mut c_void, _align: Align, _nt: Nothrow) { api::free(p, "operator delete") });
