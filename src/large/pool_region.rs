//! A pool region: one 2 MiB page-map region cut into page runs of one size
//! class (the pool tier: 32 KiB < size <= 1 MiB). Its first page is the
//! header: the run layout, a per-page table that names the run starting at
//! each page (so `free` finds a run and rejects interior or foreign pointers
//! in O(1)), each run's state and the free list. A region belongs to one
//! shard, and that shard's lock guards everything here.

use core::mem::size_of;
use core::ptr;

use crate::canary;
use crate::config;
use crate::diag;
use crate::large::bigcache;
use crate::slab::free_mark::{self, MARKED_BYTES};
use crate::valgrind;
use crate::os::pagemap::{self, REGION_SIZE};
use crate::os::{self, random, PAGE};

const PAGES: usize = REGION_SIZE / PAGE;
/// Page 0 holds the header; runs start at page 1.
const FIRST_RUN_PAGE: usize = 1;

/// Four classes per doubling from 40 KiB to 1 MiB, in pages: a request
/// wastes at most a fifth of its run.
pub const RUN_CLASSES: usize = 20;
const CLASS_PAGES: [u16; RUN_CLASSES] =
    [10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256];
/// The largest request the pool serves.
pub const MAX_SIZE: usize = CLASS_PAGES[RUN_CLASSES - 1] as usize * PAGE;
/// Runs up to this size wait for another free run (or a never-used one)
/// before they are handed out again, in every mode; larger ones only when
/// hardened, since the run carved instead may be much of a region of
/// memory (docs/ARCHITECTURE.md).
const DELAYED_RUN_MAX: usize = REGION_SIZE / 16;
const MAX_RUNS: usize = (PAGES - FIRST_RUN_PAGE) / CLASS_PAGES[0] as usize;

const MAGIC: u64 = 0x68616b6d_656d504c; // "hakmemPL"
/// The last bytes before a live run hold its front guard (`canary`): the
/// header page's end before the first run, the previous run's last bytes
/// when that run is live and leaves them free (`guards_next`). A write
/// before the run's start is then found when it is freed.
///
/// Whether a live run of `run` bytes holding `size` keeps the next run's
/// front guard in its last bytes: they must be free, and on the page the
/// block ends in (a guard alone on a page would make it resident).
fn guards_next(size: usize, run: usize) -> bool {
    size + canary::FRONT_GUARD <= run && size > run - PAGE
}
const NIL: u8 = u8::MAX;
/// No class yet (a region fresh from the kernel).
const NO_CLASS: u8 = u8::MAX;

/// A run's state. Runs at or beyond `carved` were never handed out:
/// untouched, they read as zero (and their state is the zeroed `Fresh`).
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RunState {
    #[allow(dead_code)] // made only by the kernel, as the zeroed header
    Fresh = 0,
    /// Handed out: a live block.
    Live,
    /// Free, its pages possibly resident until purged.
    Dirty,
    /// Free and given back to the kernel (reads as zero).
    Clean,
}

/// Class of a request of `size` bytes (at most MAX_SIZE; anything up to the
/// first class's size gets the first class).
pub fn class_of(size: usize) -> usize {
    let s = size.max(CLASS_PAGES[0] as usize * PAGE) - 1;
    let w = (usize::BITS - 1 - s.leading_zeros()) as usize; // 15..=19
    (w - 15) * 4 + ((s >> (w - 2)) & 3)
}

pub fn class_size(c: usize) -> usize {
    CLASS_PAGES[c] as usize * PAGE
}

/// Intrusive links of a list of regions.
#[derive(Clone, Copy)]
pub struct Links {
    pub next: *mut Region,
    pub prev: *mut Region,
}

