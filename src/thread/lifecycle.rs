//! A thread's life as hakmem sees it: the first miss sets it up (a heap from
//! the pool, registered with a pthread key so its exit is noticed); at exit
//! the key's destructor hands everything back and returns the heap to the
//! pool. Calls that come after that (glibc frees TLS and resolver state late)
//! take a shared heap under a lock.

use core::cell::UnsafeCell;
use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::config;
use crate::diag;
use crate::os;
use crate::os::clock::now_ms;
use crate::sync::due::{self, Due, NEVER};
use crate::sync::SpinLock;
use crate::thread::cache::TOTAL_SLOTS;
use crate::thread::checked;
use crate::thread::heap::{Heap, CACHE_TRIM_DUE};
use crate::thread::tls::{self, Tls, ThreadState};

const HEAP_HEADER: usize = os::align_up(size_of::<Heap>(), 64);
const HEAP_BYTES: usize = os::align_up(HEAP_HEADER + TOTAL_SLOTS * size_of::<usize>(), os::PAGE);

struct Shared {
    lock: SpinLock,
    heap: UnsafeCell<*mut Heap>,
}
// SAFETY: `heap` is only touched with `lock` held.
unsafe impl Sync for Shared {}

/// A pooled heap keeps its slot pages for the purge delay, so the threads a
/// program keeps starting (Larson's successors, a churn of short threads)
/// reuse them without faults; then they go back to the kernel
/// (`purge_pooled`), so a burst of threads leaves nothing resident.
pub static PURGE_DUE: Due = Due::new();

/// Heaps of exited threads, ready for new ones (linked through `next`).
static POOL: Shared = Shared { lock: SpinLock::new(), heap: UnsafeCell::new(ptr::null_mut()) };
/// Heaps of live threads (linked through `live_next`/`live_prev`), for the
/// purge thread to ask for trims.
static LIVE_HEAPS: Shared = Shared { lock: SpinLock::new(), heap: UnsafeCell::new(ptr::null_mut()) };
/// The heap of threads that have exited but still allocate.
static ORPHAN: Shared = Shared { lock: SpinLock::new(), heap: UnsafeCell::new(ptr::null_mut()) };

/// Heaps mapped (they are never unmapped), and threads with a heap now.
static HEAPS: AtomicUsize = AtomicUsize::new(0);
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Threads with a heap now, and the bytes of every heap mapped.
pub fn heaps() -> (usize, usize) {
    (THREADS.load(Ordering::SeqCst), HEAPS.load(Ordering::Relaxed) * HEAP_BYTES)
}

/// In a forked child, whose only thread is the one that forked: the other
/// threads' heaps stay on the live list (nothing of theirs runs, and they
/// are never given back), but they no longer count as threads.
pub fn forget_other_threads() {
    let mine = tls::heap() != tls::sentinel();
    THREADS.store(mine as usize, Ordering::SeqCst);
}

/// A heap for a new thread: from the pool, or freshly mapped.
fn take_heap() -> *mut Heap {
    {
        let _g = POOL.lock.lock();
        // SAFETY: the pool lock is held.
        let pool = unsafe { &mut *POOL.heap.get() };
        if !pool.is_null() {
            let h = *pool;
            // SAFETY: pooled heaps are live and unused.
            *pool = unsafe { (*h).next };
            drop(_g);
            // SAFETY: the heap left the pool; nobody else uses it.
            unsafe {
                // Blocks sent just as its last thread exited: their slabs
                // are not ours, so they go on to their remote lists.
                (*h).drain_inbox();
                // A trim asked just before it left the live list is moot:
                // abandoning it emptied its cache.
                (*h).trim_asked.store(false, Ordering::Relaxed);
                (*h).trim_wanted.store(false, Ordering::Relaxed);
            }
            return h;
        }
    }
    new_heap()
}

fn new_heap() -> *mut Heap {
    let base = os::map(HEAP_BYTES);
    if base.is_null() {
        return ptr::null_mut();
    }
    HEAPS.fetch_add(1, Ordering::Relaxed);
    let h = base as *mut Heap;
    // The configuration and the key are set before any heap exists.
    // SAFETY: a fresh mapping big enough for the heap and its slot area.
    unsafe { (*h).init(base.add(HEAP_HEADER) as *mut *mut u8, config::checked(), checked::mark_key()) };
    h
}

fn pool_heap(h: *mut Heap) {
    let now = now_ms();
    {
        let _g = POOL.lock.lock();
        // SAFETY: the pool lock is held; h was abandoned and is unused.
        unsafe {
            (*h).pooled_since = now;
            (*h).next = *POOL.heap.get();
            *POOL.heap.get() = h;
        }
    }
    PURGE_DUE.note(now + config::purge_delay_ms() as u64);
}

/// Gives back the slot pages of heaps pooled for the purge delay (all of
/// them when `force`); true if any went.
pub fn purge_pooled(now: u64, force: bool) -> bool {
    if !PURGE_DUE.reached(now, force) {
        return false;
    }
    let delay = config::purge_delay_ms() as u64;
    let (mut due, mut released) = (NEVER, false);
    let _g = POOL.lock.lock();
    // SAFETY: the pool lock is held; pooled heaps are live and unused.
    let mut h = unsafe { *POOL.heap.get() };
    while !h.is_null() {
        // SAFETY: as above.
        let heap = unsafe { &mut *h };
        if heap.pooled_since != NEVER {
            if force || now >= heap.pooled_since + delay {
                // Its slot arrays are empty: their pages can go until reused.
                let slots = os::align_up(h as usize + HEAP_HEADER, os::PAGE);
                os::decommit(slots as *mut u8, h as usize + HEAP_BYTES - slots);
                heap.pooled_since = NEVER;
                released = true;
            } else {
                due = due.min(heap.pooled_since + delay);
            }
        }
        h = heap.next;
    }
    PURGE_DUE.set(due);
    released
}

