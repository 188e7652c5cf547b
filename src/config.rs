//! Configuration: every HAKMEM_* environment variable, read once at
//! initialisation. A malformed value prints one warning naming the variable
//! and the default used, and never stops the program.
//!
//! | variable        | default | effect                                   |
//! |-----------------|---------|------------------------------------------|
//! | HAKMEM_STATS    | 0       | 1: count, and print the counts to stderr at exit; json: the same report as JSON |
//! | HAKMEM_VERBOSE  | 0       | 1: say on stderr when hakmem starts      |
//! | HAKMEM_HARDEN   | 0       | 1: detect double frees, encode free lists |
//! | HAKMEM_PURGE_DELAY_MS | 100 | how long free memory waits before it goes back to the kernel |
//! | HAKMEM_PURGE_THREAD | 1 | 0: no background purge thread (purges run on allocator activity only) |
//! | HAKMEM_THP      | default | huge pages for SuperSlabs, pool regions and big blocks: never, default (the kernel's policy), always |
//! | HAKMEM_PROF     | 0       | 1: sample allocations and write a heap profile at exit |
//! | HAKMEM_PROF_INTERVAL | 524288 | bytes allocated between samples, on average |
//! | HAKMEM_PROF_FILE | hakmem.PID.heap | where the exit profile goes |

use crate::diag::Line;
use core::ffi::c_char;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU8, Ordering};

static STATS: AtomicBool = AtomicBool::new(false);
static STATS_JSON: AtomicBool = AtomicBool::new(false);
static VERBOSE: AtomicBool = AtomicBool::new(false);
static HARDEN: AtomicBool = AtomicBool::new(false);
static PURGE_THREAD: AtomicBool = AtomicBool::new(true);
pub const PURGE_DELAY_MS_DEFAULT: u32 = 100;
static PURGE_DELAY_MS: AtomicU32 = AtomicU32::new(PURGE_DELAY_MS_DEFAULT);
/// HAKMEM_THP as `Thp as u8`.
static THP: AtomicU8 = AtomicU8::new(Thp::Default as u8);
static PROF: AtomicBool = AtomicBool::new(false);
pub const PROF_INTERVAL_DEFAULT: u32 = 512 * 1024;
static PROF_INTERVAL: AtomicU32 = AtomicU32::new(PROF_INTERVAL_DEFAULT);
/// HAKMEM_PROF_FILE, from the environment (null: unset).
static PROF_FILE: AtomicPtr<c_char> = AtomicPtr::new(core::ptr::null_mut());

/// One getter per option, each a relaxed load of its static.
macro_rules! getters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty = $value:ident;)*) => {
        $($(#[$doc])* #[inline] pub fn $name() -> $ty { $value.load(Ordering::Relaxed) })*
    };
}

getters! {
    /// HAKMEM_STATS: count, and print the counts at exit.
    stats: bool = STATS;
    /// HAKMEM_STATS=json: the exit report is JSON.
    stats_json: bool = STATS_JSON;
    /// HAKMEM_VERBOSE: say on stderr when hakmem starts.
    verbose: bool = VERBOSE;
    /// HAKMEM_HARDEN: mark freed blocks to catch double frees.
    harden: bool = HARDEN;
    /// Whether the background purge thread may run.
    purge_thread: bool = PURGE_THREAD;
    /// Milliseconds free memory waits before it is returned to the kernel.
    purge_delay_ms: u32 = PURGE_DELAY_MS;
    /// HAKMEM_PROF: sample allocations for a heap profile.
    prof: bool = PROF;
    /// HAKMEM_PROF_INTERVAL: bytes allocated between samples, on average.
    prof_interval: u32 = PROF_INTERVAL;
}

/// HAKMEM_PROF_FILE: where the exit profile goes, if set.
pub fn prof_file() -> Option<&'static core::ffi::CStr> {
    let p = PROF_FILE.load(Ordering::Relaxed);
    // SAFETY: a non-null value is getenv's NUL-terminated string, which
    // lives as long as the environment is not changed under it.
    (!p.is_null()).then(|| unsafe { core::ffi::CStr::from_ptr(p) })
}

