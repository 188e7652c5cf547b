//! The C ABI: thin shells over `alloc` that add the C contract (errno,
//! argument checks). `exports` replaces the standard functions (not in unit
//! tests, whose harness keeps the system malloc); `hak` is the prefixed API.

/// Defines an exported C function under each name given, all with the one
/// signature and body:
/// `export!(malloc, __libc_malloc => (size: usize) -> *mut c_void { … });`
macro_rules! export {
    ($name:ident $(, $more:ident)* => $($sig:tt)*) => {
        #[no_mangle]
        pub extern "C" fn $name $($sig)*
        export!($($more),* => $($sig)*);
    };
    (=> $($sig:tt)*) => {};
}

#[cfg(not(test))]
mod cxx;
#[cfg(not(test))]
mod exports;
pub mod hak;
pub mod introspect;

use core::ffi::c_void;
use errno::{errno, set_errno, Errno};

use crate::alloc;
use crate::os::{align_up, PAGE};

#[inline(always)]
fn null_with(code: i32) -> *mut c_void {
    set_errno(Errno(code));
    core::ptr::null_mut()
}

/// alloc::malloc sets errno itself (so that this is a tail call).
#[inline(always)]
pub fn malloc(size: usize) -> *mut c_void {
    alloc::malloc(size) as *mut c_void
}

/// alloc::free takes null too (its slow path ignores it).
#[inline(always)]
pub fn free(p: *mut c_void, who: &str) {
    alloc::free(p as *mut u8, who);
}

pub fn calloc(n: usize, size: usize) -> *mut c_void {
    alloc::or_enomem(alloc::calloc(n, size)).cast()
}

pub fn realloc(p: *mut c_void, size: usize, who: &str) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // glibc frees and returns NULL here.
        free(p, who);
        return core::ptr::null_mut();
    }
    alloc::or_enomem(alloc::realloc(p as *mut u8, size, who)).cast()
}

pub fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => realloc(p, total, "realloc"),
        None => null_with(libc::ENOMEM),
    }
}

pub fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        return null_with(libc::EINVAL);
    }
    alloc::or_enomem(alloc::aligned(align, size)).cast()
}

pub fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    if !align.is_power_of_two() || align < core::mem::size_of::<usize>() {
        return libc::EINVAL;
    }
    let saved = errno();
    let p = alloc::aligned(align, size);
    if p.is_null() {
        set_errno(saved);
        return libc::ENOMEM;
    }
    // SAFETY: the caller passes a writable out-pointer (the C contract).
    unsafe { *out = p as *mut c_void };
    0
}

/// memalign as glibc does it: an alignment that is not a power of two is
/// rounded up to one; an impossible one is EINVAL.
pub fn memalign(align: usize, size: usize) -> *mut c_void {
    if align > usize::MAX / 2 + 1 {
        return null_with(libc::EINVAL);
    }
    alloc::or_enomem(alloc::aligned(align.next_power_of_two(), size)).cast()
}

pub fn valloc(size: usize) -> *mut c_void {
    alloc::or_enomem(alloc::aligned(PAGE, size)).cast()
}

pub fn pvalloc(size: usize) -> *mut c_void {
    if size > usize::MAX - PAGE {
        return null_with(libc::ENOMEM);
    }
    alloc::or_enomem(alloc::aligned(PAGE, align_up(size, PAGE))).cast()
}

pub fn usable_size(p: *const c_void, who: &str) -> usize {
    if p.is_null() {
        return 0;
    }
    alloc::usable_size(p as *const u8, who)
}
