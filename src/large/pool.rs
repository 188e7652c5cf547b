//! The pool tier: blocks of 32 KiB < size <= 1 MiB as page runs in shared
//! 2 MiB regions (pool_region.rs), so that such a block costs no system call
//! once its region is mapped. Regions are split among shards, each under its
//! own lock; a thread allocates from the shard its thread pointer hashes to,
//! and a block goes back to the shard of its region, so threads contend only
//! when they share a shard.
//!
//! Freed runs keep their pages until the purge delay (`MADV_DONTNEED` then);
//! a region empty for the delay goes back to the kernel. Purges run on
//! allocator activity, like the slab purge.

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::config::{self, Thp};
use crate::large::pool_region::{class_of, class_size, Links, Region, RUN_CLASSES};
use crate::os;
use crate::os::clock::now_ms;
use crate::os::pagemap::REGION_SIZE;
use crate::stats::Footprint;
use crate::sync::due::{Due, NEVER};
use crate::sync::SpinLock;

pub use crate::large::pool_region::MAX_SIZE;

const SHARDS: usize = 8;
/// Shards in use: one per CPU, at most SHARDS (`use_shards`). More shards
/// than CPUs add no parallelism, only regions that each hold their own
/// free runs (thread churn spreads threads over all of them).
static SHARDS_USED: AtomicUsize = AtomicUsize::new(SHARDS);

pub struct Shard {
    lock: SpinLock,
    lists: UnsafeCell<ShardLists>,
}

struct ShardLists {
    /// Per class: regions with a run to give that hold live runs.
    partial: [*mut Region; RUN_CLASSES],
    /// Regions holding no live run (any class), most recently emptied first.
    empty: *mut Region,
    /// Regions with free runs whose pages are still resident.
    dirty: *mut Region,
    /// When this shard's next purge is due (u64::MAX: nothing waits).
    due: u64,
    /// Regions mapped, and bytes of live runs in them (for mallinfo).
    regions: usize,
    live_bytes: usize,
}

// SAFETY: `lists` and the regions it leads to are only touched with `lock` held.
unsafe impl Sync for Shard {}

impl Shard {
    pub const fn new() -> Self {
        Shard {
            lock: SpinLock::new(),
            lists: UnsafeCell::new(ShardLists {
                partial: [ptr::null_mut(); RUN_CLASSES],
                empty: ptr::null_mut(),
                dirty: ptr::null_mut(),
                due: u64::MAX,
                regions: 0,
                live_bytes: 0,
            }),
        }
    }

    /// Runs `f` on the lists with the lock held.
    fn with<T>(&self, f: impl FnOnce(&mut ShardLists) -> T) -> T {
        let _g = self.lock.lock();
        // SAFETY: the lock is held.
        f(unsafe { &mut *self.lists.get() })
    }
}

static SHARD: [Shard; SHARDS] = [const { Shard::new() }; SHARDS];
/// The earliest `due` of all shards (u64::MAX: nothing waits).
pub static PURGE_DUE: Due = Due::new();
/// Set while a thread runs a purge, so that others do not queue behind it.
static PURGING: AtomicBool = AtomicBool::new(false);