#[repr(C)]
pub struct Region {
    magic: u64,
    /// The shard whose lock guards this region (fixed for its life).
    pub shard: u8,
    class: u8,
    runs: u8,
    /// Runs handed out at least once (a prefix of the runs).
    carved: u8,
    /// Live runs.
    pub used: u8,
    /// Free runs whose pages may be resident.
    pub dirty: u8,
    free_head: u8,
    /// Runs not yet carved may hold pages left resident by the region's
    /// previous class (since `stale_since`): they do not read as zero, and
    /// the purge gives them back.
    stale_since: u64,
    /// At most how many of those pages are resident (0: none are stale):
    /// the free runs that were dirty when the region was laid out again.
    stale_bytes: u32,
    /// In the shard's list for its class (runs to give) or of empty regions.
    pub list: Links,
    /// In the shard's list of regions with dirty runs (while `on_dirty_list`;
    /// a run handed out again can leave it listed with none).
    pub dirty_list: Links,
    pub on_dirty_list: bool,
    /// When the last live run was freed (meaningful while `used == 0`).
    pub empty_since: u64,
    next_free: [u8; MAX_RUNS],
    /// Bytes asked for by each live run's block (its usable size: a tail
    /// past them catches overflows, `canary::write_tail`).
    asked: [u32; MAX_RUNS],
    state: [RunState; MAX_RUNS],
    freed_at: [u64; MAX_RUNS],
    /// Run starting at each page, or NIL.
    run_at_page: [u8; PAGES],
}

const _: () = assert!(size_of::<Region>() <= FIRST_RUN_PAGE * PAGE);
const _: () = assert!(MAX_RUNS < NIL as usize);
const _: () = assert!(FIRST_RUN_PAGE + CLASS_PAGES[RUN_CLASSES - 1] as usize <= PAGES);

const NO_LINKS: Links = Links { next: ptr::null_mut(), prev: ptr::null_mut() };

impl Region {
    /// Maps a new region for `shard`, marked in the page map; null when the
    /// kernel has no memory.
    pub fn create(shard: usize) -> *mut Region {
        bigcache::give_way(REGION_SIZE);
        let r = os::map_aligned(REGION_SIZE, REGION_SIZE) as *mut Region;
        if r.is_null() {
            return r;
        }
        os::huge_pages(r as *mut u8, REGION_SIZE, config::huge_page_advice());
        // SAFETY: a fresh zeroed mapping of REGION_SIZE bytes, ours alone; the
        // header fits its first page (asserted above).
        unsafe {
            (*r).magic = MAGIC;
            (*r).shard = shard as u8;
            (*r).class = NO_CLASS;
            (*r).free_head = NIL;
            (*r).list = NO_LINKS;
            (*r).dirty_list = NO_LINKS;
            (*r).run_at_page = [NIL; PAGES];
        }
        canary::write_front_guard(r as usize + FIRST_RUN_PAGE * PAGE);
        pagemap::set(r as usize, 1, pagemap::POOL);
        r
    }

    /// Leaves the page map, then returns the whole region to the kernel.
    ///
    /// # Safety
    /// `r` holds no live run and is in no list.
    pub unsafe fn destroy(r: *mut Region) {
        pagemap::set(r as usize, 1, pagemap::NONE);
        os::unmap(r as *mut u8, REGION_SIZE);
    }

    /// The region holding `p`, which the page map says is a pool region.
    pub fn of(p: usize) -> *mut Region {
        (p & !(REGION_SIZE - 1)) as *mut Region
    }

    /// Whether the header is a pool region's (the page map said POOL).
    pub fn is_valid(&self) -> bool {
        self.magic == MAGIC
    }

    pub fn class(&self) -> usize {
        self.class as usize
    }

    fn base(&self) -> usize {
        self as *const Region as usize
    }

    fn run_addr(&self, i: usize) -> usize {
        self.base() + (FIRST_RUN_PAGE + i * CLASS_PAGES[self.class()] as usize) * PAGE
    }

    /// No run left to hand out.
    pub fn is_full(&self) -> bool {
        self.free_head == NIL && self.carved == self.runs
    }

