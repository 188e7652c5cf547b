//! A thread's heap: its cache bins and the slabs it owns, per class. Here is
//! everything a thread does when its cache misses or overflows: refill a
//! batch from its warm slabs, give a batch back (to its own slabs directly,
//! to other threads' slabs through their remote lists), and at thread exit
//! hand all of it back.

use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::config;
use crate::os::clock::now_ms;
use crate::sync::due::{Due, NEVER};
use crate::slab::registry;
use crate::size_class::NUM_CLASSES;
use crate::slab::slab::{self, Block, Inbox, Slab, ON_FULL, ON_NONE, ON_PARTIAL};
use crate::slab::superslab;
use crate::stats::{self, Counter};
use crate::thread::cache::{min_cap, start_cap, Bin, MAX_CAP, SLOT_OFFSET};

/// Per class: the slabs this heap owns, as rings (the head is where refills
/// look first), and the class's recent slow-path activity.
#[repr(C)]
pub struct Lists {
    pub partial: *mut Slab,
    pub full: *mut Slab,
    pub events: u32,
    /// Refills among them: a class this thread only frees does not grow.
    pub refills: u32,
}

impl Lists {
    const EMPTY: Lists = Lists { partial: ptr::null_mut(), full: ptr::null_mut(), events: 0, refills: 0 };
}

#[repr(C)]
pub struct Heap {
    /// The bins the fast paths use. In checked mode they stay empty with no
    /// room, so every malloc and free takes the slow path.
    pub bins: [Bin; NUM_CLASSES],
    pub lists: [Lists; NUM_CLASSES],
    /// Checked mode (statistics or hardening on): the bins in use.
    checked_bins: [Bin; NUM_CLASSES],
    pub checked: bool,
    /// Checked mode: statistics are on.
    pub counting: bool,
    /// Checked mode with hardening: the key free marks are encoded with
    /// (never 0); 0 without hardening.
    pub mark_key: usize,
    /// The heap of threads that have exited, used under a lock: it is on
    /// no list of live heaps, so it never asks for a trim.
    pub shared: bool,
    /// Slow-path events (refills and overflows), wrapping: idle classes are
    /// looked at every TICK_EVENTS, and the caller of a miss sees whether it
    /// reached the slabs (`slow_events`).
    slow_events: u32,
    /// Link in the pool of unused heaps.
    pub next: *mut Heap,
    /// In the pool: when it was pooled with its slot pages resident
    /// (`due::NEVER` once they went back to the kernel).
    pub pooled_since: u64,
    /// Blocks other threads freed into this heap's full slabs (any thread
    /// pushes, the owner takes all): a full slab that gets a block back is
    /// found again at the next refill that lacks a partial slab, with no
    /// scan of the full rings.
    pub inbox: Inbox,
    /// Set by the owner when its cache holds more than it starts with (a
    /// trim is due, `CACHE_TRIM_DUE`); cleared when it trims.
    pub trim_wanted: AtomicBool,
    /// Set by the purge thread when the trim is due: the owner trims its
    /// cache at its next slow path (`trim_if_asked`).
    pub trim_asked: AtomicBool,
    /// Links on the list of live heaps (`lifecycle`), which the purge thread
    /// walks to ask for trims.
    pub live_next: *mut Heap,
    pub live_prev: *mut Heap,
}

/// Slow-path events between looks for idle classes to shrink (a power of
/// two, so the count may wrap).
const TICK_EVENTS: u32 = 4096;
const _: () = assert!(TICK_EVENTS.is_power_of_two());

/// When some heap's cache is next due to be asked for a trim. Blocks a
/// thread cached keep their whole slabs resident (after a mass free, up to
/// one slab per cached block): the purge thread asks heaps that want a
/// trim, and each gives back the classes that went idle at its next slow
/// path, with nothing added to the fast paths.
pub static CACHE_TRIM_DUE: Due = Due::new();

impl Heap {
    pub const EMPTY: Heap = Heap {
        bins: [Bin::EMPTY; NUM_CLASSES],
        lists: [Lists::EMPTY; NUM_CLASSES],
        checked_bins: [Bin::EMPTY; NUM_CLASSES],
        checked: false,
        counting: false,
        mark_key: 0,
        shared: false,
        slow_events: 0,
        next: ptr::null_mut(),
        pooled_since: NEVER,
        inbox: Inbox::new(),
        trim_wanted: AtomicBool::new(false),
        trim_asked: AtomicBool::new(false),
        live_next: ptr::null_mut(),
        live_prev: ptr::null_mut(),
    };

