//! The clock behind purge delays: coarse monotonic milliseconds, read through
//! the vDSO (no system call, no allocation), fine-grained enough for delays
//! measured in hundreds of milliseconds.

/// Milliseconds since some fixed point in the past.
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer; CLOCK_MONOTONIC_COARSE always exists
    // on Linux, and on failure ts stays zero, which only delays a purge.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::now_ms;

    #[test]
    fn the_clock_moves_forward() {
        let a = now_ms();
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(now_ms() >= a + 20);
    }
}
