#![allow(clippy::unwrap_used)]
//! A scan never misses a key that lives through the whole scan, while other keys are being
//! inserted and deleted concurrently between (and during) its calls.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use respite_storage::*;

#[test]
fn scan_never_misses_a_stable_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 4,
        ..Config::default()
    };
    let e = Arc::new(Engine::open(dir.path(), cfg).unwrap());
    for i in 0..2000u32 {
        e.set(
            0,
            format!("stable{i}").as_bytes(),
            b"s",
            SetOptions::default(),
        )
        .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (e, stop) = (e.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("churn{}", i % 3000);
                if i.is_multiple_of(3) {
                    e.delete(0, k.as_bytes()).unwrap();
                } else {
                    e.set(0, k.as_bytes(), b"c", SetOptions::default()).unwrap();
                }
                i += 1;
            }
            i
        })
    };
    for round in 0..5 {
        let mut cursor = 0;
        let mut seen = HashSet::new();
        let mut calls = 0;
        loop {
            let (c, keys) = e.scan(0, cursor, Some(b"stable*"), 50).unwrap();
            calls += 1;
            // Churn between calls, on this thread too.
            for j in 0..20 {
                let k = format!("mid{round}-{calls}-{j}");
                e.set(0, k.as_bytes(), b"m", SetOptions::default()).unwrap();
                if j % 2 == 0 {
                    e.delete(0, k.as_bytes()).unwrap();
                }
            }
            seen.extend(keys);
            if c == 0 {
                break;
            }
            cursor = c;
        }
        assert!(calls > 10, "scan finished too quickly to test anything");
        for i in 0..2000u32 {
            let k = format!("stable{i}");
            assert!(
                seen.contains(k.as_bytes()),
                "round {round}: scan missed {k}"
            );
        }
        assert_eq!(seen.len(), 2000, "pattern let other keys through");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(churn.join().unwrap() > 0);
}
