#![allow(clippy::unwrap_used)]
//! Group commit under `always`: every write's GSN becomes durable without anyone blocking a
//! thread on it (hooks fire), rounds coalesce concurrent writers, and a crash right after
//! durability loses nothing that was reported durable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use respite_storage::*;

#[test]
fn always_mode_makes_every_write_durable_and_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 4,
        sync_mode: SyncMode::Always,
        ..Config::default()
    };
    let e = Arc::new(Engine::open(dir.path(), cfg.clone()).unwrap());
    let signal = Arc::new((Mutex::new(()), Condvar::new()));
    let s2 = signal.clone();
    e.on_durable(Arc::new(move || {
        s2.1.notify_all();
    }));
    let wait_durable = |gsn: Gsn| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut g = signal.0.lock();
        while e.durable_gsn() < gsn {
            assert!(Instant::now() < deadline, "gsn {gsn} never became durable");
            signal.1.wait_for(&mut g, Duration::from_millis(50));
        }
    };
    let mut hs = Vec::new();
    for t in 0..4u32 {
        let e = e.clone();
        hs.push(std::thread::spawn(move || {
            let mut last = 0;
            for i in 0..200u32 {
                let v = format!("{t}-{i}").repeat(10);
                last = e
                    .set(
                        0,
                        format!("t{t}-k{i}").as_bytes(),
                        v.as_bytes(),
                        SetOptions::default(),
                    )
                    .unwrap()
                    .gsn;
            }
            last
        }));
    }
    let lasts: Vec<Gsn> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    for &g in &lasts {
        wait_durable(g);
    }
    let stats = e.stats();
    assert!(stats.syncs >= 1);
    assert!(stats.durable_gsn >= *lasts.iter().max().unwrap());
    assert!(stats.last_sync_unix_ms > 0);
    // Crash: no close, no flush.
    drop(Arc::into_inner(e).unwrap());
    let e = Engine::open(dir.path(), cfg).unwrap();
    for t in 0..4u32 {
        for i in 0..200u32 {
            let v = format!("{t}-{i}").repeat(10);
            assert_eq!(
                e.get(0, format!("t{t}-k{i}").as_bytes()).unwrap().unwrap(),
                v.as_bytes()
            );
        }
    }
    e.close().unwrap();
}

#[test]
fn everysec_and_no_modes_and_mode_switch() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(
        dir.path(),
        Config {
            sync_mode: SyncMode::No,
            ..Config::default()
        },
    )
    .unwrap();
    assert_eq!(e.sync_mode(), SyncMode::No);
    let g = e.set(0, b"k", b"v", SetOptions::default()).unwrap().gsn;
    // Under `no`, request_sync still makes a write durable (WAITAOF); poll the atomic.
    e.request_sync(g);
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.durable_gsn() < g {
        assert!(Instant::now() < deadline);
        std::thread::park_timeout(Duration::from_millis(10));
    }
    e.set_sync_mode(SyncMode::EverySec);
    assert_eq!(e.sync_mode(), SyncMode::EverySec);
    let g = e.set(0, b"k2", b"v", SetOptions::default()).unwrap().gsn;
    // everysec: durable within about a second without being asked.
    let deadline = Instant::now() + Duration::from_secs(5);
    while e.durable_gsn() < g {
        assert!(Instant::now() < deadline, "everysec did not sync within 5s");
        std::thread::park_timeout(Duration::from_millis(20));
    }
    e.close().unwrap();
}

#[test]
fn engine_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Engine>();
}
