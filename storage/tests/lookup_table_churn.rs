#![allow(clippy::unwrap_used)]
//! Readers never lose a key while the lookup table under them grows, fills with tombstones
//! and is rebuilt: two reader threads check a set of stable keys (and their values) without
//! pause while a writer inserts and deletes many other keys in the same shards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use respite_storage::*;

#[test]
fn stable_keys_stay_visible_through_table_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 2,
        sync_mode: SyncMode::No,
        ..Config::default()
    };
    let e = Arc::new(Engine::open(dir.path(), cfg).unwrap());
    let value = |i: u32| format!("stable-value-{i}").into_bytes();
    for i in 0..200u32 {
        e.set(
            0,
            format!("stable{i}").as_bytes(),
            &value(i),
            SetOptions::default(),
        )
        .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (e, stop, checks) = (e.clone(), stop.clone(), checks.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let k = i % 200;
                    let got = e.get(0, format!("stable{k}").as_bytes()).unwrap();
                    assert_eq!(got.as_deref(), Some(&value(k)[..]), "stable{k} lost");
                    i += 1;
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Grow to tens of thousands of keys (several table doublings), then delete them all
    // (tombstones, rebuilds), twice.
    for round in 0..2u32 {
        for i in 0..20_000u32 {
            e.set(
                0,
                format!("churn{round}-{i}").as_bytes(),
                b"x",
                SetOptions::default(),
            )
            .unwrap();
        }
        for i in 0..20_000u32 {
            assert!(
                e.delete(0, format!("churn{round}-{i}").as_bytes())
                    .unwrap()
                    .0
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(checks.load(Ordering::Relaxed) > 0);
    assert_eq!(e.len(0), 200);
    for i in 0..200u32 {
        assert_eq!(
            e.get(0, format!("stable{i}").as_bytes()).unwrap().unwrap(),
            &value(i)[..]
        );
    }
}
