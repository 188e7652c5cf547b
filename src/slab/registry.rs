//! The global pool behind every thread's slabs: SuperSlabs with free units,
//! and slabs abandoned by threads that exited (adopted by the next thread
//! that needs their class). Threads come here only when their own slabs run
//! dry, so one lock is enough.
//!
//! Memory goes back to the kernel after the purge delay (HAKMEM_PURGE_DELAY_MS):
//! the units of released slabs with MADV_DONTNEED, empty SuperSlabs with
//! munmap. An emptied SuperSlab waits the delay like any freed unit, so a
//! program whose live memory swings (producers and consumers) reuses it
//! instead of unmapping and mapping it again. When they run is `purge`'s
//! to decide (src/purge/): this tier keeps its due time and does the work.

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::config::{self, Thp};
use crate::large::bigcache;
use crate::os::clock::now_ms;
use crate::os::pagemap::{self, REGION_SIZE};
use crate::os;
use crate::size_class::{units_for, CLASS_SIZE, NUM_CLASSES, UNIT_SHIFT};
use crate::slab::slab::Slab;
use crate::slab::superslab::{self, Links, SuperSlab, UNITS};
use crate::stats::{self, Counter, Footprint};
use crate::sync::due::{Due, NEVER};
use crate::sync::SpinLock;

/// When this tier's next purge is due (`due::NEVER`: nothing waits).
pub static PURGE_DUE: Due = Due::new();
/// 64 KiB units holding slabs (for mallinfo); only changed under the
/// lock, read by anyone. The SuperSlabs mapped are counted by `stats`.
static UNITS_USED: AtomicUsize = AtomicUsize::new(0);

/// Bytes mapped for SuperSlabs, of their units that hold slabs, and of
/// free units not yet purged (those are in SuperSlabs with room, all listed).
pub fn footprint() -> Footprint {
    let dirty_units = with_state(|st| {
        let (mut n, mut ss) = (0, st.with_room);
        while !ss.is_null() {
            // SAFETY: listed SuperSlabs are mapped and ours under the lock.
            let s = unsafe { &*ss };
            n += s.dirty_units.count_ones() as usize;
            ss = s.room.next;
        }
        n
    });
    Footprint {
        mapped: stats::superslabs() * REGION_SIZE,
        in_use: UNITS_USED.load(Ordering::Relaxed) << UNIT_SHIFT,
        dirty: dirty_units << UNIT_SHIFT,
    }
}

struct State {
    /// SuperSlabs with at least one free unit (doubly linked).
    with_room: *mut SuperSlab,
    /// Per class, slabs whose owner exited (linked through `next`).
    abandoned: [*mut Slab; NUM_CLASSES],
    /// Every SuperSlab mapped (linked through `all`).
    all: *mut SuperSlab,
}

struct Registry {
    lock: SpinLock,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only touched with `lock` held.
unsafe impl Sync for Registry {}

static REGISTRY: Registry = Registry {
    lock: SpinLock::new(),
    state: UnsafeCell::new(State {
        with_room: ptr::null_mut(),
        abandoned: [ptr::null_mut(); NUM_CLASSES],
        all: ptr::null_mut(),
    }),
};

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let _g = REGISTRY.lock.lock();
    // SAFETY: the lock is held for the closure's whole run.
    f(unsafe { &mut *REGISTRY.state.get() })
}

/// A new slab for `class`, unowned and empty; null when the kernel refuses
/// a new SuperSlab.
pub fn alloc_slab(class: usize) -> *mut Slab {
    let units = units_for(class);
    let size = CLASS_SIZE[class] as usize;
    with_state(|st| {
        let mut ss = st.with_room;
        while !ss.is_null() {
            // SAFETY: listed SuperSlabs are mapped and ours under the lock.
            let s = unsafe { &mut *ss };
            if let Some(first) = s.find_free_units(units) {
                let slab = s.claim(first, units, class, size);
                UNITS_USED.fetch_add(units, Ordering::Relaxed);
                if s.is_full() {
                    unlink(st, ss);
                }
                return slab;
            }
            ss = s.room.next;
        }
        let ss = new_superslab(st);
        if ss.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: freshly mapped and initialised, ours under the lock.
        let s = unsafe { &mut *ss };
        link(st, ss);
        UNITS_USED.fetch_add(units, Ordering::Relaxed);
        s.claim(1, units, class, size)
    })
}

/// Returns an empty slab's units to its SuperSlab.
pub fn free_slab(slab: *mut Slab) {
    with_state(|st| {
        let now = now_ms();
        release_slab(st, slab, now);
        if config::purge_delay_ms() == 0 {
            purge_locked(st, now, false);
        }
    })
}

