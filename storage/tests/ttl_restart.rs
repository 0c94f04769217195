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
