//! When a tier's next purge is due, and the wake-up that tells the purge
//! thread. A leaf: the tiers (slab registry, pool, BigCache) each keep a
//! `Due` and note into it when memory starts waiting; the purge thread
//! sleeps until the earliest one, or until a tier that was quiet notes a
//! time (`Due::note` wakes it then, so it never sleeps through a purge).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::os::process;

/// No purge waits.
pub const NEVER: u64 = u64::MAX;

/// A tier's next due time in `now_ms` milliseconds (NEVER: nothing waits).
pub struct Due(AtomicU64);

impl Due {
    pub const fn new() -> Due {
        Due(AtomicU64::new(NEVER))
    }

    /// One load: what the slow paths and the purge thread poll.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Whether a purge is due at `now` (always when `force`).
    #[inline]
    pub fn reached(&self, now: u64, force: bool) -> bool {
        force || now >= self.get()
    }

    /// Memory starts waiting until `at`: the due time becomes the earlier of
    /// the two, and the purge thread is woken if nothing waited before.
    pub fn note(&self, at: u64) {
        if self.0.fetch_min(at, Ordering::SeqCst) == NEVER && at != NEVER {
            wake();
        }
    }

    /// After a purge: the tier's next due time, recomputed.
    pub fn set(&self, at: u64) {
        if self.0.swap(at, Ordering::SeqCst) == NEVER && at != NEVER {
            wake();
        }
    }
}

/// Bumped by every wake-up; the purge thread sleeps on it (a futex word).
static SEQ: AtomicU32 = AtomicU32::new(0);
/// Set while the purge thread sleeps or is about to.
static SLEEPING: AtomicBool = AtomicBool::new(false);

/// Wakes the purge thread if it sleeps. SeqCst pairs with `prepare_sleep`:
/// either the thread sees the new due time (or whatever else it looks at
/// after `prepare_sleep`) before it sleeps, or this sees it sleeping and
/// bumps the word it waits on.
pub fn wake() {
    if SLEEPING.load(Ordering::SeqCst) {
        SEQ.fetch_add(1, Ordering::SeqCst);
        process::futex_wake(&SEQ);
    }
}

/// The purge thread, before it reads the due times it will sleep on:
/// returns the word to pass to `sleep`.
pub fn prepare_sleep() -> u32 {
    let seq = SEQ.load(Ordering::SeqCst);
    SLEEPING.store(true, Ordering::SeqCst);
    seq
}

/// Sleeps until woken (or `ms` milliseconds, when not NEVER), unless a
/// wake-up came since `prepare_sleep` returned `seq`.
pub fn sleep(seq: u32, ms: u64) {
    let ts = libc::timespec { tv_sec: (ms / 1000) as libc::time_t, tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long };
    process::futex_wait(&SEQ, seq, if ms == NEVER { None } else { Some(&ts) });
    SLEEPING.store(false, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_time_wins_and_set_replaces_it() {
        let d = Due::new();
        assert_eq!(d.get(), NEVER);
        d.note(500);
        d.note(900);
        assert_eq!(d.get(), 500);
        d.set(NEVER);
        assert_eq!(d.get(), NEVER);
    }

    #[test]
    fn a_note_wakes_a_sleeper() {
        static D: Due = Due::new();
        let t = std::thread::spawn(|| {
            // The purge thread's protocol: announce, look, then sleep.
            let seq = prepare_sleep();
            if D.get() == NEVER {
                sleep(seq, NEVER);
            }
        });
        // Whether the note comes before or after the thread sleeps, the
        // thread must return (a lost wake-up would hang this test).
        std::thread::sleep(std::time::Duration::from_millis(20));
        D.note(1);
        t.join().unwrap();
    }
}