    /// Lays the (empty) region out for class `c` at `now`. Pages its old
    /// runs left resident stay, to be used again (they are what makes an
    /// empty region worth more than a new one), and are marked stale.
    pub fn format(&mut self, c: usize, now: u64) {
        debug_assert_eq!(self.used, 0);
        if self.class() == c {
            return;
        }
        if self.class != NO_CLASS {
            if self.dirty > 0 && !self.stale() {
                // Their delay runs from their frees (the last of them when
                // the region went empty), not from this new layout.
                self.stale_since = self.empty_since.min(now);
            }
            self.stale_bytes = self.resident_free_bytes().min(REGION_SIZE - PAGE) as u32;
            self.run_at_page = [NIL; PAGES];
        }
        let pages = CLASS_PAGES[c] as usize;
        let runs = (PAGES - FIRST_RUN_PAGE) / pages;
        for i in 0..runs {
            self.run_at_page[FIRST_RUN_PAGE + i * pages] = i as u8;
        }
        self.class = c as u8;
        self.runs = runs as u8;
        self.carved = 0;
        self.dirty = 0;
        self.free_head = NIL;
    }

    /// Hands out a run: the most recently freed one (its pages are likely
    /// resident and cached; `take_free_run`), else the next never-used one. Returns the run
    /// and whether it reads as zero; None when the region is full.
    pub fn pop(&mut self, size: usize) -> Option<(*mut u8, bool)> {
        let (i, zero) = if let Some(i) = self.take_free_run() {
            if self.state[i] == RunState::Dirty {
                self.dirty -= 1;
                self.check_mark(i, true);
            }
            (i, self.state[i] == RunState::Clean)
        } else if self.carved < self.runs {
            self.carved += 1;
            (self.carved as usize - 1, !self.stale())
        } else {
            return None;
        };
        self.state[i] = RunState::Live;
        self.used += 1;
        self.set_asked(i, size);
        Some((self.run_addr(i) as *mut u8, zero))
    }

    /// Bytes asked for by live run `i`'s block.
    pub fn asked(&self, i: usize) -> usize {
        self.asked[i] as usize
    }

    /// Live run `i` now holds a block of `size` bytes (at most the run's):
    /// its tail moves past them.
    pub fn set_asked(&mut self, i: usize, size: usize) {
        self.asked[i] = size as u32;
        let run = class_size(self.class());
        canary::write_page_tail(self.run_addr(i), size, run - size);
        if guards_next(size, run) {
            canary::write_front_guard(self.run_addr(i) + run);
        }
    }

    /// Whether run `i` has a front guard now.
    fn has_front_guard(&self, i: usize) -> bool {
        i == 0 || {
            let prev = i - 1;
            self.state[prev] == RunState::Live && guards_next(self.asked(prev), class_size(self.class()))
        }
    }

    /// Reports a write before or past the block of live run `i` (its front
    /// guard or its tail changed).
    pub fn check_guards(&self, i: usize) {
        let size = self.asked(i);
        canary::check_page_guards(self.run_addr(i), size, class_size(self.class()) - size, self.has_front_guard(i));
    }

    /// A free run off the list: the one freed before the most recent, or
    /// (runs up to DELAYED_RUN_MAX, or hardened) a never-used run first if
    /// the most recent is the only one, so that the run freed last is not
    /// handed straight back (a use after free or second free of it is then
    /// found, not hidden). It costs no time, and at most one run of memory
    /// per region.
    fn take_free_run(&mut self) -> Option<usize> {
        let head = self.free_head;
        if head == NIL {
            return None;
        }
        let second = self.next_free[head as usize];
        if second != NIL {
            self.next_free[head as usize] = self.next_free[second as usize];
            return Some(second as usize);
        }
        if self.carved < self.runs && (config::harden() || class_size(self.class()) <= DELAYED_RUN_MAX) {
            return None;
        }
        self.free_head = self.next_free[head as usize];
        Some(head as usize)
    }

    /// Reports a write into free run `i` since it was marked; `clear`: it
    /// is being handed out, so the mark goes.
    fn check_mark(&self, i: usize, clear: bool) {
        if valgrind::active() {
            return;
        }
        let found = if clear { "malloc was to hand it out" } else { "the next run was freed" };
        let p = self.run_addr(i) as *mut u8;
        let key = random::secret();
        let damage = if clear { free_mark::check_and_clear(p, MARKED_BYTES, key) } else { free_mark::check(p, MARKED_BYTES, key) };
        if let Some(at) = damage {
            diag::write_after_free(p as usize + at, p as usize, found);
        }
    }

