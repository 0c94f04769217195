#![allow(clippy::unwrap_used)]
//! Compaction under concurrent writes and deletes: no deleted key comes back after compaction
//! plus a restart (graceful or crash after a sync), and live keys keep their newest value.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use respite_storage::*;

fn cfg() -> Config {
    Config {
        shards: 2,
        write_buffer_bytes: 4096,
        max_file_bytes: 16 * 1024,
        compaction_dead_ratio: 0.2,
        inline_value_max: 32,
        ..Config::default()
    }
}

fn run(crash: bool) {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(Engine::open(dir.path(), cfg()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let compactor = {
        let (e, stop) = (e.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || n < 3 {
                e.compact_now().unwrap();
                n += 1;
            }
        })
    };
    let mut writers = Vec::new();
    for t in 0..2u64 {
        let e = e.clone();
        writers.push(std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(t);
            let mut log = Vec::new();
            for i in 0..4000u32 {
                // Each writer owns its keys, so its own log is the truth for them.
                let key = format!("w{t}-k{}", rng.random_range(0..50));
                if rng.random_range(0..3) == 0 {
                    e.delete(0, key.as_bytes()).unwrap();
                    log.push((key, None));
                } else {
                    let v = format!("{i}-").repeat(rng.random_range(1..40));
                    e.set(0, key.as_bytes(), v.as_bytes(), SetOptions::default())
                        .unwrap();
                    log.push((key, Some(v.into_bytes())));
                }
            }
            log
        }));
    }
    let mut want: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    for w in writers {
        for (k, v) in w.join().unwrap() {
            want.insert(k, v);
        }
    }
    stop.store(true, Ordering::Relaxed);
    compactor.join().unwrap();
    e.compact_now().unwrap();
    let stats = e.stats();
    assert!(stats.compactions > 0, "nothing was compacted: {stats:?}");
    let deleted = want.values().filter(|v| v.is_none()).count();
    assert!(deleted > 10);
    let check = |e: &Engine| {
        for (k, v) in &want {
            let got = e.get(0, k.as_bytes()).unwrap().map(|b| b.to_vec());
            assert_eq!(&got, v, "key {k}");
        }
    };
    check(&e);
    let e = Arc::into_inner(e).unwrap();
    if crash {
        e.sync_all().unwrap();
        drop(e);
    } else {
        e.close().unwrap();
    }
    let e = Engine::open(dir.path(), cfg()).unwrap();
    check(&e);
    // Compact again after the restart and restart once more.
    e.compact_now().unwrap();
    e.close().unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    check(&e);
    e.close().unwrap();
}

#[test]
fn compaction_then_graceful_restart() {
    run(false);
}

#[test]
fn compaction_then_crash_after_sync() {
    run(true);
}

/// The hazard itself: a tombstone in a mostly dead file must survive compaction while the
/// older copy of its key still sits in a mostly live (so uncompacted) file.
#[test]
fn tombstone_outlives_older_copy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 1,
        max_file_bytes: 8 * 1024,
        compaction_dead_ratio: 0.5,
        ..Config::default()
    };
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    e.set(0, b"victim", &[1u8; 100], SetOptions::default())
        .unwrap();
    for i in 0..100u32 {
        // Stable keys keep the victim's file mostly live.
        e.set(
            0,
            format!("stable{i}").as_bytes(),
            &[2u8; 100],
            SetOptions::default(),
        )
        .unwrap();
    }
    for i in 0..100u32 {
        e.set(
            0,
            b"churn",
            &i.to_le_bytes().repeat(25),
            SetOptions::default(),
        )
        .unwrap();
    }
    e.delete(0, b"victim").unwrap();
    for i in 0..400u32 {
        // Churn makes the tombstone's files mostly dead.
        e.set(
            0,
            b"churn",
            &i.to_le_bytes().repeat(25),
            SetOptions::default(),
        )
        .unwrap();
    }
    e.compact_now().unwrap();
    assert!(e.stats().compactions > 0);
    assert_eq!(e.get(0, b"victim").unwrap(), None);
    e.close().unwrap();
    let e = Engine::open(dir.path(), cfg).unwrap();
    assert_eq!(e.get(0, b"victim").unwrap(), None, "deleted key came back");
    assert_eq!(e.get(0, b"stable7").unwrap().unwrap(), &[2u8; 100][..]);
    e.close().unwrap();
}
