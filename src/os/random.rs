//! The per-process key. Free-list links and hardened mode's free marks are
//! encoded with it, so memory written after free cannot forge them. It is
//! chosen once, at process set-up, before any slab exists, from the
//! sixteen random bytes the kernel gives every process (AT_RANDOM).

use core::sync::atomic::{AtomicUsize, Ordering};

static SECRET: AtomicUsize = AtomicUsize::new(0);

/// The per-process key (0 before `choose_secret`).
#[inline]
pub fn secret() -> usize {
    SECRET.load(Ordering::Relaxed)
}

/// Chooses the key: AT_RANDOM folded into one odd word, or the address of
/// a local if the kernel gave none.
pub fn choose_secret() {
    // SAFETY: getauxval has no preconditions; AT_RANDOM, when present, points
    // at 16 readable bytes for the life of the process.
    let bytes = unsafe { libc::getauxval(libc::AT_RANDOM) } as *const [usize; 2];
    let here = &bytes as *const _ as usize;
    let key = if bytes.is_null() {
        here.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15
    } else {
        // SAFETY: as above.
        let [a, b] = unsafe { bytes.read_unaligned() };
        a ^ b.rotate_left(32)
    };
    SECRET.store(key | 1, Ordering::Relaxed);
}
