//! BigCache: freed big mappings kept for reuse, keyed by their rounded size.
//! Entries are linked through their own headers, so the cache has no table to
//! outgrow; a byte budget bounds what it keeps resident, and entries unused
//! for the purge delay go back to the kernel (`purge`, run on allocator
//! activity like the slab purge).

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::config;
use crate::large::big::{self, BigHeader};
use crate::os::clock::now_ms;
use crate::os::PAGE;
use crate::sync::SpinLock;

/// Bytes of mappings the cache may keep at most.
const BUDGET: usize = 64 << 20;
/// Mappings bigger than this are never kept.
const MAX_ENTRY: usize = 32 << 20;
const BINS: usize = 4 * 36;

struct Cache {
    lock: SpinLock,
    state: UnsafeCell<State>,
}

struct State {
    bins: [*mut BigHeader; BINS],
    bytes: usize,
}

// SAFETY: `state` is only touched with `lock` held.
unsafe impl Sync for Cache {}

static CACHE: Cache = Cache {
    lock: SpinLock::new(),
    state: UnsafeCell::new(State { bins: [ptr::null_mut(); BINS], bytes: 0 }),
};

/// When the oldest entry's purge delay runs out; u64::MAX when empty.
static PURGE_DUE: AtomicU64 = AtomicU64::new(u64::MAX);

/// Bytes of mappings cached now.
pub fn cached_bytes() -> usize {
    let _g = CACHE.lock.lock();
    // SAFETY: the cache lock is held.
    unsafe { (*CACHE.state.get()).bytes }
}

/// When the next purge of cached mappings is due (u64::MAX: never).
#[inline]
pub fn purge_due() -> u64 {
    PURGE_DUE.load(Ordering::Relaxed)
}

/// Unmaps every entry cached for the purge delay or longer (all of them when
/// `force`); true if any was unmapped.
pub fn purge(now: u64, force: bool) -> bool {
    let delay = config::purge_delay_ms() as u64;
    let mut released = false;
    let mut due = u64::MAX;
    let _g = CACHE.lock.lock();
    // SAFETY: the cache lock is held.
    let st = unsafe { &mut *CACHE.state.get() };
    for bin in st.bins.iter_mut() {
        let mut link: *mut *mut BigHeader = bin;
        // SAFETY: listed headers are live cached mappings, ours under the lock.
        unsafe {
            while !(*link).is_null() {
                let h = *link;
                let ripe_at = (*h).cached_at.saturating_add(delay);
                if force || now >= ripe_at {
                    *link = (*h).next;
                    st.bytes -= (*h).map_size;
                    big::unmap(h);
                    released = true;
                } else {
                    due = due.min(ripe_at);
                    link = &mut (*h).next;
                }
            }
        }
    }
    PURGE_DUE.store(due, Ordering::Relaxed);
    released
}

/// Bin of a mapping size (already rounded by `big::round_size`): four per
/// doubling from 4 KiB.
fn bin_of(map_size: usize) -> usize {
    let s = map_size.max(PAGE + 1) - 1;
    let w = (usize::BITS - 1 - s.leading_zeros()) as usize; // >= 12
    ((w - 12) * 4 + ((s >> (w - 2)) & 3)).min(BINS - 1)
}

/// The smallest cached mapping of at least `map_size` bytes, if any (the
/// caller trims what it does not need: its pages are already faulted in,
/// which is what makes reuse cheaper than a fresh mapping).
pub fn take(map_size: usize) -> *mut BigHeader {
    let _g = CACHE.lock.lock();
    // SAFETY: the cache lock is held.
    let st = unsafe { &mut *CACHE.state.get() };
    for bin in bin_of(map_size)..BINS {
        let mut best: *mut *mut BigHeader = ptr::null_mut();
        let mut link: *mut *mut BigHeader = &mut st.bins[bin];
        // SAFETY: listed headers are live cached mappings.
        unsafe {
            while !(*link).is_null() {
                let size = (**link).map_size;
                if size >= map_size && (best.is_null() || size < (**best).map_size) {
                    best = link;
                }
                link = &mut (**link).next;
            }
            if !best.is_null() {
                let h = *best;
                *best = (*h).next;
                st.bytes -= (*h).map_size;
                return h;
            }
        }
    }
    ptr::null_mut()
}

/// Keeps a freed mapping; false if it does not fit the budget (the caller
/// unmaps it then).
pub fn put(h: *mut BigHeader) -> bool {
    // SAFETY: the caller hands over a live mapping it no longer uses.
    let map_size = unsafe { (*h).map_size };
    if map_size > MAX_ENTRY {
        return false;
    }
    let _g = CACHE.lock.lock();
    // SAFETY: the cache lock is held.
    let st = unsafe { &mut *CACHE.state.get() };
    if st.bytes + map_size > BUDGET {
        return false;
    }
    let bin = bin_of(map_size);
    let now = now_ms();
    // SAFETY: as above.
    unsafe {
        (*h).next = st.bins[bin];
        (*h).cached_at = now;
    }
    st.bins[bin] = h;
    st.bytes += map_size;
    PURGE_DUE.fetch_min(now + config::purge_delay_ms() as u64, Ordering::Relaxed);
    true
}

pub fn lock_for_fork() {
    CACHE.lock.acquire();
}

pub fn unlock_after_fork() {
    CACHE.lock.release();
}

#[cfg(test)]
mod tests {
    use super::bin_of;

    #[test]
    fn bins_grow_with_size_and_stay_in_range() {
        let mut last = 0;
        let mut size = 4096;
        while size < (1usize << 46) {
            let b = bin_of(size);
            assert!(b >= last && b < super::BINS);
            last = b;
            size += size / 4;
            size = (size + 4095) & !4095;
        }
    }
}
