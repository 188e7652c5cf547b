//! Configuration: every HAKMEM_* environment variable, read once at
//! initialisation. A malformed value prints one warning naming the variable
//! and the default used, and never stops the program.
//!
//! | variable        | default | effect                                   |
//! |-----------------|---------|------------------------------------------|
//! | HAKMEM_STATS    | 0       | 1: print statistics to stderr at exit    |
//! | HAKMEM_VERBOSE  | 0       | 1: say on stderr when hakmem starts      |

use crate::diag::Line;
use core::sync::atomic::{AtomicBool, Ordering};

static STATS: AtomicBool = AtomicBool::new(false);
static VERBOSE: AtomicBool = AtomicBool::new(false);

#[inline]
pub fn stats() -> bool {
    STATS.load(Ordering::Relaxed)
}

#[inline]
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// Reads the environment. getenv allocates nothing, so this is safe from
/// inside the first malloc.
pub fn load() {
    STATS.store(flag(c"HAKMEM_STATS", "HAKMEM_STATS"), Ordering::Relaxed);
    VERBOSE.store(flag(c"HAKMEM_VERBOSE", "HAKMEM_VERBOSE"), Ordering::Relaxed);
}

fn flag(key: &core::ffi::CStr, name: &str) -> bool {
    // SAFETY: key is NUL-terminated; getenv returns null or a C string that
    // stays valid while nobody calls setenv, which is all we need here.
    let value = unsafe { libc::getenv(key.as_ptr()) };
    if value.is_null() {
        return false;
    }
    // SAFETY: non-null getenv results are NUL-terminated.
    let bytes = unsafe { core::ffi::CStr::from_ptr(value) }.to_bytes();
    match parse_flag(bytes) {
        Some(v) => v,
        None => {
            Line::new().str("hakmem: warning: ").str(name).str(" must be 0 or 1; using 0").write_to(2);
            false
        }
    }
}

fn parse_flag(bytes: &[u8]) -> Option<bool> {
    match bytes {
        b"1" | b"yes" | b"true" | b"on" => Some(true),
        b"0" | b"no" | b"false" | b"off" | b"" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_flag;

    #[test]
    fn flags_parse_or_are_rejected() {
        assert_eq!(parse_flag(b"1"), Some(true));
        assert_eq!(parse_flag(b"off"), Some(false));
        assert_eq!(parse_flag(b"2"), None);
        assert_eq!(parse_flag(b"maybe"), None);
    }
}
