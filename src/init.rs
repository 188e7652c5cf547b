//! Process-wide set-up, done once, lazily, from whichever call comes first
//! (possibly before any constructor has run), and again from hakmem's own
//! constructor: configuration, the thread-exit key and the fork handlers.

use core::sync::atomic::{AtomicU8, Ordering};

use crate::bootstrap;
use crate::config;
use crate::diag::Line;
use crate::large;
use crate::os;
use crate::purge;
use crate::slab::registry;
use crate::stats;
use crate::thread::lifecycle;
use crate::thread::tls::{Tls, ThreadState};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
/// Makes sure the process-wide set-up has run. The calling thread must be in
/// the `Busy` state, so allocations made by the libc calls below go to the
/// bootstrap arena instead of coming back here.
#[inline]
pub fn ensure() {
    if !done() {
        init_slow();
    }
}

/// Whether the process-wide set-up is done (the HAKMEM_* settings loaded).
#[inline(always)]
pub fn done() -> bool {
    STATE.load(Ordering::Acquire) == DONE
}

#[cold]
fn init_slow() {
    if STATE.compare_exchange(UNINIT, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_err() {
        // Another thread is setting up; it calls nothing that waits for us.
        while STATE.load(Ordering::Acquire) != DONE {
            os::process::yield_now();
        }
        return;
    }
    config::load();
    os::random::choose_secret();
    large::pool::use_shards(os::process::cpus());
    if config::harden() {
        large::guard_page::install_fault_handler();
    }
    stats::keep_stderr();
    lifecycle::create_exit_key();
    // SAFETY: the handlers are extern "C" fns that live as long as the process.
    unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_release), Some(fork_child)) };
    if config::verbose() {
        Line::new().str("hakmem: ").str(crate::VERSION).str(" active").write_to(2);
    }
    STATE.store(DONE, Ordering::Release);
}

/// Sets up the calling thread, whose state is `New`, and the process first
/// if this is its first call; false if no heap could be had. The thread
/// is `Busy` meanwhile, so allocations made on the way (by libc, in set-up)
/// go to the bootstrap arena instead of coming back here.
pub fn thread(t: *mut Tls) -> bool {
    // SAFETY: t is this thread's own record.
    unsafe { (*t).state = ThreadState::Busy };
    ensure();
    lifecycle::thread_init(t)
}

/// Every global lock, in one fixed order, so that no lock is held by a thread
/// that does not exist in the child.
extern "C" fn fork_prepare() {
    lifecycle::lock_for_fork();
    registry::fork_lock().acquire();
    large::lock_for_fork();
    lifecycle::lock_pool_for_fork();
    bootstrap::fork_lock().acquire();
}

/// After fork, in the parent and in the child (whose only thread is the one
/// that forked, so releasing is the same as resetting).
extern "C" fn fork_release() {
    bootstrap::fork_lock().release();
    lifecycle::unlock_pool_after_fork();
    large::unlock_after_fork();
    registry::fork_lock().release();
    lifecycle::unlock_after_fork();
}

/// In the child: the locks as in the parent; the purge thread and the other
/// threads did not come along.
extern "C" fn fork_child() {
    fork_release();
    lifecycle::forget_other_threads();
    purge::purger::forget();
}

#[cfg(not(test))]
#[ctor::ctor]
fn hakmem_constructor() {
    use crate::thread::tls::{self, ThreadState};
    let t = tls::current();
    // SAFETY: t is this thread's record.
    if unsafe { (*t).state } == ThreadState::New {
        thread(t);
    }
    if config::prof() {
        // SAFETY: as above. Busy meanwhile: what the unwinder's loading
        // allocates goes to the bootstrap arena.
        unsafe {
            let was = (*t).state;
            (*t).state = ThreadState::Busy;
            crate::prof::start();
            (*t).state = was;
        }
    }
}

#[cfg(not(test))]
#[ctor::dtor]
fn hakmem_destructor() {
    crate::report::at_exit();
    crate::prof::dump_at_exit();
}
