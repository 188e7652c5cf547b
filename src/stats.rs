//! Opt-in statistics (HAKMEM_STATS=1). Counters are touched only on slow
//! paths, and per-class counts only in checked mode (thread/checked.rs), which
//! statistics switch on: with statistics off, the fast paths never see them.
//!
//! The report: one `hakmem: stats: key=value …` line with the totals, then
//! one `hakmem: stats: class …` line per size class that saw any use.

use core::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};

use crate::config;
use crate::os;
use crate::diag::Line;
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

static COUNTS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];

/// Per size class: mallocs, frees and the most blocks live at once.
struct Class {
    mallocs: AtomicU64,
    frees: AtomicU64,
    peak: AtomicU64,
}

static CLASSES: [Class; NUM_CLASSES] = [const {
    Class { mallocs: AtomicU64::new(0), frees: AtomicU64::new(0), peak: AtomicU64::new(0) }
}; NUM_CLASSES];
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

/// Writes the report to `fd`; false if any line could not be written.
pub fn print(fd: i32) -> bool {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mallocs: u64 = CLASSES.iter().map(|k| load(&k.mallocs)).sum();
    let frees: u64 = CLASSES.iter().map(|k| load(&k.frees)).sum();
    let hits = (mallocs + frees).saturating_sub(load(&CACHE_MISSES));

    let mut line = Line::new();
    line.str("hakmem: stats: pid=").dec(os::process::pid());
    for (i, name) in NAMES.iter().enumerate() {
        line.str(" ").str(name).str("=").dec(load(&COUNTS[i]));
    }
    line.str(" superslabs_live=").dec(superslabs() as u64);
    line.str(" superslabs_peak=").dec(PEAK_SS.load(Ordering::Relaxed).max(0) as u64);
    line.str(" mallocs=").dec(mallocs).str(" frees=").dec(frees);
    line.str(" cache_hit_pct=").dec(percent(hits, mallocs + frees));
    line.str(" peak_rss_kib=").dec(os::process::peak_rss_kib());
    let mut ok = line.write_to(fd);

    for (c, k) in CLASSES.iter().enumerate() {
        let (m, f) = (load(&k.mallocs), load(&k.frees));
        if m == 0 && f == 0 {
            continue;
        }
        let mut line = Line::new();
        line.str("hakmem: stats: class ").dec(c as u64);
        line.str(" size=").dec(CLASS_SIZE[c] as u64);
        line.str(" mallocs=").dec(m).str(" frees=").dec(f);
        line.str(" live=").dec(m.saturating_sub(f)).str(" peak=").dec(load(&k.peak));
        ok &= line.write_to(fd);
    }
    ok
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

/// At exit, when statistics are on.
pub fn report_at_exit() {
    if config::stats() {
        print(REPORT_FD.load(Ordering::Relaxed));
    }
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
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(5, 0), 0);
    }

    #[test]
    fn the_report_goes_to_the_descriptor_and_fails_on_a_closed_one() {
        let mut fds = [0i32; 2];
        // SAFETY: fds is a valid out-array of two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        assert!(print(fds[1]));
        let mut buf = [0u8; 4096];
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        let text = String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned();
        assert!(text.starts_with("hakmem: stats: pid="), "{text}");
        assert!(text.contains(" peak_rss_kib="), "{text}");
        // SAFETY: closing descriptors we own.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert!(!print(fds[1]));
    }
}
