#![allow(clippy::unwrap_used)]
//! Engine micro-benchmarks: respite-storage against fjall (v3) on the same workload.
//!
//! RESPITE_BENCH_KEYS keys (default 1,000,000) of 16 bytes with 100-byte values, then:
//! get (block cache hit), get (cold: block cache off, log in the page cache), set of a new
//! key (sequential and random key order), update of an existing key, delete; then get, set, update and delete on two threads
//! (reported as wall time per operation, so half the single-thread figure is perfect scaling);
//! and for respite, gets in batches of 16 random keys with and without `Engine::prefetch`,
//! as a server runs a pipeline.
//!
//! Durability: respite runs with `SyncMode::No` (buffers go to the OS about once a second;
//! no fdatasync) and fjall with `manual_journal_persist(true)` (journal buffered in-process,
//! no fsync): neither syncs, both lose their in-process buffer on a crash.
//!
//! Also printed: index memory per key (RSS growth while loading, from /proc/self/statm).
//! RESPITE_BENCH_INLINE overrides `inline_value_max` (default 64, so the values here are read
//! through the block cache).

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use common::{VALUE, key, nkeys, parallel, rss_bytes};
use respite_storage::{Config, Engine, SetOptions, SyncMode};

/// The operations both engines are measured on.
trait Kv: Send + Sync + 'static {
    fn get(&self, k: &[u8]) -> bool;
    fn set(&self, k: &[u8], v: &[u8]);
    fn del(&self, k: &[u8]);
}

impl Kv for Engine {
    #[inline]
    fn get(&self, k: &[u8]) -> bool {
        black_box(Engine::get(self, 0, k).unwrap()).is_some()
    }
    #[inline]
    fn set(&self, k: &[u8], v: &[u8]) {
        Engine::set(self, 0, k, v, SetOptions::default()).unwrap();
    }
    #[inline]
    fn del(&self, k: &[u8]) {
        self.delete(0, k).unwrap();
    }
}

impl Kv for fjall::Keyspace {
    #[inline]
    fn get(&self, k: &[u8]) -> bool {
        black_box(fjall::Keyspace::get(self, k).unwrap()).is_some()
    }
    #[inline]
    fn set(&self, k: &[u8], v: &[u8]) {
        self.insert(k, v).unwrap();
    }
    #[inline]
    fn del(&self, k: &[u8]) {
        self.remove(k).unwrap();
    }
}

/// Loads the keys and runs every hot-cache benchmark against `kv`.
fn suite<K: Kv>(c: &mut Criterion, name: &str, kv: Arc<K>) {
    let n = nkeys();
    let rss0 = rss_bytes();
    let t0 = Instant::now();
    for i in 0..n {
        kv.set(&key(b'k', i), &VALUE);
    }
    let load = t0.elapsed();
    let rss1 = rss_bytes();
    eprintln!(
        "{name}: loaded {n} keys in {load:?} ({:.2} us/set); RSS growth {:.1} bytes/key \
         ({:.1} beyond the 16-byte key)",
        load.as_secs_f64() * 1e6 / n as f64,
        rss1.saturating_sub(rss0) as f64 / n as f64,
        rss1.saturating_sub(rss0) as f64 / n as f64 - 16.0,
    );
    for i in 0..n {
        kv.get(&key(b'k', i)); // warm the block cache
    }
    let mut g = c.benchmark_group(name);
    let mut rng = SmallRng::seed_from_u64(1);
    g.bench_function("get_hit", |b| {
        b.iter(|| kv.get(&key(b'k', rng.random_range(0..n))))
    });
    let next = AtomicU64::new(0);
    g.bench_function("set_new", |b| {
        b.iter(|| kv.set(&key(b'n', next.fetch_add(1, Ordering::Relaxed)), &VALUE))
    });
    // New keys in random order (fjall's memtable is key-ordered, so the sequential keys above
    // always insert at its hot end; respite's skiplist is in insertion order either way).
    let next_r = AtomicU64::new(0);
    g.bench_function("set_new_random", |b| {
        b.iter(|| {
            let i = next_r.fetch_add(1, Ordering::Relaxed);
            kv.set(
                &key(b'r', i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 24),
                &VALUE,
            )
        })
    });
    g.bench_function("update", |b| {
        b.iter(|| kv.set(&key(b'k', rng.random_range(0..n)), &VALUE))
    });
    let del = AtomicU64::new(0);
    g.bench_function("delete", |b| {
        b.iter_custom(|iters| {
            let base = del.fetch_add(iters, Ordering::Relaxed);
            for i in base..base + iters {
                kv.set(&key(b'd', i), &VALUE);
            }
            let start = Instant::now();
            for i in base..base + iters {
                kv.del(&key(b'd', i));
            }
            start.elapsed()
        })
    });
    g.bench_function("get_hit_2threads", |b| {
        b.iter_custom(|iters| {
            let kv = kv.clone();
            parallel(
                iters,
                2,
                Arc::new(move |t, i| {
                    kv.get(&key(b'k', (i * 7919 + t * 104_729) % n));
                }),
            )
        })
    });
    let next2 = Arc::new(AtomicU64::new(0));
    g.bench_function("set_new_2threads", |b| {
        b.iter_custom(|iters| {
            let (kv, next2) = (kv.clone(), next2.clone());
            parallel(
                iters,
                2,
                Arc::new(move |_, _| {
                    kv.set(&key(b'm', next2.fetch_add(1, Ordering::Relaxed)), &VALUE);
                }),
            )
        })
    });
    g.bench_function("update_2threads", |b| {
        b.iter_custom(|iters| {
            let kv = kv.clone();
            parallel(
                iters,
                2,
                Arc::new(move |t, i| {
                    kv.set(&key(b'k', (i * 7919 + t * 104_729) % n), &VALUE);
                }),
            )
        })
    });
    let del2 = Arc::new(AtomicU64::new(0));
    g.bench_function("delete_2threads", |b| {
        b.iter_custom(|iters| {
            let base = del2.fetch_add(iters, Ordering::Relaxed);
            for i in base..base + iters {
                kv.set(&key(b'e', i), &VALUE);
            }
            let kv = kv.clone();
            parallel(
                iters,
                2,
                Arc::new(move |t, i| {
                    kv.del(&key(b'e', base + t * (iters / 2) + i));
                }),
            )
        })
    });
    g.finish();
}

