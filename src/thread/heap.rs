//! A thread's heap: its cache bins and the slabs it owns, per class. Here is
//! what a thread does when its cache misses or overflows: refill a batch
//! from its warm slabs or give a batch back (`give_back`), let the bin grow
//! or shrink (`capacity`), and at thread exit hand all of it back.

use core::ptr;
use core::sync::atomic::AtomicBool;

use crate::size_class::NUM_CLASSES;
use crate::slab::registry;
use crate::slab::slab::{Inbox, Ring, Slab};
use crate::stats::{self, Counter};
use crate::sync::due::NEVER;
use crate::thread::cache::{start_cap, Bin, SLOT_OFFSET};

mod capacity;
mod give_back;

pub use capacity::CACHE_TRIM_DUE;
pub use give_back::give_back_remote;

/// Per class: the slabs this heap owns, as rings (the head is where refills
/// look first), and the class's recent slow-path activity.
#[repr(C)]
pub struct SlabRings {
    pub partial: *mut Slab,
    pub full: *mut Slab,
    pub events: u32,
    /// Refills among them: a class this thread only frees does not grow.
    pub refills: u32,
}

impl SlabRings {
    const EMPTY: SlabRings = SlabRings { partial: ptr::null_mut(), full: ptr::null_mut(), events: 0, refills: 0 };
}

#[repr(C)]
pub struct Heap {
    /// The bins the fast paths use. In checked mode they stay empty with no
    /// room, so every malloc and free takes the slow path.
    pub bins: [Bin; NUM_CLASSES],
    pub rings: [SlabRings; NUM_CLASSES],
    /// Checked mode (statistics or hardening on, `config::checked`): the
    /// bins in use, which only `thread/checked.rs` reaches.
    checked_bins: [Bin; NUM_CLASSES],
    pub checked: bool,
    /// The slot area the bins are laid over (`init`), for `open_bins`.
    slots: *mut *mut u8,
    /// Frees made while the bins are closed (`close_bins`); 0 when open.
    closed_frees: u32,
    closed: bool,
    /// Checked mode with hardening: the key free marks are encoded with,
    /// taken from `config` and the process key when the heap is set up (0
    /// without hardening), so the checked paths read one field.
    pub mark_key: usize,
    /// The heap of threads that have exited, used under a lock: it is on
    /// no list of live heaps, so it never asks for a trim.
    pub shared: bool,
    /// Slow-path events (refills and overflows), wrapping: idle classes are
    /// looked at every TICK_EVENTS.
    slow_events: u32,
    /// Set by every slow-path event, taken by the caller of the miss
    /// (`took_slow_path`): the time to look at the purges due.
    slow_path_taken: bool,
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

/// Frees a heap set up by a free gives straight back to their slabs before
/// it opens its bins (`Heap::close_bins`): a thread that only frees (a
/// consumer) then batches through its cache like any other.
const CLOSED_FREES: u32 = 64;

/// Partial slabs a refill looks at to pick the fullest (`warm_fullest`).
const PICK_SLABS: usize = 8;

impl Heap {
    pub const EMPTY: Heap = Heap {
        bins: [Bin::EMPTY; NUM_CLASSES],
        rings: [SlabRings::EMPTY; NUM_CLASSES],
        checked_bins: [Bin::EMPTY; NUM_CLASSES],
        checked: false,
        slots: ptr::null_mut(),
        closed_frees: 0,
        closed: false,
        mark_key: 0,
        shared: false,
        slow_events: 0,
        slow_path_taken: false,
        next: ptr::null_mut(),
        pooled_since: NEVER,
        inbox: Inbox::new(),
        trim_wanted: AtomicBool::new(false),
        trim_asked: AtomicBool::new(false),
        live_next: ptr::null_mut(),
        live_prev: ptr::null_mut(),
    };

