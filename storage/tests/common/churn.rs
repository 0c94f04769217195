//! Readers never lose a key while the lookup table under them grows, fills with tombstones
//! and is rebuilt, and skiplist nodes are unlinked and reclaimed: two reader threads check a
//! set of stable keys (and their values) while a writer inserts and deletes many other keys
//! in the same shards. Bounded: the writer does a fixed amount of work and the readers stop
//! when it is done.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use respite_storage::*;

const SIZE: usize = 16;

fn value(i: u32) -> Vec<u8> {
    let mut v = format!("stable-{i}").into_bytes();
    v.resize(SIZE, b'.');
    v
}

/// Database 1 is a ConstTree on `backend` (None: a VarTree); `churn` keys are inserted and
/// deleted around 200 stable ones, twice.
pub fn run(backend: Option<BackendKind>, churn: u32) {
    // Under valgrind a tenth of the churn: the tables start at 16 slots, so it still makes
    // them grow past the stable keys and rebuild.
    let churn = if super::small_scale() {
        churn / 10
    } else {
        churn
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 2,
        databases: 2,
        sync_mode: SyncMode::No,
        trees: backend
            .map(|backend| {
                (
                    1,
                    TreeConfig::Const {
                        value_size: SIZE,
                        backend,
                    },
                )
            })
            .into_iter()
            .collect(),
        ..Config::default()
    };
    let e = Arc::new(Engine::open(dir.path(), cfg).unwrap());
    for i in 0..200u32 {
        e.set(
            1,
            format!("stable{i}").as_bytes(),
            &value(i),
            SetOptions::default(),
        )
        .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (e, stop, checks) = (e.clone(), stop.clone(), checks.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let k = i % 200;
                    let got = e.get(1, format!("stable{k}").as_bytes()).unwrap();
                    assert_eq!(got.as_deref(), Some(&value(k)[..]), "stable{k} lost");
                    i += 1;
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let x = [b'x'; SIZE];
    for round in 0..2u32 {
        for i in 0..churn {
            e.set(
                1,
                format!("churn{round}-{i}").as_bytes(),
                &x,
                SetOptions::default(),
            )
            .unwrap();
        }
        for i in 0..churn {
            assert!(
                e.delete(1, format!("churn{round}-{i}").as_bytes())
                    .unwrap()
                    .0
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(checks.load(Ordering::Relaxed) > 0);
    assert_eq!(e.len(1), 200);
    for i in 0..200u32 {
        assert_eq!(
            e.get(1, format!("stable{i}").as_bytes()).unwrap().unwrap(),
            &value(i)[..]
        );
    }
}
