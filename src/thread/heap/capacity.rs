//! How much each class's bin may hold: a class that keeps missing gets
//! more room, an idle one gives it back, and after the purge delay a heap
//! whose cache grew is asked to trim (blocks cached keep their whole slabs
//! resident). All of it runs on the slow paths.

use core::ptr;
use core::sync::atomic::Ordering;

use crate::config;
use crate::os::clock::now_ms;
use crate::size_class::NUM_CLASSES;
use crate::sync::due::Due;
use crate::thread::cache::{min_cap, start_cap, MAX_CAP};

use super::Heap;

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
    /// Counts a slow-path event for class `c` (a refill, or an overflow): a
    /// class that keeps missing gets more room, unless the thread only frees
    /// it (a bigger cache would only park other threads' blocks); every
    /// TICK_EVENTS events, idle classes give room back.
    pub(super) fn note_event(&mut self, c: usize, refill: bool) {
        self.trim_if_asked();
        let l = &mut self.rings[c];
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
        self.slow_path_taken = true;
        self.slow_events = self.slow_events.wrapping_add(1);
        if self.slow_events.is_multiple_of(TICK_EVENTS) {
            self.shrink_idle(false);
        }
    }

    /// Classes with no slow-path event since the last look give room back:
    /// half of it (`to_min` false), or all but the floor (a trim the purge
    /// thread asked for: such a class has been idle for a purge delay). A
    /// trim also empties the bins of classes that had no refill since the
    /// last look, keeping their room.
    pub(super) fn shrink_idle(&mut self, to_min: bool) {
        for c in 0..NUM_CLASSES {
            let now = self.bin(c).cap();
            if self.rings[c].events == 0 && now > min_cap(c) {
                let cap = if to_min { min_cap(c) } else { (now / 2).max(min_cap(c)) };
                let count = self.bin(c).count();
                if count > cap / 2 {
                    self.flush(c, count - cap / 2);
                }
                self.bin(c).set_cap(cap);
            } else if to_min && self.rings[c].refills == 0 {
                // A class this thread only freed since the last look (a
                // mass free, or other threads' blocks): nothing here reuses
                // what it caches, which keeps their slabs resident.
                let count = self.bin(c).count();
                if count > 0 {
                    self.flush(c, count);
                }
            }
            self.rings[c].events = 0;
            self.rings[c].refills = 0;
        }
    }

    /// Asks, once per trim, to be asked for a trim after the purge delay.
    pub(super) fn want_trim(&mut self) {
        if !self.trim_wanted.load(Ordering::Relaxed) {
            self.trim_wanted.store(true, Ordering::Relaxed);
            CACHE_TRIM_DUE.note(now_ms() + config::purge_delay_ms() as u64);
        }
    }

    /// The purge thread asked for a trim (the purge delay has passed since
    /// we wanted one): idle classes give their blocks back, and a cache
    /// that still holds more than it starts with wants the next trim.
    pub fn trim_if_asked(&mut self) {
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
}