    /// Points the bins at their slot arrays and sets starting capacities.
    /// With statistics (`counting`) or hardening (`mark_key` != 0) the heap
    /// is in checked mode: its bins are where only the slow path sees them.
    pub fn init(&mut self, slots: *mut *mut u8, counting: bool, mark_key: usize) {
        let checked = counting || mark_key != 0;
        self.checked = checked;
        self.counting = counting;
        self.mark_key = mark_key;
        for c in 0..NUM_CLASSES {
            // SAFETY: the slot area holds TOTAL_SLOTS entries.
            let bin = Bin::new(unsafe { slots.add(SLOT_OFFSET[c]) }, start_cap(c));
            if checked {
                self.bins[c] = Bin::EMPTY;
                self.checked_bins[c] = bin;
            } else {
                self.bins[c] = bin;
                self.checked_bins[c] = Bin::EMPTY;
            }
            self.lists[c] = Lists::EMPTY;
        }
        self.slow_events = 0;
        self.next = ptr::null_mut();
    }

    /// The bin of class `c` that holds this heap's cached blocks.
    #[inline]
    pub fn bin(&mut self, c: usize) -> &mut Bin {
        if self.checked {
            &mut self.checked_bins[c]
        } else {
            &mut self.bins[c]
        }
    }

    /// The bin of class `c` in checked mode.
    #[inline]
    pub fn checked_bin(&mut self, c: usize) -> &mut Bin {
        debug_assert!(self.checked && c < NUM_CLASSES);
        // SAFETY: callers pass a class index, below NUM_CLASSES.
        unsafe { self.checked_bins.get_unchecked_mut(c) }
    }

    /// How many refills and overflows this heap has made (wrapping): a
    /// miss that changed it reached the slabs, which is when purges due
    /// are looked at.
    #[inline]
    pub fn slow_events(&self) -> u32 {
        self.slow_events
    }

    /// A block of class `c` from the cache, refilling it when empty.
    pub fn alloc(&mut self, c: usize) -> *mut u8 {
        match self.bin(c).pop() {
            Some(p) => p,
            None => self.refill(c),
        }
    }

    /// Cache miss for class `c`: refills the bin and returns one block, or
    /// null when no memory can be had.
    pub fn refill(&mut self, c: usize) -> *mut u8 {
        self.note_event(c, true);
        let want = (self.bin(c).cap() / 2).max(1);
        let (slots, _) = self.bin(c).spill(); // empty: this is a miss
        let got = self.fill(c, slots, want);
        if got == 0 {
            return ptr::null_mut();
        }
        stats::add(Counter::SlabBlocks, got as u64);
        self.bin(c).settle(got - 1);
        // SAFETY: got > 0 blocks were written to the slots; the last is handed out.
        unsafe { *slots.add(got - 1) }
    }

    /// Cache overflow for class `c`: gives the older half back, then keeps `p`.
    pub fn overflow(&mut self, c: usize, p: *mut u8) {
        self.note_event(c, false);
        let half = self.bin(c).count() / 2;
        self.flush(c, half.max(1));
        if !self.bin(c).push(p) {
            self.give_back(p);
        }
    }

    /// Moves up to `want` blocks of class `c` from this heap's slabs to `out`.
    fn fill(&mut self, c: usize, out: *mut *mut u8, want: usize) -> usize {
        loop {
            let mut s = self.lists[c].partial;
            let warm = !s.is_null();
            if !warm {
                s = self.find_slab(c);
                if s.is_null() {
                    return 0;
                }
            }
            // SAFETY: slabs on our lists are ours to use.
            let slab = unsafe { &mut *s };
            // Reuse what other threads gave back before carving fresh blocks:
            // it keeps the touched (resident) part of the slab small.
            if slab.free.is_null() {
                slab.collect_remote();
            }
            let n = slab.take(out, want);
            if n > 0 {
                if warm {
                    stats::add(Counter::WarmSlabHits, 1);
                }
                return n;
            }
            if self.move_to(s, ON_FULL) {
                // Blocks came back while it went full: take them next.
                self.move_to(s, ON_PARTIAL);
            }
        }
    }

