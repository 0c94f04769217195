#![allow(clippy::unwrap_used)]
//! Sealed logs get hint files; start-up uses them, and a corrupt, truncated or missing hint
//! falls back to scanning its log with the same result.

use std::path::Path;

use respite_storage::*;

fn cfg() -> Config {
    Config {
        shards: 1,
        max_file_bytes: 8 * 1024,
        inline_value_max: 16,
        ..Config::default()
    }
}

fn hints(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "hint"))
        .collect();
    v.sort();
    v
}

fn check(e: &Engine) {
    for i in 0..300u32 {
        let k = format!("key{i}");
        let got = e.get(0, k.as_bytes()).unwrap();
        if i % 7 == 0 {
            assert_eq!(got, None, "{k} was deleted");
        } else {
            let want = format!("v{i}-").repeat(if i % 2 == 0 { 1 } else { 20 });
            assert_eq!(got.unwrap(), want.as_bytes(), "{k}");
            let x = e.expiry(0, k.as_bytes()).unwrap().unwrap();
            assert_eq!(x, (i % 3 == 0).then_some(4_000_000_000_000 + i as u64));
        }
    }
}

/// Writes the keys `check` expects: values of 5-7 and 100-140 bytes, some with an expiry,
/// every seventh deleted.
fn fill(e: &Engine) {
    for i in 0..300u32 {
        let v = format!("v{i}-").repeat(if i % 2 == 0 { 1 } else { 20 });
        let expiry = if i % 3 == 0 {
            Expiry::At(4_000_000_000_000 + i as u64)
        } else {
            Expiry::Persist
        };
        e.set(
            0,
            format!("key{i}").as_bytes(),
            v.as_bytes(),
            SetOptions {
                expiry,
                ..SetOptions::default()
            },
        )
        .unwrap();
    }
    for i in (0..300u32).step_by(7) {
        e.delete(0, format!("key{i}").as_bytes()).unwrap();
    }
}

/// Opens `dir` with `inline_value_max` = `limit`, runs `check`, closes, and returns how many
/// of check's reads went through the block cache (hits and misses).
fn check_counting_cache_reads(dir: &Path, limit: usize) -> u64 {
    let cache_reads = |e: &Engine| {
        let s = e.stats();
        s.cache_hits + s.cache_misses
    };
    let cfg = Config {
        inline_value_max: limit,
        ..cfg()
    };
    let e = Engine::open(dir, cfg).unwrap();
    let before = cache_reads(&e);
    check(&e);
    let read = cache_reads(&e) - before;
    e.close().unwrap();
    read
}

#[test]
fn hints_used_and_corrupt_hints_fall_back_to_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    fill(&e);
    e.close().unwrap();
    let hs = hints(dir.path());
    assert!(hs.len() >= 2, "sealed logs got no hints: {hs:?}");

    let e = Engine::open(dir.path(), cfg()).unwrap();
    check(&e);
    e.close().unwrap();

    // Flip a byte in one hint, truncate another, delete a third.
    let mut b = std::fs::read(&hs[0]).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0xFF;
    std::fs::write(&hs[0], &b).unwrap();
    let b = std::fs::read(&hs[1]).unwrap();
    std::fs::write(&hs[1], &b[..b.len() - 3]).unwrap();
    if hs.len() > 2 {
        std::fs::remove_file(&hs[2]).unwrap();
    }
    let e = Engine::open(dir.path(), cfg()).unwrap();
    check(&e);
    e.close().unwrap();
    // The bad hints were rewritten from the logs.
    assert!(hints(dir.path()).len() >= hs.len());
    let e = Engine::open(dir.path(), cfg()).unwrap();
    check(&e);
    e.close().unwrap();
}

/// A folder written with one `inline_value_max` opens whole with another: start-up fills the
/// in-memory copies of values the hints do not carry from the logs, and drops those the
/// hints carry beyond the new limit.
#[test]
fn a_changed_inline_value_max_reads_the_same_values() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    fill(&e);
    e.close().unwrap();
    assert!(hints(dir.path()).len() >= 2, "sealed logs got no hints");

    // Every value in memory: reading them all touches no block cache.
    let read = check_counting_cache_reads(dir.path(), 200);
    assert_eq!(read, 0, "a value was read from a log");
    // None in memory: the 257 live values are all read from the logs.
    let read = check_counting_cache_reads(dir.path(), 0);
    assert!(read >= 257, "{read} reads from the logs");

    let e = Engine::open(dir.path(), cfg()).unwrap();
    check(&e);
}
