//! The background purge thread: started on demand, the first time a thread's
//! slow path finds memory waiting to be purged; it sleeps until the earliest
//! due time (or, while nothing waits, until a tier notes one) and runs the
//! purges then. It never allocates, blocks every signal (they are the
//! program's), and calls nothing that takes a lock it might hold at fork:
//! the fork handlers take every lock first, so a purge is never half done
//! in the child. The child has no such thread; its own slow paths start
//! one when it needs it. It ends when no thread with a heap is left (the
//! last one called pthread_exit), so that the process can end.
//! `HAKMEM_PURGE_THREAD=0` turns it off.

use core::sync::atomic::{AtomicU8, Ordering};

use crate::config;
use crate::os::clock::now_ms;
use crate::purge;
use crate::sync::due;
use crate::thread::lifecycle;
use crate::thread::tls::{self, ThreadState};

const NOT_STARTED: u8 = 0;
const RUNNING: u8 = 1;
/// Off by configuration, or pthread_create failed (not tried again).
const OFF: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(NOT_STARTED);

/// Stack of the thread: purges use a few KiB; only touched pages count.
const STACK: usize = 256 * 1024;
/// The coarse clock lags by up to a few ms; sleeping that much longer
/// saves a wake-up that finds the purge not yet due.
const SLACK_MS: u64 = 5;

/// Starts the thread if it should run and does not. The caller is a thread
/// on its own heap, between operations, holding no hakmem lock.
#[inline]
pub fn start() {
    if STATE.load(Ordering::Relaxed) != NOT_STARTED {
        return;
    }
    start_slow();
}

#[cold]
#[inline(never)]
fn start_slow() {
    if !config::purge_thread() {
        STATE.store(OFF, Ordering::Relaxed);
        return;
    }
    if STATE.compare_exchange(NOT_STARTED, RUNNING, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return;
    }
    let t = tls::current();
    // SAFETY: t is this thread's record. Busy sends what pthread_create
    // allocates (glibc's thread bookkeeping) to the bootstrap arena instead
    // of back into the heap whose slow path we are on.
    unsafe { (*t).state = ThreadState::Busy };
    let ok = spawn();
    // SAFETY: as above.
    unsafe { (*t).state = ThreadState::Live };
    if !ok {
        STATE.store(OFF, Ordering::Relaxed);
    }
}

fn spawn() -> bool {
    // SAFETY: plain pthread calls on locals that outlive them; the thread
    // starts with every signal blocked (it inherits the mask set here,
    // restored right after) so the program's signals go to its own threads.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_attr_init(&mut attr) != 0 {
            return false;
        }
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, STACK);
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut id: libc::pthread_t = 0;
        let rc = libc::pthread_create(&mut id, &attr, main, core::ptr::null_mut());
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        rc == 0
    }
}

extern "C" fn main(_: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: PR_SET_NAME reads a NUL-terminated name of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"hakmem-purge".as_ptr()) };
    loop {
        let seq = due::prepare_sleep();
        if lifecycle::heaps().0 == 0 && stop() {
            return core::ptr::null_mut();
        }
        let next = purge::next_due();
        let now = now_ms();
        if next <= now {
            purge::run(now, false);
            if purge::next_due() <= now {
                // A tier that could not purge just now (another thread
                // held its turn) is looked at again shortly, not in a spin.
                due::sleep(seq, SLACK_MS);
            }
            continue;
        }
        let wait = if next == due::NEVER { due::NEVER } else { next - now + SLACK_MS };
        due::sleep(seq, wait);
    }
}

/// No thread with a heap is left: the last one ended with pthread_exit
/// (`lifecycle` wakes this thread then), and a process lives on while any
/// of its threads does, so this one ends too. True if it should; false if a
/// thread was set up meanwhile and no other purge thread started for it.
/// A later slow path that finds memory waiting starts one again.
fn stop() -> bool {
    STATE.store(NOT_STARTED, Ordering::SeqCst);
    if lifecycle::heaps().0 == 0 {
        return true;
    }
    STATE.compare_exchange(NOT_STARTED, RUNNING, Ordering::SeqCst, Ordering::Relaxed).is_err()
}

/// In a forked child: the thread did not come along.
pub fn forget() {
    if STATE.load(Ordering::Relaxed) == RUNNING {
        STATE.store(NOT_STARTED, Ordering::Relaxed);
    }
}
