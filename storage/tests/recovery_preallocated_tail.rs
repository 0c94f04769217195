#![allow(clippy::unwrap_used)]
//! The active log is preallocated: after a crash it ends in zeros past its last record. That
//! zero tail is the expected end of the log: recovery loses nothing, reports no corruption and
//! trims the file to its records; a sealed log ends at its last record. A torn record followed
//! by the zeros is still cut and reported.

mod common;

use std::path::{Path, PathBuf};

use common::capture::Capture;
use respite_storage::*;

fn cfg(shards: usize, max_file_bytes: u64, logger: slog::Logger) -> Config {
    Config {
        shards,
        databases: 2,
        max_file_bytes,
        logger,
        ..Config::default()
    }
}

fn logs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

/// Where the records of a log end, walking their framing (a zero GSN ends the walk).
fn records_end(b: &[u8]) -> usize {
    let mut at = 24;
    while at + 32 <= b.len() && b[at + 4..at + 12] != [0; 8] {
        let key = u32::from_le_bytes(b[at + 24..at + 28].try_into().unwrap()) as usize;
        let value = u32::from_le_bytes(b[at + 28..at + 32].try_into().unwrap()) as usize;
        at += 32 + key + value;
    }
    at
}

fn value(i: u32) -> Vec<u8> {
    format!("value-{i}-")
        .repeat(i as usize % 7 + 1)
        .into_bytes()
}

fn write_keys(e: &Engine, range: std::ops::Range<u32>) {
    for i in range {
        e.set(
            i as usize % 2,
            format!("key{i}").as_bytes(),
            &value(i),
            SetOptions::default(),
        )
        .unwrap();
    }
}

fn check_keys(e: &Engine, range: std::ops::Range<u32>) {
    for i in range {
        assert_eq!(
            e.get(i as usize % 2, format!("key{i}").as_bytes())
                .unwrap()
                .as_deref(),
            Some(&value(i)[..]),
            "key{i} lost"
        );
    }
}

#[test]
fn zero_tail_of_a_preallocated_log_is_its_quiet_end() {
    let dir = tempfile::tempdir().unwrap();
    let discard = slog::Logger::root(slog::Discard, slog::o!());
    let e = Engine::open(dir.path(), cfg(4, 128 << 20, discard)).unwrap();
    write_keys(&e, 0..300);
    e.sync_all().unwrap();
    let records = e.stats().disk_bytes;
    let log = logs(dir.path()).pop().unwrap();
    let on_disk = std::fs::metadata(&log).unwrap().len();
    assert!(
        on_disk > records,
        "the active log is not preallocated ({on_disk} bytes on disk, {records} of records)"
    );
    drop(e); // crash: no close, no trim

    let cap = Capture::default();
    let logger = cap.logger();
    let e = Engine::open(dir.path(), cfg(4, 128 << 20, logger)).unwrap();
    check_keys(&e, 0..300);
    assert_eq!(
        cap.loud(),
        Vec::<String>::new(),
        "a clean zero tail was reported"
    );
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        records,
        "zero tail not trimmed at recovery"
    );
    // New records follow the old ones and survive a crash too.
    write_keys(&e, 300..400);
    e.sync_all().unwrap();
    drop(e);
    let e = Engine::open(dir.path(), cfg(4, 128 << 20, cap.logger())).unwrap();
    check_keys(&e, 0..400);
    assert_eq!(cap.loud(), Vec::<String>::new());
    e.close().unwrap();
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        records_end(&std::fs::read(&log).unwrap()) as u64,
        "a closed log still has its preallocated tail"
    );
}

#[test]
fn sealed_logs_are_trimmed_to_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let discard = slog::Logger::root(slog::Discard, slog::o!());
    let e = Engine::open(dir.path(), cfg(2, 16 * 1024, discard.clone())).unwrap();
    write_keys(&e, 0..600);
    e.sync_all().unwrap();
    let all = logs(dir.path());
    assert!(all.len() >= 3, "expected several sealed logs, got {all:?}");
    for sealed in &all[..all.len() - 1] {
        let b = std::fs::read(sealed).unwrap();
        assert_eq!(
            records_end(&b),
            b.len(),
            "sealed log {} keeps a zero tail",
            sealed.display()
        );
    }
    drop(e);
    let cap = Capture::default();
    let e = Engine::open(dir.path(), cfg(2, 16 * 1024, cap.logger())).unwrap();
    check_keys(&e, 0..600);
    assert_eq!(cap.loud(), Vec::<String>::new());
    e.close().unwrap();
}

#[test]
fn torn_record_followed_by_zeros_is_cut_and_reported() {
    let pristine = tempfile::tempdir().unwrap();
    let discard = slog::Logger::root(slog::Discard, slog::o!());
    let e = Engine::open(pristine.path(), cfg(1, 128 << 20, discard.clone())).unwrap();
    write_keys(&e, 0..50);
    e.sync_all().unwrap();
    let before = e.stats().disk_bytes as usize;
    e.set(1, b"last", &[b'z'; 300], SetOptions::default())
        .unwrap();
    e.sync_all().unwrap();
    let after = e.stats().disk_bytes as usize;
    drop(e); // crash: the file keeps its preallocated zeros
    let log = logs(pristine.path()).pop().unwrap();
    let full = std::fs::read(&log).unwrap();
    assert!(full.len() > after, "the active log is not preallocated");
    assert!(full[after..].iter().all(|&b| b == 0));

    // The last record torn at several points: the rest of it never reached the disk, so the
    // zeros of the preallocated space follow what did.
    for cut in [
        before + 1,
        before + 20,
        before + 32,
        before + 100,
        after - 1,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(log.file_name().unwrap());
        let mut b = full.clone();
        b[cut..after].fill(0);
        std::fs::write(&p, &b).unwrap();
        let cap = Capture::default();
        let e = Engine::open(dir.path(), cfg(1, 128 << 20, cap.logger())).unwrap();
        check_keys(&e, 0..50);
        assert_eq!(
            e.get(1, b"last").unwrap(),
            None,
            "torn record at {cut} served"
        );
        let loud = cap.loud();
        assert!(
            loud.iter()
                .any(|l| l.contains("torn tail") && l.contains(&format!("offset={before}"))),
            "torn record at {cut} not reported: {loud:#?}"
        );
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            before as u64,
            "not cut back to the last valid record"
        );
        e.set(0, b"after", b"cut", SetOptions::default()).unwrap();
        e.close().unwrap();
        let e = Engine::open(dir.path(), cfg(1, 128 << 20, discard.clone())).unwrap();
        check_keys(&e, 0..50);
        assert_eq!(e.get(0, b"after").unwrap().as_deref(), Some(&b"cut"[..]));
        e.close().unwrap();
    }
}
