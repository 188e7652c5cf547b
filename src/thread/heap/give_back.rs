//! Blocks going back to their slabs from a thread's cache or inbox: to a
//! slab of this heap directly (its free bits), to another thread's slab
//! through its remote list (or its owner's inbox when it is full), a run of
//! one slab's blocks at a time.

use core::ptr;

use crate::size_class::NUM_CLASSES;
use crate::slab::registry;
use crate::slab::slab::{self, Block, Inbox, LinkKey, Ring, Slab};
use crate::slab::superslab;
use crate::stats::{self, Counter};
use crate::valgrind;

use super::Heap;

impl Heap {
    /// Gives every block in the inbox back to its slab, a run of one slab at
    /// a time: ours go onto their free bits (their slabs leave the full
    /// rings), and runs of slabs that changed hands since they were sent go
    /// to their remote lists.
    pub fn drain_inbox(&mut self) {
        let mut b = self.inbox.take_all();
        while !b.is_null() {
            let s = superslab::slab_of(b as usize);
            // SAFETY: the swapped-out list is ours alone; every node is a
            // free block of a live slab (each is counted in its slab's used).
            let (tail, n, next) = unsafe { (*s).run_from(b) };
            // SAFETY: as above; our own slab's run is ours to take back.
            let own = unsafe { (*s).is_owned_by(&self.inbox) };
            if own {
                // SAFETY: as above.
                unsafe { (*s).put_chain(b, n) };
            }
            self.give_back_run(Run { slab: s, head: b, tail, n, own });
            b = superslab::check_link(tail, next);
        }
    }

    /// Gives the oldest cached blocks of class `c` back to their slabs until
    /// `n` of them were this heap's own; if any among them was another
    /// thread's, every other such block in the bin goes too. A block this
    /// thread keeps it reuses; one of another thread's slabs kept here holds
    /// that slab resident for nothing (docs/ARCHITECTURE.md, "Where hakmem
    /// stays behind"). A bin that met none keeps the rest as it is, with no
    /// look at each block: a thread freeing its own data in bulk pays for
    /// the blocks it gives back only.
    pub fn flush(&mut self, c: usize, n: usize) {
        let (slots, count) = self.bin(c).spill();
        let key = LinkKey::now();
        // The cached block at index i < count.
        let at = |i: usize| {
            // SAFETY: every caller passes an index below count, within the
            // slot array.
            unsafe { *slots.add(i) }
        };
        let mut run = Run::EMPTY;
        let mut last = SlabSeen::NONE;
        let (mut i, mut own_out, mut foreign) = (0, 0, false);
        while i < count && own_out < n {
            let p = at(i);
            i += 1;
            self.give_back_run(run);
            last = SlabSeen::of(p, &self.inbox);
            run = Run::one(&last, p);
            // The blocks after it of the same slab go with it, own ones up
            // to n in all.
            while i < count && last.holds(at(i)) && (!last.own || own_out + (run.n as usize) < n) {
                run.add(at(i), key);
                i += 1;
            }
            if last.own {
                own_out += run.n as usize;
            } else {
                foreign = true;
            }
        }
        let kept = if foreign {
            let mut kept = 0;
            for j in i..count {
                let p = at(j);
                if !last.holds(p) {
                    last = SlabSeen::of(p, &self.inbox);
                }
                if last.own {
                    // SAFETY: kept <= j < count, within the slot array.
                    unsafe { *slots.add(kept) = p };
                    kept += 1;
                } else if last.slab == run.slab {
                    run.add(p, key);
                } else {
                    self.give_back_run(run);
                    run = Run::one(&last, p);
                }
            }
            kept
        } else {
            // SAFETY: both ranges lie within the slot array's count entries.
            unsafe { ptr::copy(slots.add(i), slots, count - i) };
            count - i
        };
        self.give_back_run(run);
        self.bin(c).settle(kept);
        if valgrind::active() {
            self.bin(c).scrub_above_top();
        }
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
        self.give_back_run(Run::one(&SlabSeen::of(p, &self.inbox), p));
    }

