//! hakmem as a Rust program's global allocator: every Box, Vec, String and
//! HashMap below, in every thread, comes from hakmem.
//!
//!     cargo run --release --example global_alloc

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static GLOBAL: hakmem::HakMem = hakmem::HakMem;

fn main() {
    let (tx, rx) = mpsc::channel::<Vec<String>>();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut words = HashMap::new();
                for i in 0..20_000u32 {
                    *words.entry(format!("w{}", (i * 7919 + t) % 5000)).or_insert(0u32) += 1;
                }
                let total: u32 = words.values().sum();
                assert_eq!(total, 20_000);
                // Sent to another thread, which frees it.
                tx.send(words.into_keys().collect()).unwrap();
            })
        })
        .collect();
    drop(tx);
    let mut keys = 0;
    for batch in rx {
        keys += batch.len();
    }
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(keys, 4 * 5000);

    // Proof the blocks are hakmem's: hak_usable_size reports (and aborts on)
    // any pointer hakmem did not hand out.
    let boxed = Box::new([0u8; 100]);
    let usable = hakmem::api::hak::hak_usable_size(boxed.as_ptr() as *const _);
    assert!(usable >= 100);
    // The live numbers: the Box's slab is in use, so hakmem holds memory.
    let stats = hakmem::stats();
    assert!(stats.active > 0 && stats.resident <= stats.mapped, "{stats:?}");
    println!(
        "global_alloc: ok: {keys} keys from 4 threads; a 100-byte Box has {usable} usable bytes in hakmem {}; {} bytes active, {} mapped",
        hakmem::VERSION,
        stats.active,
        stats.mapped
    );
}
