//! Where every allocation call goes. The fast paths (a cache hit in malloc,
//! room in the cache in free) are inlined into the exported functions; every
//! miss goes on to `miss.rs`, or in hardened mode to `hardened.rs`, which
//! wraps each block in canaries.

mod hardened;
mod miss;

use core::ptr;

use crate::config;
use crate::diag;
use crate::large;
use crate::os::pagemap;
use crate::prof;
use crate::size_class::{
    aligned_class_of, class_of, BIN_STRIDE, BIN_WORDS_PER_CLASS, MAX_SMALL, SMALL_BIN_WORD, SMALL_LIMIT,
};
use crate::slab::superslab;
use crate::thread::cache::Bin;
use crate::thread::heap::Heap;
use crate::thread::tls;
use crate::valgrind;

pub use miss::or_enomem;
use miss::{block_usable, free_not_slab, free_slab_block, large_alloc, large_block, load_settings, slab_block};

/// malloc: null, with errno ENOMEM, means no memory. The misses set errno
/// themselves so that the exported malloc is the fast path plus tail calls.
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    if size <= SMALL_LIMIT {
        // SAFETY: the table has an entry for every size up to SMALL_LIMIT.
        let word = unsafe { *SMALL_BIN_WORD.get_unchecked(size) };
        return malloc_bin(tls::heap(), word as usize, size);
    }
    malloc_above_small_limit(size)
}

/// Pops from `heap`'s bin at `word` 8-byte words (a class times
/// BIN_WORDS_PER_CLASS) for a request of `size` bytes.
#[inline(always)]
fn malloc_bin(heap: *mut Heap, word: usize, size: usize) -> *mut u8 {
    // SAFETY: word is the bin offset of a class < NUM_CLASSES, so it lands on
    // a bin of the TLS heap: this thread's own, or the sentinel whose bins
    // are empty so pop does not write.
    let bin = unsafe { &mut *heap.cast::<u64>().add(word).cast::<Bin>() };
    match bin.pop() {
        Some(p) => p,
        None => malloc_miss(word / BIN_WORDS_PER_CLASS, size),
    }
}

#[inline(always)]
fn malloc_class(c: usize, size: usize) -> *mut u8 {
    malloc_bin(tls::heap(), c * BIN_WORDS_PER_CLASS, size)
}

/// Sizes above the table: out of line, so small sizes pay no jump for them.
#[inline(never)]
fn malloc_above_small_limit(size: usize) -> *mut u8 {
    if size <= MAX_SMALL {
        return malloc_class(class_of(size), size);
    }
    malloc_large(size)
}

#[cold]
#[inline(never)]
fn malloc_large(size: usize) -> *mut u8 {
    load_settings();
    if config::harden() {
        return hardened::malloc(size, 0);
    }
    large_block(size, 0)
}

/// The bin of class `c` was empty for a request of `size` bytes (checked
/// mode's bins are always empty).
#[cold]
#[inline(never)]
fn malloc_miss(c: usize, size: usize) -> *mut u8 {
    load_settings();
    if config::harden() {
        return hardened::malloc(size, 0);
    }
    slab_block(c)
}

/// free of any pointer (null takes the slow way, which ignores it).
/// `who` names the C function for reports.
#[inline(always)]
pub fn free(p: *mut u8, who: &str) {
    let a = p as usize;
    if pagemap::fast_kind(a) == pagemap::SUPERSLAB {
        if let Some(offset) = superslab::block_bin_offset(a) {
            let heap = tls::heap();
            // SAFETY: the bin offset is that of a class < NUM_CLASSES, so it
            // lands on a bin of the TLS heap (this thread's own, or the
            // sentinel whose bins have no room so push does not write).
            let bin = unsafe { &mut *(heap as *mut u8).add(offset).cast::<Bin>() };
            if !bin.has_room() {
                return free_small_miss(p, offset / BIN_STRIDE);
            }
            if bin.newest() == p || bin.second_newest() == p {
                diag::double_free(who, a);
            }
            bin.push(p);
            return;
        }
    }
    free_other(p, who)
}