    /// A slab of class `c` with free blocks: a full one that other threads
    /// freed into, an abandoned one, or a new one. Null when out of memory.
    fn find_slab(&mut self, c: usize) -> *mut Slab {
        self.drain_inbox();
        let s = self.lists[c].partial;
        if !s.is_null() {
            return s;
        }
        let adopted = registry::adopt(c);
        let mut s = adopted;
        if s.is_null() {
            s = registry::alloc_slab(c);
        }
        if s.is_null() {
            return s;
        }
        // SAFETY: the registry handed this slab to us alone.
        let slab = unsafe { &mut *s };
        slab.set_owner(&self.inbox);
        slab.list = ON_NONE;
        if !adopted.is_null() {
            stats::add(Counter::Adopted, 1);
            slab.collect_remote();
        }
        self.move_to(s, ON_PARTIAL);
        s
    }

    /// Gives every block in the inbox back to its slab, a run of one slab at
    /// a time: ours go onto their free lists (their slabs leave the full
    /// rings), and runs of slabs that changed hands since they were sent go
    /// to their remote lists.
    pub fn drain_inbox(&mut self) {
        let mut b = self.inbox.take_all();
        while !b.is_null() {
            let s = superslab::slab_of(b as usize);
            // SAFETY: the swapped-out list is ours alone; every node is a
            // free block of a live slab (each is counted in its slab's used).
            let (tail, n, next) = unsafe { (*s).run_from(b) };
            self.give_back_run(&Run { slab: s, head: b, tail, n });
            b = superslab::check_link(tail, next);
        }
    }

    /// Gives the oldest `n` cached blocks of class `c` back to their slabs.
    pub fn flush(&mut self, c: usize, n: usize) {
        let (slots, count) = self.bin(c).spill();
        let n = n.min(count);
        let mut run = Run::EMPTY;
        for i in 0..n {
            // SAFETY: i < count, within the slot array.
            let p = unsafe { *slots.add(i) };
            let s = superslab::slab_of(p as usize);
            if s == run.slab {
                run.add(p);
            } else {
                self.give_back_run(&run);
                run = Run::one(s, p);
            }
        }
        self.give_back_run(&run);
        // SAFETY: both ranges lie within the slot array; copy handles overlap.
        unsafe { ptr::copy(slots.add(n), slots, count - n) };
        self.bin(c).settle(count - n);
    }

    /// Gives every cached block back to its slab (malloc_trim); true if the
    /// cache held any.
    pub fn flush_all(&mut self) -> bool {
        let mut any = !self.inbox.is_empty();
        self.drain_inbox();
        for c in 0..NUM_CLASSES {
            let count = self.bin(c).count();
            any |= count > 0;
            self.flush(c, count);
        }
        any
    }

    /// Gives one block back to its slab.
    pub fn give_back(&mut self, p: *mut u8) {
        self.give_back_run(&Run::one(superslab::slab_of(p as usize), p));
    }

    /// Gives a run of one slab's blocks back: onto its free list if the slab
    /// is ours, else to its remote list or its owner's inbox.
    fn give_back_run(&mut self, run: &Run) {
        let s = run.slab;
        if s.is_null() {
            return;
        }
        // SAFETY: the run's blocks are blocks of a live slab (checked when
        // they were freed), which stays live while they are out.
        let slab = unsafe { &mut *s };
        if !slab.is_owned_by(&self.inbox) {
            slab::send_back(s, run.head, run.tail);
            stats::add(Counter::RemoteFrees, run.n as u64);
            return;
        }
        stats::add(Counter::SlabBlocksBack, run.n as u64);
        slab.put_run(run.head, run.tail, run.n);
        if slab.list == ON_FULL {
            self.move_to(s, ON_PARTIAL);
        }
        // An empty slab goes back unless it is this class's only room.
        if slab.used == 0 && slab.next != s {
            self.move_to(s, ON_NONE);
            registry::free_slab(s);
        }
    }

