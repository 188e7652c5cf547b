//! Model-based test: random sequences of hak_ calls checked against a shadow
//! model of the live blocks (contents, usable size, alignment, and no overlap
//! between any two live blocks). This test binary also runs on hakmem as its
//! own malloc: the rlib it links exports malloc and free.

use std::collections::BTreeMap;

use hakmem::api::hak::{hak_aligned_alloc, hak_calloc, hak_free, hak_malloc, hak_realloc, hak_usable_size};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Malloc(usize),
    Calloc(usize, usize),
    Aligned(u32, usize),
    Realloc(usize, usize),
    Free(usize),
}

/// Sizes across the tiers, weighted towards small.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..=256,
        3 => 257usize..=32 * 1024,
        1 => 32 * 1024 + 1..=3usize << 20,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => size().prop_map(Op::Malloc),
        1 => (1usize..=64, 0usize..=512).prop_map(|(n, s)| Op::Calloc(n, s)),
        1 => (3u32..=16, size()).prop_map(|(a, s)| Op::Aligned(a, s)),
        2 => (any::<usize>(), size()).prop_map(|(i, s)| Op::Realloc(i, s)),
        3 => any::<usize>().prop_map(Op::Free),
    ]
}

struct Live {
    size: usize,
    seed: u8,
}

struct Model {
    /// Live blocks by address.
    blocks: BTreeMap<usize, Live>,
    next_seed: u8,
}

impl Model {
    fn fill(&mut self, p: *mut u8, size: usize) -> u8 {
        self.next_seed = self.next_seed.wrapping_add(37);
        let seed = self.next_seed;
        for i in 0..size {
            // SAFETY: p has at least `size` usable bytes.
            unsafe { *p.add(i) = seed.wrapping_add(i as u8) };
        }
        seed
    }

    fn intact(p: usize, live: &Live, upto: usize) -> bool {
        // SAFETY: p is live with at least live.size bytes; upto <= live.size.
        (0..upto.min(live.size)).all(|i| unsafe { *(p as *const u8).add(i) } == live.seed.wrapping_add(i as u8))
    }

    /// Records a new block after checking it against every live one.
    fn add(&mut self, p: *mut u8, size: usize, align: usize) -> Result<(), TestCaseError> {
        prop_assert!(!p.is_null(), "allocation of {} returned NULL", size);
        let a = p as usize;
        prop_assert_eq!(a % align, 0, "block {:#x} not aligned to {}", a, align);
        let usable = hak_usable_size(p as *const _);
        prop_assert!(usable >= size, "usable {} < {}", usable, size);
        let end = a + size.max(1);
        if let Some((&b, live)) = self.blocks.range(..end).next_back() {
            prop_assert!(b + live.size.max(1) <= a || b >= end, "{:#x}+{} overlaps {:#x}+{}", a, size, b, live.size);
        }
        let seed = self.fill(p, size);
        self.blocks.insert(a, Live { size, seed });
        Ok(())
    }

    fn pick(&self, i: usize) -> Option<usize> {
        if self.blocks.is_empty() {
            return None;
        }
        self.blocks.keys().nth(i % self.blocks.len()).copied()
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut m = Model { blocks: BTreeMap::new(), next_seed: 0 };
    for op in ops {
        match op {
            Op::Malloc(s) => m.add(hak_malloc(s) as *mut u8, s, if s >= 16 { 16 } else { 8 })?,
            Op::Calloc(n, s) => {
                let p = hak_calloc(n, s) as *mut u8;
                prop_assert!(!p.is_null());
                // SAFETY: p has n * s bytes.
                prop_assert!((0..n * s).all(|i| unsafe { *p.add(i) } == 0), "calloc memory not zero");
                m.add(p, n * s, 8)?;
            }
            Op::Aligned(shift, s) => {
                let align = 1usize << shift;
                m.add(hak_aligned_alloc(align, s) as *mut u8, s, align)?;
            }
            Op::Realloc(i, s) => {
                let Some(a) = m.pick(i) else { continue };
                let live = m.blocks.remove(&a).unwrap();
                prop_assert!(Model::intact(a, &live, live.size), "block {:#x} corrupted before realloc", a);
                let q = hak_realloc(a as *mut _, s) as *mut u8;
                if s == 0 {
                    prop_assert!(q.is_null(), "realloc to 0 frees and returns NULL");
                    continue;
                }
                let kept = Live { size: live.size.min(s), seed: live.seed };
                prop_assert!(!q.is_null());
                prop_assert!(Model::intact(q as usize, &kept, kept.size), "realloc lost contents");
                m.add(q, s, if s >= 16 { 16 } else { 8 })?;
            }
            Op::Free(i) => {
                let Some(a) = m.pick(i) else { continue };
                let live = m.blocks.remove(&a).unwrap();
                prop_assert!(Model::intact(a, &live, live.size), "block {:#x} corrupted before free", a);
                hak_free(a as *mut _);
            }
        }
    }
    for (&a, live) in &m.blocks {
        prop_assert!(Model::intact(a, live, live.size), "block {:#x} corrupted at the end", a);
        hak_free(a as *mut _);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn hak_api_matches_the_model(ops in proptest::collection::vec(op(), 1..300)) {
        run(ops)?;
    }
}