    /// The live run starting at `p`, if `p` is one.
    pub fn live_run(&self, p: usize) -> Option<usize> {
        self.run_starting_at(p).filter(|&i| self.state[i] == RunState::Live)
    }

    /// Whether `p` starts a run that was handed out and is free again.
    pub fn is_freed_run(&self, p: usize) -> bool {
        self.run_starting_at(p).is_some_and(|i| matches!(self.state[i], RunState::Dirty | RunState::Clean))
    }

    fn run_starting_at(&self, p: usize) -> Option<usize> {
        let off = p - self.base();
        if !off.is_multiple_of(PAGE) {
            return None;
        }
        let i = self.run_at_page[off / PAGE];
        (i != NIL).then_some(i as usize)
    }

    /// Takes back live run `i`, dirty since `now`, its guards checked
    /// first. The run gets the free mark hardened slab blocks get
    /// (`slab/free_mark.rs`; the pool keeps its lists here, so a free run's
    /// bytes stay as written until it is handed out or purged), and the run
    /// freed before it has its mark checked, so that a write after free
    /// shows soon even when the run waits long. Not under valgrind, whose
    /// memcheck has been told the block is freed (and checks that itself).
    pub fn push(&mut self, i: usize, now: u64) {
        debug_assert_eq!(self.state[i], RunState::Live);
        self.check_guards(i);
        if self.free_head != NIL && self.state[self.free_head as usize] == RunState::Dirty {
            self.check_mark(self.free_head as usize, false);
        }
        if !valgrind::active() {
            free_mark::mark(self.run_addr(i) as *mut u8, MARKED_BYTES, random::secret());
        }
        self.state[i] = RunState::Dirty;
        self.freed_at[i] = now;
        self.next_free[i] = self.free_head;
        self.free_head = i as u8;
        self.dirty += 1;
        self.used -= 1;
        if self.used == 0 {
            self.empty_since = now;
        }
    }

    /// Whether the purge has pages to give back here.
    pub fn has_resident_free_pages(&self) -> bool {
        self.dirty > 0 || self.stale()
    }

    /// Whether runs not yet carved may hold pages an earlier layout left.
    fn stale(&self) -> bool {
        self.stale_bytes > 0
    }

    /// At most how many bytes of free pages here are resident: the dirty
    /// runs, and the stale pages an earlier layout left.
    pub fn resident_free_bytes(&self) -> usize {
        self.dirty as usize * class_size(self.class()) + self.stale_bytes as usize
    }

    /// Gives back the pages of free runs dirty for `delay` ms by `now` (all
    /// of them when `force`), and stale pages past the carved runs. Returns
    /// when the next one is due (u64::MAX: none left) and whether any was
    /// given back.
    pub fn purge(&mut self, now: u64, delay: u64, force: bool) -> (u64, bool) {
        let mut due = u64::MAX;
        let mut released = false;
        if self.stale() {
            let ripe_at = self.stale_since.saturating_add(delay);
            if force || now >= ripe_at {
                let from = self.run_addr(self.carved as usize);
                os::decommit(from as *mut u8, self.base() + REGION_SIZE - from);
                self.stale_bytes = 0;
                released = true;
            } else {
                due = ripe_at;
            }
        }
        for i in 0..self.carved as usize {
            if self.state[i] != RunState::Dirty {
                continue;
            }
            let ripe_at = self.freed_at[i].saturating_add(delay);
            if force || now >= ripe_at {
                self.release_run(i);
                self.state[i] = RunState::Clean;
                self.dirty -= 1;
                released = true;
            } else {
                due = due.min(ripe_at);
            }
        }
        (due, released)
    }

