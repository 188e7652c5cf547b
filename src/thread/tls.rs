//! The thread pointer. `hak_tls` is defined in tls.c as initial-exec TLS;
//! Rust reaches it with a GOTTPOFF load plus %fs, the same two instructions a
//! C compiler emits, because stable Rust cannot declare such a variable.

use core::arch::asm;

use crate::thread::heap::Heap;

/// A thread as hakmem sees it (tls.c starts every thread at 0, New).
#[repr(usize)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ThreadState {
    /// Not set up yet: its heap is the sentinel.
    New = 0,
    /// Inside hakmem's own set-up: nested calls go to the bootstrap arena.
    Busy = 1,
    /// Set up, on its own heap.
    Live = 2,
    /// Its heap was handed back at thread exit; late calls take the shared path.
    Gone = 3,
}

#[repr(C)]
pub struct Tls {
    pub heap: *mut Heap,
    pub state: ThreadState,
}

#[cfg_attr(loom, allow(improper_ctypes))] // loom atomics inside Heap are not FFI types
extern "C" {
    // Thread-local in reality: only ever named through `sym` in the asm below.
    static mut hak_tls: Tls;
}

/// The empty heap every thread starts with: all bins have count 0 and cap 0,
/// so every cache operation misses and the miss sets the thread up.
#[repr(C)]
pub struct Sentinel(Heap);
// SAFETY: never written (every path checks for it before writing a heap).
unsafe impl Sync for Sentinel {}

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static hak_sentinel_heap: Sentinel = Sentinel(Heap::EMPTY);

#[inline(always)]
pub fn sentinel() -> *mut Heap {
    &hak_sentinel_heap.0 as *const Heap as *mut Heap
}

/// This thread's Tls record.
#[inline(always)]
pub fn current() -> *mut Tls {
    let p: usize;
    // SAFETY: reads the GOT slot holding hak_tls's offset from the thread
    // pointer and adds the thread pointer (stored at %fs:0); no side effects.
    unsafe {
        asm!(
            "mov {p}, qword ptr [rip + {v}@GOTTPOFF]",
            "add {p}, qword ptr fs:[0]",
            v = sym hak_tls,
            p = out(reg) p,
            options(pure, readonly, nostack),
        );
    }
    p as *mut Tls
}

/// This thread's heap (the sentinel until the thread is set up).
#[inline(always)]
pub fn heap() -> *mut Heap {
    let p: *mut Heap;
    // SAFETY: as for `current`, loading the first field of hak_tls directly.
    unsafe {
        asm!(
            "mov {p}, qword ptr [rip + {v}@GOTTPOFF]",
            "mov {p}, qword ptr fs:[{p}]",
            v = sym hak_tls,
            p = out(reg) p,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    p
}
