//! Hardened mode's canaries (HAKMEM_HARDEN=1). Each block malloc hands out
//! lies inside a larger raw block of any tier, between a head and a tail:
//!
//! ```text
//!   raw … [ size ^ key | offset ^ check ] user's `size` bytes [ tail … ]
//!         └────── the 16 bytes before the user pointer ──────┘
//! ```
//!
//! The head says how many bytes were asked for (malloc_usable_size returns
//! exactly that) and how far below the user pointer the raw block starts
//! (16, or the alignment asked for). Its second word is sealed with a hash
//! of the user address, the first word and the process key, so a head an
//! underflow overwrote, or bytes a stray pointer happens to follow, do not
//! read as one. The tail is up to `TAIL_CHECKED` pattern bytes, each with
//! its top bit set (a C string's terminator or ASCII text written one past
//! the end never matches). free, realloc and malloc_usable_size check both.
//! In every mode, pool and big blocks keep such a tail past the size asked
//! (`write_tail`, `tail_damage`; `large/`).

use crate::diag;
use crate::os::{random, PAGE};
use crate::valgrind;

/// Bytes of head just before the user pointer.
pub const HEAD: usize = 16;
/// Tail bytes every block has at least, so a 1-byte overflow always lands
/// on the pattern.
pub const TAIL_MIN: usize = 8;
/// Tail bytes written and checked at most (the rest of a raw block's room
/// is not read, so big blocks cost no more to check than small ones).
const TAIL_CHECKED: usize = 16;
/// Offsets above this are not ones malloc makes (the largest alignment a
/// big block takes is 128 MiB).
const MAX_OFFSET: usize = 1 << 40;

/// What a head says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Bytes the caller asked for.
    pub size: usize,
    /// User pointer minus the raw block's start.
    pub offset: usize,
}

/// The raw request for `size` bytes aligned to `align` (a power of two; 16
/// or less for malloc's alignment): the raw size and the user pointer's
/// offset in it; None when the size is impossible.
pub fn raw_request(size: usize, align: usize) -> Option<(usize, usize)> {
    let offset = align.max(HEAD);
    let raw = size.checked_add(offset + TAIL_MIN)?;
    (raw <= isize::MAX as usize / 2).then_some((raw, offset))
}

fn size_key() -> usize {
    random::secret().rotate_left(17) ^ 0x6a09_e667_f3bc_c908
}

