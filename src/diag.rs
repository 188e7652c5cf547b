//! Messages to stderr without allocating: hakmem formats into stack buffers
//! and writes them with one write(2).

/// A fixed stack buffer that text and numbers are appended to.
pub struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    pub const fn new() -> Self {
        Line { buf: [0; 512], len: 0 }
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        self
    }

    pub fn dec(&mut self, mut n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        // SAFETY: the digits are ASCII.
        self.str(unsafe { core::str::from_utf8_unchecked(&digits[i..]) })
    }

    /// `0x` and lowercase hex without leading zeros, as printf's %p prints.
    pub fn hex(&mut self, n: usize) -> &mut Self {
        let mut digits = [0u8; 16];
        let mut i = digits.len();
        let mut v = n;
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[v & 15];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.str("0x");
        // SAFETY: the digits are ASCII.
        self.str(unsafe { core::str::from_utf8_unchecked(&digits[i..]) })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Writes the line, with a newline, to `fd`; false if the write failed.
    pub fn write_to(&mut self, fd: i32) -> bool {
        self.str("\n");
        let mut done = 0;
        while done < self.len {
            // SAFETY: the range lies inside `buf`.
            let n = unsafe {
                libc::write(fd, self.buf.as_ptr().add(done) as *const libc::c_void, self.len - done)
            };
            if n <= 0 {
                return false;
            }
            done += n as usize;
        }
        true
    }
}

/// Reports a pointer hakmem did not hand out and aborts, as glibc does:
/// `hakmem: free(): invalid pointer 0x…`.
#[cold]
#[inline(never)]
pub fn invalid_pointer(func: &str, ptr: usize) -> ! {
    Line::new().str("hakmem: ").str(func).str("(): invalid pointer ").hex(ptr).write_to(2);
    abort()
}

/// Reports a write into a free block (hardened mode) and aborts; `found`
/// says when it was found: `hakmem: write after free at 0x… (block 0x…,
/// found when malloc was to hand it out)`.
#[cold]
#[inline(never)]
pub fn write_after_free(at: usize, block: usize, found: &str) -> ! {
    Line::new()
        .str("hakmem: write after free at ")
        .hex(at)
        .str(" (block ")
        .hex(block)
        .str(", found when ")
        .str(found)
        .str(")")
        .write_to(2);
    abort()
}

/// Reports a block freed twice (found by hardened mode) and aborts.
#[cold]
#[inline(never)]
pub fn double_free(func: &str, ptr: usize) -> ! {
    Line::new().str("hakmem: ").str(func).str("(): double free ").hex(ptr).write_to(2);
    abort()
}

/// Reports bytes written past the end of a block (hardened mode's tail,
/// checked by free, realloc and malloc_usable_size) and aborts:
/// `hakmem: heap overflow past 0x… (block of 48 bytes, 1 byte written past
/// the end)`. `at_least`: the damage reaches the end of the checked tail.
#[cold]
#[inline(never)]
pub fn heap_overflow(block: usize, size: usize, written: usize, at_least: bool) -> ! {
    let mut l = Line::new();
    l.str("hakmem: heap overflow past ").hex(block).str(" (block of ").dec(size as u64).str(" bytes, ");
    if at_least {
        l.str("at least ");
    }
    l.dec(written as u64).str(if written == 1 { " byte" } else { " bytes" }).str(" written past the end)").write_to(2);
    abort()
}

/// Reports a block whose head (hardened mode: the 16 bytes before it) was
/// overwritten, by a write before its start, and aborts.
#[cold]
#[inline(never)]
pub fn heap_underflow(block: usize) -> ! {
    Line::new()
        .str("hakmem: heap underflow before ")
        .hex(block)
        .str(" (the 16 bytes before the block were overwritten)")
        .write_to(2);
    abort()
}

/// Reports a fault the fault handler of hardened mode recognised, and
/// aborts: `hakmem: <what> at 0x… (<why>)`, e.g. `hakmem: heap overflow at
/// 0x… (the guard page past the end of a block)`.
#[cold]
#[inline(never)]
pub fn fault(what: &str, at: usize, why: &str) -> ! {
    Line::new().str("hakmem: ").str(what).str(" at ").hex(at).str(" (").str(why).str(")").write_to(2);
    abort()
}

/// Reports an access at `at` to the malloc(0) block `block` (hardened
/// mode), from the fault handler, and aborts.
#[cold]
#[inline(never)]
pub fn zero_size_access(at: usize, block: usize) -> ! {
    Line::new()
        .str("hakmem: access to a malloc(0) block at ")
        .hex(at)
        .str(" (block ")
        .hex(block)
        .str(", which has no bytes)")
        .write_to(2);
    abort()
}

/// Reports a free-list link that does not point at a free block of its slab
/// (memory written after it was freed) and aborts.
#[cold]
#[inline(never)]
pub fn corrupted_free_list(block: usize) -> ! {
    Line::new()
        .str("hakmem: corrupted free list at ")
        .hex(block)
        .str(" (a block was written after it was freed)")
        .write_to(2);
    abort()
}

/// Reports an internal failure that leaves no safe way on, and aborts.
#[cold]
#[inline(never)]
pub fn fatal(what: &str) -> ! {
    Line::new().str("hakmem: fatal: ").str(what).write_to(2);
    abort()
}

fn abort() -> ! {
    // SAFETY: abort has no preconditions and does not return.
    unsafe { libc::abort() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_printf() {
        let mut l = Line::new();
        l.str("a=").dec(0).str(" b=").dec(18446744073709551615).str(" p=").hex(0x7ffd_1234_abcd);
        assert_eq!(l.as_bytes(), b"a=0 b=18446744073709551615 p=0x7ffd1234abcd");
        let mut z = Line::new();
        z.hex(0);
        assert_eq!(z.as_bytes(), b"0x0");
    }

    #[test]
    fn long_lines_are_cut_not_overflowed() {
        let mut l = Line::new();
        for _ in 0..100 {
            l.str("0123456789");
        }
        assert_eq!(l.as_bytes().len(), 512);
    }
}
