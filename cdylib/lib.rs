//! libhakmem.so. The allocator is the `hakmem` crate (`no_std`, so that a
//! Rust program can link it next to std as its global allocator); its C
//! exports come along from there. A `no_std` shared library needs one thing
//! more, a panic handler, which only this crate may have. hakmem has no
//! panicking path; should one be reached, it reports and aborts.
#![no_std]

extern crate allocator;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    allocator::diag::fatal("internal error (panic)")
}
