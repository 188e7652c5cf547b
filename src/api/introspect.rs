//! glibc's introspection calls, so that tools and programs that use them
//! keep working under hakmem: mallinfo2/mallinfo, malloc_stats, malloc_info
//! and malloc_trim.
//!
//! What the numbers mean here (hakmem has one "arena"): `arena` is the bytes
//! of SuperSlabs mapped; `hblks`/`hblkhd` the big mappings held (live blocks
//! and BigCache entries); `uordblks` the bytes of slab units that hold slabs
//! plus the big mappings in use; `fordblks` the rest of the SuperSlabs plus
//! BigCache. The first three are exact; the last two count whole slabs, not
//! blocks (a slab with one live block counts as in use), since counting
//! blocks would cost the fast paths.

use core::ffi::c_void;

use crate::diag::Line;
use crate::large::{big, bigcache, pool};
use crate::slab::registry;

/// glibc's `struct mallinfo2`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct MallInfo2 {
    pub arena: usize,
    pub ordblks: usize,
    pub smblks: usize,
    pub hblks: usize,
    pub hblkhd: usize,
    pub usmblks: usize,
    pub fsmblks: usize,
    pub uordblks: usize,
    pub fordblks: usize,
    pub keepcost: usize,
}

/// glibc's old `struct mallinfo` (int fields, saturated).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct MallInfo {
    pub arena: i32,
    pub ordblks: i32,
    pub smblks: i32,
    pub hblks: i32,
    pub hblkhd: i32,
    pub usmblks: i32,
    pub fsmblks: i32,
    pub uordblks: i32,
    pub fordblks: i32,
    pub keepcost: i32,
}

pub fn mallinfo2() -> MallInfo2 {
    let small = registry::footprint() + pool::footprint();
    let big = big::footprint();
    MallInfo2 {
        arena: small.mapped,
        ordblks: 1,
        hblks: big::mappings(),
        hblkhd: big.mapped,
        uordblks: small.in_use + big.in_use,
        fordblks: small.mapped.saturating_sub(small.in_use) + big.dirty,
        ..MallInfo2::default()
    }
}

pub fn mallinfo() -> MallInfo {
    let i = mallinfo2();
    let c = |v: usize| v.min(i32::MAX as usize) as i32;
    MallInfo {
        arena: c(i.arena),
        ordblks: c(i.ordblks),
        smblks: c(i.smblks),
        hblks: c(i.hblks),
        hblkhd: c(i.hblkhd),
        usmblks: c(i.usmblks),
        fsmblks: c(i.fsmblks),
        uordblks: c(i.uordblks),
        fordblks: c(i.fordblks),
        keepcost: c(i.keepcost),
    }
}

/// malloc_stats(3): glibc's shape, on stderr.
pub fn malloc_stats() {
    let i = mallinfo2();
    let system = i.arena + i.hblkhd;
    let in_use = i.uordblks;
    let row = |label: &str, v: usize| {
        Line::new().str(label).dec(v as u64).write_to(2);
    };
    Line::new().str("Arena 0:").write_to(2);
    row("system bytes     = ", i.arena);
    row("in use bytes     = ", in_use.saturating_sub(i.hblkhd.saturating_sub(bigcache::cached_bytes())));
    Line::new().str("Total (incl. mmap):").write_to(2);
    row("system bytes     = ", system);
    row("in use bytes     = ", in_use);
    row("max mmap regions = ", i.hblks);
    row("max mmap bytes   = ", i.hblkhd);
}

/// malloc_info(3): XML in glibc's shape; `options` must be 0.
///
/// # Safety
/// `fp` is a valid `FILE *` open for writing.
pub unsafe fn malloc_info(options: i32, fp: *mut libc::FILE) -> i32 {
    if options != 0 || fp.is_null() {
        errno::set_errno(errno::Errno(libc::EINVAL));
        return -1;
    }
    let i = mallinfo2();
    let system = (i.arena + i.hblkhd) as u64;
    let out = |line: &mut Line| {
        line.str("\n");
        let b = line.as_bytes();
        libc::fwrite(b.as_ptr() as *const c_void, 1, b.len(), fp) == b.len()
    };
    let mut ok = out(Line::new().str("<malloc version=\"1\">"));
    ok &= out(Line::new().str("<heap nr=\"0\">"));
    ok &= out(Line::new().str("<sizes>"));
    ok &= out(Line::new().str("</sizes>"));
    ok &= out(Line::new().str("<total type=\"fast\" count=\"0\" size=\"0\"/>"));
    ok &= out(Line::new().str("<total type=\"rest\" count=\"1\" size=\"").dec(i.fordblks as u64).str("\"/>"));
    ok &= out(Line::new().str("<system type=\"current\" size=\"").dec(i.arena as u64).str("\"/>"));
    ok &= out(Line::new().str("<system type=\"max\" size=\"").dec(i.arena as u64).str("\"/>"));
    ok &= out(Line::new().str("<aspace type=\"total\" size=\"").dec(i.arena as u64).str("\"/>"));
    ok &= out(Line::new().str("<aspace type=\"mprotect\" size=\"").dec(i.arena as u64).str("\"/>"));
    ok &= out(Line::new().str("</heap>"));
    ok &= out(Line::new().str("<total type=\"fast\" count=\"0\" size=\"0\"/>"));
    ok &= out(Line::new().str("<total type=\"rest\" count=\"1\" size=\"").dec(i.fordblks as u64).str("\"/>"));
    ok &= out(
        Line::new()
            .str("<total type=\"mmap\" count=\"")
            .dec(i.hblks as u64)
            .str("\" size=\"")
            .dec(i.hblkhd as u64)
            .str("\"/>"),
    );
    ok &= out(Line::new().str("<system type=\"current\" size=\"").dec(system).str("\"/>"));
    ok &= out(Line::new().str("<system type=\"max\" size=\"").dec(system).str("\"/>"));
    ok &= out(Line::new().str("<aspace type=\"total\" size=\"").dec(system).str("\"/>"));
    ok &= out(Line::new().str("<aspace type=\"mprotect\" size=\"").dec(system).str("\"/>"));
    ok &= out(Line::new().str("</malloc>"));
    if ok {
        0
    } else {
        -1
    }
}

/// malloc_trim(3): 1 if memory was given back, else 0. The pad is ignored:
/// hakmem keeps nothing at the top of a heap.
pub fn malloc_trim(_pad: usize) -> i32 {
    crate::purge::trim() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mallinfo2_sees_a_big_block() {
        let p = crate::alloc::malloc(5 << 20);
        assert!(!p.is_null());
        let i = mallinfo2();
        assert!(i.hblks >= 1 && i.hblkhd >= 5 << 20);
        assert!(i.uordblks >= 5 << 20);
        crate::alloc::free(p, "test");
    }
}
