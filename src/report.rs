//! hakmem's numbers as a program reads them: what every tier holds, always
//! known from the tiers' own books, and with HAKMEM_STATS on the counts
//! (`stats`). `hak_stat` and `hakmem::stats()` read them live, a few locks
//! and list walks, nothing on any fast path; the exit report prints them
//! (HAKMEM_STATS=1 as text, HAKMEM_STATS=json as JSON).

use crate::config;
use crate::diag::Line;
use crate::large::{big, pool};
use crate::os;
use crate::purge;
use crate::size_class::NUM_CLASSES;
use crate::slab::registry;
use crate::stats::{self, ClassCounts, Counter};
use crate::thread::lifecycle;

/// What hakmem holds now, in bytes unless it says otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Mapped from the kernel: SuperSlabs, pool regions, big mappings, heaps.
    pub mapped: u64,
    /// Slabs and pool runs holding blocks, and live big blocks.
    pub active: u64,
    /// Free but resident until the purge delay runs out: free slab units,
    /// free pool runs, BigCache.
    pub dirty: u64,
    /// Thread heaps (their cache slot arrays included).
    pub metadata: u64,
    /// At most what of hakmem's is resident: active + dirty + metadata (a
    /// page of an in-use slab that was never touched counts too).
    pub resident: u64,
    /// Mapped but not resident: given back to the kernel, address kept.
    pub retained: u64,
    /// Big mappings waiting in BigCache (part of `dirty`).
    pub bigcache: u64,
    /// SuperSlabs mapped now, and at most at once (counts).
    pub superslabs: u64,
    pub superslabs_peak: u64,
    /// Live big blocks (a count).
    pub big_blocks: u64,
    /// Threads with a heap now (a count).
    pub threads: u64,
    /// Purge runs that gave memory back (a count), and the bytes given
    /// back to the kernel since start, by purges, trims and big frees.
    pub purges: u64,
    pub returned: u64,
    /// The process's peak resident set, all of it (getrusage).
    pub peak_rss: u64,
    /// The counts, with HAKMEM_STATS on (None otherwise).
    pub counted: Option<Counted>,
}

/// What only statistics count (HAKMEM_STATS=1): they cost every malloc.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    /// Bytes in blocks the program holds (slab blocks at their class size,
    /// pool and big blocks at their mapped size).
    pub allocated: u64,
    /// Bytes of blocks waiting in thread caches.
    pub thread_cache: u64,
    /// Slab-class mallocs and frees (counts).
    pub mallocs: u64,
    pub frees: u64,
    /// Blocks freed by a thread other than their slab's owner (a count).
    pub remote_frees: u64,
    /// Mallocs and frees served by the thread cache alone, in percent.
    pub cache_hit_percent: u64,
}

/// The numbers now.
pub fn stats() -> Stats {
    let (slabs, big) = (registry::footprint(), big::footprint());
    let large = pool::footprint() + big;
    let tiers = slabs + large;
    let (threads, metadata) = lifecycle::heaps();
    let (mapped, active, dirty) = (tiers.mapped + metadata, tiers.in_use, tiers.dirty);
    let resident = active + dirty + metadata;
    let u = |v: usize| v as u64;
    Stats {
        mapped: u(mapped),
        active: u(active),
        dirty: u(dirty),
        metadata: u(metadata),
        resident: u(resident),
        retained: u(mapped.saturating_sub(resident)),
        bigcache: u(big.dirty),
        superslabs: u(stats::superslabs()),
        superslabs_peak: u(stats::superslabs_peak()),
        big_blocks: u(big::live_blocks()),
        threads: u(threads),
        purges: purge::purges(),
        returned: os::returned_bytes(),
        peak_rss: os::process::peak_rss_kib() * 1024,
        counted: config::stats().then(|| counted(large.in_use)),
    }
}

