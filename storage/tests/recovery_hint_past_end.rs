#![allow(clippy::unwrap_used)]
//! A sealed log cut short after its hint was written (exactly at a record boundary, so a scan
//! alone would find nothing torn): start-up notices that the hint describes records past the
//! log's end, reports the loss with the file, scans the log instead of trusting the hint, and
//! serves every record that is still there. The rewritten hint matches the log, so the next
//! start-up is quiet. An encrypted log (whose pages sit at their plaintext offsets) cut at a
//! page boundary gets the same treatment.

mod common;

use common::capture::Capture;
use respite_storage::*;

#[test]
fn hint_past_the_end_of_a_cut_log_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 1,
        max_file_bytes: 8 * 1024,
        ..Config::default()
    };
    let key = |i: u32| format!("key{i:03}").into_bytes();
    let value = |i: u32| [i as u8; 100];
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    for i in 0..200u32 {
        e.set(0, &key(i), &value(i), SetOptions::default()).unwrap();
    }
    e.close().unwrap();
    let log = dir.path().join("0000000001.log");
    assert!(
        dir.path().join("0000000001.hint").exists(),
        "the first log was not sealed with a hint"
    );

    // Keep the log header (24 bytes) and the first 40 records (32 + 6 + 100 bytes each).
    let rec = 32 + 6 + 100;
    let keep = 24 + 40 * rec;
    let b = std::fs::read(&log).unwrap();
    assert!(
        b.len() > keep + rec,
        "the first log holds fewer than 41 records"
    );
    std::fs::write(&log, &b[..keep]).unwrap();

    // Opens the folder with its log going into `cap`.
    let open = |cap: &Capture| {
        Engine::open(
            dir.path(),
            Config {
                logger: cap.logger(),
                ..cfg.clone()
            },
        )
        .unwrap()
    };
    let cap = Capture::default();
    let e = open(&cap);
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
    let lines = cap.lines();
    assert!(
        lines.iter().any(|l| l.contains("shorter than its hint")
            && l.contains("0000000001.log")
            && l.contains(&format!("log_bytes={keep}"))),
        "the cut was not reported with its file: {lines:#?}"
    );
    e.close().unwrap();

    let cap = Capture::default();
    let e = open(&cap);
    assert_eq!(e.get(0, &key(39)).unwrap().unwrap(), &value(39)[..]);
    let lines = cap.lines();
    assert!(
        !lines.iter().any(|l| l.contains("shorter than its hint")),
        "the loss was reported again after the hint was rewritten: {lines:#?}"
    );
    e.close().unwrap();
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
    let key = |i: u32| format!("key{i:03}").into_bytes();
    let value = |i: u32| [i as u8; 100];
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    for i in 0..300u32 {
        e.set(0, &key(i), &value(i), SetOptions::default()).unwrap();
    }
    e.close().unwrap();
    let log = dir.path().join("0000000001.log");
    assert!(
        dir.path().join("0000000001.hint").exists(),
        "the first log was not sealed with a hint"
    );

    // Keep the first page: the log header (24 bytes) and the 29 records (138 bytes each)
    // that end inside it. Its tag file is left whole.
    let page = 4096;
    let whole = (page - 24) / (32 + 6 + 100);
    let b = std::fs::read(&log).unwrap();
    assert!(
        b.len() >= 3 * page,
        "the first log holds fewer than 3 pages"
    );
    std::fs::write(&log, &b[..page]).unwrap();

    let cap = Capture::default();
    let e = Engine::open(
        dir.path(),
        Config {
            logger: cap.logger(),
            ..cfg.clone()
        },
    )
    .unwrap();
    for i in 0..whole as u32 {
        assert_eq!(
            e.get(0, &key(i)).unwrap().unwrap(),
            &value(i)[..],
            "key{i:03} lost"
        );
    }
    // Every other key reads as its value or as absent: never an error, never garbage.
    for i in 0..300u32 {
        match e.get(0, &key(i)) {
            Ok(None) => assert!(i >= whole as u32, "key{i:03} lost"),
            Ok(Some(v)) => assert_eq!(v, &value(i)[..], "key{i:03} garbled"),
            Err(err) => panic!("key{i:03}: {err}"),
        }
    }
    assert_eq!(e.get(0, &key(299)).unwrap().unwrap(), &value(299)[..]);
    let lines = cap.lines();
    assert!(
        lines.iter().any(|l| l.contains("shorter than its hint")
            && l.contains("0000000001.log")
            && l.contains(&format!("log_bytes={page}"))),
        "the cut was not reported with its file: {lines:#?}"
    );
    e.close().unwrap();

    let cap = Capture::default();
    let e = Engine::open(
        dir.path(),
        Config {
            logger: cap.logger(),
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_eq!(e.get(0, &key(0)).unwrap().unwrap(), &value(0)[..]);
    let lines = cap.lines();
    assert!(
        !lines.iter().any(|l| l.contains("shorter than its hint")),
        "the loss was reported again after the hint was rewritten: {lines:#?}"
    );
    e.close().unwrap();
}
