#![allow(clippy::unwrap_used)]
//! TTLs are stored in the records: they survive a restart (graceful or crash after a sync),
//! expired keys read as absent at once, and the background sweep removes them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use respite_storage::*;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn ttl_survives_restart_and_expired_keys_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 2,
        ..Config::default()
    };
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    let far = now_ms() + 3_600_000;
    let soon = now_ms() + 300;
    let at = |t| SetOptions {
        expiry: Expiry::At(t),
        ..SetOptions::default()
    };
    e.set(0, b"far", b"1", at(far)).unwrap();
    e.set(0, b"big-far", &[3u8; 500], at(far)).unwrap();
    for i in 0..50u32 {
        e.set(1, format!("soon{i}").as_bytes(), b"x", at(soon))
            .unwrap();
    }
    e.set(0, b"plain", b"p", SetOptions::default()).unwrap();
    e.close().unwrap();

    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    assert_eq!(e.expiry(0, b"far").unwrap(), Some(Some(far)));
    assert_eq!(
        e.get_with_expiry(0, b"big-far").unwrap().unwrap().1,
        Some(far)
    );
    assert_eq!(e.expiry(0, b"plain").unwrap(), Some(None));
    assert_eq!(e.stats().dbs[1].expires, 50);
    // Crash after a sync: the TTL is in the durable record too.
    e.set_expiry(0, b"plain", Some(far + 1)).unwrap();
    e.sync_all().unwrap();
    drop(e);
    let e = Engine::open(dir.path(), cfg).unwrap();
    assert_eq!(e.expiry(0, b"plain").unwrap(), Some(Some(far + 1)));

    // Past their time the keys read as absent at once, then the sweep deletes them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while now_ms() <= soon {
        std::thread::yield_now();
    }
    assert_eq!(e.get(1, b"soon3").unwrap(), None);
    assert!(!e.exists(1, b"soon4").unwrap());
    let (_, keys) = e.scan(1, 0, None, 1000).unwrap();
    assert!(keys.is_empty());
    // The sweep counts a key as expired just after deleting it: wait for both, or a reading
    // between the two sees the key gone but not yet counted.
    while e.len(1) > 0 || e.stats().expired_keys < 50 {
        assert!(
            Instant::now() < deadline,
            "sweep did not remove and count the expired keys: {} left, {} counted",
            e.len(1),
            e.stats().expired_keys
        );
        std::thread::park_timeout(Duration::from_millis(20));
    }
    assert_eq!(e.stats().expired_keys, 50);
    assert_eq!(e.get(0, b"far").unwrap().unwrap(), &b"1"[..]);
    e.close().unwrap();
}

/// A read of a key: true when it found the key.
type Read = fn(&Engine, &[u8]) -> bool;

/// Each read that deletes an expired key it finds, with the key it reads (in database 0).
fn reads() -> [(&'static [u8], Read); 5] {
    [
        (b"by-get", |e, k| e.get(0, k).unwrap().is_some()),
        (b"by-exists", |e, k| e.exists(0, k).unwrap()),
        (b"by-expiry", |e, k| e.expiry(0, k).unwrap().is_some()),
        (b"by-len", |e, k| e.value_len(0, k).unwrap().is_some()),
        (b"by-get-expiry", |e, k| {
            e.get_with_expiry(0, k).unwrap().is_some()
        }),
    ]
}

/// Writes `live` (no expiry) and, already expired, each key of `reads()` and of `unread`
/// into database 0; then reads each `reads()` key once: every read finds its key absent and
/// deletes it at once (the key count drops by one each time). `live` and `unread` are left.
fn expire_and_read_each(e: &Engine, unread: &[&[u8]], label: &str) {
    let past = SetOptions {
        expiry: Expiry::At(1),
        ..SetOptions::default()
    };
    let reads = reads();
    e.set(0, b"live", b"v", SetOptions::default()).unwrap();
    for key in reads.iter().map(|(k, _)| *k).chain(unread.iter().copied()) {
        e.set(0, key, b"v", past).unwrap();
    }
    // Expired but not yet read: counted, as Redis's DBSIZE counts them.
    let written = (1 + reads.len() + unread.len()) as u64;
    assert_eq!(e.len(0), written, "{label}");
    for (n, (key, read)) in reads.iter().enumerate() {
        assert!(!read(e, key), "{label}: {key:?} reads as present");
        assert_eq!(
            e.len(0),
            written - 1 - n as u64,
            "{label}: after reading {key:?}"
        );
    }
}

/// With "live", and "by-scan" and "not-matched" expired, in database 0: a scan that skips
/// expired keys (KEYS) leaves them out and deletes none, so the key count still has them
/// (Redis 7.0's KEYS); SCAN deletes the expired keys its pattern matches, not the others.
fn keys_skip_and_scan_deletes(e: &Engine, label: &str) {
    let (cursor, keys) = e.scan_with(0, 0, None, 1000, Expired::Skip).unwrap();
    assert_eq!(
        (cursor, keys),
        (0, vec![Bytes::from_static(b"live")]),
        "{label}"
    );
    assert_eq!(e.len(0), 3, "{label}: a skipping scan deleted");
    let (cursor, keys) = e.scan(0, 0, Some(b"by-*"), 1000).unwrap();
    assert_eq!((cursor, keys.len()), (0, 0), "{label}");
    assert_eq!(
        e.len(0),
        2,
        "{label}: SCAN did not delete the one it matched"
    );
}

/// A read that finds an expired key deletes it then and there, as Redis deletes on access:
/// the key count drops at once, not at the next sweep, and the deletion survives a restart.
#[test]
fn reading_an_expired_key_deletes_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // No background sweep: only reads may delete, so the counts below are exact.
    let cfg = Config {
        shards: 2,
        active_expire: false,
        ..Config::default()
    };
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    expire_and_read_each(&e, &[b"by-scan", b"not-matched"], "var");
    keys_skip_and_scan_deletes(&e, "var");
    e.close().unwrap();
    // The deletions were written: after a restart only the live key and the expired one
    // nothing read are there (and reading that one deletes it too).
    let e = Engine::open(dir.path(), cfg).unwrap();
    assert_eq!(e.len(0), 2);
    assert!(!e.exists(0, b"not-matched").unwrap());
    assert_eq!(e.len(0), 1);
    assert_eq!(e.get(0, b"live").unwrap().as_deref(), Some(&b"v"[..]));
    e.close().unwrap();
}

