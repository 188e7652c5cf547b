//! The prefixed API declared in include/hakmem.h: the same allocator under
//! names that never collide with another malloc.

use core::ffi::{c_char, c_void};

use super as api;

export!(hak_malloc => (size: usize) -> *mut c_void { api::malloc(size) });
export!(hak_free => (p: *mut c_void) { api::free(p, "hak_free") });
export!(hak_calloc => (n: usize, size: usize) -> *mut c_void { api::calloc(n, size) });
export!(hak_realloc => (p: *mut c_void, size: usize) -> *mut c_void { api::realloc(p, size, "hak_realloc") });
export!(hak_aligned_alloc => (align: usize, size: usize) -> *mut c_void { api::aligned_alloc(align, size) });
export!(hak_usable_size => (p: *const c_void) -> usize { api::usable_size(p, "hak_usable_size") });

#[no_mangle]
pub extern "C" fn hak_version() -> *const c_char {
    crate::VERSION_C.as_ptr()
}

/// Writes the statistics report to `fd`: 0, or -1 with errno set (EBADF for
/// a descriptor that is not open) when it could not be written.
#[no_mangle]
pub extern "C" fn hak_stats_print(fd: i32) -> i32 {
    // SAFETY: F_GETFD only inspects the descriptor table.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return fail(libc::EBADF);
    }
    if crate::report::print(fd) {
        0
    } else {
        -1
    }
}

/// One number of `report::Stats` by name into `*out`: 0, or -1 with errno
/// ENOENT (no such name), ENOTSUP (a count, and HAKMEM_STATS is off) or
/// EINVAL (a null argument, or a name that is not UTF-8).
#[no_mangle]
pub extern "C" fn hak_stat(name: *const c_char, out: *mut u64) -> i32 {
    if name.is_null() || out.is_null() {
        return fail(libc::EINVAL);
    }
    // SAFETY: the caller passes a NUL-terminated string (the C contract).
    let Ok(name) = unsafe { core::ffi::CStr::from_ptr(name) }.to_str() else {
        return fail(libc::EINVAL);
    };
    match crate::report::lookup(name) {
        Ok(v) => {
            // SAFETY: the caller passes a writable out-pointer.
            unsafe { *out = v };
            0
        }
        Err(crate::report::Missing::Unknown) => fail(libc::ENOENT),
        Err(crate::report::Missing::NotCounted) => fail(libc::ENOTSUP),
    }
}

/// Writes a heap profile of the sampled blocks live now to `path`: 0, or
/// -1 with errno ENOTSUP (HAKMEM_PROF is off), EINVAL (null path) or the
/// error of the write.
#[no_mangle]
pub extern "C" fn hak_prof_dump(path: *const c_char) -> i32 {
    if path.is_null() {
        return fail(libc::EINVAL);
    }
    if !crate::config::prof() {
        return fail(libc::ENOTSUP);
    }
    // SAFETY: the caller passes a NUL-terminated path (the C contract).
    if crate::prof::dump(unsafe { core::ffi::CStr::from_ptr(path) }) {
        0
    } else {
        if errno::errno().0 == 0 {
            errno::set_errno(errno::Errno(libc::EIO));
        }
        -1
    }
}

/// The C error return: -1 with errno `code`.
fn fail(code: i32) -> i32 {
    errno::set_errno(errno::Errno(code));
    -1
}

/// Gives free memory back to the kernel now: 1 if any was, else 0.
#[no_mangle]
pub extern "C" fn hak_trim() -> i32 {
    crate::purge::trim() as i32
}
