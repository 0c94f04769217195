#![allow(clippy::unwrap_used)]
//! A sealed log cut short after its hint was written (exactly at a record boundary, so a scan
//! alone would find nothing torn): start-up notices that the hint describes records past the
//! log's end, reports the loss with the file, scans the log instead of trusting the hint, and
//! serves every record that is still there. The rewritten hint matches the log, so the next
//! start-up is quiet. An encrypted log (whose pages sit at their plaintext offsets) cut at a
//! page boundary gets the same treatment.

mod common;

use std::path::Path;

use common::capture::Capture;
use respite_storage::*;

/// Bytes of one record of `key`/`value` below: header, key, value.
const RECORD: usize = 32 + 6 + 100;
/// Bytes of a log's header.
const LOG_HEADER: usize = 24;

fn key(i: u32) -> Vec<u8> {
    format!("key{i:03}").into_bytes()
}

fn value(i: u32) -> [u8; 100] {
    [i as u8; 100]
}

/// Sets keys `0..n` in order, closes, and cuts the first (sealed, hinted) log to `keep`
/// bytes; it must have held at least `at_least` bytes.
fn fill_and_cut(dir: &Path, cfg: &Config, n: u32, keep: usize, at_least: usize) {
    let e = Engine::open(dir, cfg.clone()).unwrap();
    for i in 0..n {
        e.set(0, &key(i), &value(i), SetOptions::default()).unwrap();
    }
    e.close().unwrap();
    let log = dir.join("0000000001.log");
    assert!(
        dir.join("0000000001.hint").exists(),
        "the first log was not sealed with a hint"
    );
    let b = std::fs::read(&log).unwrap();
    assert!(
        b.len() >= at_least,
        "the first log holds {} bytes, fewer than {at_least}",
        b.len()
    );
    std::fs::write(&log, &b[..keep]).unwrap();
}

/// Opens the folder with its log going into `cap`.
fn open(dir: &Path, cfg: &Config, cap: &Capture) -> Engine {
    Engine::open(
        dir,
        Config {
            logger: cap.logger(),
            ..cfg.clone()
        },
    )
    .unwrap()
}

/// The first start-up after the cut reported it, naming the log and its length.
fn assert_cut_reported(cap: &Capture, log_bytes: usize) {
    let lines = cap.lines();
    assert!(
        lines.iter().any(|l| l.contains("shorter than its hint")
            && l.contains("0000000001.log")
            && l.contains(&format!("log_bytes={log_bytes}"))),
        "the cut was not reported with its file: {lines:#?}"
    );
}

/// The next start-up serves key `i` and is quiet: the hint was rewritten to match the log.
fn assert_reopen_quiet(dir: &Path, cfg: &Config, i: u32) {
    let cap = Capture::default();
    let e = open(dir, cfg, &cap);
    assert_eq!(e.get(0, &key(i)).unwrap().unwrap(), &value(i)[..]);
    let lines = cap.lines();
    assert!(
        !lines.iter().any(|l| l.contains("shorter than its hint")),
        "the loss was reported again after the hint was rewritten: {lines:#?}"
    );
    e.close().unwrap();
}

#[test]
fn hint_past_the_end_of_a_cut_log_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 1,
        max_file_bytes: 8 * 1024,
        ..Config::default()
    };
    // Keep the log header and the first 40 records.
    let keep = LOG_HEADER + 40 * RECORD;
    fill_and_cut(dir.path(), &cfg, 200, keep, keep + RECORD + 1);

    let cap = Capture::default();
    let e = open(dir.path(), &cfg, &cap);
    for i in 0..40u32 {
        assert_eq!(
            e.get(0, &key(i)).unwrap().unwrap(),
            &value(i)[..],
            "key{i:03} lost"
        );
    }
    // The records that were cut off are gone, and reading them is not an error.
    assert_eq!(e.get(0, &key(40)).unwrap(), None);
    // Records of the later logs are untouched.
    assert_eq!(e.get(0, &key(199)).unwrap().unwrap(), &value(199)[..]);
    assert_cut_reported(&cap, keep);
    e.close().unwrap();

    assert_reopen_quiet(dir.path(), &cfg, 39);
}

#[test]
fn hint_past_the_end_of_a_cut_encrypted_log_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 1,
        max_file_bytes: 16 * 1024,
        sync_mode: SyncMode::No,
        encryption_key: Some(MasterKey::from_bytes([9; 32])),
        ..Config::default()
    };
    // Keep the first page: the log header and the 29 records that end inside it. Its tag
    // file is left whole.
    let page = 4096;
    let whole = ((page - LOG_HEADER) / RECORD) as u32;
    fill_and_cut(dir.path(), &cfg, 300, page, 3 * page);

    let cap = Capture::default();
    let e = open(dir.path(), &cfg, &cap);
    for i in 0..whole {
        assert_eq!(
            e.get(0, &key(i)).unwrap().unwrap(),
            &value(i)[..],
            "key{i:03} lost"
        );
    }
    // Every other key reads as its value or as absent: never an error, never garbage.
    for i in 0..300u32 {
        match e.get(0, &key(i)) {
            Ok(None) => assert!(i >= whole, "key{i:03} lost"),
            Ok(Some(v)) => assert_eq!(v, &value(i)[..], "key{i:03} garbled"),
            Err(err) => panic!("key{i:03}: {err}"),
        }
    }
    assert_eq!(e.get(0, &key(299)).unwrap().unwrap(), &value(299)[..]);
    assert_cut_reported(&cap, page);
    e.close().unwrap();

    assert_reopen_quiet(dir.path(), &cfg, 0);
}
