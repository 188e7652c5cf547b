//! hakmem: a fast, lean malloc replacement for x86-64 Linux.
//!
//! The layers, top to bottom (docs/ARCHITECTURE.md walks a pointer through):
//! - `api`: the C ABI shell (standard exports, `hak_` API);
//! - `alloc`: where each call goes — the inlined fast paths and the misses;
//! - `thread`: the front end — per-thread heap, cache bins, TLS, lifecycle;
//! - `slab`: size classes, slabs, SuperSlabs and the global registry;
//! - `large`: the pool tier (page runs) and big blocks in their own
//!   mappings, with BigCache;
//! - `purge`: when free memory goes back to the kernel, for every tier (and
//!   the background purge thread, malloc_trim);
//! - `os`: mappings and the page map; plus `bootstrap`, `init`, `config`,
//!   `stats`, `diag`, `sync` and `global` (`HakMem`, the Rust `GlobalAlloc`).
//!
//! Nothing reachable from malloc allocates through Rust or libc.

#![cfg_attr(not(test), no_std)]

pub mod alloc;
pub mod api;
pub mod bootstrap;
pub mod config;
pub mod diag;
pub mod global;
pub mod init;
pub mod large;
pub mod os;
pub mod purge;
pub mod size_class;
pub mod slab {
    pub mod registry;
    pub mod slab;
    pub mod superslab;
}
pub mod stats;
pub mod sync;
pub mod thread {
    pub mod cache;
    pub mod checked;
    pub mod heap;
    pub mod lifecycle;
    pub mod tls;
}

pub use global::HakMem;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
const VERSION_C: &core::ffi::CStr = match core::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(s) => s,
    Err(_) => panic!("version has a NUL"),
};
