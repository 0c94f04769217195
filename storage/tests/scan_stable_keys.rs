#![allow(clippy::unwrap_used)]
//! A scan never misses a key that lives through the whole scan, while other keys are being
//! inserted and deleted concurrently between (and during) its calls; and an update never
//! moves a key within the scan order. On a VarTree and on a ConstTree on either backend.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::engine_with_const_db1;
use respite_storage::*;

/// The trees under test, as (database, backend of a ConstTree database 1) pairs: database 0
/// is a VarTree.
const TREES: [(usize, BackendKind); 3] = [
    (0, BackendKind::Bitcask),
    (1, BackendKind::Bitcask),
    (1, BackendKind::Fixed),
];

#[test]
fn scan_never_misses_a_stable_key() {
    for (db, backend) in TREES {
        never_misses(db, backend);
    }
}

/// Values are one byte, so database 1 is a ConstTree of 1-byte values.
fn never_misses(db: usize, backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(engine_with_const_db1(dir.path(), 1, backend));
    for i in 0..2000u32 {
        e.set(
            db,
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
                    e.delete(db, k.as_bytes()).unwrap();
                } else {
                    e.set(db, k.as_bytes(), b"c", SetOptions::default())
                        .unwrap();
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
            let (c, keys) = e.scan(db, cursor, Some(b"stable*"), 50).unwrap();
            calls += 1;
            // Churn between calls, on this thread too.
            for j in 0..20 {
                let k = format!("mid{round}-{calls}-{j}");
                e.set(db, k.as_bytes(), b"m", SetOptions::default())
                    .unwrap();
                if j % 2 == 0 {
                    e.delete(db, k.as_bytes()).unwrap();
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
                "db {db} {backend:?} round {round}: scan missed {k}"
            );
        }
        assert_eq!(seen.len(), 2000, "pattern let other keys through");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(churn.join().unwrap() > 0);
}

/// A key keeps its place in the scan order when it is overwritten, given or stripped of an
/// expiry: a scan that rewrites every key between its calls returns each exactly once
/// (a key whose update moved it would come back a second time, or be skipped).
#[test]
fn updates_keep_a_keys_place_in_a_scan() {
    for (db, backend) in TREES {
        updates_keep_their_place(db, backend);
    }
}

/// Values are 8 bytes, so database 1 is a ConstTree of 8-byte values.
fn updates_keep_their_place(db: usize, backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with_const_db1(dir.path(), 8, backend);
    let key = |i: u32| format!("key{i}").into_bytes();
    for i in 0..1000 {
        e.set(db, &key(i), b"first---", SetOptions::default())
            .unwrap();
    }
    let far = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000;
    let mut cursor = 0;
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for call in 0u64.. {
        let (c, keys) = e.scan(db, cursor, None, 40).unwrap();
        seen.extend(keys.iter().map(|k| k.to_vec()));
        for i in 0..1000 {
            let value = format!("v{:07}", call * 1000 + u64::from(i));
            let expiry = if (i + call as u32).is_multiple_of(3) {
                Expiry::At(far)
            } else {
                Expiry::KeepTtl
            };
            let opts = SetOptions {
                expiry,
                ..SetOptions::default()
            };
            e.set(db, &key(i), value.as_bytes(), opts).unwrap();
            if i % 7 == 0 {
                e.set_expiry(db, &key(i), None).unwrap();
            }
        }
        if c == 0 {
            break;
        }
        assert!(call < 1000, "the scan never ended");
        cursor = c;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "a key came back twice");
    assert_eq!(seen.len(), 1000, "a key was skipped");
}