    /// Hands back everything: cached blocks to their slabs, empty slabs to
    /// the registry, the rest to the abandoned lists for other threads.
    pub fn abandon(&mut self) {
        self.drain_inbox();
        for c in 0..NUM_CLASSES {
            let count = self.bin(c).count();
            self.flush(c, count);
            self.bin(c).set_cap(start_cap(c));
            for ring in [self.lists[c].partial, self.lists[c].full] {
                self.abandon_ring(ring);
            }
            self.lists[c] = Lists::EMPTY;
        }
    }

    fn abandon_ring(&mut self, head: *mut Slab) {
        if head.is_null() {
            return;
        }
        let mut s = head;
        loop {
            // SAFETY: ring members are our live slabs.
            let slab = unsafe { &mut *s };
            let next = slab.next;
            if slab.list == ON_FULL {
                slab.mark_full(false);
            }
            slab.collect_remote();
            slab.list = ON_NONE;
            if slab.used == 0 {
                registry::free_slab(s);
            } else {
                registry::abandon(s);
            }
            if next == head {
                break;
            }
            s = next;
        }
    }

    /// Counts a slow-path event for class `c` (a refill, or an overflow): a
    /// class that keeps missing gets more room, unless the thread only frees
    /// it (a bigger cache would only park other threads' blocks); every
    /// TICK_EVENTS events, idle classes give room back.
    fn note_event(&mut self, c: usize, refill: bool) {
        self.trim_if_asked();
        let l = &mut self.lists[c];
        l.events += 1;
        l.refills += refill as u32;
        let grow = l.events >= 2 && l.refills > 0;
        let max = MAX_CAP[c] as usize;
        let bin = self.bin(c);
        if grow && bin.cap() < max {
            let cap = (bin.cap() * 2).min(max);
            bin.set_cap(cap);
        }
        if !self.shared && self.bin(c).cap() > start_cap(c) {
            self.want_trim();
        }
        self.slow_events = self.slow_events.wrapping_add(1);
        if self.slow_events % TICK_EVENTS == 0 {
            self.shrink_idle(false);
        }
    }

    /// Classes with no slow-path event since the last look give room back:
    /// half of it (`to_min` false), or all but the floor (a trim the purge
    /// thread asked for: such a class has been idle for a purge delay).
    fn shrink_idle(&mut self, to_min: bool) {
        for c in 0..NUM_CLASSES {
            let now = self.bin(c).cap();
            if self.lists[c].events == 0 && now > min_cap(c) {
                let cap = if to_min { min_cap(c) } else { (now / 2).max(min_cap(c)) };
                let count = self.bin(c).count();
                if count > cap / 2 {
                    self.flush(c, count - cap / 2);
                }
                self.bin(c).set_cap(cap);
            }
            self.lists[c].events = 0;
            self.lists[c].refills = 0;
        }
    }

    /// Asks, once per trim, to be asked for a trim after the purge delay.
    fn want_trim(&mut self) {
        if !self.trim_wanted.load(Ordering::Relaxed) {
            self.trim_wanted.store(true, Ordering::Relaxed);
            CACHE_TRIM_DUE.note(now_ms() + config::purge_delay_ms() as u64);
        }
    }

    /// The purge thread asked for a trim (the purge delay has passed since
    /// we wanted one): idle classes give their blocks back, and a cache
    /// that still holds more than it starts with wants the next trim.
    fn trim_if_asked(&mut self) {
        if !self.trim_asked.load(Ordering::Relaxed) {
            return;
        }
        self.trim_asked.store(false, Ordering::Relaxed);
        self.trim_wanted.store(false, Ordering::Relaxed);
        self.shrink_idle(true);
        if (0..NUM_CLASSES).any(|c| self.bin(c).cap() > start_cap(c)) {
            self.want_trim();
        }
    }

    /// The purge thread asks heap `h`'s owner to trim its cache at its
    /// next slow path.
    ///
    /// # Safety
    /// `h` is a live heap (heaps are never unmapped). Only its atomic
    /// `trim_asked` is touched, which is all the owner lets others touch.
    pub unsafe fn ask_trim(h: *const Heap) {
        (*ptr::addr_of!((*h).trim_asked)).store(true, Ordering::Relaxed);
    }