/// The key whose destructor tells us a thread exited (`thread_exit`).
static EXIT_KEY: AtomicU32 = AtomicU32::new(0);

/// Process set-up, once, before any thread gets a heap.
pub fn create_exit_key() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: key is a valid out-pointer; the destructor is an extern "C" fn
    // that lives as long as the process.
    if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } != 0 {
        diag::fatal("pthread_key_create failed");
    }
    EXIT_KEY.store(key, Ordering::Release);
}

/// Sets up the calling thread, once the process is (`init::thread`): its
/// state is `Busy`, so nested allocations on the way use the bootstrap
/// arena. False if no heap could be had (the state goes back to `New`).
pub fn thread_init(t: *mut Tls) -> bool {
    let h = take_heap();
    if h.is_null() {
        // SAFETY: as above.
        unsafe { (*t).state = ThreadState::New };
        return false;
    }
    // SAFETY: the key was created before any heap existed; h is the value
    // its destructor gets back.
    unsafe { libc::pthread_setspecific(EXIT_KEY.load(Ordering::Acquire), h as *mut libc::c_void) };
    link_live(h);
    // SAFETY: as above.
    unsafe {
        (*t).heap = h;
        (*t).state = ThreadState::Live;
    }
    true
}

/// The pthread key's destructor: runs when a thread that set up a heap exits.
pub extern "C" fn thread_exit(arg: *mut libc::c_void) {
    let h = arg as *mut Heap;
    let t = tls::current();
    // SAFETY: t is this thread's record; h is the heap it registered and no
    // other thread uses it.
    unsafe {
        (*t).heap = tls::sentinel();
        (*t).state = ThreadState::Gone;
    }
    unlink_live(h);
    // SAFETY: as above.
    unsafe { (*h).abandon() };
    pool_heap(h);
}

fn link_live(h: *mut Heap) {
    THREADS.fetch_add(1, Ordering::SeqCst);
    let _g = LIVE_HEAPS.lock.lock();
    // SAFETY: the live-list lock is held; h and the listed heaps are live.
    unsafe {
        let head = *LIVE_HEAPS.heap.get();
        (*h).live_prev = ptr::null_mut();
        (*h).live_next = head;
        if !head.is_null() {
            (*head).live_prev = h;
        }
        *LIVE_HEAPS.heap.get() = h;
    }
}

fn unlink_live(h: *mut Heap) {
    if THREADS.fetch_sub(1, Ordering::SeqCst) == 1 {
        // The last thread with a heap is leaving (pthread_exit from the
        // last thread, which leaves the process running while any thread
        // does): the purge thread ends too, so the process can.
        due::wake();
    }
    let _g = LIVE_HEAPS.lock.lock();
    // SAFETY: as in link_live; h is on the list.
    unsafe {
        let (prev, next) = ((*h).live_prev, (*h).live_next);
        if prev.is_null() {
            *LIVE_HEAPS.heap.get() = next;
        } else {
            (*prev).live_next = next;
        }
        if !next.is_null() {
            (*next).live_prev = prev;
        }
        (*h).live_next = ptr::null_mut();
        (*h).live_prev = ptr::null_mut();
    }
}

/// Asks every live heap whose cache wants a trim to make it (their owners
/// do, at their next slow path: `Heap::ask_trim`), when that is due (always
/// when `force`). Gives nothing back itself; true if it asked any.
pub fn ask_trims(now: u64, force: bool) -> bool {
    if !CACHE_TRIM_DUE.reached(now, force) {
        return false;
    }
    // Owners that want a trim again note a new time.
    CACHE_TRIM_DUE.set(NEVER);
    let _g = LIVE_HEAPS.lock.lock();
    // SAFETY: the live-list lock is held; listed heaps are live.
    let mut h = unsafe { *LIVE_HEAPS.heap.get() };
    let mut asked = false;
    while !h.is_null() {
        // SAFETY: as above; ask_trim touches only the heap's atomics.
        unsafe {
            if (*h).trim_wanted.load(Ordering::Relaxed) {
                Heap::ask_trim(h);
                asked = true;
            }
            h = (*h).live_next;
        }
    }
    asked
}

/// Runs `f` on the shared heap of exited threads, under its lock.
pub fn with_orphan_heap<R>(f: impl FnOnce(Option<&mut Heap>) -> R) -> R {
    let _g = ORPHAN.lock.lock();
    // SAFETY: the orphan lock is held.
    let slot = unsafe { &mut *ORPHAN.heap.get() };
    if slot.is_null() {
        *slot = new_heap();
        if !slot.is_null() {
            // SAFETY: a fresh heap, under the lock.
            unsafe { (**slot).shared = true };
        }
    }
    // SAFETY: a live heap used by whoever holds the lock.
    f(unsafe { slot.as_mut() })
}

/// fork: taken in a fixed order before, released after (in both processes).
/// The orphan heap's lock comes first (its holder goes on to every tier's
/// locks, purges included); the heap pool's is a leaf (its holders take no
/// other lock), taken after the tiers' (`lock_pool_for_fork`).
pub fn lock_for_fork() {
    ORPHAN.lock.acquire();
}

pub fn unlock_after_fork() {
    ORPHAN.lock.release();
}

pub fn lock_pool_for_fork() {
    POOL.lock.acquire();
    LIVE_HEAPS.lock.acquire();
}

pub fn unlock_pool_after_fork() {
    LIVE_HEAPS.lock.release();
    POOL.lock.release();
}
