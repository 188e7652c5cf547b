//! The misses: what malloc and free do when the thread's bin cannot serve
//! them, for the slabs (checked mode's bins, a refill, the heap of exited
//! threads, a thread with no heap yet) and the tiers above; the retry when
//! memory runs out and the purge check after a slow path.

use core::ptr;

use crate::bootstrap;
use crate::config;
use crate::diag;
use crate::foreign;
use crate::init;
use crate::large;
use crate::os::pagemap;
use crate::prof;
use crate::purge::{self, purger};
use crate::size_class::CLASS_SIZE;
use crate::slab::superslab;
use crate::thread::checked;
use crate::thread::heap::{give_back_remote, Heap};
use crate::thread::lifecycle::with_orphan_heap;
use crate::thread::tls::{self, ThreadState};
use crate::valgrind;

/// A block of slab class `c` for a malloc whose bin was empty.
#[inline(never)]
pub fn slab_block(c: usize) -> *mut u8 {
    let p = take_miss(c);
    if config::prof() {
        prof::allocated(p, CLASS_SIZE[c] as usize);
    }
    p
}

/// slab_block's block: from checked mode's bin, a refill, or the heap of
/// exited threads.
#[inline(always)]
fn take_miss(c: usize) -> *mut u8 {
    let heap = tls::heap();
    if heap == tls::sentinel() {
        return or_enomem(malloc_without_heap(c));
    }
    // SAFETY: a live heap belongs to this thread alone.
    let h = unsafe { &mut *heap };
    let p = checked::alloc_miss(h, c);
    if !h.took_slow_path() {
        // Served by checked mode's bin, which never fails.
        return p;
    }
    refilled(h, c, p)
}

/// After a miss that reached the slabs: a refill that found no memory is
/// asked once more, and then the purges due run.
#[cold]
#[inline(never)]
fn refilled(h: &mut Heap, c: usize, p: *mut u8) -> *mut u8 {
    let p = or_retry(h, c, p);
    after_slow_path(true);
    or_enomem(p)
}

/// `p`, what `checked::alloc_miss` gave for class `c`; when it is null (no
/// memory), the same asked once more after the caches went back to the
/// kernel.
fn or_retry(h: &mut Heap, c: usize, p: *mut u8) -> *mut u8 {
    if p.is_null() && purge::release_for_retry() {
        return checked::alloc_miss(h, c);
    }
    p
}

/// A block of the tiers above the slabs (`size` bytes aligned to `align`),
/// with errno ENOMEM when there is none; after it, the purges due run.
#[cold]
#[inline(never)]
pub fn large_block(size: usize, align: usize) -> *mut u8 {
    after_slow_path(tls::heap() != tls::sentinel());
    or_enomem(large_alloc(size, align).0)
}

/// `large::alloc`, asked once more after the caches went back to the kernel
/// if it failed (`purge::release_for_retry`).
pub fn large_alloc(size: usize, align: usize) -> (*mut u8, bool) {
    let mut got = large::alloc(size, align);
    if got.0.is_null() && purge::release_for_retry() {
        got = large::alloc(size, align);
    }
    if (valgrind::active() || config::prof()) && !got.0.is_null() {
        let usable = block_usable(got.0, "malloc");
        valgrind::malloclike(got.0, usable, got.1);
        if config::prof() {
            prof::allocated(got.0, usable);
        }
    }
    got
}

/// `p`, with errno ENOMEM when it is null (the C contract of every
/// allocating call).
#[inline(always)]
pub fn or_enomem(p: *mut u8) -> *mut u8 {
    if p.is_null() {
        errno::set_errno(errno::Errno(libc::ENOMEM));
    }
    p
}

/// After a slow path: the purges that are due, and the purge thread if
/// memory waits for it. `own_heap`: the caller is a thread on its own heap
/// holding no hakmem lock, the only place the thread may be started from.
#[inline(never)]
fn after_slow_path(own_heap: bool) {
    if purge::maybe_purge() && own_heap {
        purger::start();
    }
}

/// Whether `p`, which free's fast path did not take, is a slab block after
/// all: its SuperSlab was knocked at (`registry::knock_all`, the purge
/// thread's way of reaching a thread whose calls all hit its cache). Then
/// the knock is answered (if another free has not done it meanwhile), the
/// trim this thread was asked for happens now, and the caller frees `p`
/// again. Anywhere else the fast path and this test agree, so it cannot
/// send a free round twice but for a new knock.
#[cold]
#[inline(never)]
pub fn answer_knock(p: *mut u8) -> bool {
    let a = p as usize;
    if pagemap::kind(a) != pagemap::SUPERSLAB || superslab::block_class(a).is_none() {
        return false;
    }
    pagemap::answer(a);
    let heap = tls::heap();
    if heap != tls::sentinel() {
        // SAFETY: a live TLS heap belongs to this thread alone.
        unsafe { (*heap).trim_if_asked() };
        after_slow_path(true);
    }
    true
}

