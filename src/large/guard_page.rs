//! Hardened mode's guard pages: a page no access may touch just past the
//! tail of every pool and big block, so an overflow that runs beyond the
//! tail faults at once instead of writing over whatever lies next; the
//! fault handler installed at set-up says what happened before the process
//! dies (and names an access to a freed big block, `quarantine.rs`, or to
//! a malloc(0) block, `zero_size.rs`, too).

use core::cell::UnsafeCell;
use core::mem;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::diag;
use crate::large::zero_size;
use crate::os::{self, pagemap::{self, REGION_SIZE}};

/// Forbids every access to the page at `at`; false if the kernel refused.
pub fn protect(at: usize) -> bool {
    set_protection(at, libc::PROT_NONE)
}

/// Makes the page at `at` ordinary memory again (before its block is freed).
pub fn unprotect(at: usize) {
    set_protection(at, libc::PROT_READ | libc::PROT_WRITE);
}

fn set_protection(at: usize, prot: i32) -> bool {
    // SAFETY: `at` is a page of a pool run or big mapping hakmem holds for a
    // live block, past its bytes: no one else's memory changes protection.
    unsafe { libc::mprotect(at as *mut libc::c_void, crate::os::PAGE, prot) == 0 }
}

/// The action before ours (zeroed: SIG_DFL until `install` sets it).
// SAFETY: all-zero bytes are a valid sigaction.
static PREVIOUS: Previous = Previous(UnsafeCell::new(unsafe { mem::zeroed() }));
static INSTALLED: AtomicBool = AtomicBool::new(false);

struct Previous(UnsafeCell<libc::sigaction>);
// SAFETY: written once, by `install`, before any guard page exists (and so
// before the handler can run); read only by the handler afterwards.
unsafe impl Sync for Previous {}

/// Installs the SIGSEGV handler that reports a fault on a guard page (once;
/// a handler the program installs later replaces it).
pub fn install_fault_handler() {
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the
    // handler is an extern "C" fn that lives as long as the process, and
    // sigaction allocates nothing.
    unsafe {
        let mut act: libc::sigaction = mem::zeroed();
        act.sa_sigaction = on_fault as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigaction(libc::SIGSEGV, &act, PREVIOUS.0.get());
    }
}

/// A fault on a page of a pool region or a big block can only be a guard
/// page (the rest is ordinary memory); one on unmapped memory in the region
/// after a big block's last is an overflow that jumped its guard page; one
/// in the region before a region of blocks an underflow that started below
/// a block; one on a freed big block's range (`quarantine.rs`) a use after
/// free; one in the malloc(0) region an access to a block with no bytes:
/// reported, then abort. Any other fault puts the previous action back and
/// returns, so the faulting access runs again under it (by default: the
/// usual crash).
extern "C" fn on_fault(_sig: i32, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    match pagemap::kind(addr) {
        pagemap::FREED_BIG => diag::fault("use after free", addr, "a freed big block"),
        pagemap::ZERO_SIZE => diag::zero_size_access(addr, zero_size::block_at(addr)),
        k if pagemap::is_big(k) || k == pagemap::POOL => {
            diag::fault("heap overflow", addr, "the guard page past the end of a block")
        }
        pagemap::NONE if follows_big_block(addr) => {
            diag::fault("heap overflow", addr, "past the end of a big block's mapping")
        }
        pagemap::NONE if precedes_blocks(addr) => {
            diag::fault("heap underflow", addr, "unmapped memory just before a region of heap blocks")
        }
        _ => {}
    }
    // SAFETY: PREVIOUS was written before any guard page existed and holds
    // an action sigaction returned (or SIG_DFL); sigaction is
    // async-signal-safe.
    unsafe { libc::sigaction(libc::SIGSEGV, PREVIOUS.0.get(), ptr::null_mut()) };
}

/// Whether `addr` is unmapped and in the region right after one holding a
/// big block: where an overflow of it that jumped its guard page lands (a
/// mapped page there is somebody else's, such as a thread stack's guard).
fn follows_big_block(addr: usize) -> bool {
    pagemap::is_big(pagemap::kind(addr.wrapping_sub(REGION_SIZE))) && os::is_unmapped(addr)
}

/// Whether `addr` is unmapped and in the region right before one holding
/// blocks (slabs, pool runs or a big block's start): where a long underflow
/// of a block, written upwards, starts.
fn precedes_blocks(addr: usize) -> bool {
    let above = pagemap::kind(addr.wrapping_add(REGION_SIZE));
    let blocks = matches!(above, pagemap::SUPERSLAB | pagemap::POOL) || above >= pagemap::BIG_HEAD;
    blocks && os::is_unmapped(addr)
}
