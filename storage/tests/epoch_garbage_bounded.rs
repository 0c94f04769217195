#![allow(clippy::unwrap_used)]
//! Hazard 6: under constant updates the index retires an entry per write through
//! crossbeam-epoch; that garbage must be reclaimed as it goes, not pile up. A few keys are
//! overwritten a million times and the process's resident memory may not grow with the
//! number of updates. (Its own test binary, so its RSS is its own.)

use respite_storage::*;

/// Resident set size of this process, in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // statm counts pages; 4 KiB on the x86-64 and aarch64 Linux machines this runs on.
    pages * 4096
}

#[test]
fn retired_entries_are_reclaimed_under_constant_updates() {
    // Under valgrind (RESPITE_TEST_SCALE=small) RSS means nothing: exercise the path only.
    let small = std::env::var("RESPITE_TEST_SCALE").as_deref() == Ok("small");
    let (warmup, total) = if small {
        (2_000, 20_000)
    } else {
        (200_000, 1_000_000)
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 4,
        sync_mode: SyncMode::No,
        ..Config::default()
    };
    let e = Engine::open(dir.path(), cfg).unwrap();
    // 64-byte values live inline in the entry, so every update retires a whole entry
    // (about 100 bytes): a million of them kept would be about 100 MB.
    let keys: Vec<Vec<u8>> = (0..16).map(|i| format!("hot{i}").into_bytes()).collect();
    let mut value = [0u8; 64];
    let mut after_warmup = 0;
    for n in 0..total {
        value[..8].copy_from_slice(&(n as u64).to_le_bytes());
        e.set(0, &keys[n % keys.len()], &value, SetOptions::default())
            .unwrap();
        if n + 1 == warmup {
            after_warmup = rss_bytes();
        }
    }
    let grown = rss_bytes().saturating_sub(after_warmup);
    // Every key holds its last write.
    for (i, k) in keys.iter().enumerate() {
        let last = (0..total).rev().find(|n| n % keys.len() == i).unwrap();
        let got = e.get(0, k).unwrap().unwrap();
        assert_eq!(&got[..8], &(last as u64).to_le_bytes());
    }
    if !small {
        assert!(
            grown < 32 << 20,
            "RSS grew by {} MiB over {} updates of 16 keys: retired entries are not reclaimed",
            grown >> 20,
            total - warmup
        );
    }
    e.close().unwrap();
}
