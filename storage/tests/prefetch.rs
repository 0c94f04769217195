#![allow(clippy::unwrap_used)]
//! `Engine::prefetch` is only a hint: whatever keys and database it is given (more keys than
//! it looks at, missing or deleted keys, a ConstTree, a database that does not exist), and
//! while writers grow and shrink the tables under it, every read answers as without it.

mod common;

use common::engine_with_const_db1;
use respite_storage::*;

const KEYS: usize = 300;

fn engine(dir: &std::path::Path) -> Engine {
    engine_with_const_db1(dir, 8, BackendKind::Bitcask)
}

fn key(i: usize) -> Vec<u8> {
    format!("key:{i}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    format!("{i:08}").into_bytes()
}

fn prefetch_all(e: &Engine, db: usize) {
    let keys: Vec<Vec<u8>> = (0..KEYS + 50).map(key).collect();
    e.prefetch(db, keys.iter().map(|k| &k[..]));
    for chunk in keys.chunks(16) {
        e.prefetch(db, chunk.iter().map(|k| &k[..]));
    }
}

#[test]
fn reads_answer_the_same_after_any_prefetch() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    for db in [0, 1] {
        for i in 0..KEYS {
            e.set(db, &key(i), &value(i), SetOptions::default())
                .unwrap();
        }
        for i in (0..KEYS).step_by(3) {
            assert!(e.delete(db, &key(i)).unwrap().0);
        }
    }
    for db in [0, 1, 2, 3, 99] {
        prefetch_all(&e, db);
    }
    e.prefetch(0, std::iter::empty());
    for db in [0, 1] {
        for i in 0..KEYS + 50 {
            let want = (i < KEYS && i % 3 != 0).then(|| value(i));
            assert_eq!(e.get(db, &key(i)).unwrap().as_deref(), want.as_deref());
        }
    }
    assert_eq!(e.get(2, &key(1)).unwrap(), None);
}

#[test]
fn prefetch_races_writers_that_rebuild_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let rounds = 20;
    std::thread::scope(|s| {
        let e = &e;
        s.spawn(move || {
            for _ in 0..rounds {
                for db in [0, 1] {
                    for i in 0..KEYS {
                        e.set(db, &key(i), &value(i), SetOptions::default())
                            .unwrap();
                    }
                    e.flush(Some(db)).unwrap();
                }
            }
        });
        s.spawn(move || {
            for _ in 0..rounds * 10 {
                prefetch_all(e, 0);
                prefetch_all(e, 1);
            }
        });
    });
    for db in [0, 1] {
        e.set(db, &key(7), &value(7), SetOptions::default())
            .unwrap();
        prefetch_all(&e, db);
        assert_eq!(e.get(db, &key(7)).unwrap().unwrap(), &value(7)[..]);
        assert_eq!(e.len(db), 1);
    }
}

/// MSET prefetches the first 32 keys' lookups before it takes its locks: with more pairs
/// than that, repeated keys (the later pair wins) and keys new and old, the result is
/// MSET's; MSETNX still refuses when any key exists.
#[test]
fn mset_of_more_keys_than_a_prefetch_covers() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    for i in (0..100).step_by(2) {
        e.set(0, &key(i), b"old", SetOptions::default()).unwrap();
    }
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..100).map(|i| (key(i), value(i))).collect();
    pairs.push((key(40), b"last".to_vec()));
    let refs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    assert!(e.mset(0, &refs, false).unwrap().0);
    for i in 0..100 {
        let want = if i == 40 { b"last".to_vec() } else { value(i) };
        assert_eq!(
            e.get(0, &key(i)).unwrap().as_deref(),
            Some(&want[..]),
            "key {i}"
        );
    }
    let fresh: Vec<(Vec<u8>, Vec<u8>)> = (100..150).map(|i| (key(i), value(i))).collect();
    let mut clash: Vec<(&[u8], &[u8])> = fresh.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    clash.push((b"key:99", b"x"));
    assert!(!e.mset(0, &clash, true).unwrap().0);
    assert_eq!(e.get(0, &key(120)).unwrap(), None);
    clash.pop();
    assert!(e.mset(0, &clash, true).unwrap().0);
    assert_eq!(
        e.get(0, &key(149)).unwrap().as_deref(),
        Some(&value(149)[..])
    );
}
