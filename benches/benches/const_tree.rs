#![allow(clippy::unwrap_used)]
//! ConstTree micro-benchmarks beside the VarTree, in one engine: database 0 a VarTree,
//! database 1 a ConstTree on the Bitcask log, database 2 a ConstTree on the FixedStore.
//!
//! RESPITE_BENCH_KEYS keys (default 1,000,000) of 16 bytes with 100-byte values per database,
//! then per database: get, update of an existing key, set of a new key, insert-if-absent
//! (SET NX) on an existing key, and get / update on two threads (wall time per operation, so
//! half the single-thread figure is perfect scaling). Targets for the ConstTree: get <= 0.2
//! us, update <= 0.6 us, insert-if-absent on an existing key <= 0.25 us.
//!
//! Durability: `SyncMode::No` (no fdatasync; the FixedStore's pwrites go to the page cache).
//! Also printed: RSS growth per key while loading each database (from /proc/self/statm).

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use common::{VALUE, key, nkeys, parallel, rss_bytes};
use respite_storage::{
    BackendKind, Config, Engine, MasterKey, SetCondition, SetOptions, SyncMode, TreeConfig,
};

/// Loads the keys of `db`, printing the RSS growth per key. All three databases are loaded
/// before any benchmark runs, so no load reuses memory another benchmark freed.
fn load(name: &str, e: &Engine, db: usize) {
    let n = nkeys();
    let rss0 = rss_bytes();
    let t0 = Instant::now();
    for i in 0..n {
        e.set(db, &key(b'k', i), &VALUE, SetOptions::default())
            .unwrap();
    }
    let load = t0.elapsed();
    let rss1 = rss_bytes();
    eprintln!(
        "{name}: loaded {n} keys in {load:?} ({:.2} us/set); RSS growth {:.1} bytes/key \
         ({:.0} MB per million keys)",
        load.as_secs_f64() * 1e6 / n as f64,
        rss1.saturating_sub(rss0) as f64 / n as f64,
        rss1.saturating_sub(rss0) as f64 / n as f64,
    );
}

fn suite(c: &mut Criterion, name: &str, e: &Arc<Engine>, db: usize) {
    let n = nkeys();
    for i in 0..n {
        black_box(e.get(db, &key(b'k', i)).unwrap());
    }
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    let mut rng = SmallRng::seed_from_u64(1);
    g.bench_function("get", |b| {
        b.iter(|| black_box(e.get(db, &key(b'k', rng.random_range(0..n))).unwrap()))
    });
    g.bench_function("update", |b| {
        b.iter(|| {
            e.set(
                db,
                &key(b'k', rng.random_range(0..n)),
                &VALUE,
                SetOptions::default(),
            )
            .unwrap()
        })
    });
    let next = AtomicU64::new(0);
    g.bench_function("set_new", |b| {
        b.iter(|| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            e.set(
                db,
                &key(b'n', i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 24),
                &VALUE,
                SetOptions::default(),
            )
            .unwrap()
        })
    });
    let nx = SetOptions {
        condition: SetCondition::IfAbsent,
        ..SetOptions::default()
    };
    g.bench_function("setnx_existing", |b| {
        b.iter(|| {
            let o = e
                .set(db, &key(b'k', rng.random_range(0..n)), &VALUE, nx)
                .unwrap();
            assert!(!o.written);
        })
    });
    g.bench_function("get_2threads", |b| {
        b.iter_custom(|iters| {
            let e = e.clone();
            parallel(
                iters,
                2,
                Arc::new(move |t, i| {
                    black_box(e.get(db, &key(b'k', (i * 7919 + t * 104_729) % n)).unwrap());
                }),
            )
        })
    });
    g.bench_function("update_2threads", |b| {
        b.iter_custom(|iters| {
            let e = e.clone();
            parallel(
                iters,
                2,
                Arc::new(move |t, i| {
                    e.set(
                        db,
                        &key(b'k', (i * 7919 + t * 104_729) % n),
                        &VALUE,
                        SetOptions::default(),
                    )
                    .unwrap();
                }),
            )
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        databases: 3,
        sync_mode: SyncMode::No,
        trees: vec![
            (
                1,
                TreeConfig::Const {
                    value_size: 100,
                    backend: BackendKind::Bitcask,
                },
            ),
            (
                2,
                TreeConfig::Const {
                    value_size: 100,
                    backend: BackendKind::Fixed,
                },
            ),
        ],
        ..Config::default()
    };
    let e = Arc::new(Engine::open(dir.path(), cfg).unwrap());
    load("var_bitcask", &e, 0);
    load("const_bitcask", &e, 1);
    load("const_fixed", &e, 2);
    suite(c, "var_bitcask", &e, 0);
    suite(c, "const_bitcask", &e, 1);
    suite(c, "const_fixed", &e, 2);
    let e = Arc::try_unwrap(e).ok().unwrap();
    e.close().unwrap();
}

/// FixedStore SET (update of an existing key, 100-byte values) under `everysec`, with and
/// without encryption at rest, on RESPITE_BENCH_ENC_KEYS keys (default 200,000) each. With
/// encryption, a slot write edits its 4096-byte page in memory (read and decrypted unless
/// cached); the sync round seals and writes each page touched since the last round once.
fn fixed_encryption(c: &mut Criterion) {
    let n: u64 = std::env::var("RESPITE_BENCH_ENC_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let mut g = c.benchmark_group("const_fixed_everysec");
    g.sample_size(20);
    for (name, master) in [
        ("set_plain", None),
        ("set_encrypted", Some(MasterKey::from_bytes([7; 32]))),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            databases: 1,
            sync_mode: SyncMode::EverySec,
            trees: vec![(
                0,
                TreeConfig::Const {
                    value_size: 100,
                    backend: BackendKind::Fixed,
                },
            )],
            encryption_key: master,
            ..Config::default()
        };
        let e = Engine::open(dir.path(), cfg).unwrap();
        for i in 0..n {
            e.set(0, &key(b'k', i), &VALUE, SetOptions::default())
                .unwrap();
        }
        e.sync_all().unwrap();
        let mut rng = SmallRng::seed_from_u64(2);
        g.bench_function(name, |b| {
            b.iter(|| {
                e.set(
                    0,
                    &key(b'k', rng.random_range(0..n)),
                    &VALUE,
                    SetOptions::default(),
                )
                .unwrap()
            })
        });
        e.close().unwrap();
    }
    g.finish();
}

criterion_group!(g, benches);
criterion_group!(enc, fixed_encryption);
criterion_main!(g, enc);