#[test]
fn reading_an_expired_const_key_deletes_it_at_once() {
    for backend in [BackendKind::Bitcask, BackendKind::Fixed] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            shards: 2,
            active_expire: false,
            trees: vec![(
                0,
                TreeConfig::Const {
                    value_size: 1,
                    backend,
                },
            )],
            ..Config::default()
        };
        let e = Engine::open(dir.path(), cfg.clone()).unwrap();
        let label = format!("{backend:?}");
        expire_and_read_each(&e, &[b"by-scan", b"not-matched"], &label);
        keys_skip_and_scan_deletes(&e, &label);
        e.close().unwrap();
        // The deletions were written: after a restart the live key and the expired one
        // nothing read.
        let e = Engine::open(dir.path(), cfg).unwrap();
        assert_eq!(e.len(0), 2, "{backend:?}");
        assert!(!e.exists(0, b"not-matched").unwrap());
        assert_eq!(e.len(0), 1, "{backend:?}");
        assert_eq!(e.get(0, b"live").unwrap().as_deref(), Some(&b"v"[..]));
        e.close().unwrap();
    }
}

/// The sweep examines 64 nodes of a shard per step and resumes where it stopped: expired keys
/// behind 200 live ones (one shard, in insertion order) are still found and deleted, in a
/// VarTree and in a ConstTree on either backend. A sweep that began at the front each step
/// would only ever see live keys.
#[test]
fn the_sweep_resumes_past_live_keys() {
    let trees = [None, Some(BackendKind::Bitcask), Some(BackendKind::Fixed)];
    for backend in trees {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            shards: 1,
            trees: backend
                .map(|backend| {
                    vec![(
                        0,
                        TreeConfig::Const {
                            value_size: 1,
                            backend,
                        },
                    )]
                })
                .unwrap_or_default(),
            ..Config::default()
        };
        let e = Engine::open(dir.path(), cfg).unwrap();
        for i in 0..200u32 {
            e.set(
                0,
                format!("live{i}").as_bytes(),
                b"v",
                SetOptions::default(),
            )
            .unwrap();
        }
        let past = SetOptions {
            expiry: Expiry::At(1),
            ..SetOptions::default()
        };
        for i in 0..100u32 {
            e.set(0, format!("dead{i}").as_bytes(), b"v", past).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while e.len(0) > 200 || e.stats().expired_keys < 100 {
            assert!(
                Instant::now() < deadline,
                "{backend:?}: the sweep left {} of the expired keys",
                e.len(0) - 200
            );
            std::thread::park_timeout(Duration::from_millis(20));
        }
        assert_eq!(e.stats().expired_keys, 100, "{backend:?}");
        assert_eq!(e.get(0, b"live199").unwrap().as_deref(), Some(&b"v"[..]));
        e.close().unwrap();
    }
}
