#![allow(clippy::unwrap_used)]
//! Engine micro-benchmarks: respite-storage against fjall (v3) on the same workload.
//!
//! RESPITE_BENCH_KEYS keys (default 1,000,000) of 16 bytes with 100-byte values, then:
//! get (block cache hit), get (cold cache: block cache off, log in the page cache), set of a
//! new key, update of an existing key, delete; the same with two threads (get, set).
//!
//! Durability: respite runs with `SyncMode::No` (buffers go to the OS about once a second;
//! no fdatasync) and fjall with `manual_journal_persist(true)` (journal buffered in-process,
//! no fsync): neither syncs, both lose their in-process buffer on a crash.
//!
//! Also printed: index memory per key (RSS growth while loading, from /proc/self/statm).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use respite_storage::{Config, Engine, SetOptions, SyncMode};

fn nkeys() -> u64 {
    std::env::var("RESPITE_BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

fn key(prefix: u8, i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[0] = prefix;
    k[1..4].copy_from_slice(b"ey:");
    let mut n = i;
    for d in k[4..].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

const VALUE: [u8; 100] = [0x61; 100];

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // statm counts pages; 4 KiB on the x86-64 / aarch64 Linux machines we bench on.
    pages * 4096
}

fn cfg(cache: u64) -> Config {
    Config {
        sync_mode: SyncMode::No,
        cache_capacity_bytes: cache,
        ..Config::default()
    }
}

/// Runs `op(thread, i)` for `iters` operations split across `threads` threads; wall time.
fn parallel(iters: u64, threads: u64, op: Arc<dyn Fn(u64, u64) + Send + Sync>) -> Duration {
    let start = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let op = op.clone();
            std::thread::spawn(move || {
                for i in 0..iters / threads {
                    op(t, i);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    start.elapsed()
}

fn respite(c: &mut Criterion) {
    let n = nkeys();
    let dir = tempfile::tempdir().unwrap();
    let rss0 = rss_bytes();
    let e = Arc::new(Engine::open(dir.path(), cfg(256 << 20)).unwrap());
    let t0 = Instant::now();
    for i in 0..n {
        e.set(0, &key(b'k', i), &VALUE, SetOptions::default())
            .unwrap();
    }
    let load = t0.elapsed();
    e.sync_all().unwrap();
    let rss1 = rss_bytes();
    eprintln!(
        "respite: loaded {n} keys in {:?} ({:.2} us/set); RSS growth {} bytes = {:.1} bytes/key \
         beyond the 16-byte key ({:.1} incl. key)",
        load,
        load.as_secs_f64() * 1e6 / n as f64,
        rss1.saturating_sub(rss0),
        rss1.saturating_sub(rss0) as f64 / n as f64 - 16.0,
        rss1.saturating_sub(rss0) as f64 / n as f64,
    );
    // Warm the block cache.
    for i in 0..n {
        black_box(e.get(0, &key(b'k', i)).unwrap());
    }
    let mut g = c.benchmark_group("respite");
    let mut rng = SmallRng::seed_from_u64(1);
    g.bench_function("get_hit", |b| {
        b.iter(|| black_box(e.get(0, &key(b'k', rng.random_range(0..n))).unwrap()))
    });
    let next = AtomicU64::new(0);
    g.bench_function("set_new", |b| {
        b.iter(|| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            e.set(0, &key(b'n', i), &VALUE, SetOptions::default())
                .unwrap()
        })
    });
    g.bench_function("update", |b| {
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
    let del = AtomicU64::new(0);
    g.bench_function("delete", |b| {
        b.iter_custom(|iters| {
            let base = del.fetch_add(iters, Ordering::Relaxed);
            for i in base..base + iters {
                e.set(0, &key(b'd', i), &VALUE, SetOptions::default())
                    .unwrap();
            }
            let start = Instant::now();
            for i in base..base + iters {
                black_box(e.delete(0, &key(b'd', i)).unwrap());
            }
            start.elapsed()
        })
    });
    let e2 = e.clone();
    g.bench_function("get_hit_2threads", |b| {
        let e = e2.clone();
        b.iter_custom(move |iters| {
            let e = e.clone();
            parallel(
                iters,
                2,
                Arc::new(move |t, i| {
                    let k = key(b'k', (i * 7919 + t * 104_729) % n);
                    black_box(e.get(0, &k).unwrap());
                }),
            )
        })
    });
    let next2 = Arc::new(AtomicU64::new(0));
    g.bench_function("set_new_2threads", |b| {
        let e = e2.clone();
        let next2 = next2.clone();
        b.iter_custom(move |iters| {
            let (e, next2) = (e.clone(), next2.clone());
            parallel(
                iters,
                2,
                Arc::new(move |_, _| {
                    let i = next2.fetch_add(1, Ordering::Relaxed);
                    e.set(0, &key(b'm', i), &VALUE, SetOptions::default())
                        .unwrap();
                }),
            )
        })
    });
    g.finish();
    let stats = e.stats();
    eprintln!(
        "respite: cache hits {} misses {}, files {}",
        stats.cache_hits, stats.cache_misses, stats.files
    );
    drop(e2);
    Arc::into_inner(e).unwrap().close().unwrap();

    // Cold cache: block cache off, every get is a pread served by the page cache.
    let e = Engine::open(dir.path(), cfg(0)).unwrap();
    let mut g = c.benchmark_group("respite");
    g.bench_function("get_cold", |b| {
        b.iter(|| black_box(e.get(0, &key(b'k', rng.random_range(0..n))).unwrap()))
    });
    g.finish();
    e.close().unwrap();
}

fn fjall(c: &mut Criterion) {
    let n = nkeys();
    let dir = tempfile::tempdir().unwrap();
    let open = |cache: u64| {
        let db = fjall::Database::builder(dir.path())
            .cache_size(cache)
            .manual_journal_persist(true)
            .open()
            .unwrap();
        let ks = db
            .keyspace("bench", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        (db, ks)
    };
    let (db, ks) = open(256 << 20);
    let t0 = Instant::now();
    for i in 0..n {
        ks.insert(key(b'k', i), VALUE).unwrap();
    }
    eprintln!(
        "fjall: loaded {n} keys in {:?} ({:.2} us/insert)",
        t0.elapsed(),
        t0.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    for i in 0..n {
        black_box(ks.get(key(b'k', i)).unwrap());
    }
    let mut g = c.benchmark_group("fjall");
    let mut rng = SmallRng::seed_from_u64(1);
    g.bench_function("get_hit", |b| {
        b.iter(|| black_box(ks.get(key(b'k', rng.random_range(0..n))).unwrap()))
    });
    let next = AtomicU64::new(0);
    g.bench_function("set_new", |b| {
        b.iter(|| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            ks.insert(key(b'n', i), VALUE).unwrap()
        })
    });
    g.bench_function("update", |b| {
        b.iter(|| ks.insert(key(b'k', rng.random_range(0..n)), VALUE).unwrap())
    });
    let del = AtomicU64::new(0);
    g.bench_function("delete", |b| {
        b.iter_custom(|iters| {
            let base = del.fetch_add(iters, Ordering::Relaxed);
            for i in base..base + iters {
                ks.insert(key(b'd', i), VALUE).unwrap();
            }
            let start = Instant::now();
            for i in base..base + iters {
                ks.remove(key(b'd', i)).unwrap();
            }
            start.elapsed()
        })
    });
    let ks2 = ks.clone();
    g.bench_function("get_hit_2threads", |b| {
        b.iter_custom(|iters| {
            let ks = ks2.clone();
            parallel(
                iters,
                2,
                Arc::new(move |t, i| {
                    black_box(ks.get(key(b'k', (i * 7919 + t * 104_729) % n)).unwrap());
                }),
            )
        })
    });
    let next2 = Arc::new(AtomicU64::new(0));
    g.bench_function("set_new_2threads", |b| {
        b.iter_custom(|iters| {
            let (ks, next2) = (ks2.clone(), next2.clone());
            parallel(
                iters,
                2,
                Arc::new(move |_, _| {
                    let i = next2.fetch_add(1, Ordering::Relaxed);
                    ks.insert(key(b'm', i), VALUE).unwrap();
                }),
            )
        })
    });
    g.finish();
    drop((ks, ks2));
    drop(db);
    let (db, ks) = open(0);
    let mut g = c.benchmark_group("fjall");
    g.bench_function("get_cold", |b| {
        b.iter(|| black_box(ks.get(key(b'k', rng.random_range(0..n))).unwrap()))
    });
    g.finish();
    drop(ks);
    drop(db);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = respite, fjall
}
criterion_main!(benches);
