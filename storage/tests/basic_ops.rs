#![allow(clippy::unwrap_used)]
//! The contract's operations, one by one, across a graceful close and reopen.

use respite_storage::*;

fn cfg() -> Config {
    Config {
        shards: 4,
        write_buffer_bytes: 4096,
        ..Config::default()
    }
}

#[test]
fn operations_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    assert_eq!(e.databases(), 16);
    let big = vec![b'x'; 10_000];
    let o = e.set(0, b"a", b"1", SetOptions::default()).unwrap();
    assert!(o.written && o.gsn > 0);
    e.set(0, b"big", &big, SetOptions::default()).unwrap();
    assert_eq!(e.get(0, b"big").unwrap().unwrap(), &big[..]);
    assert_eq!(e.value_len(0, b"big").unwrap(), Some(10_000));
    let nx = SetOptions {
        condition: SetCondition::IfAbsent,
        ..SetOptions::default()
    };
    assert!(!e.set(0, b"a", b"2", nx).unwrap().written);
    let xx = SetOptions {
        condition: SetCondition::IfPresent,
        return_old: true,
        ..SetOptions::default()
    };
    let o = e.set(0, b"a", b"3", xx).unwrap();
    assert_eq!(o.old.unwrap(), &b"1"[..]);
    assert!(!e.set(0, b"zz", b"3", xx).unwrap().written);
    assert_eq!(e.get(0, b"a").unwrap().unwrap(), &b"3"[..]);
    assert_eq!(e.get(1, b"a").unwrap(), None);
    assert_eq!(e.len(0), 2);

    // expiry
    let far = 4_000_000_000_000u64;
    assert!(e.set_expiry(0, b"a", Some(far)).unwrap().0);
    assert_eq!(e.expiry(0, b"a").unwrap(), Some(Some(far)));
    assert!(!e.set_expiry(0, b"nope", Some(far)).unwrap().0);
    let past = SetOptions {
        expiry: Expiry::At(1),
        ..SetOptions::default()
    };
    e.set(0, b"gone", b"v", past).unwrap();
    assert_eq!(e.get(0, b"gone").unwrap(), None);
    assert!(!e.exists(0, b"gone").unwrap());

    // update (INCR-like)
    let (r, g) = e
        .update(0, b"n", |cur| {
            assert!(cur.is_none());
            (
                Update::Set {
                    value: Bytes::from_static(b"10"),
                    expiry: Expiry::KeepTtl,
                },
                7,
            )
        })
        .unwrap();
    assert_eq!(r, 7);
    assert!(g > 0);
    // rename / copy / move / mset
    assert_eq!(
        e.rename(0, b"n", b"m", false).unwrap().0,
        RenameOutcome::Renamed
    );
    assert_eq!(
        e.rename(0, b"n", b"m", false).unwrap().0,
        RenameOutcome::NoSuchKey
    );
    assert_eq!(
        e.rename(0, b"m", b"a", true).unwrap().0,
        RenameOutcome::TargetExists
    );
    assert!(e.copy(0, b"m", 2, b"m2", false).unwrap().0);
    assert!(!e.copy(0, b"m", 2, b"m2", false).unwrap().0);
    assert!(e.move_key(0, b"m", 3).unwrap().0);
    assert_eq!(e.get(3, b"m").unwrap().unwrap(), &b"10"[..]);
    assert!(
        e.mset(5, &[(b"k1", b"v1"), (b"k2", b"v2")], false)
            .unwrap()
            .0
    );
    assert!(
        !e.mset(5, &[(b"k3", b"v3"), (b"k2", b"v2")], true)
            .unwrap()
            .0
    );
    assert_eq!(e.get(5, b"k3").unwrap(), None);
    assert!(e.delete(5, b"k1").unwrap().0);
    assert!(!e.delete(5, b"k1").unwrap().0);
    assert!(e.random_key(5).unwrap().is_some());
    assert!(e.random_key(6).unwrap().is_none());
    e.set(6, b"x", b"y", SetOptions::default()).unwrap();
    e.flush(Some(6)).unwrap();
    assert_eq!(e.get(6, b"x").unwrap(), None);
    assert_eq!(e.len(6), 0);
    let last = e.last_gsn();
    e.close().unwrap();

    let e = Engine::open(dir.path(), cfg()).unwrap();
    assert!(e.last_gsn() >= last);
    assert_eq!(e.get(0, b"a").unwrap().unwrap(), &b"3"[..]);
    assert_eq!(
        e.expiry(0, b"a").unwrap(),
        Some(Some(far)),
        "TTL survives restart"
    );
    assert_eq!(e.get(0, b"big").unwrap().unwrap(), &big[..]);
    assert_eq!(e.get(0, b"n").unwrap(), None);
    assert_eq!(e.get(2, b"m2").unwrap().unwrap(), &b"10"[..]);
    assert_eq!(e.get(3, b"m").unwrap().unwrap(), &b"10"[..]);
    assert_eq!(e.get(0, b"m").unwrap(), None);
    assert_eq!(e.get(5, b"k1").unwrap(), None);
    assert_eq!(e.get(5, b"k2").unwrap().unwrap(), &b"v2"[..]);
    assert_eq!(e.get(6, b"x").unwrap(), None);
    e.flush(None).unwrap();
    assert_eq!(e.len(0), 0);
    e.close().unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    assert_eq!(e.get(5, b"k2").unwrap(), None);
    assert_eq!((0..16).map(|d| e.len(d)).sum::<u64>(), 0);
    e.close().unwrap();
}