/// A slab block the bin had no room for (checked mode's bins have none).
/// In hardened mode no block malloc handed out starts a slab block (each
/// lies past its head), so `p` is not one.
#[cold]
#[inline(never)]
fn free_small_miss(p: *mut u8, c: usize) {
    if config::harden() {
        return hardened::free(p, "free");
    }
    free_slab_block(p, c)
}

/// free of anything that is not the start of a slab block.
#[cold]
#[inline(never)]
fn free_other(p: *mut u8, who: &str) {
    if miss::answer_knock(p) {
        return free(p, who);
    }
    if config::harden() {
        return hardened::free(p, who);
    }
    free_not_slab(p, who)
}

/// Usable size of a live block; reports and aborts if `p` is not one.
pub fn usable_size(p: *const u8, who: &str) -> usize {
    if config::harden() {
        return hardened::usable(p as *mut u8, who);
    }
    block_usable(p, who)
}

/// A block of `size` bytes aligned to `align` (a power of two); null if
/// impossible or out of memory.
pub fn aligned(align: usize, size: usize) -> *mut u8 {
    if align <= 16 {
        // Every class above 8 bytes is a multiple of 16 and every slab
        // starts on a cache line, so malloc's blocks of 16 bytes or more
        // are 16-byte aligned: posix_memalign(16) is malloc.
        return malloc(size.max(align));
    }
    load_settings();
    if config::harden() {
        return hardened::malloc(size, align);
    }
    match aligned_class_of(align, size) {
        Some(c) => malloc_class(c, size),
        None => large_alloc(size, align).0,
    }
}

/// calloc without errno: n * size zeroed bytes; null on overflow or no memory.
pub fn calloc(n: usize, size: usize) -> *mut u8 {
    let Some(total) = n.checked_mul(size) else {
        return ptr::null_mut();
    };
    load_settings();
    if total > MAX_SMALL && !config::harden() {
        let (p, zero) = large_alloc(total, 0);
        if !p.is_null() && !zero {
            // SAFETY: p has at least total bytes.
            unsafe { ptr::write_bytes(p, 0, total) };
        }
        return p;
    }
    let p = malloc(total);
    if !p.is_null() {
        // SAFETY: p has at least total bytes.
        unsafe { ptr::write_bytes(p, 0, total) };
    }
    p
}

