//! Opt-in statistics (HAKMEM_STATS=1). Counters are touched only on slow
//! paths and only when enabled: the fast path never sees them.

use core::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};

use crate::config;
use crate::diag::Line;
use crate::slab::size_class::NUM_CLASSES;

#[derive(Clone, Copy)]
pub enum Counter {
    /// Blocks handed out from slabs into thread caches.
    SlabBlocks,
    /// Blocks given back to slabs by their owner.
    SlabBlocksBack,
    /// Blocks given back to another thread's slab through its remote list.
    RemoteFrees,
    /// Slabs taken over from exited threads.
    Adopted,
    BigBlocks,
    BigCacheHits,
    SuperslabsMapped,
    BootstrapBlocks,
}

const N: usize = 8;
const NAMES: [&str; N] = [
    "slab_blocks",
    "slab_blocks_back",
    "remote_frees",
    "adopted_slabs",
    "big_blocks",
    "bigcache_hits",
    "superslabs_mapped",
    "bootstrap_blocks",
];

static COUNTS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
/// Where the exit report goes: a copy of stderr taken at start-up, because
/// many programs (coreutils among them) close fd 2 before they exit.
static REPORT_FD: AtomicI32 = AtomicI32::new(2);
/// Copies of stderr start at this descriptor, clear of the low numbers that
/// programs expect their own open() calls to get.
const REPORT_FD_MIN: i32 = 500;
static CLASS_ALLOCS: [AtomicU64; NUM_CLASSES] = [const { AtomicU64::new(0) }; NUM_CLASSES];
static CLASS_FREES: [AtomicU64; NUM_CLASSES] = [const { AtomicU64::new(0) }; NUM_CLASSES];
static CACHE_HITS: AtomicU64 = AtomicU64::new(0);
static LIVE_SS: AtomicI64 = AtomicI64::new(0);
static PEAK_SS: AtomicI64 = AtomicI64::new(0);

#[inline]
pub fn add(c: Counter, n: u64) {
    if config::stats() {
        COUNTS[c as usize].fetch_add(n, Ordering::Relaxed);
    }
}

pub fn live_superslabs(delta: i64) {
    if config::stats() {
        let now = LIVE_SS.fetch_add(delta, Ordering::Relaxed) + delta;
        PEAK_SS.fetch_max(now, Ordering::Relaxed);
    }
}

/// A slab-class block handed out by malloc (`cache_hit`: from the thread
/// cache without a refill). Called in checked mode only.
pub fn class_alloc(class: usize, cache_hit: bool) {
    if config::stats() {
        CLASS_ALLOCS[class].fetch_add(1, Ordering::Relaxed);
        if cache_hit {
            CACHE_HITS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A slab-class block freed (`cache_hit`: kept by the thread cache).
/// Called in checked mode only.
pub fn class_free(class: usize, cache_hit: bool) {
    if config::stats() {
        CLASS_FREES[class].fetch_add(1, Ordering::Relaxed);
        if cache_hit {
            CACHE_HITS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub fn get(c: Counter) -> u64 {
    COUNTS[c as usize].load(Ordering::Relaxed)
}

/// Writes the one-line report to `fd`; false if it could not be written.
pub fn print(fd: i32) -> bool {
    let mut line = Line::new();
    // SAFETY: getpid has no preconditions.
    line.str("hakmem: stats: pid=").dec(unsafe { libc::getpid() } as u64);
    for (i, name) in NAMES.iter().enumerate() {
        line.str(" ").str(name).str("=").dec(COUNTS[i].load(Ordering::Relaxed));
    }
    line.str(" superslabs_live=").dec(LIVE_SS.load(Ordering::Relaxed).max(0) as u64);
    line.str(" superslabs_peak=").dec(PEAK_SS.load(Ordering::Relaxed).max(0) as u64);
    let sum = |t: &[AtomicU64; NUM_CLASSES]| t.iter().map(|v| v.load(Ordering::Relaxed)).sum::<u64>();
    line.str(" mallocs=").dec(sum(&CLASS_ALLOCS)).str(" frees=").dec(sum(&CLASS_FREES));
    line.str(" cache_hits=").dec(CACHE_HITS.load(Ordering::Relaxed));
    line.write_to(fd)
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

/// At exit, when statistics are on.
pub fn report_at_exit() {
    if config::stats() {
        print(REPORT_FD.load(Ordering::Relaxed));
    }
}