/// Cold reads: block cache off, every get reads the log (served by the page cache).
fn cold<K: Kv>(c: &mut Criterion, name: &str, kv: &K) {
    let n = nkeys();
    let mut rng = SmallRng::seed_from_u64(2);
    let mut g = c.benchmark_group(name);
    g.bench_function("get_cold", |b| {
        b.iter(|| kv.get(&key(b'k', rng.random_range(0..n))))
    });
    g.finish();
}

fn respite_cfg(cache: u64) -> Config {
    let mut cfg = Config {
        sync_mode: SyncMode::No,
        cache_capacity_bytes: cache,
        ..Config::default()
    };
    // RESPITE_BENCH_INLINE=128 measures the trade-off of keeping the 100-byte values inline.
    if let Some(n) = std::env::var("RESPITE_BENCH_INLINE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        cfg.inline_value_max = n;
    }
    cfg
}

/// A server decodes a pipeline's requests before it runs them and asks the engine to
/// prefetch their keys (`Engine::prefetch`): 16 random block-cache hits with and without that
/// hint, reported per get.
fn pipeline(c: &mut Criterion, e: &Engine) {
    let n = nkeys();
    let mut rng = SmallRng::seed_from_u64(3);
    let mut g = c.benchmark_group("respite_pipeline16");
    for prefetch in [false, true] {
        let name = if prefetch { "get_prefetched" } else { "get" };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut keys = [[0u8; 16]; 16];
                let start = Instant::now();
                for _ in 0..iters.div_ceil(16) {
                    for k in keys.iter_mut() {
                        *k = key(b'k', rng.random_range(0..n));
                    }
                    if prefetch {
                        e.prefetch(0, keys.iter().map(|k| &k[..]));
                    }
                    for k in &keys {
                        Kv::get(e, k);
                    }
                }
                start.elapsed()
            })
        });
    }
    g.finish();
}

fn respite(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(Engine::open(dir.path(), respite_cfg(256 << 20)).unwrap());
    suite(c, "respite", e.clone());
    pipeline(c, &e);
    let s = e.stats();
    eprintln!(
        "respite: cache hits {} misses {}; {} files, {} bytes on disk",
        s.cache_hits, s.cache_misses, s.files, s.disk_bytes
    );
    Arc::into_inner(e).unwrap().close().unwrap();
    let e = Engine::open(dir.path(), respite_cfg(0)).unwrap();
    cold(c, "respite", &e);
    e.close().unwrap();
}

fn fjall(c: &mut Criterion) {
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
    let ks = Arc::new(ks);
    suite(c, "fjall", ks.clone());
    drop(ks);
    drop(db);
    let (db, ks) = open(0);
    cold(c, "fjall", &ks);
    drop(ks);
    drop(db);
}

/// Cold VarTree gets with and without encryption at rest: RESPITE_BENCH_COLD_MB (default 120)
/// MB of 1 KiB values under a 4 KiB block cache (so nearly every get misses it and reads a
/// page of the log, from the OS page cache), random keys. Encrypted, each miss also
/// authenticates and decrypts the 4 KiB page (AES-256-GCM).
fn vartree_cold(c: &mut Criterion) {
    let mb: u64 = std::env::var("RESPITE_BENCH_COLD_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let n = mb * 1024;
    let value = [0x5Au8; 1024];
    for encrypted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            sync_mode: SyncMode::No,
            cache_capacity_bytes: 4096,
            encryption_key: encrypted.then(|| respite_storage::MasterKey::from_bytes([7; 32])),
            ..Config::default()
        };
        let e = Engine::open(dir.path(), cfg.clone()).unwrap();
        for i in 0..n {
            Engine::set(&e, 0, &key(b'c', i), &value, SetOptions::default()).unwrap();
        }
        e.close().unwrap();
        let e = Engine::open(dir.path(), cfg).unwrap();
        let mut rng = SmallRng::seed_from_u64(3);
        let mut g = c.benchmark_group("vartree_cold");
        let name = if encrypted {
            "get_1k_encrypted"
        } else {
            "get_1k_plain"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let v = Engine::get(&e, 0, &key(b'c', rng.random_range(0..n))).unwrap();
                black_box(v.map(|v| v.len()))
            })
        });
        g.finish();
        let s = e.stats();
        eprintln!(
            "vartree_cold ({name}): cache hits {} misses {}",
            s.cache_hits, s.cache_misses
        );
        e.close().unwrap();
    }
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
    targets = respite, fjall, vartree_cold
}
criterion_main!(benches);
