//! Opt-in statistics (HAKMEM_STATS=1). Counters are touched only on slow
//! paths, and per-class counts only in checked mode (thread/checked.rs), which
//! statistics switch on: with statistics off, the fast paths never see them.
//!
//! This module keeps the counts; `report` reads them with what every tier
//! holds, for hak_stat and the exit report.

use core::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};

use crate::config;
use crate::size_class::{CLASS_SIZE, NUM_CLASSES};

#[derive(Clone, Copy)]
pub enum Counter {
    /// Blocks handed out from slabs into thread caches.
    SlabBlocks,
    /// Blocks given back to slabs by their owner.
    SlabBlocksBack,
    /// Blocks given back to another thread's slab through its remote list.
    RemoteFrees,
    /// Chains of those sent to the owner's inbox because the slab was full.
    InboxSends,
    /// Slabs taken over from exited threads.
    Adopted,
    /// Refills served by the thread's warm slab, without a search.
    WarmSlabHits,
    BigBlocks,
    BigCacheHits,
    BigCacheMisses,
    SuperslabsMapped,
    BootstrapBlocks,
}

const N: usize = 11;
const NAMES: [&str; N] = [
    "slab_blocks",
    "slab_blocks_back",
    "remote_frees",
    "inbox_sends",
    "adopted_slabs",
    "warm_slab_hits",
    "big_blocks",
    "bigcache_hits",
    "bigcache_misses",
    "superslabs_mapped",
    "bootstrap_blocks",
];

/// What one tier holds, in bytes: mapped from the kernel, in use (slabs or
/// runs holding blocks, big blocks), and free but resident until purged.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Footprint {
    pub mapped: usize,
    pub in_use: usize,
    pub dirty: usize,
}

impl core::ops::Add for Footprint {
    type Output = Footprint;
    fn add(self, o: Footprint) -> Footprint {
        Footprint { mapped: self.mapped + o.mapped, in_use: self.in_use + o.in_use, dirty: self.dirty + o.dirty }
    }
}

static COUNTS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];

/// Per size class: mallocs, frees, the most blocks live at once, and the
/// blocks out of slabs (live, or waiting in thread caches).
struct Class {
    mallocs: AtomicU64,
    frees: AtomicU64,
    peak: AtomicU64,
    out: AtomicI64,
}

static CLASSES: [Class; NUM_CLASSES] = [const {
    Class { mallocs: AtomicU64::new(0), frees: AtomicU64::new(0), peak: AtomicU64::new(0), out: AtomicI64::new(0) }
}; NUM_CLASSES];

/// One class's counts, as `class` reads them.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ClassCounts {
    pub size: u64,
    pub mallocs: u64,
    pub frees: u64,
    pub live: u64,
    pub peak: u64,
    /// Blocks waiting in thread caches.
    pub cached: u64,
}
/// Mallocs and frees the thread cache could not serve alone (the rare case,
/// so the common one costs no shared write).
static CACHE_MISSES: AtomicU64 = AtomicU64::new(0);
/// SuperSlabs mapped now and at most: counted whether or not statistics
/// are on (mallinfo reports them; a SuperSlab is 2 MiB, so this is rare).
static LIVE_SS: AtomicI64 = AtomicI64::new(0);
static PEAK_SS: AtomicI64 = AtomicI64::new(0);

/// Where the exit report goes: a copy of stderr taken at start-up, because
/// many programs (coreutils among them) close fd 2 before they exit.
static REPORT_FD: AtomicI32 = AtomicI32::new(2);
/// Copies of stderr start at this descriptor, clear of the low numbers that
/// programs expect their own open() calls to get.
const REPORT_FD_MIN: i32 = 500;

#[inline]
pub fn add(c: Counter, n: u64) {
    if config::stats() {
        COUNTS[c as usize].fetch_add(n, Ordering::Relaxed);
    }
}

