#![allow(clippy::unwrap_used)]
//! A full disk (the log's write to the OS fails with ENOSPC, through the engine's fault seam)
//! stalls writes instead of ending them: they are refused with a clear error that says a
//! retry is coming, reads go on, and once space returns the sync thread's retry writes the
//! held-back buffer and writes are accepted again, without a restart. Every write that was
//! acknowledged survives a restart; a refused one is absent. An fsync failure stays what it
//! was: only a restart clears it (hazard 2).

mod common;

use common::signal::Signal;
use respite_storage::*;

fn key(i: usize) -> Vec<u8> {
    format!("full:{i}").into_bytes()
}

/// A value that names its key, larger than `inline_value_max`, so reads of it go to the
/// log's buffer or file rather than the index node.
fn value(i: usize) -> Vec<u8> {
    let mut v = format!("value of {i}:").into_bytes();
    v.resize(1000, b'a' + (i % 26) as u8);
    v
}

fn cfg(mode: SyncMode) -> Config {
    Config {
        shards: 2,
        sync_mode: mode,
        // A few records fill the buffer, so a write soon has to reach the OS.
        write_buffer_bytes: 4096,
        ..Config::default()
    }
}

/// Writes keys until the engine refuses one; returns the acknowledged ones and the refused
/// one with its error text.
fn write_until_refused(e: &Engine) -> (Vec<usize>, usize, String) {
    let mut acked = Vec::new();
    for i in 0..1000 {
        match e.set(0, &key(i), &value(i), SetOptions::default()) {
            Ok(_) => acked.push(i),
            Err(Error::WritesRefused(text)) => return (acked, i, text),
            Err(other) => panic!("SET {i}: unexpected error {other}"),
        }
    }
    panic!("1000 writes acknowledged on a full disk");
}

/// Ends the full disk and waits for the engine's retry to accept writes again.
fn free_the_disk(e: &Engine, sig: &Signal) {
    e.set_disk_full(false);
    sig.wait_until("writes to be accepted again", || e.sync_failure().is_none());
    assert!(!e.writes_refused());
}

fn full_disk_stalls_then_resumes(mode: SyncMode) {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg(mode)).unwrap();
    let sig = Signal::hooked(&e);
    e.set(0, b"before", b"1", SetOptions::default()).unwrap();
    e.sync_all().unwrap();

    e.set_disk_full(true);
    let (acked, refused, text) = write_until_refused(&e);
    assert!(
        !acked.is_empty(),
        "the buffer took no write before the disk refused"
    );
    assert!(text.contains("No space left on device"), "{text}");
    assert!(text.contains("until a retry succeeds"), "{text}");
    let failure = e.sync_failure().unwrap();
    assert!(failure.contains("until a retry succeeds"), "{failure}");
    assert!(e.writes_refused());
    assert!(e.stats().sync_failed);
    // Other writes are refused the same way, and nothing is made durable meanwhile ...
    assert!(matches!(
        e.delete(0, b"before"),
        Err(Error::WritesRefused(_))
    ));
    assert!(e.sync_all().is_err());
    // ... but reads go on, acknowledged writes included (they wait in the buffer).
    assert_eq!(e.get(0, b"before").unwrap().unwrap(), &b"1"[..]);
    for &i in &acked {
        assert_eq!(e.get(0, &key(i)).unwrap().unwrap(), value(i), "key {i}");
    }
    assert_eq!(e.get(0, &key(refused)).unwrap(), None);

    // Space returns: the sync thread's retry writes the buffer and writes go on.
    free_the_disk(&e, &sig);
    e.set(0, b"after", b"2", SetOptions::default()).unwrap();
    e.close().unwrap();

    let e = Engine::open(dir.path(), cfg(mode)).unwrap();
    for &i in &acked {
        assert_eq!(e.get(0, &key(i)).unwrap().unwrap(), value(i), "key {i}");
    }
    assert_eq!(
        e.get(0, &key(refused)).unwrap(),
        None,
        "a refused write came back"
    );
    assert_eq!(e.get(0, b"before").unwrap().unwrap(), &b"1"[..]);
    assert_eq!(e.get(0, b"after").unwrap().unwrap(), &b"2"[..]);
    e.close().unwrap();
}

#[test]
fn a_full_disk_stalls_writes_until_space_returns_everysec() {
    full_disk_stalls_then_resumes(SyncMode::EverySec);
}

#[test]
fn a_full_disk_stalls_writes_until_space_returns_no() {
    full_disk_stalls_then_resumes(SyncMode::No);
}

