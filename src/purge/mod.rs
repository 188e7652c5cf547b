//! Giving memory back: the one place that decides what is due and runs it,
//! for every tier (slabs and SuperSlabs in the registry, pool runs and
//! regions, cached big ranges, the slot pages of pooled heaps) and for the
//! trims of grown thread caches, which it asks their owners for. Each tier
//! keeps its own due time (`due::Due`) and knows how to purge itself; this
//! module asks them.
//!
//! Purges run from three places: the background purge thread (`purger`),
//! which sleeps until the earliest due time, so a program that stops
//! calling malloc, or only hits its thread cache, still gets its memory
//! back after the purge delay; the threads' slow paths (`maybe_purge`, a
//! few loads while nothing is due), which cover programs where the thread
//! is off or cannot start, and whose caller (`alloc`) starts the thread
//! when memory waits; and malloc_trim (`trim`), which takes
//! everything now. When the kernel refuses a mapping, the caller gives
//! back everything cached (`release_for_retry`) and asks once more.

pub mod purger;

use core::sync::atomic::{AtomicU64, Ordering};

use crate::large;
use crate::os::clock::now_ms;
use crate::slab::registry;
use crate::sync::due;
use crate::thread::heap::CACHE_TRIM_DUE;
use crate::thread::{lifecycle, tls};

/// The earliest due time of any tier (`due::NEVER`: nothing waits).
#[inline]
pub fn next_due() -> u64 {
    memory_due().min(CACHE_TRIM_DUE.get())
}

/// The earliest due time of the tiers that hold free memory (cache trims
/// aside): only memory waiting to go back starts the purge thread, so a
/// program whose caches merely grew (most programs, soon) does not get one
/// for that alone; their trims are asked from the slow paths meanwhile.
#[inline]
fn memory_due() -> u64 {
    registry::PURGE_DUE.get().min(large::purge_due()).min(lifecycle::PURGE_DUE.get())
}

/// Runs what is due at `now` (everything when `force`); true if anything
/// was given back.
pub fn run(now: u64, force: bool) -> bool {
    let slabs = registry::purge(now, force);
    if lifecycle::ask_trims(now, force) {
        // A thread whose calls all hit its cache would not hear the ask
        // until its next slow path: its next free into each SuperSlab
        // takes the slow way now.
        registry::knock_all();
    }
    let heaps = lifecycle::purge_pooled(now, force);
    let released = large::purge(now, force) | slabs | heaps;
    if released {
        PURGES.fetch_add(1, Ordering::Relaxed);
    }
    released
}

/// Purge runs that gave memory back.
static PURGES: AtomicU64 = AtomicU64::new(0);

pub fn purges() -> u64 {
    PURGES.load(Ordering::Relaxed)
}

/// A slow path's look: runs the purges that are due (a few loads while
/// nothing is). True if memory waits to go back: the purge thread should
/// run then, and a caller that may start it does (`purger::start`).
#[inline]
pub fn maybe_purge() -> bool {
    let memory = memory_due();
    let due = memory.min(CACHE_TRIM_DUE.get());
    if due == due::NEVER {
        return false;
    }
    let now = now_ms();
    if now < due {
        return memory != due::NEVER;
    }
    run(now, false);
    memory_due() != due::NEVER
}

/// malloc_trim: the calling thread's cached blocks (other threads' caches
/// are theirs alone), then everything free in every tier, now. True if any
/// memory was given back.
pub fn trim() -> bool {
    let heap = tls::heap();
    let mut released = false;
    if heap != tls::sentinel() {
        // SAFETY: a live TLS heap belongs to this thread alone.
        released |= unsafe { (*heap).flush_all() };
    }
    run(now_ms(), true) | released
}

/// A mapping failed: everything cached goes back to the kernel (under
/// `ulimit -v` the address space the caches hold is what the next mapping
/// needs); true if anything did, and the caller asks once more. Called
/// with no hakmem lock held.
pub fn release_for_retry() -> bool {
    run(now_ms(), true)
}