/// Gives an empty slab's units back to its SuperSlab, dirty until purged.
fn release_slab(st: &mut State, slab: *mut Slab, now: u64) {
    let ss = superslab::of(slab as usize);
    // SAFETY: the slab's SuperSlab is mapped while any of its slabs lives.
    let s = unsafe { &mut *ss };
    let first = s.unit_of(slab);
    // SAFETY: the caller gives up the slab; nobody else holds it.
    let units = unsafe { (*slab).units as usize };
    s.release(first, units);
    UNITS_USED.fetch_sub(units, Ordering::Relaxed);
    if s.dirty_units == 0 {
        s.dirty_since = now;
    }
    s.dirty_units |= (((1u64 << units) - 1) << first) as u32;
    if !s.listed {
        link(st, ss);
    }
    if s.is_empty() {
        s.empty_since = now;
    }
    PURGE_DUE.note(now + config::purge_delay_ms() as u64);
}

/// Slabs of exited threads get their blocks back only through remote frees,
/// and nobody collects those until a thread adopts the slab. Here the lock
/// holder collects for them (adoption also takes the lock, so it acts as
/// the owner) and releases the ones that came back empty: memory of threads
/// that exited does not wait for a thread that needs their class. True if
/// abandoned slabs remain.
fn reclaim_abandoned(st: &mut State, now: u64) -> bool {
    let mut remain = false;
    for c in 0..NUM_CLASSES {
        let mut link: *mut *mut Slab = &mut st.abandoned[c];
        // SAFETY: listed abandoned slabs are live and unowned; the lock makes
        // this thread the only one touching them.
        unsafe {
            while !(*link).is_null() {
                let slab = *link;
                (*slab).collect_remote();
                if (*slab).used == 0 {
                    *link = (*slab).next;
                    (*slab).next = ptr::null_mut();
                    release_slab(st, slab, now);
                } else {
                    remain = true;
                    link = &mut (*slab).next;
                }
            }
        }
    }
    remain
}

/// Gives back what waited the purge delay at `now` (every free unit and
/// every empty SuperSlab when `force`); true if anything was given back.
pub fn purge(now: u64, force: bool) -> bool {
    if !PURGE_DUE.reached(now, force) {
        return false;
    }
    with_state(|st| purge_locked(st, now, force))
}

/// Gives back what has waited the purge delay (everything when `force`),
/// and notes when the next purge is due. True if anything was given back.
fn purge_locked(st: &mut State, now: u64, force: bool) -> bool {
    let delay = config::purge_delay_ms() as u64;
    let ripe = |since: u64| force || now >= since.saturating_add(delay);
    // Under THP always, free units stay until their SuperSlab goes whole:
    // giving back part of it would split its huge page.
    let whole_regions = config::thp() == Thp::Always;
    // Abandoned slabs are looked at again after a delay while any remain.
    let mut due = if reclaim_abandoned(st, now) { now + delay.max(1) } else { NEVER };
    let mut released = false;
    let mut ss = st.with_room;
    while !ss.is_null() {
        // SAFETY: listed SuperSlabs are mapped and ours under the lock.
        let s = unsafe { &mut *ss };
        let next = s.room.next;
        if s.is_empty() && ripe(s.empty_since) {
            unlink(st, ss);
            drop_superslab(st, ss);
            released = true;
        } else {
            if s.dirty_units != 0 && !whole_regions {
                if ripe(s.dirty_since) {
                    decommit_units(ss, s.dirty_units);
                    s.dirty_units = 0;
                    released = true;
                } else {
                    due = due.min(s.dirty_since + delay);
                }
            }
            if s.is_empty() {
                due = due.min(s.empty_since + delay);
            }
        }
        ss = next;
    }
    PURGE_DUE.set(due);
    released
}

/// Knocks at every SuperSlab (`pagemap::knock`): the next free into each
/// takes the slow way, where a thread asked to trim its cache does it.
pub fn knock_all() {
    with_state(|st| {
        let mut ss = st.all;
        while !ss.is_null() {
            pagemap::knock(ss as usize);
            // SAFETY: listed SuperSlabs are mapped and ours under the lock.
            ss = unsafe { (*ss).all.next };
        }
    })
}

/// MADV_DONTNEED over each run of consecutive units set in `mask`.
fn decommit_units(ss: *mut SuperSlab, mask: u32) {
    let mut u = 0;
    while u < UNITS {
        if mask & (1 << u) == 0 {
            u += 1;
            continue;
        }
        let first = u;
        while u < UNITS && mask & (1 << u) != 0 {
            u += 1;
        }
        let start = (ss as usize + (first << UNIT_SHIFT)) as *mut u8;
        os::decommit(start, (u - first) << UNIT_SHIFT);
    }
}

/// Hands a slab whose owner is exiting to whoever needs its class next.
pub fn abandon(slab: *mut Slab) {
    with_state(|st| {
        // SAFETY: the exiting owner gives the slab up; the lock orders it
        // before the adopter's reads.
        unsafe {
            let class = (*slab).class as usize;
            (*slab).set_owner(ptr::null());
            (*slab).next = st.abandoned[class];
            (*slab).prev = ptr::null_mut();
            st.abandoned[class] = slab;
        }
        PURGE_DUE.note(now_ms() + config::purge_delay_ms() as u64);
    })
}