    fn release_run(&self, i: usize) {
        os::decommit(self.run_addr(i) as *mut u8, class_size(self.class()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_the_tier_wasting_at_most_a_fifth() {
        let mut last = 0;
        for size in (32 * 1024 + 1..=MAX_SIZE).step_by(97) {
            let c = class_of(size);
            let run = class_size(c);
            assert!(c >= last && run >= size, "{size} -> class {c}");
            assert!((run - size) * 5 <= run, "{size} -> {run}");
            last = c;
        }
        assert_eq!(class_of(MAX_SIZE), RUN_CLASSES - 1);
        assert_eq!(class_of(1), 0);
        for c in 0..RUN_CLASSES {
            assert_eq!(class_of(class_size(c)), c);
        }
    }

    #[test]
    fn runs_are_found_from_their_start_only_while_live() {
        let r = Region::create(0);
        assert!(!r.is_null());
        // SAFETY: a fresh region owned by this test alone.
        let reg = unsafe { &mut *r };
        assert!(reg.is_valid());
        reg.format(class_of(100 * 1024), 0);
        let (a, zero) = reg.pop(100 * 1024).unwrap();
        let (b, _) = reg.pop(100 * 1024).unwrap();
        assert!(zero);
        assert_eq!(b as usize - a as usize, class_size(reg.class()));
        assert_eq!(a as usize % PAGE, 0);
        let i = reg.live_run(a as usize).unwrap();
        assert_eq!(reg.live_run(a as usize + 16), None, "interior pointer");
        assert_eq!(reg.live_run(a as usize + PAGE), None, "interior page");
        assert_eq!(reg.live_run(r as usize), None, "the header");
        reg.push(i, 0);
        assert_eq!(reg.live_run(a as usize), None, "a freed run");
        // The run freed last is not handed straight back: a never-used run
        // comes before it, and the one freed before it if there is one
        // (not zero until purged).
        let (c, zero) = reg.pop(100 * 1024).unwrap();
        assert!(zero && c != a && c != b);
        reg.push(reg.live_run(c as usize).unwrap(), 5);
        assert_eq!(reg.pop(100 * 1024), Some((a, false)));
        reg.push(reg.live_run(a as usize).unwrap(), 0);
        assert_eq!(reg.purge(10, 100, false), (100, false));
        assert_eq!(reg.purge(105, 100, false), (u64::MAX, true));
        assert_eq!(reg.pop(100 * 1024), Some((c, true)));
        for p in [b, c] {
            reg.push(reg.live_run(p as usize).unwrap(), 0);
        }
        assert_eq!(reg.used, 0);
        // SAFETY: no live run, in no list.
        unsafe { Region::destroy(r) };
        assert_eq!(pagemap::kind(a as usize), pagemap::NONE);
    }

    #[test]
    fn a_reformatted_region_keeps_its_pages_until_the_purge() {
        let r = Region::create(0);
        // SAFETY: a fresh region owned by this test alone.
        let reg = unsafe { &mut *r };
        reg.format(RUN_CLASSES - 1, 0);
        let (p, _) = reg.pop(class_size(reg.class())).unwrap();
        // SAFETY: p is a live run of 1 MiB.
        unsafe { ptr::write_bytes(p, 0xee, MAX_SIZE) };
        assert!(reg.is_full(), "one 1 MiB run per region");
        assert_eq!(reg.pop(class_size(reg.class())), None);
        reg.push(reg.live_run(p as usize).unwrap(), 20);
        assert_eq!(reg.resident_free_bytes(), MAX_SIZE);
        reg.format(0, 50);
        assert_eq!(reg.resident_free_bytes(), MAX_SIZE, "the old class's pages count until purged");
        let (q, zero) = reg.pop(class_size(reg.class())).unwrap();
        assert_eq!(q, p);
        assert!(!zero, "the old class's pages are still there");
        // SAFETY: q is a live run of the first class, in the old run.
        assert_eq!(unsafe { *q.add(class_size(0) - 1) }, 0xee);
        assert_eq!(reg.purge(100, 100, false), (120, false), "due a delay after the free, not the new layout");
        assert_eq!(reg.purge(120, 100, false), (u64::MAX, true));
        assert!(!reg.has_resident_free_pages());
        assert_eq!(reg.resident_free_bytes(), 0);
        let mut runs = 1;
        while let Some((q, zero)) = reg.pop(class_size(reg.class())) {
            assert!(zero, "stale pages went back to the kernel");
            // SAFETY: q is a live run of the first class.
            assert_eq!(unsafe { *q.add(class_size(0) - 1) }, 0);
            runs += 1;
        }
        assert_eq!(runs, MAX_RUNS);
        // SAFETY: the test's own region; its runs are not used afterwards.
        unsafe { Region::destroy(r) };
    }
}