/// One multiply and a shift: enough that a seal made with the secret key
/// cannot be guessed, and that a changed input bit changes the seal.
fn mix(x: usize) -> usize {
    let x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

/// The seal of a head. Its top bit is set, and offsets are below 2^40, so
/// the byte just before the user pointer always has its top bit set: a
/// 1-byte underflow of ASCII text or a terminator always changes it.
fn seal(user: usize, first: usize) -> usize {
    mix(user ^ first.rotate_left(23) ^ random::secret()) | 1 << 63
}

/// The pattern as a word read from address `a` on: byte `a & 7` of one
/// per-process word, whose bytes all have their top bit set, at each `a`
/// (so tails are written and checked a word at a time).
fn pattern_at(a: usize) -> usize {
    (random::secret().rotate_left(7) | 0x8080_8080_8080_8080).rotate_right(((a & 7) * 8) as u32)
}

fn words(user: *mut u8) -> (*mut usize, *mut usize) {
    let u = user as usize;
    ((u - HEAD) as *mut usize, (u - HEAD + 8) as *mut usize)
}

/// Writes the head and tail of a block of `size` bytes at `user`, with
/// `tail_room` bytes after it that are the block's (at least TAIL_MIN).
pub fn stamp(user: *mut u8, head: Head, tail_room: usize) {
    let first = head.size ^ size_key();
    let (w0, w1) = words(user);
    // SAFETY: the caller's raw block holds the 16 bytes before user.
    unsafe {
        *w0 = first;
        *w1 = head.offset ^ seal(user as usize, first);
    }
    write_tail(user.wrapping_add(head.size), tail_room);
}

/// The head before `user` if it is one `stamp` wrote. The caller knows the
/// 16 bytes before `user` are readable.
pub fn head(user: *mut u8) -> Option<Head> {
    let (w0, w1) = words(user);
    // SAFETY: the caller says these words are readable.
    let (first, second) = unsafe { (*w0, *w1) };
    let offset = second ^ seal(user as usize, first);
    let size = first ^ size_key();
    let plausible = offset.is_power_of_two() && (HEAD..=MAX_OFFSET).contains(&offset) && size <= isize::MAX as usize;
    plausible.then_some(Head { size, offset })
}

/// How far past the end of the block of `size` bytes at `user` (with
/// `tail_room` bytes of tail) something wrote: see `tail_damage`.
pub fn overflow(user: *mut u8, size: usize, tail_room: usize) -> Option<(usize, bool)> {
    tail_damage(user.wrapping_add(size), tail_room)
}

/// Writes the pattern over the first of `room` bytes at `end` (a block's
/// end): as many as are checked. Default mode's pool and big blocks carry
/// this tail too (`large/`), where the room past the size asked is free;
/// under valgrind they do not (memcheck sees a freed run's bytes written
/// before the run is handed out again, and checks overflows itself).
pub fn write_tail(end: *mut u8, room: usize) {
    let n = if valgrind::active() { 0 } else { room.min(TAIL_CHECKED) };
    let v = pattern_at(end as usize);
    if n < 8 {
        for i in 0..n {
            // SAFETY: the caller owns `room` bytes at `end`.
            unsafe { *end.add(i) = (v >> (i * 8)) as u8 };
        }
        return;
    }
    for off in word_offsets(n) {
        // SAFETY: as above; off + 8 <= n.
        unsafe { end.add(off).cast::<usize>().write_unaligned(v.rotate_right(((off & 7) * 8) as u32)) };
    }
}

/// Bytes of a pool or big block's front guard: the pattern in the last
/// bytes before the block, where they are free.
pub const FRONT_GUARD: usize = 16;

/// Writes the front guard of the pool or big block starting at `start`.
pub fn write_front_guard(start: usize) {
    write_tail((start - FRONT_GUARD) as *mut u8, FRONT_GUARD);
}

/// Writes the tail of the pool or big block of `size` bytes at `p`, which
/// has `room` more bytes after them.
pub fn write_page_tail(p: usize, size: usize, room: usize) {
    let end = p + size;
    write_tail(end as *mut u8, room_in_page(end, room));
}

/// Reports a write into the front guard of the pool or big block at `p`
/// (when `guarded`: it has one now) or past its `size` bytes (`room` more
/// after them), the check its free and realloc make, and aborts.
pub fn check_page_guards(p: usize, size: usize, room: usize, guarded: bool) {
    if guarded && tail_damage((p - FRONT_GUARD) as *mut u8, FRONT_GUARD).is_some() {
        diag::heap_underflow(p);
    }
    let end = p + size;
    if let Some((written, at_least)) = tail_damage(end as *mut u8, room_in_page(end, room)) {
        diag::heap_overflow(p, size, written, at_least);
    }
}

/// Of `room` bytes at `end`, those a tail may take without touching a page
/// the block itself does not: the rest of `end`'s page (none when `end`
/// starts a page). The pool and big tiers' tails keep to it, so that they
/// make no page resident that the program would not.
fn room_in_page(end: usize, room: usize) -> usize {
    let used = end % PAGE;
    if used == 0 {
        0
    } else {
        room.min(PAGE - used)
    }
}

/// Where the words covering `n` tail bytes (8 <= n <= TAIL_CHECKED) start:
/// always two, overlapping when n is short, so that writing and checking
/// take no branch on the block's size (they would mispredict on every
/// other call of a program of mixed sizes).
fn word_offsets(n: usize) -> [usize; 2] {
    [0, n - 8]
}

/// None if the tail `write_tail(end, room)` wrote is intact, else the bytes
/// up to the last one changed, and whether that is the last byte checked
/// (so more may have been written).
pub fn tail_damage(end: *mut u8, room: usize) -> Option<(usize, bool)> {
    let n = if valgrind::active() { 0 } else { room.min(TAIL_CHECKED) };
    let v = pattern_at(end as usize);
    if n < 8 {
        // SAFETY: as for write_tail.
        let intact = (0..n).all(|i| unsafe { *end.add(i) } == (v >> (i * 8)) as u8);
        return if intact { None } else { Some(damage(end, n, v)) };
    }
    let mut changed = 0;
    for off in word_offsets(n) {
        // SAFETY: as for write_tail; off + 8 <= n.
        let word = unsafe { end.add(off).cast::<usize>().read_unaligned() };
        changed |= word ^ v.rotate_right(((off & 7) * 8) as u32);
    }
    if changed == 0 {
        return None;
    }
    Some(damage(end, n, v))
}

/// The bytes of the `n`-byte tail at `end` (pattern `v` from there) up to
/// the last one changed, and whether that is the last one.
#[cold]
fn damage(end: *mut u8, n: usize, v: usize) -> (usize, bool) {
    // SAFETY: as for write_tail.
    let last = (0..n).rev().find(|&i| unsafe { *end.add(i) } != (v.rotate_right((i & 7) as u32 * 8)) as u8);
    let upto = last.map_or(0, |l| l + 1);
    (upto, upto == n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_block_reads_back_and_every_change_around_it_shows() {
        let mut raw = [0u64; 40];
        let user = raw.as_mut_ptr().cast::<u8>().wrapping_add(32);
        let h = Head { size: 40, offset: 32 };
        stamp(user, h, 100);
        assert_eq!(head(user), Some(h));
        assert_eq!(overflow(user, 40, 100), None);
        // SAFETY: every byte touched is inside `raw`.
        unsafe {
            *user.add(40) = 0;
            assert_eq!(overflow(user, 40, 100), Some((1, false)));
            *user.add(40 + 15) ^= 0xff;
            assert_eq!(overflow(user, 40, 100), Some((16, true)));
            *user.sub(1) ^= 1;
        }
        assert_eq!(head(user), None, "an underflow of one byte breaks the seal");
        stamp(user, h, 100);
        // The same head bytes before another address are no head.
        let words = user.cast::<u64>();
        // SAFETY: words -2..2 of user are inside `raw`.
        unsafe {
            *words = *words.sub(2);
            *words.add(1) = *words.sub(1);
        }
        assert_eq!(head(user.wrapping_add(16)), None);
    }

    #[test]
    fn raw_requests_leave_room_for_head_tail_and_alignment() {
        assert_eq!(raw_request(0, 0), Some((HEAD + TAIL_MIN, HEAD)));
        assert_eq!(raw_request(100, 64), Some((100 + 64 + TAIL_MIN, 64)));
        assert_eq!(raw_request(usize::MAX - 4, 0), None);
        assert_eq!(raw_request(isize::MAX as usize, 0), None);
    }
}