    /// Moves an owned slab between rings (ON_NONE: onto none). Onto the full
    /// ring, returns whether remote frees arrived as it went (`mark_full`).
    fn move_to(&mut self, s: *mut Slab, to: u8) -> bool {
        // SAFETY: s is one of our slabs; rings hold only our slabs.
        unsafe {
            let class = (*s).class as usize;
            let from = (*s).list;
            match from {
                ON_PARTIAL => ring_remove(&mut self.lists[class].partial, s),
                ON_FULL => ring_remove(&mut self.lists[class].full, s),
                _ => {}
            }
            match to {
                ON_PARTIAL => ring_push_front(&mut self.lists[class].partial, s),
                ON_FULL => ring_push_front(&mut self.lists[class].full, s),
                _ => {}
            }
            (*s).list = to;
            if (from == ON_FULL) != (to == ON_FULL) {
                return (*s).mark_full(to == ON_FULL);
            }
            false
        }
    }
}

/// Blocks of one slab linked `head..=tail` (null `slab`: none), given back
/// together: consecutive frees into one slab cost one splice or one CAS.
struct Run {
    slab: *mut Slab,
    head: *mut Block,
    tail: *mut Block,
    n: u32,
}

impl Run {
    const EMPTY: Run = Run { slab: ptr::null_mut(), head: ptr::null_mut(), tail: ptr::null_mut(), n: 0 };

    fn one(s: *mut Slab, p: *mut u8) -> Run {
        let b = p as *mut Block;
        Run { slab: s, head: b, tail: b, n: 1 }
    }

    /// Adds free block `p` of the run's slab at the front.
    fn add(&mut self, p: *mut u8) {
        let b = p as *mut Block;
        // SAFETY: b is a free block nobody else references.
        unsafe { Block::set_next(b, self.head) };
        self.head = b;
        self.n += 1;
    }
}

/// Gives a block back to its slab from a thread that has no heap.
pub fn give_back_remote(p: *mut u8) {
    let b = p as *mut Block;
    slab::send_back(superslab::slab_of(p as usize), b, b);
    stats::add(Counter::RemoteFrees, 1);
}

/// Ring of slabs linked through next/prev; `head` null when empty.
///
/// SAFETY (both): s and the ring's members are live slabs owned by the caller.
unsafe fn ring_push_front(head: &mut *mut Slab, s: *mut Slab) {
    if head.is_null() {
        (*s).next = s;
        (*s).prev = s;
    } else {
        let h = *head;
        let last = (*h).prev;
        (*s).next = h;
        (*s).prev = last;
        (*last).next = s;
        (*h).prev = s;
    }
    *head = s;
}

unsafe fn ring_remove(head: &mut *mut Slab, s: *mut Slab) {
    if (*s).next == s {
        *head = ptr::null_mut();
    } else {
        (*(*s).prev).next = (*s).next;
        (*(*s).next).prev = (*s).prev;
        if *head == s {
            *head = (*s).next;
        }
    }
    (*s).next = ptr::null_mut();
    (*s).prev = ptr::null_mut();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::{free, malloc};
    use crate::size_class::class_of;
    use crate::thread::tls;

    /// A thread frees a burst and then uses other classes only: once the
    /// purge thread's request finds the burst's class idle, its cache gives
    /// the blocks back (so their slabs can go), keeping only the floor.
    #[test]
    fn an_asked_trim_gives_an_idle_class_back() {
        std::thread::spawn(|| {
            let blocks: Vec<usize> = (0..5000).map(|_| malloc(200) as usize).collect(); // alloc-ok: unit test (cfg(test)), on the system allocator
            blocks.iter().for_each(|&p| free(p as *mut u8, "test"));
            let h = tls::heap();
            let c = class_of(200);
            // SAFETY: this thread's own heap, used by this thread only.
            let heap = unsafe { &mut *h };
            assert!(heap.bin(c).count() > start_cap(c), "the burst filled a grown cache");
            assert!(heap.trim_wanted.load(Ordering::Relaxed), "a grown cache wants a trim");
            // The first request comes within the burst's window (the class
            // was busy); the second finds it idle.
            for _ in 0..2 {
                // SAFETY: h is a live heap.
                unsafe { Heap::ask_trim(h) };
                heap.trim_if_asked();
            }
            assert!(heap.bin(c).count() <= min_cap(c) / 2, "{} blocks still cached", heap.bin(c).count());
            assert_eq!(heap.bin(c).cap(), min_cap(c));
        })
        .join()
        .unwrap();
    }
}
