//! Hardened mode (HAKMEM_HARDEN=1): every block malloc hands out lies in a
//! raw block of some tier, past a head and before a tail (`canary.rs`); a
//! big raw block also has a guard page past the tail (`large/guard_page.rs`).
//! A pool raw block has one too: two system calls per block, which
//! hardened mode pays for stopping a long overflow where it starts.
//! free, realloc and malloc_usable_size find the raw block from the head
//! and check both ends first: a write before or past the block, a double
//! free, or a pointer malloc never returned is reported with its address,
//! and the process aborts.
//!
//! The fast paths need no test for the mode: no block handed out here
//! starts a slab block, so each free misses the slab fast path and comes
//! here through `free_other`, and checked mode's empty bins send each malloc
//! here through `malloc_miss`.

use core::ptr;

use crate::bootstrap;
use crate::canary::{self, Head, HEAD, TAIL_MIN};
use crate::diag;
use crate::large::{self, guard_page, zero_size};
use crate::os::{self, pagemap, random, PAGE};
use crate::size_class::{aligned_class_of, class_of, CLASS_SIZE, MAX_SMALL};
use crate::slab::{free_mark, superslab};

use crate::alloc::miss::{block_usable, free_not_slab, free_slab_block, large_block, or_enomem, slab_block};

/// A live block as its head describes it.
#[derive(Clone, Copy)]
struct Block {
    user: *mut u8,
    head: Head,
    raw: usize,
    /// The page-map kind of the raw block's start.
    kind: u8,
    /// The raw block's usable bytes.
    room: usize,
    /// The raw block's slab class, if it is a slab block.
    class: Option<usize>,
}

impl Block {
    fn end(&self) -> usize {
        self.user as usize + self.head.size
    }

    /// The guard page of a pool or big raw block: the first page boundary
    /// past the least tail, so that the tail lies before it.
    fn guard(&self) -> Option<usize> {
        let large = pagemap::is_big(self.kind) || self.kind == pagemap::POOL;
        large.then(|| os::align_up(self.end() + TAIL_MIN, PAGE))
    }

    /// Bytes of tail: up to the guard page, or to the raw block's end.
    fn tail_room(&self) -> usize {
        self.guard().unwrap_or(self.raw + self.room) - self.end()
    }
}

/// A block of `size` bytes aligned to `align` (16 or less: malloc's own
/// alignment), in its canaries; null with errno ENOMEM if there is none.
#[inline(never)]
pub fn malloc(size: usize, align: usize) -> *mut u8 {
    if size == 0 && align <= 16 {
        let p = zero_size::malloc();
        if !p.is_null() {
            return p;
        }
    }
    let Some((mut raw_size, offset)) = canary::raw_request(size, align) else {
        return or_enomem(ptr::null_mut());
    };
    let class = if align <= 16 {
        (raw_size <= MAX_SMALL).then(|| class_of(raw_size))
    } else {
        aligned_class_of(align, raw_size)
    };
    let raw = match class {
        Some(c) => slab_block(c),
        None => {
            // Room for the guard page wherever the page boundary falls.
            raw_size = match raw_size.checked_add(2 * PAGE) {
                Some(n) => n,
                None => return or_enomem(ptr::null_mut()),
            };
            large_block(raw_size, align)
        }
    };
    if raw.is_null() {
        return raw;
    }
    let a = raw as usize;
    // A slab class's block (or the bootstrap arena's, of the class's size:
    // either way no guard page), or a large one whose tier knows its room.
    let (kind, room) = match class {
        Some(c) => (pagemap::SUPERSLAB, CLASS_SIZE[c] as usize),
        None => {
            let kind = pagemap::kind(a);
            (kind, raw_room(a, kind).map_or(raw_size, |r| r.0))
        }
    };
    let b = Block { user: raw.wrapping_add(offset), head: Head { size, offset }, raw: a, kind, room, class };
    canary::stamp(b.user, b.head, b.tail_room());
    if let Some(g) = b.guard() {
        // Without the guard (the kernel's map count is exhausted) the tail
        // still catches the overflow, later.
        guard_page::protect(g);
    }
    b.user
}

/// free in hardened mode (out of line, as is malloc: inlined into the cold
/// miss paths they would be compiled for size, and run a quarter slower).
#[inline(never)]
pub fn free(p: *mut u8, who: &str) {
    match pagemap::kind(p as usize) {
        pagemap::NONE => free_not_slab(p, who),
        pagemap::BOOTSTRAP => {}
        pagemap::FREED_BIG => diag::double_free(who, p as usize),
        pagemap::ZERO_SIZE => zero_size::free(p, who),
        _ => release(&checked_block(p, who), who),
    }
}

/// malloc_usable_size in hardened mode: exactly the bytes asked for.
pub fn usable(p: *mut u8, who: &str) -> usize {
    match pagemap::kind(p as usize) {
        pagemap::NONE => block_usable(p, who),
        pagemap::ZERO_SIZE => zero_size::usable(p, who),
        _ => checked_block(p, who).head.size,
    }
}

