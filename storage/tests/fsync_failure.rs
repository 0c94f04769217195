#![allow(clippy::unwrap_used)]
//! An fsync failure reaches every waiter (hook called, sync_failure() set, durable_gsn does
//! not cover the failed group), later writes are refused with a clear error, reads go on,
//! and the engine never retries the fsync and reports success.

mod common;

use common::signal::Signal;
use respite_storage::*;

#[test]
fn fsync_failure_refuses_writes_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 2,
        sync_mode: SyncMode::Always,
        ..Config::default()
    };
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    let sig = Signal::hooked(&e);

    let g1 = e.set(0, b"a", b"1", SetOptions::default()).unwrap().gsn;
    sig.wait_until("the first write to be durable", || e.durable_gsn() >= g1);
    assert!(e.sync_failure().is_none());
    let hooks_before = *sig.calls.lock();

    e.fail_next_sync();
    let g2 = e
        .set(0, b"b", &[7u8; 300], SetOptions::default())
        .unwrap()
        .gsn;
    sig.wait_until("the sync failure", || e.sync_failure().is_some());
    assert!(
        *sig.calls.lock() > hooks_before,
        "hook not called on failure"
    );
    assert!(
        e.durable_gsn() < g2,
        "durable_gsn advanced over a failed fsync"
    );
    let msg = e.sync_failure().unwrap();
    assert!(msg.contains("fsync failed"), "{msg}");
    assert!(e.stats().sync_failed);

    // Writes are refused with the clear error ...
    let err = e.set(0, b"c", b"3", SetOptions::default()).unwrap_err();
    assert!(matches!(err, Error::WritesRefused(_)));
    let text = err.to_string();
    assert!(
        text.starts_with("writes refused: fsync failed on"),
        "{text}"
    );
    assert!(text.ends_with("until the server is restarted"), "{text}");
    assert!(e.delete(0, b"a").is_err());
    assert!(e.flush(None).is_err());
    assert!(e.update(0, b"a", |_| (Update::Delete, ())).is_err());
    // ... sync_all does not retry the fsync and report success ...
    assert!(e.sync_all().is_err());
    assert!(e.durable_gsn() < g2);
    // ... and reads go on.
    assert_eq!(e.get(0, b"a").unwrap().unwrap(), &b"1"[..]);
    assert_eq!(e.get(0, b"b").unwrap().unwrap(), &[7u8; 300][..]);
    assert_eq!(e.get(0, b"c").unwrap(), None);
    assert!(e.close().is_err(), "close must report the failed sync");

    // After a restart the durable write is there and writes work again.
    let e = Engine::open(dir.path(), cfg).unwrap();
    assert_eq!(e.get(0, b"a").unwrap().unwrap(), &b"1"[..]);
    assert!(e.sync_failure().is_none());
    e.set(0, b"c", b"3", SetOptions::default()).unwrap();
    e.close().unwrap();
}