/// Under `always` a write waits for its sync round; a round whose write to the OS fails
/// tells the waiters (the server answers them MISCONF) and publishes nothing. Once space
/// returns, the retried buffer is synced and the write becomes durable.
#[test]
fn under_always_a_stalled_write_becomes_durable_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg(SyncMode::Always)).unwrap();
    let sig = Signal::hooked(&e);
    let g1 = e.set(0, b"a", b"1", SetOptions::default()).unwrap().gsn;
    sig.wait_until("the first write to be durable", || e.durable_gsn() >= g1);

    e.set_disk_full(true);
    let g2 = e
        .set(0, b"b", &value(2), SetOptions::default())
        .unwrap()
        .gsn;
    sig.wait_until("the stall", || e.sync_failure().is_some());
    assert!(
        e.durable_gsn() < g2,
        "durable_gsn covered a write the OS refused"
    );
    assert!(e.set(0, b"c", b"3", SetOptions::default()).is_err());

    e.set_disk_full(false);
    sig.wait_until("the stalled write to become durable", || {
        e.durable_gsn() >= g2
    });
    assert!(e.sync_failure().is_none());
    e.set(0, b"c", b"3", SetOptions::default()).unwrap();
    e.close().unwrap();

    let e = Engine::open(dir.path(), cfg(SyncMode::Always)).unwrap();
    assert_eq!(e.get(0, b"b").unwrap().unwrap(), value(2));
    assert_eq!(e.get(0, b"c").unwrap().unwrap(), &b"3"[..]);
    e.close().unwrap();
}

/// Closing while the disk is still full reports it; the data made durable before the disk
/// filled is there after a restart, and writes work again once there is space.
#[test]
fn closing_on_a_full_disk_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg(SyncMode::EverySec)).unwrap();
    e.set(0, b"before", b"1", SetOptions::default()).unwrap();
    e.sync_all().unwrap();
    e.set_disk_full(true);
    write_until_refused(&e);
    let err = e.close().unwrap_err();
    assert!(matches!(err, Error::WritesRefused(_)), "{err}");

    let e = Engine::open(dir.path(), cfg(SyncMode::EverySec)).unwrap();
    assert_eq!(e.get(0, b"before").unwrap().unwrap(), &b"1"[..]);
    e.set(0, b"after", b"2", SetOptions::default()).unwrap();
    e.close().unwrap();
}

/// A failed fsync is not a stall: it is final, and the retry `close` makes does not clear
/// it (a retried fsync could report success for data that never reached the disk).
#[test]
fn an_fsync_failure_is_not_cleared_by_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg(SyncMode::Always)).unwrap();
    let sig = Signal::hooked(&e);
    e.fail_next_sync();
    let g = e.set(0, b"a", b"1", SetOptions::default()).unwrap().gsn;
    sig.wait_until("the sync failure", || e.sync_failure().is_some());
    let failure = e.sync_failure().unwrap();
    assert!(
        failure.contains("until the server is restarted"),
        "{failure}"
    );
    assert!(e.set(0, b"b", b"2", SetOptions::default()).is_err());
    assert!(e.durable_gsn() < g);
    assert!(e.close().is_err(), "close must report the failed fsync");
}

/// FLUSHDB of a FixedStore database zeroes its slots before its marker goes to the log. If
/// the log could not take the marker (its buffer must be written out first, and the disk is
/// full), the flush must fail before any slot is zeroed: refused in memory, it must not
/// happen on disk once a later round syncs the slot files.
#[test]
fn a_flush_the_full_disk_refuses_zeroes_no_slot() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        databases: 2,
        trees: vec![(
            1,
            TreeConfig::Const {
                value_size: 8,
                backend: BackendKind::Fixed,
            },
        )],
        ..cfg(SyncMode::EverySec)
    };
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    let sig = Signal::hooked(&e);
    for i in 0..10 {
        e.set(1, &key(i), b"12345678", SetOptions::default())
            .unwrap();
    }
    e.sync_all().unwrap();
    // A record that leaves the 4096-byte buffer 18 bytes short of full (32-byte header, key
    // and value), so the 32-byte marker's append would have to write the buffer out.
    let big = vec![b'v'; 4096 - 18 - 32 - key(0).len()];
    e.set(0, &key(0), &big, SetOptions::default()).unwrap();
    e.set_disk_full(true);
    assert!(matches!(e.flush(Some(1)), Err(Error::WritesRefused(_))));
    assert_eq!(e.len(1), 10);

    free_the_disk(&e, &sig);
    e.sync_all().unwrap();
    e.close().unwrap();
    let e = Engine::open(dir.path(), cfg).unwrap();
    assert_eq!(e.len(1), 10, "the refused FLUSHDB emptied the slot files");
    assert_eq!(e.get(0, &key(0)).unwrap().unwrap(), big);
    e.close().unwrap();
}

/// A record larger than the buffer is written to the OS as soon as it is appended. If that
/// write stalls, the record waits in the buffer for the retry: the write is acknowledged and
/// shown (refusing it would make it come back after the retry, or after a restart).
#[test]
fn a_write_whose_own_write_out_stalls_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg(SyncMode::EverySec)).unwrap();
    let sig = Signal::hooked(&e);
    let big = vec![b'x'; 6000];
    e.set_disk_full(true);
    e.set(0, b"big", &big, SetOptions::default()).unwrap();
    assert!(
        e.writes_refused(),
        "the write out of the buffer did not fail"
    );
    assert_eq!(e.get(0, b"big").unwrap().unwrap(), big);
    assert!(e.set(0, b"small", b"1", SetOptions::default()).is_err());

    free_the_disk(&e, &sig);
    e.close().unwrap();
    let e = Engine::open(dir.path(), cfg(SyncMode::EverySec)).unwrap();
    assert_eq!(e.get(0, b"big").unwrap().unwrap(), big);
    assert_eq!(e.get(0, b"small").unwrap(), None);
    e.close().unwrap();
}
