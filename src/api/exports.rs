//! The standard allocation functions and the `__libc_*` names glibc routes
//! its own calls through, all defined here (a Rust cdylib would not re-export
//! them from linked C code). Each is one call into `api`.

use core::ffi::c_void;

use super as api;
use super::introspect;

export!(malloc, __libc_malloc => (size: usize) -> *mut c_void { api::malloc(size) });
export!(free, cfree, __libc_free => (p: *mut c_void) { api::free(p, "free") });
export!(calloc, __libc_calloc => (n: usize, size: usize) -> *mut c_void { api::calloc(n, size) });
export!(realloc, __libc_realloc => (p: *mut c_void, size: usize) -> *mut c_void {
    api::realloc(p, size, "realloc")
});
export!(reallocarray => (p: *mut c_void, n: usize, size: usize) -> *mut c_void { api::reallocarray(p, n, size) });
export!(posix_memalign, __posix_memalign => (out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    api::posix_memalign(out, align, size)
});
export!(aligned_alloc => (align: usize, size: usize) -> *mut c_void { api::aligned_alloc(align, size) });
export!(memalign, __libc_memalign => (align: usize, size: usize) -> *mut c_void { api::memalign(align, size) });
export!(valloc, __libc_valloc => (size: usize) -> *mut c_void { api::valloc(size) });
export!(pvalloc, __libc_pvalloc => (size: usize) -> *mut c_void { api::pvalloc(size) });
export!(malloc_usable_size => (p: *mut c_void) -> usize { api::usable_size(p, "malloc_usable_size") });
// C23's sized frees: the size is not needed to find the block.
export!(free_sized => (p: *mut c_void, _size: usize) { api::free(p, "free") });
export!(free_aligned_sized => (p: *mut c_void, _align: usize, _size: usize) { api::free(p, "free") });
export!(malloc_trim => (pad: usize) -> i32 { introspect::malloc_trim(pad) });
export!(malloc_stats => () { introspect::malloc_stats() });
export!(mallinfo2 => () -> introspect::MallInfo2 { introspect::mallinfo2() });
export!(mallinfo => () -> introspect::MallInfo { introspect::mallinfo() });

/// # Safety
/// `fp` is a valid `FILE *` open for writing (the C contract).
#[no_mangle]
pub unsafe extern "C" fn malloc_info(options: i32, fp: *mut libc::FILE) -> i32 {
    introspect::malloc_info(options, fp)
}