/// realloc in hardened mode: a slab block keeps its place when the new size
/// fits its raw block and uses more than half of it (then only the head and
/// tail move), anything else is copied to a new block.
pub fn realloc(p: *mut u8, size: usize, who: &str) -> *mut u8 {
    if pagemap::kind(p as usize) == pagemap::ZERO_SIZE {
        // No bytes to keep: a new block, then the old one goes.
        zero_size::usable(p, who);
        let q = malloc(size, 0);
        if !q.is_null() {
            zero_size::free(p, who);
        }
        return q;
    }
    // glibc's own block (foreign.rs) has no head: it is only copied out.
    let b = (pagemap::kind(p as usize) != pagemap::NONE).then(|| checked_block(p, who));
    if let Some(b) = &b {
        let need = size.checked_add(b.head.offset + TAIL_MIN);
        let fits = need.is_some_and(|n| n <= b.room) && size > (b.room - b.head.offset) / 2;
        // Not a pool or big block: its guard page would have to move.
        if fits && b.kind == pagemap::SUPERSLAB {
            let moved = Block { head: Head { size, offset: b.head.offset }, ..*b };
            canary::stamp(moved.user, moved.head, moved.tail_room());
            return p;
        }
    }
    let old = b.as_ref().map_or_else(|| block_usable(p, who), |b| b.head.size);
    let q = malloc(size, 0);
    if !q.is_null() {
        // SAFETY: both blocks have at least min(old, size) bytes and are distinct.
        unsafe { ptr::copy_nonoverlapping(p, q, old.min(size)) };
        // The old block was checked above: it is given back as it is.
        match &b {
            Some(b) => release(b, who),
            None => free_not_slab(p, who),
        }
    }
    q
}

/// Gives the raw block of `b` back to its tier.
fn release(b: &Block, who: &str) {
    if let Some(g) = b.guard() {
        guard_page::unprotect(g);
    }
    match b.class {
        Some(c) => free_slab_block(b.raw as *mut u8, c),
        None => free_not_slab(b.raw as *mut u8, who),
    }
}

/// The live block at `p` (in memory of hakmem's), with its head and tail
/// found intact; reports and aborts otherwise.
fn checked_block(p: *mut u8, who: &str) -> Block {
    let a = p as usize;
    // Every block here is 16-byte aligned and lies past its raw block's
    // start, in hakmem's memory: then the head's 16 bytes are readable (in
    // a's own region when it is not at the region's start).
    let own = pagemap::kind(a);
    let in_region = a & (pagemap::REGION_SIZE - 1) >= HEAD;
    let below = if own == pagemap::SUPERSLAB && in_region { own } else { pagemap::kind(a - HEAD) };
    if !a.is_multiple_of(16) || below == pagemap::NONE || below == pagemap::FREED_BIG {
        diag::invalid_pointer(who, a);
    }
    let Some(head) = canary::head(p) else {
        damaged_head(a, who)
    };
    let raw = a - head.offset;
    let kind = if head.offset == HEAD { below } else { pagemap::kind(raw) };
    let (room, class) = match live_raw_room(raw, kind, a, who) {
        Some((room, class)) if head.offset + head.size + TAIL_MIN <= room => (room, class),
        _ => diag::invalid_pointer(who, a),
    };
    let b = Block { user: p, head, raw, kind, room, class };
    if let Some((written, at_least)) = canary::overflow(p, head.size, b.tail_room()) {
        diag::heap_overflow(a, head.size, written, at_least);
    }
    b
}

/// The usable bytes of the raw block at `raw` (page-map kind `kind`) and
/// its slab class if one starts there, free or not.
fn raw_room(raw: usize, kind: u8) -> Option<(usize, Option<usize>)> {
    match kind {
        pagemap::SUPERSLAB => superslab::block_class(raw).map(|c| (CLASS_SIZE[c] as usize, Some(c))),
        pagemap::BOOTSTRAP => Some((bootstrap::usable(raw as *const u8), None)),
        k if large::owns(k) => large::usable(raw, k).map(|n| (n, None)),
        _ => None,
    }
}

/// `raw_room` for the raw block of the sealed head before `user`, which
/// must be live: a free one (a slab block with the free mark, a freed pool
/// run whose bytes are still there) means the block was freed before.
fn live_raw_room(raw: usize, kind: u8, user: usize, who: &str) -> Option<(usize, Option<usize>)> {
    let room = raw_room(raw, kind);
    let freed = match kind {
        pagemap::SUPERSLAB => room.is_some() && free_mark::is_marked(raw as *mut u8, random::secret()),
        k => large::owns(k) && room.is_none(),
    };
    if freed {
        diag::double_free(who, user);
    }
    room
}

/// The head before `a` is no head: the free mark in its place says the
/// block was freed before; a raw block starting right below it, that
/// something wrote over the head; otherwise `a` is not a block of malloc's.
fn damaged_head(a: usize, who: &str) -> ! {
    let below = a - HEAD;
    let kind = pagemap::kind(below);
    let marked = kind == pagemap::SUPERSLAB || kind == pagemap::POOL;
    if marked && free_mark::is_marked(below as *mut u8, random::secret()) {
        diag::double_free(who, a);
    }
    if raw_room(below, kind).is_some() {
        diag::heap_underflow(a);
    }
    diag::invalid_pointer(who, a)
}