/// The counts; `large_bytes` is what live pool and big blocks hold.
fn counted(large_bytes: usize) -> Counted {
    let mut c = Counted { allocated: large_bytes as u64, ..Counted::default() };
    for k in (0..NUM_CLASSES).filter_map(stats::class) {
        c.allocated += k.live * k.size;
        c.thread_cache += k.cached * k.size;
        c.mallocs += k.mallocs;
        c.frees += k.frees;
    }
    c.remote_frees = stats::count(Counter::RemoteFrees);
    c.cache_hit_percent = stats::cache_hit_percent();
    c
}

/// Why `lookup` found no number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// No number has this name.
    Unknown,
    /// A count, and statistics are off.
    NotCounted,
}

/// The number hak_stat names `name`: a field of `Stats` or `Counted`, a
/// counter of the text report, `classes`, or `class.<c>.<field>` with a
/// field of `ClassCounts`.
pub fn lookup(name: &str) -> Result<u64, Missing> {
    if name == "classes" {
        return Ok(NUM_CLASSES as u64);
    }
    if let Some(rest) = name.strip_prefix("class.") {
        let (index, field) = rest.split_once('.').ok_or(Missing::Unknown)?;
        let k = index.parse().ok().and_then(stats::class).ok_or(Missing::Unknown)?;
        let f = find(&CLASS_FIELDS, field).ok_or(Missing::Unknown)?;
        return if config::stats() || field == "size" { Ok(f(&k)) } else { Err(Missing::NotCounted) };
    }
    if let Some(f) = find(&FIELDS, name) {
        return Ok(f(&stats()));
    }
    let (field, counter) = (find(&COUNTED, name), stats::counter_named(name));
    if field.is_none() && counter.is_none() {
        return Err(Missing::Unknown);
    }
    if !config::stats() {
        return Err(Missing::NotCounted);
    }
    match field {
        Some(f) => Ok(f(&counted((pool::footprint() + big::footprint()).in_use))),
        None => counter.ok_or(Missing::Unknown),
    }
}

