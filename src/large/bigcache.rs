//! BigCache: freed big ranges kept for reuse, in a table sorted by size that
//! grows and shrinks with use (size_table.rs). A request takes the smallest
//! range that fits, and the rest of that range stays cached; when none fits
//! it takes the largest one, and more ranges or fresh pages make up the
//! rest (`fill`). Either way the pages a program already faulted in
//! are used again, which is what makes reuse cheaper than a fresh mapping. A byte budget bounds what the cache keeps
//! (the oldest ranges go first), and ranges unused for the purge delay go
//! back to the kernel (`purge`, run on allocator activity).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::config;
use crate::large::big_pages::{move_range, unmap_range, Pieces, MAX_PIECES};
use crate::large::size_table::{Range, SizeTable};
use crate::os::clock::now_ms;
use crate::sync::due::Due;
use crate::sync::SpinLock;
use crate::valgrind;

/// Bytes the cache may hold at most.
const BUDGET: usize = 64 << 20;
/// Ranges bigger than this are never kept.
const MAX_RANGE: usize = 32 << 20;
/// Smaller leftovers go back to the kernel at once. Ranges down to 64 KiB
/// are kept although no big block is that small: as a piece of a bigger
/// block, one mremap moves what would otherwise be 16 page faults or more
/// (bigblocks: 176 K against 199 K faults with a 1 MiB floor).
pub const MIN_RANGE: usize = 64 << 10;

struct Cache {
    lock: SpinLock,
    state: UnsafeCell<State>,
}

struct State {
    table: SizeTable,
    bytes: usize,
}

// SAFETY: `state` is only touched with `lock` held.
unsafe impl Sync for Cache {}

static CACHE: Cache = Cache {
    lock: SpinLock::new(),
    state: UnsafeCell::new(State::new()),
};

/// When the oldest range's purge delay runs out; u64::MAX when empty.
pub static PURGE_DUE: Due = Due::new();

/// `State::bytes` as of the last change, readable without the lock: the
/// big realloc paths ask "is anything cached?" before taking it.
static BYTES: AtomicUsize = AtomicUsize::new(0);

fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let _g = CACHE.lock.lock();
    // SAFETY: the cache lock is held.
    let st = unsafe { &mut *CACHE.state.get() };
    let r = f(st);
    BYTES.store(st.bytes, Ordering::Relaxed);
    r
}

/// Bytes cached (a moment ago: another thread may be changing it).
pub fn cached_bytes() -> usize {
    BYTES.load(Ordering::Relaxed)
}

/// Ranges cached now.
pub fn cached_ranges() -> usize {
    with(|st| st.table.len())
}

/// Unmaps every range cached for the purge delay or longer (all of them when
/// `force`); true if any was unmapped.
pub fn purge(now: u64, force: bool) -> bool {
    let delay = config::purge_delay_ms() as u64;
    with(|st| {
        let (due, released) = st.purge(now, delay, force);
        PURGE_DUE.set(due);
        released
    })
}

/// Whether a cached range of `len` bytes starts at `addr` and `test(len)`
/// holds, asked with the cache locked: the range stays mapped meanwhile.
/// For reports only (a scan).
pub fn starts_range(addr: usize, test: impl FnOnce(usize) -> bool) -> bool {
    with(|st| {
        let t = &st.table;
        (0..t.len()).map(|i| t.get(i)).find(|r| r.addr == addr).is_some_and(|r| test(r.size))
    })
}

/// A cached range for a block of `size` bytes (page multiple): the smallest
/// of at least `size` bytes, cut to `size` (the rest stays cached if it is
/// big enough to be of use), else the largest, shorter one. Returns its
/// address and length (at most `size`), or None when the cache is empty.
pub fn take(size: usize) -> Option<(usize, usize)> {
    with(|st| st.take(size))
}

/// Fills `dst..dst+len` (ours, fresh pages: a reservation or an extension,
/// one kernel mapping) from its start with cached ranges, appending a piece
/// for each, and for the fresh rest if any. `pieces` must have room for one
/// more.
pub fn fill(dst: usize, len: usize, pieces: &mut Pieces) {
    let mut off = 0;
    while off < len && pieces.count() + 1 < MAX_PIECES {
        let Some((addr, got)) = take(len - off) else {
            break;
        };
        if !move_range(addr, got, got, dst + off) {
            unmap_range(addr, got);
            break;
        }
        pieces.push(got);
        off += got;
    }
    if off < len {
        pieces.push(len - off);
    }
}

/// Unmaps the oldest cached ranges, at least `bytes` of them (all, if the
/// cache holds less). A tier about to map a fresh region calls it: pages
/// a program freed in big blocks then make way for the small blocks it
/// allocates next, instead of staying resident beside them for the purge
/// delay (sqlite's sorter buffers, freed before its page cache grew: a
/// peak 20 MB higher).
pub fn give_way(bytes: usize) {
    if cached_bytes() == 0 {
        return;
    }
    with(|st| st.give_way(bytes));
}

/// Keeps a free range (page-aligned, inside one kernel mapping); false if
/// it is too small or too big to keep (the caller unmaps it then).
pub fn put(addr: usize, size: usize) -> bool {
    // Under valgrind freed ranges are unmapped: memcheck would see hakmem's
    // new headers in a reused range as writes to a freed block. Hardened,
    // they are unmapped too, so that a use after free faults.
    if !(MIN_RANGE..=MAX_RANGE).contains(&size) || valgrind::active() || config::harden() {
        return false;
    }
    let now = now_ms();
    let kept = with(|st| st.put(Range { addr, size, freed_at: now }));
    if kept {
        PURGE_DUE.note(now.saturating_add(config::purge_delay_ms() as u64));
    }
    kept
}

