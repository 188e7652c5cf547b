//! A slab: one or more 64 KiB units of a SuperSlab cut into blocks of one
//! size class. Its owner thread hands blocks to its cache from its free bits
//! (`free_bits.rs`) or by carving fresh ones off the end; any other thread
//! gives blocks back with one CAS onto the remote list, a list linked
//! through the blocks, which the owner takes whole.

use core::ptr;
#[cfg(not(loom))]
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::config;
use crate::diag;
use crate::os::random;
use crate::size_class::{block_magic, is_block_start};
use crate::slab::free_bits::FreeBits;
use crate::slab::free_mark;
use crate::stats::{self, Counter};
use crate::valgrind;

/// A free block's first word links it to the next free block, encoded with
/// the process key and the block's own address: memory written after free
/// cannot name a chosen address, and every link is checked against its slab
/// before it is followed.
#[repr(C)]
pub struct Block {
    link: usize,
}

impl Block {
    /// Links free block `b` to `next` (null ends the list).
    ///
    /// # Safety
    /// `b` is a free block nobody else reads or writes now.
    #[inline]
    pub unsafe fn set_next(b: *mut Block, next: *mut Block) {
        Block::set_next_with(b, next, LinkKey::now());
    }

    /// `set_next` with the key read beforehand.
    ///
    /// # Safety
    /// As for `set_next`.
    #[inline]
    pub unsafe fn set_next_with(b: *mut Block, next: *mut Block, k: LinkKey) {
        let link = next as usize ^ b as usize ^ k.secret;
        if k.tracked {
            return tracked(b, |b| (*b).link = link);
        }
        (*b).link = link;
    }

    /// The raw successor of `b`, not yet checked (see `Slab::next_of`).
    ///
    /// # Safety
    /// As for `set_next`.
    #[inline]
    pub unsafe fn next_unchecked(b: *mut Block) -> *mut Block {
        let link = if valgrind::active() { tracked(b, |b| (*b).link) } else { (*b).link };
        (link ^ b as usize ^ random::secret()) as *mut Block
    }
}

/// What writing a link takes, read once by a loop that links many blocks (a
/// flush): each read is otherwise repeated per block, as the compiler cannot
/// tell that the blocks' stores leave them alone.
#[derive(Clone, Copy)]
pub struct LinkKey {
    secret: usize,
    tracked: bool,
}

impl LinkKey {
    #[inline]
    pub fn now() -> LinkKey {
        LinkKey { secret: random::secret(), tracked: valgrind::active() }
    }
}

/// Under valgrind: `f` reads or writes the link of free block `b`, which the
/// program may not touch before or after.
#[cold]
unsafe fn tracked<R>(b: *mut Block, f: impl FnOnce(*mut Block) -> R) -> R {
    let (p, len) = (b as *mut u8, core::mem::size_of::<Block>());
    valgrind::open(p, len);
    let r = f(b);
    valgrind::close(p, len);
    r
}

/// Which of its owner's rings a slab is on.
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ring {
    /// None: new, abandoned, or on its way back to the registry.
    Off,
    /// Partial: it has blocks to hand out (refills look here first).
    Partial,
    /// Full: every block is out; remote frees go to the owner's inbox.
    Full,
}

#[repr(C)]
pub struct Slab {
    /// Owner-only: which blocks are free.
    pub bits: FreeBits,
    /// The class's boundary magic (`size_class::block_magic`), which also
    /// turns an offset into a block index.
    pub magic: u64,
    /// Blocks freed by other threads; the owner swaps it out whole.
    pub remote: AtomicPtr<Block>,
    /// The owner, named by its inbox: the one thread that may use `free`,
    /// `used` and the links; null when abandoned.
    pub owner: AtomicPtr<Inbox>,
    /// On its owner's full ring: remote frees go to the owner's inbox, so
    /// that the owner finds the slab again without scanning (`send_back`).
    pub full: AtomicBool,
    /// Links on the owner's partial/full list, or on the abandoned list.
    pub next: *mut Slab,
    pub prev: *mut Slab,
    pub start: *mut u8,
    /// Offset of the first block never handed out (blocks are carved lazily so
    /// untouched memory never becomes resident).
    pub bump: u32,
    /// Offset past the last whole block.
    pub end: u32,
    /// Blocks out of the slab: in thread caches, in use, or on `remote`.
    pub used: u32,
    pub size: u32,
    pub class: u8,
    pub units: u8,
    pub ring: Ring,
}

