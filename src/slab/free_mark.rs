//! Hardened mode's marks in free slab blocks. Every free block, freed or
//! never yet handed out, carries in its second word its address encoded
//! with the process key, and in its next two words (when it has them) a
//! poison word; the first word stays free for the link of a block freed by
//! another thread (remote lists and inboxes).
//! free finds the mark on a block already free (a double free); handing a
//! block out checks that mark and poison are intact (else something wrote
//! to the block after it was freed) and clears the mark.
//!
//! Blocks are at least 16 bytes in hardened mode (`thread/checked.rs`
//! serves the 8-byte class from the 16-byte one). Free pool runs and big
//! blocks waiting in BigCache carry the same mark in every mode
//! (`large/pool_region.rs`, `large/big.rs`).

/// The bytes a mark and its poison cover: blocks of at least this size get
/// two poison words after the mark (bytes 16..32); a 16-byte block has room
/// for the mark alone. Larger free blocks (pool runs, big blocks in
/// BigCache) are marked over these bytes. Poisoning the first 64 bytes cost
/// hardened random mixed 47% more time, these two words 7%
/// (docs/ARCHITECTURE.md).
pub const MARKED_BYTES: usize = 32;

fn word(p: *mut u8, i: usize) -> *mut usize {
    p.cast::<usize>().wrapping_add(i)
}

fn poison(key: usize) -> usize {
    key.rotate_left(32) ^ 0x5a5a_5a5a_5a5a_5a5a
}

/// Whether `p` carries the free mark of `key`.
#[inline]
pub fn is_marked(p: *mut u8, key: usize) -> bool {
    // SAFETY: p is a block of a live slab, at least 16 bytes.
    unsafe { *word(p, 1) == p as usize ^ key }
}

/// Marks and poisons the free block `p` of `size` bytes.
#[inline]
pub fn mark(p: *mut u8, size: usize, key: usize) {
    // SAFETY: p is a free block of `size` bytes (at least 16) that the
    // caller owns; words 2 and 3 are written only when it has 32 bytes.
    unsafe {
        *word(p, 1) = p as usize ^ key;
        if size >= MARKED_BYTES {
            *word(p, 2) = poison(key);
            *word(p, 3) = poison(key);
        }
    }
}

/// For a block about to be handed out: the offset of the first word
/// written since it was marked, if any; then clears the mark.
#[inline]
pub fn check_and_clear(p: *mut u8, size: usize, key: usize) -> Option<usize> {
    let damage = check(p, size, key);
    if damage.is_none() {
        // SAFETY: as in `mark`: the block is the caller's, this word is in it.
        unsafe { *word(p, 1) = 0 };
    }
    damage
}

/// The offset of the first word of the marked block `p` written since it
/// was marked, if any.
#[inline]
pub fn check(p: *mut u8, size: usize, key: usize) -> Option<usize> {
    let v = poison(key);
    // SAFETY: as in `mark`: the block is the caller's, these words are in it.
    let intact = unsafe {
        is_marked(p, key) && (size < MARKED_BYTES || (*word(p, 2) == v && *word(p, 3) == v))
    };
    if intact {
        None
    } else {
        Some(damaged_word(p, key) * 8)
    }
}

#[cold]
fn damaged_word(p: *mut u8, key: usize) -> usize {
    let v = poison(key);
    if !is_marked(p, key) {
        return 1;
    }
    // SAFETY: only reached for a block of 32+ bytes whose mark is intact.
    if unsafe { *word(p, 2) } != v {
        2
    } else {
        3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_to_a_marked_block_is_found_where_it_was_made() {
        let key = 0x1234_5678_9abc_def1;
        for (size, at) in [(16usize, 8usize), (48, 8), (48, 24), (256, 16), (256, 24)] {
            let mut block = [0u64; 32];
            let p = block.as_mut_ptr().cast::<u8>();
            mark(p, size, key);
            assert!(is_marked(p, key));
            let mut copy = block;
            assert_eq!(check_and_clear(copy.as_mut_ptr().cast(), size, key), Some(8), "another address");
            // SAFETY: at < size <= 256 bytes of the block.
            unsafe { *p.add(at) ^= 1 };
            assert_eq!(check_and_clear(p, size, key), Some(at), "size {size}");
            mark(p, size, key);
            // SAFETY: byte 0 is the link word, byte 32 past what is checked.
            unsafe { *p ^= 1; *p.add(32) ^= 1 };
            assert_eq!(check_and_clear(p, size, key), None);
            assert!(!is_marked(p, key));
        }
    }
}
