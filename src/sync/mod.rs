//! Synchronisation that allocates nothing: the one lock hakmem uses on its
//! global (never per-operation) paths, here, and the due times the tiers
//! keep for the purge thread (`due`).
//!
//! The lock is a spin lock that yields the CPU when it has to wait, so a
//! holder preempted on a 2-core machine gets to finish. It can be reset in
//! a forked child.

pub mod due;

use core::sync::atomic::{AtomicBool, Ordering};

pub struct SpinLock {
    locked: AtomicBool,
}

pub struct Guard<'a> {
    lock: &'a SpinLock,
}

impl SpinLock {
    pub const fn new() -> Self {
        SpinLock { locked: AtomicBool::new(false) }
    }

    #[inline]
    pub fn lock(&self) -> Guard<'_> {
        self.acquire();
        Guard { lock: self }
    }

    /// Takes the lock without a guard (fork's prepare handler holds it across
    /// the fork and releases it in the parent or resets it in the child).
    pub fn acquire(&self) {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            if spins < 64 {
                core::hint::spin_loop();
                spins += 1;
            } else {
                crate::os::process::yield_now();
            }
        }
    }

    pub fn release(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.lock.release();
    }
}
