#![allow(clippy::unwrap_used)]
//! Several threads writing, deleting and reading overlapping keys: every read returns a value
//! some write produced (never a torn or stale-garbage one), and the final state is the write
//! with the highest GSN per key, before and after a restart.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use respite_storage::*;

const THREADS: usize = 4;
const OPS: usize = 3000;
const KEYS: usize = 32;

fn value(t: usize, i: usize) -> Vec<u8> {
    // Lengths around the inline limit and across 4 KiB blocks.
    let len = [5, 40, 64, 65, 300, 5000][(t + i) % 6];
    let tag = format!("t{t}-i{i}-");
    tag.bytes().cycle().take(len.max(tag.len())).collect()
}

#[test]
fn concurrent_writers_and_readers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 4,
        write_buffer_bytes: 8192,
        max_file_bytes: 256 * 1024,
        cache_capacity_bytes: 1 << 20,
        compaction_dead_ratio: 0.3,
        ..Config::default()
    };
    let e = Arc::new(Engine::open(dir.path(), cfg.clone()).unwrap());
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let e = e.clone();
        handles.push(std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(t as u64);
            // (key, gsn, Some(value) or None for a delete)
            let mut writes: Vec<(usize, u64, Option<Vec<u8>>)> = Vec::new();
            let mut reads: Vec<Vec<u8>> = Vec::new();
            for i in 0..OPS {
                let k = rng.random_range(0..KEYS);
                let key = format!("key{k}");
                match rng.random_range(0..10) {
                    0..=3 => {
                        let v = value(t, i);
                        let o = e.set(0, key.as_bytes(), &v, SetOptions::default()).unwrap();
                        writes.push((k, o.gsn, Some(v)));
                    }
                    4 => {
                        let (_, gsn) = e.delete(0, key.as_bytes()).unwrap();
                        if gsn != 0 {
                            writes.push((k, gsn, None));
                        }
                    }
                    _ => {
                        if let Some(v) = e.get(0, key.as_bytes()).unwrap() {
                            reads.push(v.to_vec());
                        }
                    }
                }
            }
            (writes, reads)
        }));
    }
    // Compaction running alongside the writers and readers, until they are done.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let compactor = {
        let (e, stop) = (e.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                e.compact_now().unwrap();
                std::thread::yield_now();
            }
        })
    };
    let mut all_writes = Vec::new();
    let mut all_reads = Vec::new();
    for h in handles {
        let (w, r) = h.join().unwrap();
        all_writes.extend(w);
        all_reads.extend(r);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    compactor.join().unwrap();
    assert!(
        e.stats().compactions > 0,
        "no compaction ran during the test"
    );
    let produced: HashSet<&Vec<u8>> = all_writes
        .iter()
        .filter_map(|(_, _, v)| v.as_ref())
        .collect();
    assert!(!all_reads.is_empty());
    for r in &all_reads {
        assert!(
            produced.contains(r),
            "read a value no write produced: {:?}",
            &r[..r.len().min(40)]
        );
    }
    let mut last: HashMap<usize, (u64, Option<Vec<u8>>)> = HashMap::new();
    for (k, gsn, v) in all_writes {
        let e = last.entry(k).or_insert((0, None));
        assert_ne!(e.0, gsn, "GSN handed out twice");
        if gsn > e.0 {
            *e = (gsn, v);
        }
    }
    let check = |e: &Engine| {
        for k in 0..KEYS {
            let want = last.get(&k).and_then(|(_, v)| v.clone());
            let got = e
                .get(0, format!("key{k}").as_bytes())
                .unwrap()
                .map(|b| b.to_vec());
            assert_eq!(got, want, "key{k}");
        }
    };
    check(&e);
    let e = Arc::into_inner(e).unwrap();
    e.close().unwrap();
    let e = Engine::open(dir.path(), cfg).unwrap();
    check(&e);
    e.close().unwrap();
}