/// Checked mode: statistics, hardening, profiling or valgrind, any of
/// which sends every slab malloc and free through `thread/checked.rs`.
#[inline]
pub fn checked() -> bool {
    stats() || harden() || prof() || crate::valgrind::active()
}

/// Transparent huge pages for hakmem's 2 MiB-aligned mappings.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Thp {
    /// MADV_NOHUGEPAGE: never, even where the kernel's policy is `always`.
    Never,
    /// No advice: the kernel's policy (/sys/kernel/mm/transparent_hugepage).
    Default,
    /// MADV_HUGEPAGE, and purges give back only whole 2 MiB regions, so
    /// they never split a huge page.
    Always,
}

/// HAKMEM_THP.
#[inline]
pub fn thp() -> Thp {
    match THP.load(Ordering::Relaxed) {
        0 => Thp::Never,
        2 => Thp::Always,
        _ => Thp::Default,
    }
}

/// What to tell the kernel about huge pages for a new 2 MiB-aligned mapping
/// (`os::huge_pages`): nothing under `Default`.
#[inline]
pub fn huge_page_advice() -> Option<bool> {
    match thp() {
        Thp::Never => Some(false),
        Thp::Default => None,
        Thp::Always => Some(true),
    }
}

/// Reads the environment. getenv allocates nothing, so this is safe from
/// inside the first malloc.
pub fn load() {
    crate::valgrind::detect();
    let json = crate::os::process::getenv(c"HAKMEM_STATS") == Some(&b"json"[..]);
    STATS_JSON.store(json, Ordering::Relaxed);
    STATS.store(json || flag(c"HAKMEM_STATS", "HAKMEM_STATS"), Ordering::Relaxed);
    VERBOSE.store(flag(c"HAKMEM_VERBOSE", "HAKMEM_VERBOSE"), Ordering::Relaxed);
    HARDEN.store(flag(c"HAKMEM_HARDEN", "HAKMEM_HARDEN"), Ordering::Relaxed);
    let delay = number(c"HAKMEM_PURGE_DELAY_MS", "HAKMEM_PURGE_DELAY_MS", 60_000, PURGE_DELAY_MS_DEFAULT);
    PURGE_DELAY_MS.store(delay, Ordering::Relaxed);
    // Under memcheck every call takes a slow path, which runs the purges
    // that are due: a purge thread would only add a thread to serialise
    // (and its glibc thread state to the leak report).
    let thread = number(c"HAKMEM_PURGE_THREAD", "HAKMEM_PURGE_THREAD", 1, 1) == 1;
    PURGE_THREAD.store(thread && !crate::valgrind::active(), Ordering::Relaxed);
    THP.store(thp_mode() as u8, Ordering::Relaxed);
    PROF.store(flag(c"HAKMEM_PROF", "HAKMEM_PROF"), Ordering::Relaxed);
    let interval = number(c"HAKMEM_PROF_INTERVAL", "HAKMEM_PROF_INTERVAL", 1 << 30, PROF_INTERVAL_DEFAULT);
    PROF_INTERVAL.store(interval.max(1), Ordering::Relaxed);
    let file = crate::os::process::getenv(c"HAKMEM_PROF_FILE").map_or(core::ptr::null(), |f| f.as_ptr());
    PROF_FILE.store(file as *mut c_char, Ordering::Relaxed);
    warn_unknown();
}

fn thp_mode() -> Thp {
    match crate::os::process::getenv(c"HAKMEM_THP") {
        None | Some(b"default") => Thp::Default,
        Some(b"never") => Thp::Never,
        Some(b"always") => Thp::Always,
        Some(_) => {
            Line::new().str("hakmem: warning: HAKMEM_THP must be never, default or always; using default").write_to(2);
            Thp::Default
        }
    }
}

/// Every variable this module reads.
const KNOWN: [&str; 9] = [
    "HAKMEM_STATS",
    "HAKMEM_VERBOSE",
    "HAKMEM_HARDEN",
    "HAKMEM_PURGE_DELAY_MS",
    "HAKMEM_PURGE_THREAD",
    "HAKMEM_THP",
    "HAKMEM_PROF",
    "HAKMEM_PROF_INTERVAL",
    "HAKMEM_PROF_FILE",
];