impl Slab {
    /// Resets the slab to hold `blocks` blocks of `class` from `start`, in
    /// `units` units, its free bits in `bits` (room for `blocks` bits).
    pub fn init(&mut self, start: *mut u8, class: usize, size: usize, units: usize, blocks: usize, bits: *mut u64) {
        self.bits = FreeBits::new(bits, blocks);
        self.magic = block_magic(class);
        self.remote = AtomicPtr::new(ptr::null_mut());
        self.owner = AtomicPtr::new(ptr::null_mut());
        self.full = AtomicBool::new(false);
        self.next = ptr::null_mut();
        self.prev = ptr::null_mut();
        self.start = start;
        self.bump = 0;
        self.end = (blocks * size) as u32;
        self.used = 0;
        self.size = size as u32;
        self.class = class as u8;
        self.units = units as u8;
        self.ring = Ring::Off;
    }

    /// Moves up to `want` blocks into `out`; returns how many. Owner only.
    #[inline]
    pub fn take(&mut self, out: *mut *mut u8, want: usize) -> usize {
        let (start, size, mut k) = (self.start, self.size as usize, 0);
        let mut n = self.bits.take(want, |i| {
            // SAFETY: i is a free block's index, so the block lies inside
            // the slab; `out` has room for `want`, and `take` hands out at
            // most that many.
            unsafe { *out.add(k) = start.add(i * size) };
            k += 1;
        });
        let key = if config::harden() { random::secret() } else { 0 };
        while n < want && self.bump < self.end {
            // SAFETY: bump < end keeps the block inside the slab; `out` has room.
            let b = unsafe { self.start.add(self.bump as usize) };
            if key != 0 {
                // Marked as a freed block is, for the hand-out check.
                free_mark::mark(b, self.size as usize, key);
            }
            // SAFETY: as above.
            unsafe { *out.add(n) = b };
            self.bump += self.size;
            n += 1;
        }
        self.used += n as u32;
        n
    }

    /// A free block or one never handed out. Owner only.
    pub fn has_room(&self) -> bool {
        self.bits.count() > 0 || self.bump < self.end
    }

    /// Takes every remotely freed block back; true if there were any.
    /// Owner only.
    pub fn collect_remote(&mut self) -> bool {
        if self.remote.load(Ordering::Relaxed).is_null() {
            return false;
        }
        let mut b = self.remote.swap(ptr::null_mut(), Ordering::Acquire);
        let mut n = 0;
        while !b.is_null() {
            // SAFETY: the swapped-out list is ours alone; every node is a
            // free block of this slab, its link read before its bit is set.
            let next = unsafe { self.next_of(b) };
            self.put(b as *mut u8);
            b = next;
            n += 1;
        }
        self.used -= n;
        true
    }

    /// Takes back block `p`, which the caller counts off `used`; a block
    /// already free is a double free. Owner only.
    #[inline]
    pub fn put(&mut self, p: *mut u8) {
        let offset = (p as usize).wrapping_sub(self.start as usize) as u64;
        // offset < 2^32 and magic = ceil(2^64 / size): the high half of the
        // product is offset / size.
        let i = ((offset as u128 * self.magic as u128) >> 64) as usize;
        if !self.bits.set(i) {
            diag::double_free("free", p as usize);
        }
    }

    /// Takes back the `n` blocks of the chain from `head` (linked through
    /// their links, as `run_from` found them), which the caller counts off
    /// `used`. Owner only.
    ///
    /// # Safety
    /// The chain is `n` free blocks of this slab that the caller alone reads.
    pub unsafe fn put_chain(&mut self, head: *mut Block, n: u32) {
        let mut b = head;
        for _ in 0..n {
            let next = Block::next_unchecked(b);
            self.put(b as *mut u8);
            b = next;
        }
    }

