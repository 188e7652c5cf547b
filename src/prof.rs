//! Sampled heap profiles (HAKMEM_PROF=1): which call sites hold the memory.
//!
//! Allocations are sampled as a Poisson process over the bytes allocated
//! (on average one sample per HAKMEM_PROF_INTERVAL bytes, so an allocation
//! of s bytes is sampled with probability 1 - exp(-s / interval)): a shared
//! countdown of bytes, drawn anew from an exponential distribution at each
//! sample. A sample keeps the block's address, size and backtrace in a table
//! of fixed slots mapped once (nothing allocates), found again by address
//! when the block is freed. The dump is the legacy text heap profile that
//! google-pprof reads (`heap_v2/<interval>`: pprof scales each sample back
//! by its probability), followed by MAPPED_LIBRARIES (/proc/self/maps) for
//! symbols. Profiling puts every heap in checked mode, so every malloc and
//! free reaches `alloc`'s slow paths, where it is looked at; with it off,
//! those paths pay one test of the flag.

use core::ffi::CStr;
use core::sync::atomic::{AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::config;
use crate::diag::Line;
use crate::os;
use crate::os::random;

/// Slots of the table (a power of two); a block is found within PROBES of
/// its home slot, so a free that missed costs at most PROBES loads.
const SLOTS: usize = 1 << 16;
const PROBES: usize = 64;
/// Frames kept per sample, and written per line (a line holds 512 bytes).
const DEPTH: usize = 32;
const WRITTEN: usize = 24;

/// Slot keys: the block's address, or one of these.
const EMPTY: usize = 0;
const BUSY: usize = 1;
const GONE: usize = 2;

#[repr(C)]
struct Sample {
    size: usize,
    depth: usize,
    frames: [usize; DEPTH],
}

static KEYS: AtomicPtr<AtomicUsize> = AtomicPtr::new(core::ptr::null_mut());
static SAMPLES: AtomicPtr<Sample> = AtomicPtr::new(core::ptr::null_mut());
/// Bytes left before the next sample.
static COUNTDOWN: AtomicI64 = AtomicI64::new(0);
static RNG: AtomicU64 = AtomicU64::new(0);
/// Samples that found no slot (the table near full).
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// At start-up, when profiling is on: maps the table (untouched pages stay
/// free), loads the unwinder and draws the first interval. Profiling stays
/// off (no sample is taken) if the table cannot be mapped.
pub fn start() {
    let keys = os::map(SLOTS * core::mem::size_of::<AtomicUsize>());
    let samples = os::map(SLOTS * core::mem::size_of::<Sample>());
    if keys.is_null() || samples.is_null() {
        return;
    }
    // The first backtrace loads the unwinder (dlopen, which allocates):
    // done here, from hakmem's constructor on a thread whose allocations go
    // to the bootstrap arena meanwhile, not from inside a malloc.
    let mut frames = [core::ptr::null_mut::<libc::c_void>(); 4];
    // SAFETY: frames has room for 4 entries.
    unsafe { libc::backtrace(frames.as_mut_ptr(), 4) };
    RNG.store(random::secret() as u64 | 1, Ordering::Relaxed);
    COUNTDOWN.store(next_interval(), Ordering::Relaxed);
    SAMPLES.store(samples.cast(), Ordering::Relaxed);
    KEYS.store(keys.cast(), Ordering::Release);
}

/// Block `p` of `size` bytes was handed out: sampled when the countdown
/// runs out. Called with no hakmem lock held and no heap borrowed.
pub fn allocated(p: *mut u8, size: usize) {
    let keys = KEYS.load(Ordering::Acquire);
    if p.is_null() || keys.is_null() {
        return;
    }
    if COUNTDOWN.fetch_sub(size as i64, Ordering::Relaxed) > size as i64 {
        return;
    }
    COUNTDOWN.store(next_interval(), Ordering::Relaxed);
    let mut frames = [core::ptr::null_mut::<libc::c_void>(); DEPTH];
    // SAFETY: frames has room for DEPTH entries.
    let depth = unsafe { libc::backtrace(frames.as_mut_ptr(), DEPTH as i32) }.max(0) as usize;
    let home = hash(p as usize);
    for i in 0..PROBES {
        let slot = (home + i) & (SLOTS - 1);
        // SAFETY: slot < SLOTS, inside the mapped key array.
        let key = unsafe { &*keys.add(slot) };
        let k = key.load(Ordering::Relaxed);
        if (k == EMPTY || k == GONE) && key.compare_exchange(k, BUSY, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            // SAFETY: the BUSY key makes this slot's sample ours to write.
            let s = unsafe { &mut *SAMPLES.load(Ordering::Relaxed).add(slot) };
            s.size = size;
            s.depth = depth;
            for (d, f) in s.frames.iter_mut().zip(frames.iter()) {
                *d = *f as usize;
            }
            key.store(p as usize, Ordering::Release);
            return;
        }
    }
    DROPPED.fetch_add(1, Ordering::Relaxed);
}

/// Block `p` was freed (or moved away by realloc): its sample, if any, goes.
pub fn freed(p: *mut u8) {
    let keys = KEYS.load(Ordering::Acquire);
    if keys.is_null() {
        return;
    }
    let home = hash(p as usize);
    for i in 0..PROBES {
        // SAFETY: the index is below SLOTS.
        let key = unsafe { &*keys.add((home + i) & (SLOTS - 1)) };
        match key.load(Ordering::Relaxed) {
            EMPTY => return,
            k if k == p as usize => {
                key.store(GONE, Ordering::Release);
                return;
            }
            _ => {}
        }
    }
}

fn hash(a: usize) -> usize {
    ((a >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) & (SLOTS - 1)
}

/// An exponentially distributed interval with the configured mean:
/// -ln(u) * mean for u uniform in (0, 1].
fn next_interval() -> i64 {
    let mut x = RNG.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    RNG.store(x, Ordering::Relaxed);
    let u = ((x >> 11) + 1) as f64 / (1u64 << 53) as f64;
    (-ln(u) * config::prof_interval() as f64) as i64 + 1
}

/// Natural log of x > 0 (no libm here): x = m * 2^e with m in [1, 2), and
/// ln(m) = 2 atanh(z), z = (m - 1) / (m + 1) <= 1/3, by its series.
fn ln(x: f64) -> f64 {
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let mut term = z;
    let mut sum = 0.0;
    for k in 0..12 {
        sum += term / (2 * k + 1) as f64;
        term *= z2;
    }
    e as f64 * core::f64::consts::LN_2 + 2.0 * sum
}

/// Writes the profile of the sampled blocks live now to `path`; false if
/// profiling is off or the file could not be written.
pub fn dump(path: &CStr) -> bool {
    let keys = KEYS.load(Ordering::Acquire);
    if keys.is_null() {
        return false;
    }
    // SAFETY: a NUL-terminated path; open allocates nothing.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o644) };
    if fd < 0 {
        return false;
    }
    let own = own_text();
    let live = || (0..SLOTS).filter_map(|i| {
        // SAFETY: i < SLOTS.
        let k = unsafe { &*keys.add(i) }.load(Ordering::Acquire);
        // SAFETY: a key that is an address says the slot's sample is written.
        (k > GONE).then(|| unsafe { &*SAMPLES.load(Ordering::Relaxed).add(i) })
    });
    let (count, bytes) = live().fold((0u64, 0u64), |(n, b), s| (n + 1, b + s.size as u64));
    let mut line = Line::new();
    line.str("heap profile: ").dec(count).str(": ").dec(bytes).str(" [").dec(count).str(": ").dec(bytes);
    line.str("] @ heap_v2/").dec(config::prof_interval() as u64);
    let mut ok = line.write_to(fd);
    for s in live() {
        let mut line = Line::new();
        line.str("1: ").dec(s.size as u64).str(" [1: ").dec(s.size as u64).str("] @");
        // hakmem's own frames (the sampler, malloc) lead the stack: skipped.
        let frames = s.frames[..s.depth.min(DEPTH)].iter().skip_while(|&&f| own.contains(&f));
        for &f in frames.take(WRITTEN) {
            line.str(" ").hex(f);
        }
        ok &= line.write_to(fd);
    }
    ok &= Line::new().str("\nMAPPED_LIBRARIES:").write_to(fd);
    ok &= copy_maps(fd);
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    let dropped = DROPPED.load(Ordering::Relaxed);
    if dropped > 0 {
        let mut line = Line::new();
        line.str("hakmem: heap profile: ").dec(dropped).str(" samples found no slot and are missing from it");
        line.write_to(2);
    }
    ok
}

/// At exit, when profiling is on: the profile to HAKMEM_PROF_FILE, or to
/// `hakmem.<pid>.heap` in the working directory.
pub fn dump_at_exit() {
    if KEYS.load(Ordering::Acquire).is_null() {
        return;
    }
    let mut name = [0u8; 64];
    let path = config::prof_file().unwrap_or_else(|| {
        let mut line = Line::new();
        line.str("hakmem.").dec(os::process::pid()).str(".heap");
        let b = line.as_bytes();
        name[..b.len()].copy_from_slice(b);
        CStr::from_bytes_until_nul(&name).unwrap_or(c"hakmem.heap")
    });
    if !dump(path) {
        Line::new().str("hakmem: could not write the heap profile").write_to(2);
    }
}

/// The address range of hakmem's own code (the object holding this
/// function), for telling its frames from the program's.
fn own_text() -> core::ops::Range<usize> {
    let mut range = 0..0;
    // SAFETY: the callback gets a valid dl_phdr_info and our range as data.
    unsafe { libc::dl_iterate_phdr(Some(find_own), &mut range as *mut _ as *mut libc::c_void) };
    range
}

/// dl_iterate_phdr's callback: sets the range of the executable segment
/// that holds `own_text`, and stops.
unsafe extern "C" fn find_own(info: *mut libc::dl_phdr_info, _size: usize, data: *mut libc::c_void) -> i32 {
    let me = own_text as *const () as usize;
    // SAFETY: the loader passes a valid info whose program headers are
    // dlpi_phnum entries long; data is our range.
    unsafe {
        let info = &*info;
        for i in 0..info.dlpi_phnum as usize {
            let ph = &*info.dlpi_phdr.add(i);
            if ph.p_type != libc::PT_LOAD || ph.p_flags & libc::PF_X == 0 {
                continue;
            }
            let start = info.dlpi_addr as usize + ph.p_vaddr as usize;
            let end = start + ph.p_memsz as usize;
            if (start..end).contains(&me) {
                *(data as *mut core::ops::Range<usize>) = start..end;
                return 1;
            }
        }
    }
    0
}

/// Copies /proc/self/maps to `fd`.
fn copy_maps(fd: i32) -> bool {
    // SAFETY: a NUL-terminated path; open/read/write allocate nothing.
    unsafe {
        let maps = libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if maps < 0 {
            return false;
        }
        let mut buf = [0u8; 4096];
        let mut ok = true;
        loop {
            let n = libc::read(maps, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
            if n <= 0 {
                break;
            }
            ok &= libc::write(fd, buf.as_ptr() as *const libc::c_void, n as usize) == n;
        }
        libc::close(maps);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_is_close_enough() {
        for &x in &[1e-9, 0.001, 0.25, 0.5, 0.9, 1.0] {
            assert!((ln(x) - x.ln()).abs() < 1e-9, "ln({x}) = {} not {}", ln(x), x.ln());
        }
    }
}
