//! The standard allocation functions and the `__libc_*` names glibc routes
//! its own calls through, all defined here (a Rust cdylib would not re-export
//! them from linked C code). Each is one call into `api`.

use core::ffi::c_void;

use super as api;
use super::introspect;

#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    api::malloc(size)
}

#[no_mangle]
pub extern "C" fn free(p: *mut c_void) {
    api::free(p, "free")
}

#[no_mangle]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    api::calloc(n, size)
}

#[no_mangle]
pub extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    api::realloc(p, size, "realloc")
}

#[no_mangle]
pub extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    api::reallocarray(p, n, size)
}

#[no_mangle]
pub extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    api::posix_memalign(out, align, size)
}

#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    api::aligned_alloc(align, size)
}

#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    api::memalign(align, size)
}

#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    api::valloc(size)
}

#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    api::pvalloc(size)
}

#[no_mangle]
pub extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    api::usable_size(p, "malloc_usable_size")
}

#[no_mangle]
pub extern "C" fn cfree(p: *mut c_void) {
    api::free(p, "free")
}

#[no_mangle]
pub extern "C" fn free_sized(p: *mut c_void, _size: usize) {
    api::free(p, "free")
}

#[no_mangle]
pub extern "C" fn free_aligned_sized(p: *mut c_void, _align: usize, _size: usize) {
    api::free(p, "free")
}

#[no_mangle]
pub extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    api::malloc(size)
}

#[no_mangle]
pub extern "C" fn __libc_free(p: *mut c_void) {
    api::free(p, "free")
}

#[no_mangle]
pub extern "C" fn __libc_calloc(n: usize, size: usize) -> *mut c_void {
    api::calloc(n, size)
}

#[no_mangle]
pub extern "C" fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    api::realloc(p, size, "realloc")
}

#[no_mangle]
pub extern "C" fn __libc_memalign(align: usize, size: usize) -> *mut c_void {
    api::memalign(align, size)
}

#[no_mangle]
pub extern "C" fn __libc_valloc(size: usize) -> *mut c_void {
    api::valloc(size)
}

#[no_mangle]
pub extern "C" fn __libc_pvalloc(size: usize) -> *mut c_void {
    api::pvalloc(size)
}

#[no_mangle]
pub extern "C" fn __posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    api::posix_memalign(out, align, size)
}

#[no_mangle]
pub extern "C" fn malloc_trim(pad: usize) -> i32 {
    introspect::malloc_trim(pad)
}

#[no_mangle]
pub extern "C" fn malloc_stats() {
    introspect::malloc_stats()
}

#[no_mangle]
pub extern "C" fn mallinfo2() -> introspect::MallInfo2 {
    introspect::mallinfo2()
}

#[no_mangle]
pub extern "C" fn mallinfo() -> introspect::MallInfo {
    introspect::mallinfo()
}

/// # Safety
/// `fp` is a valid `FILE *` open for writing (the C contract).
#[no_mangle]
pub unsafe extern "C" fn malloc_info(options: i32, fp: *mut libc::FILE) -> i32 {
    introspect::malloc_info(options, fp)
}
