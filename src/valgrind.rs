//! Valgrind's client requests, so that memcheck tracks hakmem's blocks as it
//! tracks glibc's: leaks, use after free, reads of uninitialised bytes.
//!
//! A request is valgrind's documented magic sequence (four rotations of
//! rdi that leave it unchanged, then `xchg rbx, rbx`, with rax pointing at
//! the request and its arguments): a no-op on a real CPU, a call into the
//! tool under valgrind. `detect` asks once at start-up; under memcheck every
//! heap runs in checked mode (`config::checked`), whose slow paths make the
//! requests, so the fast paths never test for it.

use core::sync::atomic::{AtomicBool, Ordering};

const RUNNING_ON_VALGRIND: usize = 0x1001;
const MALLOCLIKE_BLOCK: usize = 0x1301;
const FREELIKE_BLOCK: usize = 0x1302;
/// memcheck's requests start at its tool base, ('M' << 24) | ('C' << 16).
const MEMCHECK: usize = (b'M' as usize) << 24 | (b'C' as usize) << 16;
const MAKE_MEM_NOACCESS: usize = MEMCHECK;
const MAKE_MEM_DEFINED: usize = MEMCHECK + 2;

static ACTIVE: AtomicBool = AtomicBool::new(false);

/// One client request; `default` is what a real CPU leaves as the result.
#[inline(always)]
fn request(default: usize, args: [usize; 6]) -> usize {
    let mut result = default;
    // SAFETY: the rotations add up to 128 bits, leaving rdi as it was, and
    // `xchg rbx, rbx` changes nothing: on a CPU this is a no-op. Under
    // valgrind the tool reads `args` (kept alive by the reference) and may
    // write rdx.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3", "rol rdi, 13", "rol rdi, 61", "rol rdi, 51", "xchg rbx, rbx",
            inout("rdx") result,
            in("rax") args.as_ptr(),
            inout("rdi") 0usize => _,
            options(nostack),
        );
    }
    result
}

/// At start-up: are we running under memcheck? Other tools (callgrind
/// among them) answer RUNNING_ON_VALGRIND too but leave memcheck's requests
/// at their default, 0, where memcheck answers -1: they get hakmem as it
/// runs on a CPU.
pub fn detect() {
    let probe = 0u64;
    let memcheck = request(0, [RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0]) != 0
        && request(0, [MAKE_MEM_DEFINED, &probe as *const u64 as usize, 8, 0, 0, 0]) != 0;
    ACTIVE.store(memcheck, Ordering::Relaxed);
}

/// Under memcheck (the requests below are made only then).
#[inline(always)]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// `p` is a block of `size` bytes handed to the program (`zeroed`: it
/// reads as zero).
pub fn malloclike(p: *mut u8, size: usize, zeroed: bool) {
    if active() && !p.is_null() {
        request(0, [MALLOCLIKE_BLOCK, p as usize, size, 0, zeroed as usize, 0]);
    }
}

/// The program freed block `p`: it becomes inaccessible to it.
pub fn freelike(p: *mut u8) {
    if active() {
        request(0, [FREELIKE_BLOCK, p as usize, 0, 0, 0, 0]);
    }
}

/// hakmem is about to read or write `len` bytes of a free block (its
/// link): accessible, and defined, since hakmem wrote them.
#[inline(always)]
pub fn open(p: *mut u8, len: usize) {
    if active() {
        request(0, [MAKE_MEM_DEFINED, p as usize, len, 0, 0, 0]);
    }
}

/// hakmem is done with the free block's bytes: the program may not touch them.
#[inline(always)]
pub fn close(p: *mut u8, len: usize) {
    if active() {
        request(0, [MAKE_MEM_NOACCESS, p as usize, len, 0, 0, 0]);
    }
}