/// The calling thread's shard: its thread pointer, hashed.
fn my_shard() -> usize {
    let t = os::process::thread_pointer() as u64;
    ((t >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 61) as usize % SHARDS_USED.load(Ordering::Relaxed)
}

/// Spreads threads over `cpus` shards (at most SHARDS), at start-up.
pub fn use_shards(cpus: usize) {
    SHARDS_USED.store(cpus.clamp(1, SHARDS), Ordering::Relaxed);
}

/// A block of `size` bytes (at most MAX_SIZE), page-aligned, and whether it
/// reads as zero; null when the kernel has no memory.
pub fn alloc(size: usize) -> (*mut u8, bool) {
    let s = my_shard();
    SHARD[s].alloc(s, class_of(size), size)
}

/// Frees the pool block at `p` (in a region the page map marks POOL) at
/// `now`; false if `p` is not a live block. A purge that came due is the
/// caller's to run (`purge::maybe_purge` covers `PURGE_DUE`).
pub fn free(p: usize, now: u64) -> bool {
    let r = Region::of(p);
    // SAFETY: the page map says a pool region is mapped at r.
    let Some(s) = (unsafe { (*r).is_valid().then(|| (*r).shard as usize) }) else {
        return false;
    };
    SHARD[s].free(r, p, now)
}

/// Usable size of the live pool block at `p`, or None.
pub fn usable(p: usize) -> Option<usize> {
    with_region_of(p, |reg| reg.live_run(p).map(|i| reg.asked(i)))
}

/// Whether `p` is a pool block that was freed (for a report to name a
/// second free of it).
pub fn was_freed(p: usize) -> bool {
    with_region_of(p, |reg| reg.is_freed_run(p).then_some(())).is_some()
}

/// `f` of the region holding `p` with its shard's lock held; None if the
/// region is not a valid one.
fn with_region_of<T>(p: usize, f: impl FnOnce(&Region) -> Option<T>) -> Option<T> {
    let r = Region::of(p);
    // SAFETY: the page map says a pool region is mapped at r.
    if !unsafe { (*r).is_valid() } {
        return None;
    }
    // SAFETY: as above; the shard index is fixed for the region's life.
    let s = unsafe { (*r).shard } as usize;
    // SAFETY: the region's shard lock is held inside.
    SHARD[s].with(|_| f(unsafe { &*r }))
}

/// Resizes the live pool block at `p` in place to `size` bytes when its run
/// holds them without wasting more than half; its tail is checked first.
/// None when `p` is not a live block or the block must move.
pub fn resize(p: usize, size: usize) -> Option<*mut u8> {
    let r = Region::of(p);
    // SAFETY: the page map says a pool region is mapped at r.
    if !unsafe { (*r).is_valid() } {
        return None;
    }
    // SAFETY: as above; the shard index is fixed for the region's life.
    let s = unsafe { (*r).shard } as usize;
    SHARD[s].with(|_| {
        // SAFETY: the region's shard lock is held.
        let reg = unsafe { &mut *r };
        let i = reg.live_run(p)?;
        reg.check_guards(i);
        let run = class_size(reg.class());
        (size <= run && size > run / 2).then(|| {
            reg.set_asked(i, size);
            p as *mut u8
        })
    })
}

/// Bytes of pool regions mapped, of live blocks in them, and of free runs
/// not yet purged.
pub fn footprint() -> Footprint {
    SHARD.iter().fold(Footprint::default(), |sum, s| sum + s.footprint())
}

/// Gives back free runs and empty regions that waited the purge delay (all
/// of them when `force`); true if anything was given back.
pub fn purge(now: u64, force: bool) -> bool {
    if !take_purge_turn(force) {
        return false; // another thread is at it
    }
    // Every shard's due is folded back in below; a free racing with this
    // lowers PURGE_DUE after the store or is seen in its shard.
    PURGE_DUE.set(NEVER);
    let delay = config::purge_delay_ms() as u64;
    let mut released = false;
    for shard in SHARD.iter() {
        released |= shard.purge(now, delay, force);
    }
    PURGING.store(false, Ordering::Release);
    released
}

/// Becomes the one purging thread; only a forced purge waits for its turn.
fn take_purge_turn(wait: bool) -> bool {
    while PURGING.swap(true, Ordering::Acquire) {
        if !wait {
            return false;
        }
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
    true
}

/// Fork holds the purge turn too, so that no purge is half done in the child.
pub fn lock_for_fork() {
    take_purge_turn(true);
    SHARD.iter().for_each(|s| s.lock.acquire());
}

pub fn unlock_after_fork() {
    SHARD.iter().rev().for_each(|s| s.lock.release());
    PURGING.store(false, Ordering::Release);
}

impl Shard {
    fn alloc(&self, index: usize, c: usize, size: usize) -> (*mut u8, bool) {
        self.with(|l| {
            let r = l.region_for(index, c);
            if r.is_null() {
                return (ptr::null_mut(), false);
            }
            // SAFETY: regions in this shard's lists are live; the lock is held.
            let reg = unsafe { &mut *r };
            let block = reg.pop(size).unwrap_or((ptr::null_mut(), false));
            if !block.0.is_null() {
                l.live_bytes += class_size(c);
            }
            if reg.is_full() {
                unlink(&mut l.partial[c], r, list);
            }
            block
        })
    }

    fn free(&self, r: *mut Region, p: usize, now: u64) -> bool {
        let delay = config::purge_delay_ms() as u64;
        self.with(|l| {
            // SAFETY: r is a live region of this shard; the lock is held.
            let reg = unsafe { &mut *r };
            let Some(i) = reg.live_run(p) else {
                return false;
            };
            let was_full = reg.is_full();
            reg.push(i, now);
            l.live_bytes -= class_size(reg.class());
            if reg.used == 0 {
                if !was_full {
                    unlink(&mut l.partial[reg.class()], r, list);
                }
                push_front(&mut l.empty, r, list);
            } else if was_full {
                push_front(&mut l.partial[reg.class()], r, list);
            }
            l.sync_dirty_list(r);
            if l.due == u64::MAX {
                l.due = now.saturating_add(delay);
                PURGE_DUE.note(l.due);
            }
            true
        })
    }

    fn footprint(&self) -> Footprint {
        self.with(|l| {
            let (mut dirty, mut r) = (0, l.dirty);
            while !r.is_null() {
                // SAFETY: regions on the dirty list are live, under the lock.
                let reg = unsafe { &*r };
                dirty += reg.resident_free_bytes();
                r = reg.dirty_list.next;
            }
            Footprint { mapped: l.regions * REGION_SIZE, in_use: l.live_bytes, dirty }
        })
    }

    fn purge(&self, now: u64, delay: u64, force: bool) -> bool {
        self.with(|l| {
            let mut released = false;
            if force || now >= l.due {
                (l.due, released) = l.purge(now, delay, force);
            }
            PURGE_DUE.note(l.due);
            released
        })
    }
}

impl ShardLists {
    /// A region of class `c` with a run to give, in `partial[c]`: the list's
    /// head, else an empty region (one of this class first, as its freed
    /// runs are resident), else a new one. Null when the kernel has no memory.
    fn region_for(&mut self, shard: usize, c: usize) -> *mut Region {
        if !self.partial[c].is_null() {
            return self.partial[c];
        }
        // An empty region of this class, else the one emptied longest ago:
        // its pages are resident already, where a new region's would add
        // to them while the empty ones wait for the purge
        // (docs/ARCHITECTURE.md).
        let (mut r, mut oldest) = (self.empty, ptr::null_mut());
        // SAFETY: regions in this shard's lists are live; the lock is held.
        while !r.is_null() && unsafe { (*r).class() } != c {
            oldest = r;
            // SAFETY: as above.
            r = unsafe { (*r).list.next };
        }
        if r.is_null() {
            r = oldest;
        }
        if r.is_null() {
            r = Region::create(shard);
            if r.is_null() {
                return r;
            }
            self.regions += 1;
        } else {
            unlink(&mut self.empty, r, list);
        }
        // SAFETY: as above; r holds no live run.
        let reg = unsafe { &mut *r };
        reg.format(c, now_ms());
        self.sync_dirty_list(r);
        push_front(&mut self.partial[c], r, list);
        r
    }

    /// The shard's purge; returns when the next one is due and whether
    /// anything was given back.
    fn purge(&mut self, now: u64, delay: u64, force: bool) -> (u64, bool) {
        let mut due = u64::MAX;
        let mut released = false;
        let mut r = self.empty;
        while !r.is_null() {
            // SAFETY: regions in this shard's lists are live; the lock is held.
            let reg = unsafe { &mut *r };
            let next = reg.list.next;
            let ripe_at = reg.empty_since.saturating_add(delay);
            if force || now >= ripe_at {
                unlink(&mut self.empty, r, list);
                if reg.on_dirty_list {
                    unlink(&mut self.dirty, r, dirty_list);
                }
                // SAFETY: empty, and now in no list.
                unsafe { Region::destroy(r) };
                self.regions -= 1;
                released = true;
            } else {
                due = due.min(ripe_at);
            }
            r = next;
        }
        // Under THP always, free runs stay until their region goes whole:
        // giving back part of it would split its huge page.
        let mut r = if config::thp() == Thp::Always { ptr::null_mut() } else { self.dirty };
        while !r.is_null() {
            // SAFETY: as above.
            let reg = unsafe { &mut *r };
            let next = reg.dirty_list.next;
            let (next_due, gave_back) = reg.purge(now, delay, force);
            self.sync_dirty_list(r);
            due = due.min(next_due);
            released |= gave_back;
            r = next;
        }
        (due, released)
    }

    /// A region is in the dirty list (once) while it has free pages that
    /// may be resident, for the purge to find.
    fn sync_dirty_list(&mut self, r: *mut Region) {
        // SAFETY: r is a live region of the locked shard.
        let reg = unsafe { &mut *r };
        if reg.has_resident_free_pages() != reg.on_dirty_list {
            if reg.on_dirty_list {
                unlink(&mut self.dirty, r, dirty_list);
            } else {
                push_front(&mut self.dirty, r, dirty_list);
            }
            reg.on_dirty_list = !reg.on_dirty_list;
        }
    }
}

/// Which of a region's two link pairs a list uses.
fn list(r: &mut Region) -> &mut Links {
    &mut r.list
}

fn dirty_list(r: &mut Region) -> &mut Links {
    &mut r.dirty_list
}

fn push_front(head: &mut *mut Region, r: *mut Region, links: fn(&mut Region) -> &mut Links) {
    // SAFETY: r and the listed regions are live regions of the locked shard.
    unsafe {
        *links(&mut *r) = Links { next: *head, prev: ptr::null_mut() };
        if !head.is_null() {
            links(&mut **head).prev = r;
        }
    }
    *head = r;
}

fn unlink(head: &mut *mut Region, r: *mut Region, links: fn(&mut Region) -> &mut Links) {
    // SAFETY: r is in the list that starts at head; all are live regions of
    // the locked shard.
    unsafe {
        let Links { next, prev } = *links(&mut *r);
        if prev.is_null() {
            *head = next;
        } else {
            links(&mut *prev).next = next;
        }
        if !next.is_null() {
            links(&mut *next).prev = prev;
        }
        *links(&mut *r) = Links { next: ptr::null_mut(), prev: ptr::null_mut() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::{pagemap, resident_pages, PAGE};

    /// Pages of `p..p+len` resident now.
    fn free_in(shard: &Shard, p: *mut u8, now: u64) -> bool {
        shard.free(Region::of(p as usize), p as usize, now)
    }

    #[test]
    fn freed_runs_are_reused_first_and_empty_regions_go_after_the_delay() {
        let shard = Shard::new();
        let c = class_of(100 * 1024);
        let size = class_size(c);
        let blocks: Vec<*mut u8> = (0..40)
            .map(|i| {
                let (p, zero) = shard.alloc(0, c, class_size(c));
                assert!(!p.is_null() && zero);
                assert_eq!(p as usize % PAGE, 0);
                // SAFETY: p is a live run of `size` bytes.
                unsafe { ptr::write_bytes(p, i as u8 + 1, size) };
                p
            })
            .collect();
        let f = shard.footprint();
        assert_eq!((f.in_use, f.dirty), (40 * size, 0));
        assert!(f.mapped >= f.in_use && f.mapped.is_multiple_of(REGION_SIZE));
        for (i, &p) in blocks.iter().enumerate() {
            // SAFETY: as above; nobody else wrote these runs.
            assert_eq!(unsafe { *p.add(size - 1) }, i as u8 + 1);
            assert!(!free_in(&shard, p.wrapping_add(PAGE), 0), "interior pointer");
        }
        for &p in &blocks {
            assert!(free_in(&shard, p, 1000));
        }
        assert!(!free_in(&shard, blocks[0], 1000), "double free");
        assert_eq!((shard.footprint().in_use, shard.footprint().dirty), (0, 40 * size));
        let (q, zero) = shard.alloc(0, c, class_size(c));
        assert_eq!(q, blocks[38], "the run freed before the last comes back first");
        assert!(!zero);
        assert!(free_in(&shard, q, 1000));
        assert!(!shard.purge(1099, 100, false));
        assert!(resident_pages(q, size) > 0);
        assert!(shard.purge(1100, 100, false));
        for &p in &blocks {
            assert_eq!(pagemap::kind(p as usize), pagemap::NONE, "regions unmapped");
        }
        // SAFETY: the lock is not held elsewhere; the test owns the shard.
        let lists = unsafe { &*shard.lists.get() };
        assert!(lists.empty.is_null() && lists.dirty.is_null() && lists.due == u64::MAX);
        assert_eq!(shard.footprint(), Footprint::default(), "no region left mapped");
    }

    #[test]
    fn a_region_in_use_gives_back_its_free_runs_only() {
        let shard = Shard::new();
        let c = class_of(300 * 1024);
        let size = class_size(c);
        let runs: Vec<*mut u8> = (0..3).map(|_| shard.alloc(0, c, class_size(c)).0).collect();
        for &p in &runs {
            // SAFETY: p is a live run of `size` bytes.
            unsafe { ptr::write_bytes(p, 0x5a, size) };
        }
        assert!(free_in(&shard, runs[1], 0));
        assert!(free_in(&shard, runs[2], 0));
        assert!(shard.purge(100, 100, false));
        assert_eq!(resident_pages(runs[1], size) + resident_pages(runs[2], size), 0);
        assert_eq!(resident_pages(runs[0], size), size / PAGE);
        assert_eq!(pagemap::kind(runs[0] as usize), pagemap::POOL);
        assert_eq!(shard.alloc(0, c, class_size(c)), (runs[1], true), "a purged run reads as zero");
        for &p in &runs[..2] {
            assert!(free_in(&shard, p, 0));
        }
        assert!(shard.purge(0, 100, true));
        assert_eq!(pagemap::kind(runs[0] as usize), pagemap::NONE);
    }

    #[test]
    fn threads_allocate_and_free_each_others_blocks() {
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..400usize {
                        let size = 33 * 1024 + (i * 7919 + t as usize * 104729) % (MAX_SIZE - 33 * 1024);
                        let (p, _) = alloc(size);
                        // SAFETY: p has at least size bytes.
                        unsafe { ptr::write_bytes(p, t, size) };
                        assert!(usable(p as usize).unwrap() >= size);
                        mine.push((p as usize, size));
                    }
                    mine
                })
            })
            .collect();
        let all: Vec<Vec<(usize, usize)>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        // Each thread's blocks are checked and freed by another thread.
        let frees: Vec<_> = all
            .into_iter()
            .enumerate()
            .map(|(t, blocks)| {
                std::thread::spawn(move || {
                    for (p, size) in blocks {
                        // SAFETY: p is a live block of size bytes written by thread t.
                        let bytes = unsafe { core::slice::from_raw_parts(p as *const u8, size) };
                        assert!(bytes.iter().all(|&b| b == t as u8));
                        assert!(free(p, now_ms()));
                    }
                })
            })
            .collect();
        frees.into_iter().for_each(|h| h.join().unwrap());
    }
}