    /// The run of this slab's blocks that starts at `head` on a list that
    /// spans slabs (a heap's inbox, where each sender's blocks of one slab
    /// lie together): its tail, its length, and the tail's link, which
    /// leaves this slab: null or, once `superslab::check_link` has looked,
    /// a block of another slab.
    ///
    /// # Safety
    /// `head` is a free block of this slab on such a list that the caller
    /// alone reads.
    pub unsafe fn run_from(&self, head: *mut Block) -> (*mut Block, u32, *mut Block) {
        let magic = self.magic;
        let mut tail = head;
        let mut n = 1;
        loop {
            let next = Block::next_unchecked(tail);
            let offset = (next as usize).wrapping_sub(self.start as usize);
            // Blocks past `bump` were never handed out: a link there leaves
            // the slab (null does too, as offset wraps).
            if offset >= self.bump as usize {
                return (tail, n, next);
            }
            if !is_block_start(magic, offset as u32) {
                diag::corrupted_free_list(tail as usize);
            }
            tail = next;
            n += 1;
        }
    }

    /// Pushes the chain `head..=tail` (linked through `next`) onto the remote
    /// list with one CAS. Any thread.
    ///
    /// SeqCst pairs with `mark_full`: either the pusher saw `full` set (and
    /// went to the inbox instead) or the owner, after setting it, sees the
    /// push (a slab never sits on the full ring with unnoticed remote frees).
    pub fn push_remote(&self, head: *mut Block, tail: *mut Block) {
        push_onto!(self.remote, head, tail);
    }

    /// Owner only: the slab goes onto (`true`) or off its full ring. Going
    /// on, returns whether remote frees arrived meanwhile, which the owner
    /// must then collect itself (see `push_remote`).
    pub fn mark_full(&self, full: bool) -> bool {
        self.full.store(full, Ordering::SeqCst);
        full && !self.remote.load(Ordering::SeqCst).is_null()
    }

    /// Whether remote frees should go to the owner's inbox (any thread).
    #[inline]
    pub fn wants_inbox(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// The successor of free block `b` on one of this slab's lists: null or
    /// a block boundary inside this slab; anything else is reported.
    ///
    /// # Safety
    /// `b` is a free block of this slab that the caller alone reads.
    unsafe fn next_of(&self, b: *mut Block) -> *mut Block {
        let next = Block::next_unchecked(b);
        if next.is_null() {
            return next;
        }
        let offset = (next as usize).wrapping_sub(self.start as usize);
        if offset >= self.bump as usize || !is_block_start(self.magic, offset as u32) {
            diag::corrupted_free_list(b as usize);
        }
        next
    }

    #[inline]
    pub fn is_owned_by(&self, owner: &Inbox) -> bool {
        ptr::eq(self.owner.load(Ordering::Relaxed), owner)
    }

    /// Hands the slab to `owner` (null: to nobody, it is abandoned).
    pub fn set_owner(&self, owner: *const Inbox) {
        self.owner.store(owner as *mut Inbox, Ordering::Release);
    }
}

/// Gives blocks `head..=tail` of slab `s` back from a thread that does not
/// own it: to the owner's inbox while the slab is full (so that its owner
/// finds it again), else onto the slab's remote list. Nothing here touches
/// the slab after the blocks are published: the owner may free it at once.
/// An inbox read just before its owner let go of the slab is still memory
/// (inboxes live in heaps, which are never unmapped): blocks that reach an
/// inbox whose owner has gone wait there until it is next drained, and go
/// on from there.
pub fn send_back(s: *mut Slab, head: *mut Block, tail: *mut Block) {
    // SAFETY: the slab is live while any of its blocks is out, and these are.
    let slab = unsafe { &*s };
    let owner = slab.owner.load(Ordering::Acquire);
    if !owner.is_null() && slab.wants_inbox() {
        // SAFETY: inboxes live as long as the process; they are atomic.
        unsafe { (*owner).push(head, tail) };
        stats::add(Counter::InboxSends, 1);
    } else {
        slab.push_remote(head, tail);
    }
}

/// An owner's inbox: blocks other threads gave back to its full slabs, a
/// run per sender and slab, on a lock-free stack (any thread pushes, the
/// owner takes all). Slabs name their owner by its inbox, so this layer
/// knows nothing of the heap around it.
#[repr(transparent)]
pub struct Inbox(core::sync::atomic::AtomicPtr<Block>);

impl Inbox {
    pub const fn new() -> Inbox {
        Inbox(core::sync::atomic::AtomicPtr::new(ptr::null_mut()))
    }