/// An abandoned slab of `class`, if any (the caller becomes its owner).
pub fn adopt(class: usize) -> *mut Slab {
    with_state(|st| {
        let slab = st.abandoned[class];
        if !slab.is_null() {
            // SAFETY: listed abandoned slabs are live; the lock makes us the
            // only one taking this one.
            unsafe {
                st.abandoned[class] = (*slab).next;
                (*slab).next = ptr::null_mut();
            }
        }
        slab
    })
}

fn new_superslab(st: &mut State) -> *mut SuperSlab {
    // Under the registry lock: BigCache's lock comes after it, as at fork.
    bigcache::give_way(REGION_SIZE);
    let p = os::map_aligned(REGION_SIZE, REGION_SIZE) as *mut SuperSlab;
    if p.is_null() {
        return p;
    }
    os::huge_pages(p as *mut u8, REGION_SIZE, config::huge_page_advice());
    // SAFETY: a fresh mapping of REGION_SIZE bytes, zeroed, ours alone; the
    // list's members are live SuperSlabs, under the lock.
    unsafe {
        (*p).init();
        push_front(&mut st.all, p, all_links);
    }
    pagemap::set(p as usize, 1, pagemap::SUPERSLAB);
    stats::add(Counter::SuperslabsMapped, 1);
    stats::superslabs_mapped(1);
    p
}

fn drop_superslab(st: &mut State, ss: *mut SuperSlab) {
    pagemap::set(ss as usize, 1, pagemap::NONE);
    // SAFETY: ss and its neighbours on the list are live SuperSlabs, under
    // the lock.
    unsafe { remove(&mut st.all, ss, all_links) };
    os::unmap(ss as *mut u8, REGION_SIZE);
    stats::superslabs_mapped(-1);
}

fn link(st: &mut State, ss: *mut SuperSlab) {
    // SAFETY: ss and the list's members are live SuperSlabs, under the lock.
    unsafe {
        push_front(&mut st.with_room, ss, room_links);
        (*ss).listed = true;
    }
}

fn unlink(st: &mut State, ss: *mut SuperSlab) {
    // SAFETY: ss is on the list, under the lock.
    unsafe {
        remove(&mut st.with_room, ss, room_links);
        (*ss).listed = false;
    }
}

/// The links of the list of SuperSlabs with room, and of the list of all.
unsafe fn room_links(ss: *mut SuperSlab) -> *mut Links {
    ptr::addr_of_mut!((*ss).room)
}

unsafe fn all_links(ss: *mut SuperSlab) -> *mut Links {
    ptr::addr_of_mut!((*ss).all)
}

/// Puts `ss` at the front of the list at `head`, whose links `on` finds.
///
/// # Safety (both)
/// `ss` and the list's members are live SuperSlabs, and the caller holds
/// the lock; for `remove`, `ss` is on that list.
unsafe fn push_front(head: &mut *mut SuperSlab, ss: *mut SuperSlab, on: unsafe fn(*mut SuperSlab) -> *mut Links) {
    *on(ss) = Links { next: *head, prev: ptr::null_mut() };
    if !head.is_null() {
        (*on(*head)).prev = ss;
    }
    *head = ss;
}

unsafe fn remove(head: &mut *mut SuperSlab, ss: *mut SuperSlab, on: unsafe fn(*mut SuperSlab) -> *mut Links) {
    let Links { next, prev } = *on(ss);
    if prev.is_null() {
        *head = next;
    } else {
        (*on(prev)).next = next;
    }
    if !next.is_null() {
        (*on(next)).prev = prev;
    }
    *on(ss) = Links::NONE;
}

/// The lock fork holds across the fork (`init::fork_prepare`).
pub fn fork_lock() -> &'static SpinLock {
    &REGISTRY.lock
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size_class::UNIT_SIZE;

    #[test]
    fn released_slabs_leave_memory_after_a_purge() {
        let slab = alloc_slab(12);
        assert!(!slab.is_null());
        // SAFETY: the slab is ours; its first unit is mapped memory we may write.
        let start = (unsafe { (*slab).start } as usize & !(UNIT_SIZE - 1)) as *mut u8;
        // SAFETY: as above; the unit is 1 << UNIT_SHIFT bytes.
        unsafe { ptr::write_bytes(start, 0xab, 1 << UNIT_SHIFT) };
        assert_eq!(os::resident_pages(start, os::PAGE), 1);
        let ss = superslab::of(start as usize);
        let unit = (start as usize - ss as usize) >> UNIT_SHIFT;
        free_slab(slab);
        assert!(purge(now_ms(), true));
        // Another test may have claimed the unit again in between; otherwise
        // its pages must be gone.
        let reused = pagemap::kind(ss as usize) == pagemap::SUPERSLAB
            // SAFETY: the page map says the SuperSlab is still mapped.
            && unsafe { (*ss).used_units } & (1 << unit) != 0;
        assert!(reused || os::resident_pages(start, os::PAGE) == 0);
    }
}