impl State {
    const fn new() -> Self {
        State { table: SizeTable::new(), bytes: 0 }
    }

    fn take(&mut self, size: usize) -> Option<(usize, usize)> {
        let n = self.table.len();
        if n == 0 {
            return None;
        }
        let r = self.table.remove(self.table.first_fit(size).min(n - 1));
        self.bytes -= r.size;
        if r.size <= size {
            return Some((r.addr, r.size));
        }
        let rest = Range { addr: r.addr + size, size: r.size - size, freed_at: r.freed_at };
        if !self.keep(rest) {
            unmap_range(rest.addr, rest.size);
        }
        Some((r.addr, size))
    }

    fn put(&mut self, r: Range) -> bool {
        // The oldest ranges make room: the newest is the likeliest reused.
        while self.bytes + r.size > BUDGET && !self.table.is_empty() {
            self.drop_oldest();
        }
        self.keep(r)
    }

    fn give_way(&mut self, bytes: usize) {
        let mut freed = 0;
        while freed < bytes && !self.table.is_empty() {
            freed += self.drop_oldest();
        }
    }

    /// Unmaps the oldest range (the table must hold one); returns its size.
    fn drop_oldest(&mut self) -> usize {
        let old = self.table.remove(self.table.oldest());
        self.bytes -= old.size;
        unmap_range(old.addr, old.size);
        old.size
    }

    fn keep(&mut self, r: Range) -> bool {
        if r.size < MIN_RANGE || self.bytes + r.size > BUDGET || !self.table.insert(r) {
            return false;
        }
        self.bytes += r.size;
        true
    }

    /// Returns when the next range is due and whether any was unmapped.
    fn purge(&mut self, now: u64, delay: u64, force: bool) -> (u64, bool) {
        let mut released = false;
        let mut due = u64::MAX;
        let mut i = 0;
        while i < self.table.len() {
            let r = self.table.get(i);
            let ripe_at = r.freed_at.saturating_add(delay);
            if force || now >= ripe_at {
                self.table.remove(i);
                self.bytes -= r.size;
                unmap_range(r.addr, r.size);
                released = true;
            } else {
                due = due.min(ripe_at);
                i += 1;
            }
        }
        self.table.release();
        (due, released)
    }
}

/// The lock fork holds across the fork (`init::fork_prepare`).
pub fn fork_lock() -> &'static SpinLock {
    &CACHE.lock
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::large::big_pages::map_fresh;

    const MIB: usize = 1 << 20;

    fn mapped(size: usize) -> Range {
        let addr = map_fresh(size, MIB).unwrap();
        Range { addr, size, freed_at: 0 }
    }

    #[test]
    fn takes_the_smallest_fit_and_keeps_the_rest() {
        let mut st = State::new();
        let (a, b) = (mapped(8 * MIB), mapped(3 * MIB));
        assert!(st.put(a) && st.put(b));
        assert_eq!(st.take(2 * MIB), Some((b.addr, 2 * MIB)));
        // 1 MiB of b is left, enough to keep.
        assert_eq!(st.table.len(), 2);
        assert_eq!(st.bytes, 9 * MIB);
        assert_eq!(st.take(5 * MIB), Some((a.addr, 5 * MIB)));
        // Nothing fits 4 MiB: the largest range comes, shorter.
        assert_eq!(st.take(4 * MIB), Some((a.addr + 5 * MIB, 3 * MIB)));
        assert_eq!(st.take(4 * MIB), Some((b.addr + 2 * MIB, MIB)));
        assert_eq!(st.take(4 * MIB), None);
        assert_eq!(st.bytes, 0);
        unmap_range(a.addr, 8 * MIB);
        unmap_range(b.addr, 3 * MIB);
    }

    #[test]
    fn giving_way_unmaps_the_oldest_ranges_until_enough_went() {
        let mut st = State::new();
        let ranges: Vec<Range> = (0..3).map(|t| Range { freed_at: 10 - t, ..mapped(2 * MIB) }).collect();
        for r in &ranges {
            assert!(st.put(*r));
        }
        st.give_way(3 * MIB);
        // The two oldest (freed at 8 and 9) went; 2 MiB would have taken one.
        assert_eq!(st.table.len(), 1);
        assert_eq!(st.table.get(0).addr, ranges[0].addr);
        assert_eq!(st.bytes, 2 * MIB);
        st.give_way(64 * MIB);
        assert!(st.table.is_empty() && st.bytes == 0);
        st.give_way(MIB);
    }

    #[test]
    fn the_budget_pushes_out_the_oldest_and_the_delay_purges() {
        let mut st = State::new();
        let mut ranges = Vec::new();
        for t in 0..(BUDGET / (16 * MIB)) as u64 + 1 {
            let r = Range { freed_at: t, ..mapped(16 * MIB) };
            assert!(st.put(r));
            ranges.push(r);
        }
        assert_eq!(st.bytes, BUDGET);
        assert!(st.table.len() < ranges.len());
        assert!((0..st.table.len()).all(|i| st.table.get(i).freed_at > 0), "the oldest went");
        let (due, released) = st.purge(101, 100, false);
        assert!(released && due == 102);
        assert_eq!(st.purge(1000, 100, false), (u64::MAX, true));
        assert_eq!(st.bytes, 0);
        assert!(st.table.is_empty());
    }
}