extern "C" {
    static environ: *const *const core::ffi::c_char;
}

/// One warning per HAKMEM_* variable that is not one of ours (a typo would
/// otherwise be silently ignored).
fn warn_unknown() {
    // SAFETY: environ is libc's NULL-terminated array of C strings; nobody
    // calls setenv while hakmem sets itself up.
    let mut entry = unsafe { environ };
    while !entry.is_null() {
        // SAFETY: as above; the array ends with a null pointer.
        let var = unsafe { *entry };
        if var.is_null() {
            break;
        }
        // SAFETY: each entry is a NUL-terminated "NAME=value" string.
        let bytes = unsafe { core::ffi::CStr::from_ptr(var) }.to_bytes();
        let name = bytes.split(|&b| b == b'=').next().unwrap_or(bytes);
        if is_unknown(name) {
            let shown = core::str::from_utf8(name).unwrap_or("HAKMEM_?");
            Line::new().str("hakmem: warning: unknown variable ").str(shown).str(" ignored").write_to(2);
        }
        // SAFETY: still inside the array (the terminator was not reached).
        entry = unsafe { entry.add(1) };
    }
}

fn is_unknown(name: &[u8]) -> bool {
    name.starts_with(b"HAKMEM_") && !KNOWN.iter().any(|k| k.as_bytes() == name)
}

/// A decimal number up to `max`; `default` when unset or (after a warning
/// naming the default) malformed.
fn number(key: &core::ffi::CStr, name: &str, max: u32, default: u32) -> u32 {
    let Some(bytes) = crate::os::process::getenv(key) else {
        return default;
    };
    parse_number(bytes, max).unwrap_or_else(|| {
        Line::new()
            .str("hakmem: warning: ")
            .str(name)
            .str(" must be a number from 0 to ")
            .dec(max as u64)
            .str("; using ")
            .dec(default as u64)
            .write_to(2);
        default
    })
}

fn parse_number(bytes: &[u8], max: u32) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = bytes.iter().fold(0u64, |v, &b| v * 10 + (b - b'0') as u64);
    (v <= max as u64).then_some(v as u32)
}

fn flag(key: &core::ffi::CStr, name: &str) -> bool {
    let Some(bytes) = crate::os::process::getenv(key) else {
        return false;
    };
    match parse_flag(bytes) {
        Some(v) => v,
        None => {
            Line::new().str("hakmem: warning: ").str(name).str(" must be 0 or 1; using 0").write_to(2);
            false
        }
    }
}

fn parse_flag(bytes: &[u8]) -> Option<bool> {
    match bytes {
        b"1" | b"yes" | b"true" | b"on" => Some(true),
        b"0" | b"no" | b"false" | b"off" | b"" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{is_unknown, parse_flag, parse_number};

    #[test]
    fn only_our_names_are_known() {
        assert!(!is_unknown(b"HAKMEM_STATS"));
        assert!(!is_unknown(b"HAKMEM_PURGE_DELAY_MS"));
        assert!(is_unknown(b"HAKMEM_STAT"));
        assert!(!is_unknown(b"HOME"));
    }

    #[test]
    fn numbers_parse_within_bounds_or_are_rejected() {
        assert_eq!(parse_number(b"0", 10), Some(0));
        assert_eq!(parse_number(b"250", 1000), Some(250));
        assert_eq!(parse_number(b"1001", 1000), None);
        assert_eq!(parse_number(b"-1", 1000), None);
        assert_eq!(parse_number(b"12ms", 1000), None);
        assert_eq!(parse_number(b"99999999999", u32::MAX), None);
        assert_eq!(parse_number(b"", 1000), None);
    }

    #[test]
    fn flags_parse_or_are_rejected() {
        assert_eq!(parse_flag(b"1"), Some(true));
        assert_eq!(parse_flag(b"off"), Some(false));
        assert_eq!(parse_flag(b"2"), None);
        assert_eq!(parse_flag(b"maybe"), None);
    }
}
