//! The global pool behind every thread's slabs: SuperSlabs with free units,
//! and slabs abandoned by threads that exited (adopted by the next thread
//! that needs their class). Threads come here only when their own slabs run
//! dry, so one lock is enough.

use core::cell::UnsafeCell;
use core::ptr;

use crate::os::{self, pagemap};
use crate::slab::size_class::{units_for, CLASS_SIZE, NUM_CLASSES};
use crate::slab::slab::Slab;
use crate::slab::superslab::{self, SuperSlab, SS_SIZE};
use crate::stats::{self, Counter};
use crate::sync::SpinLock;

/// Empty SuperSlabs kept mapped for the next slab instead of unmapped.
const EMPTY_RESERVE: usize = 1;

struct State {
    /// SuperSlabs with at least one free unit (doubly linked).
    with_room: *mut SuperSlab,
    empty: usize,
    /// Per class, slabs whose owner exited (linked through `next`).
    abandoned: [*mut Slab; NUM_CLASSES],
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
        empty: 0,
        abandoned: [ptr::null_mut(); NUM_CLASSES],
    }),
};

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let _g = REGISTRY.lock.lock();
    // SAFETY: the lock is held for the closure's whole run.
    f(unsafe { &mut *REGISTRY.state.get() })
}

/// A new slab for `class`, unowned and empty; null when memory is exhausted.
pub fn alloc_slab(class: usize) -> *mut Slab {
    let units = units_for(class);
    let size = CLASS_SIZE[class] as usize;
    with_state(|st| {
        let mut ss = st.with_room;
        while !ss.is_null() {
            // SAFETY: listed SuperSlabs are mapped and ours under the lock.
            let s = unsafe { &mut *ss };
            if let Some(first) = s.find_free_units(units) {
                if s.is_empty() {
                    st.empty -= 1;
                }
                let slab = s.claim(first, units, class, size);
                if s.is_full() {
                    unlink(st, ss);
                }
                return slab;
            }
            ss = s.next;
        }
        let ss = new_superslab();
        if ss.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: freshly mapped and initialised, ours under the lock.
        let s = unsafe { &mut *ss };
        link(st, ss);
        s.claim(1, units, class, size)
    })
}

/// Returns an empty slab's units to its SuperSlab.
pub fn free_slab(slab: *mut Slab) {
    let ss = superslab::of(slab as usize);
    with_state(|st| {
        // SAFETY: the slab's SuperSlab is mapped while any of its slabs lives.
        let s = unsafe { &mut *ss };
        let first = s.unit_of(slab);
        // SAFETY: the caller gives up the slab; nobody else holds it.
        let units = unsafe { (*slab).units as usize };
        s.release(first, units);
        if !s.listed {
            link(st, ss);
        }
        if s.is_empty() {
            if st.empty < EMPTY_RESERVE {
                st.empty += 1;
            } else {
                unlink(st, ss);
                drop_superslab(ss);
            }
        }
    })
}

/// Hands a slab whose owner is exiting to whoever needs its class next.
pub fn abandon(slab: *mut Slab) {
    with_state(|st| {
        // SAFETY: the exiting owner gives the slab up; the lock orders it
        // before the adopter's reads.
        unsafe {
            let class = (*slab).class as usize;
            (*slab).owner.store(ptr::null_mut(), core::sync::atomic::Ordering::Relaxed);
            (*slab).next = st.abandoned[class];
            (*slab).prev = ptr::null_mut();
            st.abandoned[class] = slab;
        }
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

fn new_superslab() -> *mut SuperSlab {
    let p = os::map_aligned(SS_SIZE, SS_SIZE) as *mut SuperSlab;
    if p.is_null() {
        return p;
    }
    // SAFETY: a fresh mapping of SS_SIZE bytes, zeroed, ours alone.
    unsafe { (*p).init() };
    pagemap::set(p as usize, 1, pagemap::SUPERSLAB);
    stats::add(Counter::SuperslabsMapped, 1);
    stats::live_superslabs(1);
    p
}

fn drop_superslab(ss: *mut SuperSlab) {
    pagemap::set(ss as usize, 1, pagemap::NONE);
    os::unmap(ss as *mut u8, SS_SIZE);
    stats::live_superslabs(-1);
}

fn link(st: &mut State, ss: *mut SuperSlab) {
    // SAFETY: ss and the list head are live SuperSlabs, under the lock.
    unsafe {
        (*ss).prev = ptr::null_mut();
        (*ss).next = st.with_room;
        if !st.with_room.is_null() {
            (*st.with_room).prev = ss;
        }
        (*ss).listed = true;
    }
    st.with_room = ss;
}

fn unlink(st: &mut State, ss: *mut SuperSlab) {
    // SAFETY: ss is on the list, under the lock.
    unsafe {
        let (prev, next) = ((*ss).prev, (*ss).next);
        if prev.is_null() {
            st.with_room = next;
        } else {
            (*prev).next = next;
        }
        if !next.is_null() {
            (*next).prev = prev;
        }
        (*ss).listed = false;
        (*ss).next = ptr::null_mut();
        (*ss).prev = ptr::null_mut();
    }
}

pub fn lock_for_fork() {
    REGISTRY.lock.acquire();
}

pub fn unlock_after_fork() {
    REGISTRY.lock.release();
}
