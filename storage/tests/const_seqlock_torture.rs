#![allow(clippy::unwrap_used)]
//! SeqLock torture (hazard 6): a writer flips one ConstTree key between two distinct whole
//! patterns as fast as it can while readers on other threads read it; every read must be one
//! of the two patterns, never a mix of both. Bounded: the writer does a fixed number of
//! flips, readers stop when it is done (or after a fixed number of reads).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use respite_storage::*;

fn run(backend: BackendKind, size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 2,
        databases: 2,
        sync_mode: SyncMode::No,
        trees: vec![(
            1,
            TreeConfig::Const {
                value_size: size,
                backend,
            },
        )],
        ..Config::default()
    };
    let e = Arc::new(Engine::open(dir.path(), cfg).unwrap());
    // Patterns that differ in every word, with a per-word index so a shifted or mixed read
    // cannot match either.
    let a: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(3)).collect();
    let b: Vec<u8> = a.iter().map(|x| !x).collect();
    e.set(1, b"k", &a, SetOptions::default()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (e, done, a, b) = (e.clone(), done.clone(), a.clone(), b.clone());
            std::thread::spawn(move || {
                let (mut seen_a, mut seen_b) = (0u64, 0u64);
                for _ in 0..5_000_000u64 {
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    let v = e.get(1, b"k").unwrap().unwrap();
                    if v[..] == a[..] {
                        seen_a += 1;
                    } else if v[..] == b[..] {
                        seen_b += 1;
                    } else {
                        panic!("torn read: {:?}", &v[..]);
                    }
                }
                (seen_a, seen_b)
            })
        })
        .collect();
    let flips = match backend {
        BackendKind::Bitcask => 200_000,
        BackendKind::Fixed => 50_000,
    };
    for i in 0..flips {
        let v = if i % 2 == 0 { &b } else { &a };
        e.set(1, b"k", v, SetOptions::default()).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let mut total = 0;
    for r in readers {
        let (x, y) = r.join().unwrap();
        total += x + y;
    }
    assert!(total > 0);
}

#[test]
fn seqlock_reads_are_whole_on_bitcask() {
    // 25 words: kept inline in the node.
    run(BackendKind::Bitcask, 200);
}

#[test]
fn seqlock_reads_are_whole_on_fixed() {
    // 38 words: a boxed slice beside the node.
    run(BackendKind::Fixed, 300);
}