    /// Gives a run of one slab's blocks back: a run of our own slab is back
    /// already (its blocks' bits are set) and gets counted, another thread's
    /// goes to its remote list or its owner's inbox.
    fn give_back_run(&mut self, run: Run) {
        let s = run.slab;
        if s.is_null() {
            return;
        }
        // SAFETY: the run's blocks are blocks of a live slab (checked when
        // they were freed), which stays live while they are out.
        let slab = unsafe { &mut *s };
        stats::class_out(slab.class as usize, -(run.n as i64));
        if !run.own {
            slab::send_back(s, run.head, run.tail);
            stats::add(Counter::RemoteFrees, run.n as u64);
            return;
        }
        stats::add(Counter::SlabBlocksBack, run.n as u64);
        slab.used -= run.n;
        if slab.ring == Ring::Full {
            self.move_to_ring(s, Ring::Partial);
        }
        self.release_if_empty(s);
    }

    /// Gives one of our slabs back to the registry if it is empty, unless
    /// it is alone on its ring (the class's room); true if it went.
    pub(super) fn release_if_empty(&mut self, s: *mut Slab) -> bool {
        // SAFETY: s is one of our slabs; rings hold only our slabs.
        let slab = unsafe { &*s };
        if slab.used != 0 || slab.next == s {
            return false;
        }
        self.move_to_ring(s, Ring::Off);
        registry::free_slab(s);
        true
    }
}

/// The slab a flush last looked at, with its blocks' address range: blocks
/// a bin holds side by side mostly share a slab, and then its owner need
/// not be looked up again.
struct SlabSeen {
    slab: *mut Slab,
    start: usize,
    len: usize,
    own: bool,
}

impl SlabSeen {
    const NONE: SlabSeen = SlabSeen { slab: ptr::null_mut(), start: 0, len: 0, own: false };

    /// Cached block `p`'s slab, and whether it belongs to the heap of `inbox`.
    fn of(p: *mut u8, inbox: &Inbox) -> SlabSeen {
        let s = superslab::slab_of(p as usize);
        // SAFETY: a cached block's slab is live while the block is out.
        let slab = unsafe { &*s };
        SlabSeen { slab: s, start: slab.start as usize, len: slab.end as usize, own: slab.is_owned_by(inbox) }
    }

    /// Whether block `p` lies in this slab.
    fn holds(&self, p: *mut u8) -> bool {
        (p as usize).wrapping_sub(self.start) < self.len
    }
}

/// Blocks of one slab given back together (null `slab`: none). Our own
/// slab's go onto its free bits as they join and are counted at the end;
/// another thread's are linked `head..=tail`, for one CAS.
struct Run {
    slab: *mut Slab,
    head: *mut Block,
    tail: *mut Block,
    n: u32,
    own: bool,
}

impl Run {
    const EMPTY: Run = Run { slab: ptr::null_mut(), head: ptr::null_mut(), tail: ptr::null_mut(), n: 0, own: false };

    /// A run of `seen`'s slab that starts with block `p`.
    fn one(seen: &SlabSeen, p: *mut u8) -> Run {
        let b = p as *mut Block;
        let mut run = Run { slab: seen.slab, head: b, tail: b, n: 1, own: seen.own };
        if run.own {
            run.put(p);
        }
        run
    }

    /// Adds free block `p` of the run's slab.
    #[inline]
    fn add(&mut self, p: *mut u8, key: LinkKey) {
        self.n += 1;
        if self.own {
            return self.put(p);
        }
        let b = p as *mut Block;
        // SAFETY: b is a free block nobody else references.
        unsafe { Block::set_next_with(b, self.head, key) };
        self.head = b;
    }

    #[inline]
    fn put(&mut self, p: *mut u8) {
        // SAFETY: the run's slab is ours (`own`), live while its blocks are
        // out, and p is one of them.
        unsafe { (*self.slab).put(p) };
    }
}

/// Gives a block back to its slab from a thread that has no heap.
pub fn give_back_remote(p: *mut u8) {
    let b = p as *mut Block;
    let s = superslab::slab_of(p as usize);
    // SAFETY: the block was checked when freed: its slab is live.
    stats::class_out(unsafe { (*s).class } as usize, -1);
    slab::send_back(s, b, b);
    stats::add(Counter::RemoteFrees, 1);
}