#[test]
fn scan_returns_every_key_once_without_writes() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    for i in 0..1000u32 {
        e.set(0, format!("k{i}").as_bytes(), b"v", SetOptions::default())
            .unwrap();
    }
    let mut cursor = 0;
    let mut seen = std::collections::BTreeSet::new();
    let mut calls = 0;
    loop {
        let (c, keys) = e.scan(0, cursor, Some(b"k1*"), 37).unwrap();
        calls += 1;
        for k in keys {
            assert!(seen.insert(k), "key returned twice without writes");
        }
        if c == 0 {
            break;
        }
        cursor = c;
    }
    assert!(calls > 10);
    let want: std::collections::BTreeSet<_> = (0..1000u32)
        .map(|i| format!("k{i}"))
        .filter(|k| k.starts_with("k1"))
        .map(|k| Bytes::from(k.into_bytes()))
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn second_engine_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    match Engine::open(dir.path(), cfg()) {
        Err(Error::DirInUse(p)) => assert_eq!(p, dir.path()),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("two engines opened the same directory"),
    }
    drop(e); // a crash releases the lock too
    let e = Engine::open(dir.path(), cfg()).unwrap();
    e.close().unwrap();
}

/// A data directory created under another shard count (16 was the default until the
/// default became 64) keeps its own: opened with the new default it serves every key, and
/// the log files written after that carry the same count, so the next open still reads them
/// all (logs that disagree on the count fail the open as corrupt).
#[test]
fn a_directory_keeps_the_shard_count_it_was_created_with() {
    let dir = tempfile::tempdir().unwrap();
    let small_logs = |shards| Config {
        shards,
        max_file_bytes: 64 * 1024,
        ..Config::default()
    };
    assert_ne!(
        Config::default().shards,
        16,
        "the test needs a different count"
    );
    let key = |i: u32| format!("key:{i}").into_bytes();
    let e = Engine::open(dir.path(), small_logs(16)).unwrap();
    for i in 0..2000u32 {
        e.set(0, &key(i), &i.to_le_bytes(), SetOptions::default())
            .unwrap();
    }
    e.close().unwrap();
    // Reopened with the default count: every key is there; new writes rotate through new logs.
    let e = Engine::open(dir.path(), small_logs(Config::default().shards)).unwrap();
    for i in 0..2000u32 {
        assert_eq!(e.get(0, &key(i)).unwrap().unwrap(), &i.to_le_bytes()[..]);
    }
    for i in (0..2000u32).step_by(2) {
        e.set(0, &key(i), &(i + 1).to_le_bytes(), SetOptions::default())
            .unwrap();
    }
    for i in (1..2000u32).step_by(4) {
        assert!(e.delete(0, &key(i)).unwrap().0);
    }
    e.close().unwrap();
    let e = Engine::open(dir.path(), small_logs(Config::default().shards)).unwrap();
    assert_eq!(e.len(0), 1500);
    for i in 0..2000u32 {
        let want = match i % 4 {
            1 => None,
            _ if i % 2 == 0 => Some((i + 1).to_le_bytes()),
            _ => Some(i.to_le_bytes()),
        };
        assert_eq!(
            e.get(0, &key(i)).unwrap().as_deref(),
            want.as_ref().map(|w| &w[..]),
            "key {i}"
        );
    }
    e.close().unwrap();
}