    /// Points the bins at their slot arrays and sets starting capacities.
    /// A `checked` heap (statistics or hardening on) keeps its bins where
    /// only the slow path sees them.
    pub fn init(&mut self, slots: *mut *mut u8, checked: bool, mark_key: usize) {
        self.checked = checked;
        self.slots = slots;
        self.closed = false;
        self.closed_frees = 0;
        self.mark_key = mark_key;
        for c in 0..NUM_CLASSES {
            let bin = self.fresh_bin(c);
            if checked {
                self.bins[c] = Bin::EMPTY;
                self.checked_bins[c] = bin;
            } else {
                self.bins[c] = bin;
                self.checked_bins[c] = Bin::EMPTY;
            }
            self.rings[c] = SlabRings::EMPTY;
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

    /// Whether a refill or an overflow happened since the last call: a miss
    /// that reached the slabs, which is when the purges due are looked at.
    #[inline]
    pub fn took_slow_path(&mut self) -> bool {
        let taken = self.slow_path_taken;
        if taken {
            self.slow_path_taken = false;
        }
        taken
    }

    /// A block of class `c` from the cache, refilling it when empty.
    pub fn alloc(&mut self, c: usize) -> *mut u8 {
        match self.bin(c).pop() {
            Some(p) => p,
            None => self.refill(c),
        }
    }

    /// Closes the bins of a heap set up by a free, until the thread's first
    /// malloc or CLOSED_FREES frees: what a thread frees before it ever
    /// allocates was most likely handed to it by another thread, and goes
    /// back to its slab instead of being the next block this thread's
    /// malloc gets. Reused here, it would sit on a cache line the other
    /// thread writes: the passive false sharing of a thread that allocates
    /// for its workers (ARCHITECTURE, "Where hakmem stays behind"). Every
    /// free and malloc then misses, which is where this is undone.
    pub fn close_bins(&mut self) {
        if self.checked {
            return;
        }
        for c in 0..NUM_CLASSES {
            self.bins[c] = Bin::EMPTY;
        }
        self.closed = true;
        self.closed_frees = 0;
    }

    fn open_bins(&mut self) {
        self.closed = false;
        self.closed_frees = 0;
        for c in 0..NUM_CLASSES {
            self.bins[c] = self.fresh_bin(c);
        }
    }

    /// An empty bin of class `c` over its part of the slot area, with its
    /// starting room.
    fn fresh_bin(&self, c: usize) -> Bin {
        // SAFETY: the slot area holds TOTAL_SLOTS entries.
        Bin::new(unsafe { self.slots.add(SLOT_OFFSET[c]) }, start_cap(c))
    }

    /// Cache miss for class `c`: refills the bin and returns one block, or
    /// null when no memory can be had.
    pub fn refill(&mut self, c: usize) -> *mut u8 {
        if self.closed {
            self.open_bins();
        }
        self.note_event(c, true);
        let want = (self.bin(c).cap() / 2).max(1);
        let (slots, _) = self.bin(c).spill(); // empty: this is a miss
        let got = self.fill(c, slots, want);
        if got == 0 {
            return ptr::null_mut();
        }
        stats::add(Counter::SlabBlocks, got as u64);
        stats::class_out(c, got as i64);
        self.bin(c).settle(got - 1);
        // SAFETY: got > 0 blocks were written to the slots; the last is handed out.
        unsafe { *slots.add(got - 1) }
    }

    /// Cache overflow for class `c`: gives the older half back (and what
    /// belongs to other threads, `flush`), then keeps `p`.
    /// With the bins closed, `p` goes back to its slab (the first
    /// CLOSED_FREES times: a thread that only frees then gets its cache).
    pub fn overflow(&mut self, c: usize, p: *mut u8) {
        if self.closed {
            self.closed_frees += 1;
            if self.closed_frees < CLOSED_FREES {
                return self.give_back(p);
            }
            self.open_bins();
        }
        self.note_event(c, false);
        let half = self.bin(c).count() / 2;
        self.flush(c, half.max(1));
        if !self.bin(c).push(p) {
            self.give_back(p);
        }
    }

    /// Moves up to `want` blocks of class `c` from this heap's slabs to `out`.
    fn fill(&mut self, c: usize, out: *mut *mut u8, want: usize) -> usize {
        self.drain_inbox();
        self.warm_fullest(c);
        loop {
            let mut s = self.rings[c].partial;
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
            if slab.bits.count() == 0 {
                slab.collect_remote();
            }
            let n = slab.take(out, want);
            if n > 0 {
                if warm {
                    stats::add(Counter::WarmSlabHits, 1);
                }
                return n;
            }
            if self.move_to_ring(s, Ring::Full) {
                // Blocks came back while it went full: take them next.
                self.move_to_ring(s, Ring::Partial);
            }
        }
    }

    /// Looks at the first `PICK_SLABS` partial slabs of class `c`: takes in
    /// their remote frees, gives back those that came back empty (the warm
    /// one stays, as the class's room), and makes the one with the fewest
    /// free blocks the warm one. Allocating from the fullest slab lets the
    /// emptier ones drain and go back to the registry, where any class can
    /// use their units; blocks handed between threads otherwise leave free
    /// blocks spread over every slab.
    fn warm_fullest(&mut self, c: usize) {
        let warm = self.rings[c].partial;
        if warm.is_null() {
            return;
        }
        let (mut best, mut best_used) = (warm, 0);
        let mut s = warm;
        for _ in 0..PICK_SLABS {
            // SAFETY: slabs on our rings are ours to use.
            let slab = unsafe { &mut *s };
            let next = slab.next;
            slab.collect_remote();
            let released = s != warm && self.release_if_empty(s);
            if !released && slab.has_room() && slab.used >= best_used {
                (best, best_used) = (s, slab.used);
            }
            if next == warm {
                break;
            }
            s = next;
        }
        if best != warm {
            self.move_to_ring(best, Ring::Partial);
        }
    }

    /// A slab of class `c` with free blocks: a full one that other threads
    /// freed into, an abandoned one, or a new one. Null when out of memory.
    fn find_slab(&mut self, c: usize) -> *mut Slab {
        self.drain_inbox();
        let s = self.rings[c].partial;
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
        slab.ring = Ring::Off;
        if !adopted.is_null() {
            stats::add(Counter::Adopted, 1);
            slab.collect_remote();
        }
        self.move_to_ring(s, Ring::Partial);
        s
    }

    /// Hands back everything: cached blocks to their slabs, empty slabs to
    /// the registry, the rest to the abandoned lists for other threads.
    pub fn abandon(&mut self) {
        if self.closed {
            self.open_bins();
        }
        self.drain_inbox();
        for c in 0..NUM_CLASSES {
            let count = self.bin(c).count();
            self.flush(c, count);
            self.bin(c).set_cap(start_cap(c));
            for ring in [self.rings[c].partial, self.rings[c].full] {
                self.abandon_ring(ring);
            }
            self.rings[c] = SlabRings::EMPTY;
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
            if slab.ring == Ring::Full {
                slab.mark_full(false);
            }
            slab.collect_remote();
            slab.ring = Ring::Off;
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

    /// Moves an owned slab between rings (Ring::Off: onto none). Onto the full
    /// ring, returns whether remote frees arrived as it went (`mark_full`).
    fn move_to_ring(&mut self, s: *mut Slab, to: Ring) -> bool {
        // SAFETY: s is one of our slabs; rings hold only our slabs.
        unsafe {
            let class = (*s).class as usize;
            let from = (*s).ring;
            match from {
                Ring::Partial => ring_remove(&mut self.rings[class].partial, s),
                Ring::Full => ring_remove(&mut self.rings[class].full, s),
                Ring::Off => {}
            }
            match to {
                Ring::Partial => ring_push_front(&mut self.rings[class].partial, s),
                Ring::Full => ring_push_front(&mut self.rings[class].full, s),
                Ring::Off => {}
            }
            (*s).ring = to;
            if (from == Ring::Full) != (to == Ring::Full) {
                return (*s).mark_full(to == Ring::Full);
            }
            false
        }
    }
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
    use crate::slab::superslab;
    use core::sync::atomic::Ordering;
    use crate::thread::cache::TOTAL_SLOTS;
    use crate::thread::tls;

    /// A heap over its own slot array, as lifecycle makes them (which this
    /// test keeps alive as long as the heap).
    struct TestHeap {
        heap: Box<Heap>,
        _slots: Vec<*mut u8>,
    }

    fn test_heap() -> TestHeap {
        // Links are encoded with the process key, set once here.
        crate::init::ensure();
        let mut slots = vec![ptr::null_mut(); TOTAL_SLOTS];
        let mut heap = Box::new(Heap::EMPTY);
        heap.init(slots.as_mut_ptr(), false, 0);
        TestHeap { heap, _slots: slots }
    }

    fn slab(p: *mut u8) -> &'static Slab {
        // SAFETY: p is a live block, so its slab is live for the test.
        unsafe { &*superslab::slab_of(p as usize) }
    }

    /// Gives every block in `h`'s bin of class `c` back to its slab, one at a
    /// time (unlike a flush, which the tests look at).
    fn give_back_cached(h: &mut Heap, c: usize) {
        while let Some(q) = h.bin(c).pop() {
            h.give_back(q);
        }
    }

    /// Blocks of class `c` from `h` until one comes from a second slab: the
    /// first slab is then on the full ring. Returns both slabs' blocks.
    fn fill_a_slab(h: &mut Heap, c: usize) -> (Vec<*mut u8>, *mut u8) {
        let first = h.alloc(c);
        let s = superslab::slab_of(first as usize);
        let mut blocks = vec![first];
        loop {
            let p = h.alloc(c);
            assert!(!p.is_null());
            if superslab::slab_of(p as usize) != s {
                return (blocks, p);
            }
            blocks.push(p);
        }
    }

    // Each test below uses a class no other unit test touches, because the
    // registry (and its abandoned slabs) is shared by every test thread.

    #[test]
    fn a_refill_fills_half_the_bin_from_one_warm_slab() {
        let mut t = test_heap();
        let h = &mut *t.heap;
        let c = class_of(7000);
        let p = h.alloc(c);
        assert!(!p.is_null());
        let cached = h.bin(c).count();
        let s = slab(p);
        let room = (s.end / s.size) as usize;
        assert_eq!(cached + 1, (start_cap(c) / 2).max(1).min(room), "half the bin, at most the slab");
        assert!(s.is_owned_by(&h.inbox));
        assert_eq!(s.ring, Ring::Partial);
        assert_eq!(s.used as usize, cached + 1, "the slab counts what the bin holds");
        let mut all = vec![p];
        while let Some(q) = h.bin(c).pop() {
            assert!(ptr::eq(slab(q), s), "a refill takes from one slab");
            all.push(q);
        }
        all.iter().for_each(|&q| h.give_back(q));
        assert_eq!(s.used, 0);
        assert_eq!(s.ring, Ring::Partial, "the class's only slab stays as its room");
        h.abandon();
    }

    #[test]
    fn a_flush_gives_own_blocks_back_and_an_emptied_slab_goes() {
        let mut t = test_heap();
        let h = &mut *t.heap;
        let c = class_of(10000);
        let (full, other) = fill_a_slab(h, c);
        let s = slab(full[0]);
        assert_eq!(s.ring, Ring::Full);
        // The second slab comes back whole first: as the class's only room
        // (the first is on the full ring) it stays.
        give_back_cached(h, c);
        h.give_back(other);
        assert_eq!(slab(other).used, 0);
        assert_eq!(slab(other).ring, Ring::Partial);
        // The full slab's blocks come back through the bin, flushed in runs.
        for chunk in full.chunks(h.bin(c).cap()) {
            chunk.iter().for_each(|&q| assert!(h.bin(c).push(q)));
            let count = h.bin(c).count();
            h.flush(c, count);
            assert_eq!(h.bin(c).count(), 0);
        }
        // Emptied and not the only room, it went back to the registry: its
        // blocks no longer pass free's check.
        assert!(superslab::block_bin_offset(full[0] as usize).is_none(), "the emptied slab went back");
        assert!(superslab::block_bin_offset(other as usize).is_some());
        h.abandon();
    }

    #[test]
    fn a_flush_sends_back_every_block_of_another_threads_slab() {
        let (mut a, mut b) = (test_heap(), test_heap());
        let (a, b) = (&mut *a.heap, &mut *b.heap);
        let c = class_of(16000);
        let theirs: Vec<*mut u8> = (0..3).map(|_| a.alloc(c)).collect();
        let mine: Vec<*mut u8> = (0..3).map(|_| b.alloc(c)).collect();
        give_back_cached(b, c);
        // b caches a's block, then its own and a's interleaved, oldest first.
        assert!(b.bin(c).push(theirs[0]));
        for (&m, &t) in mine.iter().zip(&theirs[1..]) {
            assert!(b.bin(c).push(m) && b.bin(c).push(t));
        }
        assert!(b.bin(c).push(mine[2]));
        b.flush(c, 1);
        // The oldest (a's) and the oldest own block went, and with them all of
        // a's; the newer own blocks stay, in order.
        assert_eq!(b.bin(c).pop(), Some(mine[2]));
        assert_eq!(b.bin(c).pop(), Some(mine[1]));
        assert_eq!(b.bin(c).pop(), None);
        assert!(!slab(theirs[0]).remote.load(Ordering::Relaxed).is_null(), "a's blocks are on its slab's remote list");
        mine[1..].iter().for_each(|&q| b.give_back(q));
        a.abandon();
        b.abandon();
    }

    #[test]
    fn a_flush_that_meets_only_own_blocks_keeps_the_rest_unlooked_at() {
        let (mut a, mut b) = (test_heap(), test_heap());
        let (a, b) = (&mut *a.heap, &mut *b.heap);
        let c = class_of(16000);
        let theirs = a.alloc(c);
        let mine: Vec<*mut u8> = (0..3).map(|_| b.alloc(c)).collect();
        give_back_cached(b, c);
        // The oldest block is b's own; a's waits among the newer ones.
        for &q in [mine[0], mine[1], theirs, mine[2]].iter() {
            assert!(b.bin(c).push(q));
        }
        b.flush(c, 1);
        assert_eq!(b.bin(c).count(), 3);
        assert_eq!(b.bin(c).pop(), Some(mine[2]));
        assert_eq!(b.bin(c).pop(), Some(theirs), "a's block stays until a flush meets it");
        assert_eq!(b.bin(c).pop(), Some(mine[1]));
        b.give_back(theirs);
        mine[1..].iter().for_each(|&q| b.give_back(q));
        a.abandon();
        b.abandon();
    }

    #[test]
    fn a_refill_warms_the_fullest_slab_and_gives_back_one_freed_remotely() {
        let (mut a, mut b) = (test_heap(), test_heap());
        let (a, b) = (&mut *a.heap, &mut *b.heap);
        let c = class_of(11000);
        let (first, p) = fill_a_slab(a, c);
        let mut second = vec![p];
        let third = loop {
            let q = a.alloc(c);
            if !ptr::eq(slab(q), slab(p)) {
                break q;
            }
            second.push(q);
        };
        let (s1, s2, s3) = (slab(first[0]), slab(p), slab(third));
        // The third slab keeps one block out, the first gets one back; the
        // second gets one back and then the rest from another thread, onto
        // its remote list, and is the warm slab (the last to go partial).
        give_back_cached(a, c);
        assert_eq!(s3.used, 1);
        a.give_back(first[0]);
        a.give_back(second[0]);
        second[1..].iter().for_each(|&q| b.give_back(q));
        assert!(!s2.remote.load(Ordering::Relaxed).is_null());
        assert!(ptr::eq(a.rings[c].partial, s2));
        assert_eq!(a.alloc(c), first[0], "the fullest slab gives the next block");
        let next = a.alloc(c);
        assert!(ptr::eq(slab(next), s3), "then the fuller of the two left");
        assert!(superslab::block_bin_offset(p as usize).is_none(), "the emptied slab went back");
        assert_eq!(s1.used as usize, first.len());
        give_back_cached(a, c);
        first.iter().chain([&third, &next]).for_each(|&q| a.give_back(q));
        a.abandon();
        b.abandon();
    }

    #[test]
    fn remote_frees_into_a_full_slab_reach_its_owner_through_the_inbox() {
        let (mut a, mut b) = (test_heap(), test_heap());
        let (a, b) = (&mut *a.heap, &mut *b.heap);
        let c = class_of(14000);
        let (full, other) = fill_a_slab(a, c);
        let s = slab(full[0]);
        assert_eq!(s.ring, Ring::Full);
        let used = s.used;
        // Another heap gives back three of the full slab's blocks and one of
        // the partial one's.
        full[..3].iter().for_each(|&q| b.give_back(q));
        b.give_back(other);
        assert!(!a.inbox.is_empty(), "the full slab's blocks went to the owner's inbox");
        assert!(s.remote.load(Ordering::Relaxed).is_null());
        assert!(!slab(other).remote.load(Ordering::Relaxed).is_null(), "a partial slab's go to its remote list");
        a.drain_inbox();
        assert!(a.inbox.is_empty());
        assert_eq!(s.ring, Ring::Partial, "the slab can be found again");
        assert_eq!(s.used, used - 3);
        a.abandon();
        b.abandon();
    }

    #[test]
    fn an_abandoned_slab_is_adopted_with_what_others_freed_into_it() {
        let (mut a, mut b, mut c_heap) = (test_heap(), test_heap(), test_heap());
        let (a, b, adopter) = (&mut *a.heap, &mut *b.heap, &mut *c_heap.heap);
        let c = class_of(20000);
        let kept = a.alloc(c);
        let freed: Vec<*mut u8> = (0..2).map(|_| a.alloc(c)).collect();
        let s = slab(kept);
        assert!(freed.iter().all(|&p| ptr::eq(slab(p), s)));
        a.abandon();
        assert!(s.owner.load(Ordering::Relaxed).is_null(), "a slab with live blocks is abandoned, not freed");
        freed.iter().for_each(|&p| b.give_back(p));
        // The next heap that needs the class adopts it, and with it the
        // blocks freed meanwhile (`kept` keeps it from being released).
        let p = adopter.alloc(c);
        assert!(s.is_owned_by(&adopter.inbox), "the abandoned slab was adopted");
        let mut got = vec![p];
        while let Some(q) = adopter.bin(c).pop() {
            got.push(q);
        }
        assert!(freed.iter().all(|f| got.contains(f)), "got {got:?}, freed {freed:?}");
        got.iter().for_each(|&q| adopter.give_back(q));
        adopter.give_back(kept);
        adopter.abandon();
        b.abandon();
    }

    #[test]
    fn a_heap_set_up_by_a_free_gives_it_back_and_opens_at_its_first_malloc() {
        let (mut a, mut b) = (test_heap(), test_heap());
        let (a, b) = (&mut *a.heap, &mut *b.heap);
        let c = class_of(24000);
        let handed = a.alloc(c);
        let s = slab(handed);
        b.close_bins();
        b.overflow(c, handed);
        assert_eq!(b.bin(c).count(), 0, "not cached by the thread that never allocated");
        assert_eq!(s.remote.load(Ordering::Relaxed) as *mut u8, handed, "back on its slab's remote list");
        let own = b.alloc(c);
        assert!(!own.is_null() && !ptr::eq(slab(own), s), "the first malloc takes from the thread's own slab");
        b.overflow(c, own);
        assert!(b.bin(c).count() > 0 && b.bin(c).cap() > 0, "the bins are open again");
        // A thread that only frees opens them after CLOSED_FREES frees.
        let theirs: Vec<*mut u8> = (0..CLOSED_FREES).map(|_| a.alloc(c)).collect();
        let mut consumer = test_heap();
        let consumer = &mut *consumer.heap;
        consumer.close_bins();
        theirs.iter().for_each(|&p| consumer.overflow(c, p));
        assert_eq!(consumer.bin(c).count(), 1, "the CLOSED_FREES-th free is cached");
        assert_eq!(consumer.bin(c).pop(), theirs.last().copied());
        consumer.abandon();
        b.abandon();
        a.abandon();
    }

    #[test]
    fn thread_exit_empties_the_cache_and_abandons_slabs_still_in_use() {
        let size = 28000;
        let live = std::thread::spawn(move || {
            let live: Vec<usize> = (0..2).map(|_| malloc(size) as usize).collect();
            free(malloc(size), "test");
            // SAFETY: this thread's own heap.
            assert!(unsafe { (*tls::heap()).bin(class_of(size)).count() } > 0, "a block is cached");
            live
        })
        .join()
        .unwrap();
        // At exit every cached block went back to its slab: the slabs of the
        // blocks still in use count exactly those, and have no owner.
        let slabs: Vec<&Slab> = live.iter().map(|&p| slab(p as *mut u8)).collect();
        let mut distinct: Vec<&Slab> = Vec::new();
        for s in slabs {
            if !distinct.iter().any(|d| ptr::eq(*d, s)) {
                distinct.push(s);
            }
        }
        for s in &distinct {
            assert!(s.owner.load(Ordering::Relaxed).is_null(), "the exited thread's slab is abandoned");
        }
        assert_eq!(distinct.iter().map(|s| s.used as usize).sum::<usize>(), live.len());
        live.iter().for_each(|&p| free(p as *mut u8, "test"));
    }
}
