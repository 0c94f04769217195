#![allow(clippy::unwrap_used)]
//! Values read back whole wherever they are: in the write buffer, on disk across block
//! boundaries, through the cache or without it, after compaction and after a reopen.

use respite_storage::*;

/// Sizes around the block (4 KiB) and around the size from which values are cached whole.
const SIZES: [usize; 12] = [
    65, 100, 1000, 1023, 1024, 1025, 4095, 4096, 4097, 9000, 65_535, 70_000,
];

fn cfg(cache: u64) -> Config {
    Config {
        shards: 2,
        write_buffer_bytes: 64 * 1024,
        cache_capacity_bytes: cache,
        ..Config::default()
    }
}

/// A value that tells its key and its position apart (no two bytes patterns repeat
/// at the same place across values).
fn value(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (j as u32).wrapping_mul(31).wrapping_add(i as u32 * 7) as u8)
        .collect()
}

/// Every size, at many offsets in their blocks (keys of different lengths shift them).
fn load(e: &Engine) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut kv = Vec::new();
    for (i, &len) in SIZES.iter().cycle().take(SIZES.len() * 5).enumerate() {
        let key = format!("k{i}{}", "x".repeat(i % 13)).into_bytes();
        let v = value(i, len);
        e.set(0, &key, &v, SetOptions::default()).unwrap();
        kv.push((key, v));
    }
    kv
}

fn check(e: &Engine, kv: &[(Vec<u8>, Vec<u8>)], when: &str) {
    for (k, v) in kv {
        let got = e.get(0, k).unwrap().unwrap();
        assert!(got == v[..], "{when}: {} bytes wrong", v.len());
    }
}

#[test]
fn values_read_back_whole_with_and_without_the_cache() {
    for cache in [0, 1 << 20, 64 << 20] {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path(), cfg(cache)).unwrap();
        let kv = load(&e);
        // The last values are still in the write buffer.
        check(&e, &kv, "buffered");
        e.sync_all().unwrap();
        check(&e, &kv, "on disk");
        check(&e, &kv, "on disk, again");
        // Overwrite every other key so compaction has work, then move the rest.
        for (k, v) in kv.iter().step_by(2) {
            e.set(0, k, v, SetOptions::default()).unwrap();
        }
        e.compact_now().unwrap();
        check(&e, &kv, "after compaction");
        e.close().unwrap();
        let e = Engine::open(dir.path(), cfg(cache)).unwrap();
        check(&e, &kv, "after reopen");
        e.close().unwrap();
    }
}

/// A value of a few KiB straddles two blocks; it is cached as the value alone, and only on
/// its second miss (the doorkeeper): a first read caches nothing, a second caches about the
/// value, not the two blocks around it, and a third is a hit.
#[test]
fn a_value_of_a_few_kib_is_cached_whole_on_its_second_read() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg(64 << 20)).unwrap();
    let v = value(1, 4096);
    e.set(0, b"pad", &[b'p'; 300], SetOptions::default())
        .unwrap();
    e.set(0, b"big", &v, SetOptions::default()).unwrap();
    e.set(0, b"after", &[b'a'; 5000], SetOptions::default())
        .unwrap();
    e.sync_all().unwrap();
    e.close().unwrap();
    let e = Engine::open(dir.path(), cfg(64 << 20)).unwrap();
    let s0 = e.stats();
    assert_eq!(e.get(0, b"big").unwrap().unwrap(), &v[..]);
    let s1 = e.stats();
    assert_eq!(s1.cache_misses - s0.cache_misses, 1);
    assert_eq!(
        s1.cache_bytes, s0.cache_bytes,
        "a value read once was cached"
    );
    assert_eq!(e.get(0, b"big").unwrap().unwrap(), &v[..]);
    let s2 = e.stats();
    assert_eq!(s2.cache_misses - s1.cache_misses, 1);
    assert!(
        s2.cache_bytes > s1.cache_bytes && s2.cache_bytes - s1.cache_bytes < 4096 + 4096 / 2,
        "cached {} bytes for one 4 KiB value",
        s2.cache_bytes - s1.cache_bytes
    );
    assert_eq!(e.get(0, b"big").unwrap().unwrap(), &v[..]);
    let s3 = e.stats();
    assert_eq!(s3.cache_hits - s2.cache_hits, 1);
    assert_eq!(s3.cache_misses, s2.cache_misses);
    e.close().unwrap();
}

/// Logs larger than the 1 MiB that hint writing and compaction read at a time: the hints
/// (used at the reopen) and the compacted copies hold every value whole.
#[test]
fn logs_larger_than_a_scan_chunk_compact_and_get_hints() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || Config {
        shards: 2,
        max_file_bytes: 3 << 20,
        sync_mode: SyncMode::No,
        ..Config::default()
    };
    let e = Engine::open(dir.path(), cfg()).unwrap();
    let mut kv = Vec::new();
    for i in 0..1200usize {
        let key = format!("key{i}").into_bytes();
        let v = value(i, [100, 4096, 9000, 200_000][i % 4]);
        e.set(0, &key, &v, SetOptions::default()).unwrap();
        kv.push((key, v));
    }
    // Overwrite a third (their old copies become dead) and delete a few.
    for (i, (k, v)) in kv.iter_mut().enumerate().step_by(3) {
        *v = value(i + 1, v.len());
        e.set(0, k, v, SetOptions::default()).unwrap();
    }
    for (k, _) in kv.iter().skip(1).step_by(50) {
        e.delete(0, k).unwrap();
    }
    kv = kv
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 50 != 1)
        .map(|(_, x)| x)
        .collect();
    e.sync_all().unwrap();
    e.compact_now().unwrap();
    assert!(e.stats().compactions >= 2);
    check(&e, &kv, "after compaction");
    // Closing writes the hints of the sealed logs; the reopen reads them.
    e.close().unwrap();
    let hints = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "hint")
        })
        .count();
    assert!(hints >= 2, "{hints} hint files");
    let e = Engine::open(dir.path(), cfg()).unwrap();
    check(&e, &kv, "after reopen");
    assert_eq!(e.len(0), kv.len() as u64);
    e.close().unwrap();
}