/// `n` blocks of `class` left slabs for a thread cache (negative: came
/// back to their slabs, from the owner or another thread).
#[inline]
pub fn class_out(class: usize, n: i64) {
    if config::stats() {
        if let Some(k) = CLASSES.get(class) {
            k.out.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Class `c`'s counts (zero unless statistics are on), None past the last.
pub fn class(c: usize) -> Option<ClassCounts> {
    let k = CLASSES.get(c)?;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (mallocs, frees) = (load(&k.mallocs), load(&k.frees));
    let live = mallocs.saturating_sub(frees);
    let out = k.out.load(Ordering::Relaxed).max(0) as u64;
    Some(ClassCounts {
        size: CLASS_SIZE[c] as u64,
        mallocs,
        frees,
        live,
        peak: load(&k.peak),
        cached: out.saturating_sub(live),
    })
}

pub fn count(c: Counter) -> u64 {
    COUNTS[c as usize].load(Ordering::Relaxed)
}

/// The counter named `name` (a name of the report), if any.
pub fn counter_named(name: &str) -> Option<u64> {
    let i = NAMES.iter().position(|&n| n == name)?;
    Some(COUNTS[i].load(Ordering::Relaxed))
}

/// Every counter, with its name.
pub fn counters() -> impl Iterator<Item = (&'static str, u64)> {
    NAMES.iter().zip(COUNTS.iter()).map(|(&n, c)| (n, c.load(Ordering::Relaxed)))
}

/// Mallocs and frees the thread caches served without a slow path, in
/// percent of all (0 before any).
pub fn cache_hit_percent() -> u64 {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let all: u64 = CLASSES.iter().map(|k| load(&k.mallocs) + load(&k.frees)).sum();
    percent(all.saturating_sub(load(&CACHE_MISSES)), all)
}

/// SuperSlabs mapped at most at once.
pub fn superslabs_peak() -> usize {
    PEAK_SS.load(Ordering::Relaxed).max(0) as usize
}

/// A SuperSlab was mapped (`delta` 1) or unmapped (-1).
pub fn superslabs_mapped(delta: i64) {
    let now = LIVE_SS.fetch_add(delta, Ordering::Relaxed) + delta;
    PEAK_SS.fetch_max(now, Ordering::Relaxed);
}

/// SuperSlabs mapped now.
pub fn superslabs() -> usize {
    LIVE_SS.load(Ordering::Relaxed).max(0) as usize
}

/// A slab-class block handed out by malloc (`cache_hit`: from the thread
/// cache without a refill). Called in checked mode, with statistics on.
pub fn class_alloc(class: usize, cache_hit: bool) {
    let Some(k) = CLASSES.get(class) else {
        return;
    };
    let mallocs = k.mallocs.fetch_add(1, Ordering::Relaxed) + 1;
    let live = mallocs.saturating_sub(k.frees.load(Ordering::Relaxed));
    // A load first: the peak seldom moves, and a read-modify-write would
    // cost every malloc.
    if live > k.peak.load(Ordering::Relaxed) {
        k.peak.fetch_max(live, Ordering::Relaxed);
    }
    if !cache_hit {
        CACHE_MISSES.fetch_add(1, Ordering::Relaxed);
    }
}

/// A slab-class block freed (`cache_hit`: kept by the thread cache).
/// Called in checked mode, with statistics on (or by a thread without a heap).
pub fn class_free(class: usize, cache_hit: bool) {
    if !config::stats() {
        return;
    }
    if let Some(k) = CLASSES.get(class) {
        k.frees.fetch_add(1, Ordering::Relaxed);
    }
    if !cache_hit {
        CACHE_MISSES.fetch_add(1, Ordering::Relaxed);
    }
}

fn percent(part: u64, whole: u64) -> u64 {
    part.saturating_mul(100).checked_div(whole).unwrap_or(0)
}

/// At start-up, when statistics are on: keep stderr for the exit report.
pub fn keep_stderr() {
    if config::stats() {
        // SAFETY: fcntl on fd 2 has no memory-safety preconditions.
        let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, REPORT_FD_MIN) };
        if fd >= 0 {
            REPORT_FD.store(fd, Ordering::Relaxed);
        }
    }
}

/// Where the exit report goes.
pub fn report_fd() -> i32 {
    REPORT_FD.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_counts_track_live_and_peak() {
        // Class 40 is used by no other unit test.
        for _ in 0..5 {
            class_alloc(40, false);
        }
        let k = &CLASSES[40];
        assert_eq!(k.mallocs.load(Ordering::Relaxed), 5);
        assert_eq!(k.peak.load(Ordering::Relaxed), 5);
        class_alloc(NUM_CLASSES, true); // out of range: ignored, no panic
        assert!(class(NUM_CLASSES).is_none());
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(5, 0), 0);
    }
}