    /// Pushes the chain `head..=tail` with one CAS. Any thread.
    pub fn push(&self, head: *mut Block, tail: *mut Block) {
        push_onto!(self.0, head, tail);
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.load(Ordering::Relaxed).is_null()
    }

    /// Takes every block (null when empty). Owner only.
    pub fn take_all(&self) -> *mut Block {
        if self.is_empty() {
            return ptr::null_mut();
        }
        self.0.swap(ptr::null_mut(), Ordering::Acquire)
    }
}

/// Pushes the chain `head..=tail` onto a lock-free stack of blocks with one
/// CAS. A macro, so that the remote list (a loom atomic under loom) and a
/// heap's inbox (always a core atomic) share it.
macro_rules! push_onto {
    ($list:expr, $head:expr, $tail:expr) => {{
        let mut cur = $list.load(Ordering::Relaxed);
        loop {
            // SAFETY: the chain is ours until the CAS publishes it.
            unsafe { Block::set_next($tail, cur) };
            match $list.compare_exchange_weak(cur, $head, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
    }};
}
use push_onto;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size_class::UNIT_SIZE;
    use std::collections::HashSet;

    fn slab_over(mem: &mut [u64], size: usize) -> Slab {
        // Links are encoded with the process key, which set-up chooses once:
        // it must not change under a list, as it would if another test
        // thread set the process up while this one links blocks.
        crate::init::ensure();
        // SAFETY: Slab is plain data; init sets every field.
        let mut s: Slab = unsafe { core::mem::zeroed() };
        let class = crate::size_class::class_of(size);
        assert_eq!(crate::size_class::CLASS_SIZE[class] as usize, size);
        let bits = Box::leak(vec![u64::MAX; 128].into_boxed_slice()).as_mut_ptr();
        s.init(mem.as_mut_ptr() as *mut u8, class, size, 1, UNIT_SIZE / size, bits);
        s
    }

    #[test]
    fn carves_every_block_once_then_reuses_freed_ones() {
        let mut mem = vec![0u64; 65536 / 8];
        let mut s = slab_over(&mut mem, 48);
        let total = 65536 / 48;
        let mut out = vec![ptr::null_mut(); total + 10];
        assert_eq!(s.take(out.as_mut_ptr(), total + 10), total);
        assert_eq!(s.used as usize, total);
        let distinct: HashSet<_> = out[..total].iter().collect();
        assert_eq!(distinct.len(), total);
        assert_eq!(s.take(out.as_mut_ptr(), 1), 0);
        for &p in &[out[9], out[5]] {
            s.put(p);
            s.used -= 1;
        }
        assert_eq!(s.used as usize, total - 2);
        let mut again = [ptr::null_mut(); 4];
        assert_eq!(s.take(again.as_mut_ptr(), 4), 2);
        assert_eq!(&again[..2], &[out[5], out[9]], "lowest address first");
    }

    #[test]
    fn remote_frees_come_back_whole_and_counted() {
        let mut mem = vec![0u64; 65536 / 8];
        let mut s = slab_over(&mut mem, 64);
        let mut out = [ptr::null_mut(); 8];
        assert_eq!(s.take(out.as_mut_ptr(), 8), 8);
        for &p in &out[..3] {
            let b = p as *mut Block;
            s.push_remote(b, b);
        }
        assert!(s.collect_remote());
        assert_eq!(s.used, 5);
        assert!(!s.collect_remote());
        let mut back = [ptr::null_mut(); 3];
        assert_eq!(s.take(back.as_mut_ptr(), 3), 3);
        let got: HashSet<_> = back.iter().collect();
        let want: HashSet<_> = out[..3].iter().collect();
        assert_eq!(got, want);
    }

    #[test]
    fn concurrent_remote_pushes_lose_nothing() {
        let mut mem = vec![0u64; 65536 / 8];
        let mut s = slab_over(&mut mem, 16);
        let n = 4096;
        let mut out = vec![ptr::null_mut(); n];
        assert_eq!(s.take(out.as_mut_ptr(), n), n);
        let addrs: Vec<usize> = out.iter().map(|&p| p as usize).collect();
        let slab = &s as *const Slab as usize;
        std::thread::scope(|sc| {
            for chunk in addrs.chunks(n / 4) {
                sc.spawn(move || {
                    // SAFETY: the slab outlives the scope; pushes are atomic.
                    let s = unsafe { &*(slab as *const Slab) };
                    for &a in chunk {
                        s.push_remote(a as *mut Block, a as *mut Block);
                    }
                });
            }
        });
        assert!(s.collect_remote());
        assert_eq!(s.used, 0);
        let mut back = vec![ptr::null_mut(); n];
        assert_eq!(s.take(back.as_mut_ptr(), n), n);
        let seen: HashSet<_> = back.iter().map(|&p| p as usize).collect();
        assert_eq!(seen, addrs.into_iter().collect());
    }
}

/// The remote list under loom: two threads push (one block, and a chain of
/// two) while the owner collects; under every interleaving the owner ends
/// with exactly the three blocks, each once, and the right `used` count.
#[cfg(loom)]
mod loom_tests {
    use super::*;

    #[test]
    fn loom_remote_pushes_and_collects_lose_nothing() {
        loom::model(|| {
            let mem: &'static mut [u64] = Box::leak(vec![0u64; 8].into_boxed_slice());
            let start = mem.as_mut_ptr() as *mut u8;
            let bits = Box::leak(vec![0u64; 1].into_boxed_slice()).as_mut_ptr();
            let slab = Box::leak(Box::new(Slab {
                bits: FreeBits::new(bits, 4),
                magic: block_magic(1),
                remote: AtomicPtr::new(ptr::null_mut()),
                owner: AtomicPtr::new(ptr::null_mut()),
                full: AtomicBool::new(false),
                next: ptr::null_mut(),
                prev: ptr::null_mut(),
                start,
                bump: 0,
                end: 64,
                used: 0,
                size: 16,
                class: 1,
                units: 1,
                ring: Ring::Off,
            })) as *mut Slab as usize;
            let mut out = [ptr::null_mut::<u8>(); 4];
            // SAFETY: this thread is the slab's owner; pushers only use the
            // remote list, which is atomic.
            unsafe { assert_eq!((*(slab as *mut Slab)).take(out.as_mut_ptr(), 4), 4) };
            let [b0, b1, b2, _] = out.map(|p| p as usize);
            let one = loom::thread::spawn(move || {
                // SAFETY: b0 is a block of the slab given back by this thread.
                unsafe { (*(slab as *const Slab)).push_remote(b0 as *mut Block, b0 as *mut Block) };
            });
            let two = loom::thread::spawn(move || {
                // SAFETY: b1 and b2 are blocks this thread owns until the push.
                unsafe {
                    Block::set_next(b1 as *mut Block, b2 as *mut Block);
                    (*(slab as *const Slab)).push_remote(b1 as *mut Block, b2 as *mut Block);
                }
            });
            // SAFETY: owner-only calls, as above.
            unsafe { (*(slab as *mut Slab)).collect_remote() };
            one.join().unwrap();
            two.join().unwrap();
            // SAFETY: as above.
            let s = unsafe { &mut *(slab as *mut Slab) };
            s.collect_remote();
            assert_eq!(s.used, 1);
            let mut got = [ptr::null_mut::<u8>(); 4];
            assert_eq!(s.take(got.as_mut_ptr(), 3), 3);
            let mut got: Vec<usize> = got[..3].iter().map(|&p| p as usize).collect();
            got.sort();
            let mut want = vec![b0, b1, b2];
            want.sort();
            assert_eq!(got, want);
        });
    }
}
