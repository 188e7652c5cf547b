//! hakmem: a fast, lean malloc replacement for x86-64 Linux.
//!
//! The layers, top to bottom; each imports only from those below it
//! (docs/ARCHITECTURE.md draws them and walks a pointer through):
//! - `api`, `global`: the C ABI shell (standard exports, `hak_` API) and the
//!   Rust `GlobalAlloc`;
//! - `alloc`, `init`, `report`: where each call goes (the inlined fast paths
//!   and the misses), process and thread set-up, and the numbers users read;
//! - `purge`: when free memory goes back to the kernel, for every tier (the
//!   background purge thread, malloc_trim);
//! - `thread`: the front end — per-thread heap, cache bins, TLS, lifecycle,
//!   checked mode;
//! - `slab`, `large`, `bootstrap`, `foreign`: the back ends — slabs,
//!   SuperSlabs and the registry; the pool tier and big blocks with
//!   BigCache; blocks for hakmem's own set-up; glibc's blocks, given back
//!   to glibc;
//! - leaves: `os` (every system call, the page map, the process key),
//!   `size_class`, `sync` (the lock, due times), `config`, `stats`, `diag`,
//!   `canary` (hardened mode's block heads and tails), `valgrind` (client
//!   requests), `prof` (sampled heap profiles).
//!
//! Nothing reachable from malloc allocates through Rust or libc: the crate
//! is `no_std` outside its unit tests, so Rust has no heap to call here.

#![cfg_attr(not(test), no_std)]

pub mod alloc;
pub mod api;
pub mod bootstrap;
pub mod canary;
pub mod config;
pub mod diag;
pub mod foreign;
pub mod global;
pub mod init;
pub mod large;
pub mod os;
pub mod prof;
pub mod purge;
pub mod report;
pub mod size_class;
pub mod slab {
    pub mod free_bits;
    pub mod free_mark;
    pub mod registry;
    pub mod slab;
    pub mod superslab;
}
pub mod stats;
pub mod sync;
pub mod valgrind;
pub mod thread {
    pub mod cache;
    pub mod checked;
    pub mod heap;
    pub mod lifecycle;
    pub mod tls;
}

pub use global::HakMem;
pub use report::{stats, Counted, Stats};
pub use stats::{class as class_stats, ClassCounts};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
const VERSION_C: &core::ffi::CStr = match core::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(s) => s,
    Err(_) => panic!("version has a NUL"),
};