type Field<T> = (&'static str, fn(&T) -> u64);

/// A table of `Field`s, each named as its struct field.
macro_rules! fields {
    ($t:ty: $($f:ident),* $(,)?) => {
        [$((stringify!($f), (|s: &$t| s.$f) as fn(&$t) -> u64)),*]
    };
}

const FIELDS: [Field<Stats>; 14] = fields!(Stats:
    mapped, active, dirty, metadata, resident, retained, bigcache, superslabs,
    superslabs_peak, big_blocks, threads, purges, returned, peak_rss);

const COUNTED: [Field<Counted>; 6] =
    fields!(Counted: allocated, thread_cache, mallocs, frees, remote_frees, cache_hit_percent);

const CLASS_FIELDS: [Field<ClassCounts>; 6] = fields!(ClassCounts: size, mallocs, frees, live, peak, cached);

/// The reader of the field named `name` in `table`.
fn find<T>(table: &[Field<T>], name: &str) -> Option<fn(&T) -> u64> {
    table.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
}

/// Writes the report to `fd`, as text or JSON (`HAKMEM_STATS=json`); false
/// if any line could not be written.
pub fn print(fd: i32) -> bool {
    if config::stats_json() {
        print_json(fd)
    } else {
        print_text(fd)
    }
}

/// One `hakmem: stats: pid=…` line with the totals, a `hakmem: stats:
/// counts …` line when statistics are on, then one `hakmem: stats: class …`
/// line per size class that saw any use.
fn print_text(fd: i32) -> bool {
    let s = stats();
    let mut line = Line::new();
    line.str("hakmem: stats: pid=").dec(os::process::pid());
    pairs(&mut line, " ", "=", &s);
    let mut ok = line.write_to(fd);
    if s.counted.is_some() {
        let mut line = Line::new();
        line.str("hakmem: stats: counts");
        for (name, v) in stats::counters() {
            line.str(" ").str(name).str("=").dec(v);
        }
        ok &= line.write_to(fd);
    }
    for (c, k) in classes() {
        let mut line = Line::new();
        line.str("hakmem: stats: class ").dec(c as u64);
        for (name, f) in CLASS_FIELDS {
            line.str(" ").str(name).str("=").dec(f(&k));
        }
        ok &= line.write_to(fd);
    }
    ok
}

/// The same report as one JSON object: the totals and counts as fields, the
/// classes in use as an array (`{"class":c,"size":…}`).
fn print_json(fd: i32) -> bool {
    let s = stats();
    let mut line = Line::new();
    line.str("{\"pid\":").dec(os::process::pid());
    pairs(&mut line, ",\"", "\":", &s);
    let mut ok = line.write_to(fd);
    let mut line = Line::new();
    line.str(",\"counts\":{");
    for (i, (name, v)) in stats::counters().enumerate() {
        line.str(if i == 0 { "\"" } else { ",\"" }).str(name).str("\":").dec(v);
    }
    ok &= line.str("},\"classes\":[").write_to(fd);
    for (i, (c, k)) in classes().enumerate() {
        let mut line = Line::new();
        line.str(if i == 0 { "{\"class\":" } else { ",{\"class\":" }).dec(c as u64);
        for (name, f) in CLASS_FIELDS {
            line.str(",\"").str(name).str("\":").dec(f(&k));
        }
        ok &= line.str("}").write_to(fd);
    }
    ok & Line::new().str("]}").write_to(fd)
}

/// The totals as `<sep>name<eq>value` pairs.
fn pairs(line: &mut Line, sep: &str, eq: &str, s: &Stats) {
    for (name, f) in FIELDS {
        line.str(sep).str(name).str(eq).dec(f(s));
    }
    if let Some(c) = &s.counted {
        for (name, f) in COUNTED {
            line.str(sep).str(name).str(eq).dec(f(c));
        }
    }
}

/// The classes that saw any use, with their counts.
fn classes() -> impl Iterator<Item = (usize, ClassCounts)> {
    (0..NUM_CLASSES).filter_map(|c| stats::class(c).map(|k| (c, k))).filter(|(_, k)| k.mallocs + k.frees > 0)
}

/// At exit, when statistics are on.
pub fn at_exit() {
    if config::stats() {
        print(stats::report_fd());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reach_their_numbers() {
        assert_eq!(lookup("classes"), Ok(NUM_CLASSES as u64));
        assert_eq!(lookup("class.1.size"), Ok(crate::size_class::CLASS_SIZE[1] as u64));
        assert_eq!(lookup("no_such_number"), Err(Missing::Unknown));
        assert_eq!(lookup("class.99999.size"), Err(Missing::Unknown));
        assert_eq!(lookup("class.1.colour"), Err(Missing::Unknown));
        assert_eq!(lookup("class.x"), Err(Missing::Unknown));
        // Unit tests run with statistics off: counts are not there.
        assert_eq!(lookup("allocated"), Err(Missing::NotCounted));
        assert_eq!(lookup("remote_frees"), Err(Missing::NotCounted));
        assert_eq!(lookup("class.1.live"), Err(Missing::NotCounted));
    }

    #[test]
    fn a_big_block_shows_in_mapped_and_active() {
        // Other unit tests allocate and free at the same time: only what
        // this block adds for sure is checked.
        let p = crate::alloc::malloc(5 << 20);
        assert!(!p.is_null());
        let s = stats();
        assert!(s.active >= 5 << 20 && s.big_blocks >= 1, "{s:?}");
        assert!(s.mapped >= s.active && s.resident <= s.mapped, "{s:?}");
        assert_eq!(lookup("mapped").map(|m| m >= 5 << 20), Ok(true));
        crate::alloc::free(p, "test");
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
        assert!(text.contains(" mapped=") && text.contains(" peak_rss="), "{text}");
        // SAFETY: closing descriptors we own.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert!(!print(fds[1]));
    }
}
