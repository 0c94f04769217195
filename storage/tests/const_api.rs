#![allow(clippy::unwrap_used)]
//! The Engine API on a ConstTree database, on both backends, call by call: reads, SET options,
//! the ValueSize error and its text, expiry (lazy and swept), random_key, scan with a
//! pattern, value_len, flush and stats.

mod common;

use common::engine_with_const_db1;
use respite_storage::*;

fn engine(dir: &std::path::Path, backend: BackendKind) -> Engine {
    engine_with_const_db1(dir, 7, backend)
}

fn run(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), backend);
    let set = SetOptions::default();
    // The error names the database and both sizes.
    let err = e.set(1, b"k", b"12345678", set).unwrap_err();
    assert_eq!(
        err.to_string(),
        "value is 8 bytes; database 1 is a ConstTree of 7-byte values"
    );
    assert!(matches!(
        err,
        Error::ValueSize {
            db: 1,
            expected: 7,
            got: 8
        }
    ));
    assert!(!e.exists(1, b"k").unwrap());
    assert_eq!(e.len(1), 0);
    assert!(e.is_empty(1));
    assert_eq!(e.random_key(1).unwrap(), None);

    let o = e.set(1, b"k", b"abcdefg", set).unwrap();
    assert!(o.written && o.gsn > 0);
    assert_eq!(e.get(1, b"k").unwrap().unwrap(), &b"abcdefg"[..]);
    assert_eq!(e.value_len(1, b"k").unwrap(), Some(7));
    assert_eq!(e.expiry(1, b"k").unwrap(), Some(None));
    // Insert-if-absent on an existing key: not written, nothing changes.
    let nx = SetOptions {
        condition: SetCondition::IfAbsent,
        ..set
    };
    let o = e.set(1, b"k", b"zzzzzzz", nx).unwrap();
    assert!(!o.written);
    assert_eq!(o.gsn, 0);
    assert_eq!(e.get(1, b"k").unwrap().unwrap(), &b"abcdefg"[..]);
    // XX on a missing key; GET returns the old value.
    let xx = SetOptions {
        condition: SetCondition::IfPresent,
        ..set
    };
    assert!(!e.set(1, b"missing", b"1234567", xx).unwrap().written);
    let get = SetOptions {
        return_old: true,
        expiry: Expiry::At(4_000_000_000_000),
        ..set
    };
    let o = e.set(1, b"k", b"ABCDEFG", get).unwrap();
    assert_eq!(o.old.unwrap(), &b"abcdefg"[..]);
    assert_eq!(e.expiry(1, b"k").unwrap(), Some(Some(4_000_000_000_000)));
    assert_eq!(
        e.get_with_expiry(1, b"k").unwrap().unwrap(),
        (Bytes::from_static(b"ABCDEFG"), Some(4_000_000_000_000))
    );
    // KEEPTTL keeps it; a plain SET clears it.
    let keep = SetOptions {
        expiry: Expiry::KeepTtl,
        ..set
    };
    e.set(1, b"k", b"1111111", keep).unwrap();
    assert_eq!(e.expiry(1, b"k").unwrap(), Some(Some(4_000_000_000_000)));
    e.set(1, b"k", b"2222222", set).unwrap();
    assert_eq!(e.expiry(1, b"k").unwrap(), Some(None));
    assert_eq!(e.stats().dbs[1].expires, 0);

    // Expiry: an expired key reads as absent at once; the sweep removes it.
    e.set(1, b"old", b"expired", set).unwrap();
    let (ok, _) = e.set_expiry(1, b"old", Some(4_000_000_000_000)).unwrap();
    assert!(ok);
    assert_eq!(e.stats().dbs[1].expires, 1);
    let past = SetOptions {
        expiry: Expiry::At(1),
        ..set
    };
    e.set(1, b"gone", b"xxxxxxx", past).unwrap();
    assert!(!e.exists(1, b"gone").unwrap());
    assert_eq!(e.get(1, b"gone").unwrap(), None);
    assert!(
        !e.delete(1, b"gone").unwrap().0,
        "expired keys delete as absent"
    );

    // random_key and scan only see live keys.
    for i in 0..50u32 {
        e.set(1, format!("s{i:02}").as_bytes(), b"sssssss", set)
            .unwrap();
    }
    let r = e.random_key(1).unwrap().unwrap();
    assert!(e.exists(1, &r).unwrap());
    let mut cursor = 0;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..1000 {
        let (c, keys) = e.scan(1, cursor, Some(b"s1*"), 7).unwrap();
        seen.extend(keys);
        if c == 0 {
            break;
        }
        cursor = c;
    }
    let want: std::collections::BTreeSet<Bytes> =
        (10..20u32).map(|i| Bytes::from(format!("s{i}"))).collect();
    assert_eq!(seen, want);
    assert_eq!(e.len(1), 52);

    // update: a closure that changes the size is refused and changes nothing.
    let r = e.update(1, b"k", |_| {
        (
            Update::Set {
                value: Bytes::from_static(b"too long"),
                expiry: Expiry::KeepTtl,
            },
            (),
        )
    });
    assert!(matches!(r, Err(Error::ValueSize { .. })));
    assert_eq!(e.get(1, b"k").unwrap().unwrap(), &b"2222222"[..]);

    // Stats count the ConstTree's keys and memory.
    let s = e.stats();
    assert_eq!(s.dbs[1].keys, 52);
    assert!(s.index_bytes_estimate > 0);

    // FLUSHDB of the ConstTree leaves the other databases alone, across a restart.
    e.set(0, b"var", b"any size at all", set).unwrap();
    e.flush(Some(1)).unwrap();
    assert_eq!(e.len(1), 0);
    assert_eq!(e.get(1, b"k").unwrap(), None);
    e.set(1, b"after", b"aaaaaaa", set).unwrap();
    e.close().unwrap();
    let e = engine(dir.path(), backend);
    assert_eq!(e.len(1), 1);
    assert_eq!(e.get(1, b"after").unwrap().unwrap(), &b"aaaaaaa"[..]);
    assert_eq!(e.get(1, b"k").unwrap(), None);
    assert_eq!(e.get(0, b"var").unwrap().unwrap(), &b"any size at all"[..]);
    e.close().unwrap();
}

#[test]
fn const_api_on_bitcask() {
    run(BackendKind::Bitcask);
}

#[test]
fn const_api_on_fixed() {
    run(BackendKind::Fixed);
}