/// realloc of a non-null block to a non-zero size; null (old block intact)
/// when out of memory.
pub fn realloc(p: *mut u8, size: usize, who: &str) -> *mut u8 {
    if config::harden() {
        return hardened::realloc(p, size, who);
    }
    let old = block_usable(p, who);
    // Keep the block when it fits and would not waste more than half of it.
    if size <= old && size > old / 2 {
        return p;
    }
    // A big block staying big changes its mapping instead of being copied
    // (but under valgrind, whose memcheck follows a copy, not a remap).
    let kind = pagemap::kind(p as usize);
    if size > MAX_SMALL && large::owns(kind) && !valgrind::active() {
        if let Some(q) = large::resize(p as usize, kind, size) {
            if config::prof() {
                prof::freed(p);
                prof::allocated(q, size);
            }
            return q;
        }
    }
    let q = malloc(size);
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks have at least min(old, size) bytes and are distinct.
    unsafe { ptr::copy_nonoverlapping(p, q, old.min(size)) };
    free(p, who);
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn fill(p: *mut u8, n: usize, seed: u8) {
        // SAFETY: p has n usable bytes.
        unsafe { ptr::write_bytes(p, seed, n) };
    }

    fn check(p: *const u8, n: usize, seed: u8) -> bool {
        // SAFETY: p has n readable bytes.
        (0..n).all(|i| unsafe { *p.add(i) } == seed)
    }

    #[test]
    fn blocks_are_distinct_sized_and_reused_across_tiers() {
        let sizes = [0usize, 1, 8, 16, 17, 100, 1024, 4000, 32768, 40000, 1 << 20, 5 << 20];
        let mut live = Vec::new();
        let mut seen = HashSet::new();
        for round in 0..50u8 {
            for &s in &sizes {
                let p = malloc(s);
                assert!(!p.is_null());
                assert!(usable_size(p, "test") >= s);
                assert!(seen.insert(p as usize) || round > 0);
                fill(p, s, round);
                live.push((p, s, round));
            }
        }
        for &(p, s, seed) in &live {
            assert!(check(p, s, seed), "block of {s} bytes overwritten");
        }
        for &(p, _, _) in &live {
            free(p, "test");
        }
    }

    #[test]
    fn aligned_blocks_are_aligned_for_every_tier() {
        for shift in 3..=22 {
            let align = 1usize << shift;
            for size in [1usize, 24, 4096, 40000, 3 << 20] {
                let p = aligned(align, size);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "align {align} size {size}");
                assert!(usable_size(p, "test") >= size);
                fill(p, size, 0xab);
                free(p, "test");
            }
        }
    }

    #[test]
    fn realloc_keeps_contents_both_ways() {
        let mut p = malloc(1);
        fill(p, 1, 7);
        let mut n = 1;
        for next in [100usize, 5000, 40000, 3 << 20, 20 << 20, 64, 5] {
            p = realloc(p, next, "test");
            assert!(check(p, n.min(next), 7));
            fill(p, next, 7);
            n = next;
        }
        free(p, "test");
    }

    #[test]
    fn blocks_freed_by_other_threads_come_back() {
        let blocks: Vec<usize> = (0..20000).map(|i| malloc(16 + i % 500) as usize).collect();
        // Joined through pthread_join (not a scope, whose join returns
        // before the threads' exit destructors have flushed their caches).
        let handles: Vec<_> = blocks
            .chunks(5000)
            .map(|part| {
                let part = part.to_vec();
                std::thread::spawn(move || part.iter().for_each(|&p| free(p as *mut u8, "test")))
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        // The freeing threads exited and sent the blocks back (to this
        // thread's inbox, as their slabs were full): allocating as much
        // again reuses that memory. A slab that came back empty may have
        // gone back to the registry and be carved again for another class,
        // so what is reused is the 64 KiB units, not each address.
        let again: Vec<usize> = (0..20000).map(|i| malloc(16 + i % 500) as usize).collect();
        let old: HashSet<usize> = blocks.iter().map(|&p| p >> 16).collect();
        let reused = again.iter().filter(|&&p| old.contains(&(p >> 16))).count();
        assert!(reused >= 18000, "only {reused} of 20000 blocks in the units of the freed ones");
        again.iter().for_each(|&p| free(p as *mut u8, "test"));
    }

    #[test]
    fn slabs_of_exited_threads_are_adopted() {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                std::thread::spawn(move || {
                    (0..3000).map(|i| {
                        let p = malloc(48);
                        fill(p, 48, (t * 31 + i) as u8);
                        (p as usize, (t * 31 + i) as u8)
                    })
                    .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (p, seed) in h.join().unwrap() {
                assert!(check(p as *const u8, 48, seed));
                free(p as *mut u8, "test");
            }
        }
    }

    #[test]
    fn calloc_zeroes_recycled_memory() {
        for size in [24usize, 3000, 40000, 2 << 20] {
            let p = malloc(size);
            fill(p, size, 0xff);
            free(p, "test");
            let q = calloc(1, size);
            assert!(check(q, size, 0));
            free(q, "test");
        }
        assert!(calloc(usize::MAX / 2, 3).is_null());
    }

    #[test]
    fn impossible_sizes_fail() {
        assert!(malloc(usize::MAX).is_null());
        assert!(malloc(isize::MAX as usize + 1).is_null());
        assert!(aligned(1 << 40, 16).is_null());
    }
}