/// Loads the settings before an allocating call picks a block's kind
/// (hardened or not). The process's first call can come before hakmem's
/// constructor, from another library's (libselinux's opens a file): made
/// with the settings unread, its block would be a plain one that hardened
/// mode's free then reports as invalid. A new thread is set up here, as its
/// first miss would do anyway; inside the set-up (`Busy`) nothing is done,
/// its blocks come from the bootstrap arena, which every mode frees alike.
#[inline(always)]
pub fn load_settings() {
    if !init::done() {
        set_up_early();
    }
}

#[cold]
#[inline(never)]
fn set_up_early() {
    let t = tls::current();
    // SAFETY: t is this thread's record.
    if unsafe { (*t).state } == ThreadState::New {
        // A thread left without a heap stays New: its miss tries again.
        init::thread(t);
    }
}

/// malloc from a thread that has no heap: new, setting itself up, or exited.
#[inline(never)]
fn malloc_without_heap(c: usize) -> *mut u8 {
    let t = tls::current();
    // SAFETY: t is this thread's record.
    match unsafe { (*t).state } {
        ThreadState::New => {
            if init::thread(t) {
                take_miss(c)
            } else {
                ptr::null_mut()
            }
        }
        ThreadState::Busy => {
            // Blocks of a class are aligned to the size's power-of-two factor.
            let size = CLASS_SIZE[c] as usize;
            bootstrap::alloc(size, size & size.wrapping_neg())
        }
        _ => {
            let p = with_orphan_heap(|h| {
                h.map_or(ptr::null_mut(), |h| {
                    let p = checked::alloc(h, c);
                    or_retry(h, c, p)
                })
            });
            after_slow_path(false);
            p
        }
    }
}

/// Frees `p`, a block of slab class `c` that the thread's bin had no room
/// for.
#[cold]
#[inline(never)]
pub fn free_slab_block(p: *mut u8, c: usize) {
    if config::prof() {
        prof::freed(p);
    }
    let heap = tls::heap();
    if heap != tls::sentinel() {
        // SAFETY: a live heap belongs to this thread alone.
        let h = unsafe { &mut *heap };
        checked::free_miss(h, c, p);
        if h.took_slow_path() {
            after_slow_path(true);
        }
        return;
    }
    free_without_heap(p, c)
}

/// free from a thread that has no heap: new (it gets one: a thread that only
/// frees still batches its CASes through a cache), or exited.
#[inline(never)]
fn free_without_heap(p: *mut u8, c: usize) {
    let t = tls::current();
    // SAFETY: t is this thread's record.
    if unsafe { (*t).state } == ThreadState::New && init::thread(t) {
        // SAFETY: init::thread gave this thread its heap, its own alone.
        unsafe { (*tls::heap()).close_bins() };
        return free_slab_block(p, c);
    }
    checked::note_free(c, p);
    give_back_remote(p);
}

/// Frees `p`, which is not a slab block: a large block, a bootstrap block
/// (kept), glibc's own (`foreign.rs`), or a pointer hakmem never handed out
/// (reported).
#[cold]
#[inline(never)]
pub fn free_not_slab(p: *mut u8, who: &str) {
    if p.is_null() {
        return;
    }
    let a = p as usize;
    match pagemap::kind(a) {
        pagemap::BOOTSTRAP => {}
        k if large::owns(k) && large_free(a, k) => after_slow_path(tls::heap() != tls::sentinel()),
        pagemap::NONE if foreign::free(a) => {}
        k if large::was_freed(a, k) => diag::double_free(who, a),
        _ => diag::invalid_pointer(who, a),
    }
}

/// Frees the large block at `a` (of page map kind `k`); false if it is
/// not a live one.
fn large_free(a: usize, k: u8) -> bool {
    if (valgrind::active() || config::prof()) && large::usable(a, k).is_some() {
        valgrind::freelike(a as *mut u8);
        if config::prof() {
            prof::freed(a as *mut u8);
        }
    }
    large::free(a, k)
}

/// Usable size of the live block starting at `p`, of any tier; reports and
/// aborts if `p` is not one.
pub fn block_usable(p: *const u8, who: &str) -> usize {
    let a = p as usize;
    match pagemap::kind(a) {
        pagemap::SUPERSLAB => match superslab::block_class(a) {
            Some(c) => CLASS_SIZE[c] as usize,
            None => diag::invalid_pointer(who, a),
        },
        pagemap::BOOTSTRAP => bootstrap::usable(p),
        k if large::owns(k) => match large::usable(a, k) {
            Some(n) => n,
            None => diag::invalid_pointer(who, a),
        },
        pagemap::NONE => match foreign::usable(a) {
            Some(n) => n,
            None => diag::invalid_pointer(who, a),
        },
        _ => diag::invalid_pointer(who, a),
    }
}
