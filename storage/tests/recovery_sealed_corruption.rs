#![allow(clippy::unwrap_used)]
//! A corrupt record in the middle of a sealed log (with no hint to fall back on) is reported
//! through the logger with its file and offset and skipped; every other record of that log
//! is recovered and start-up goes on.

mod common;

use common::capture::Capture;
use respite_storage::*;

#[test]
fn corrupt_record_in_sealed_log_is_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        shards: 1,
        max_file_bytes: 8 * 1024,
        ..Config::default()
    };
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    for i in 0..200u32 {
        e.set(
            0,
            format!("key{i:03}").as_bytes(),
            &[i as u8; 100],
            SetOptions::default(),
        )
        .unwrap();
    }
    e.close().unwrap();
    // The first log is sealed; remove its hint so start-up must scan it, and garble the
    // value of its 10th record (each record: 32 + 6 + 100 bytes after the 24-byte header).
    let log = dir.path().join("0000000001.log");
    let _ = std::fs::remove_file(dir.path().join("0000000001.hint"));
    let mut b = std::fs::read(&log).unwrap();
    let rec = 32 + 6 + 100;
    let bad_at = 24 + 9 * rec;
    b[bad_at + 32 + 6 + 50] ^= 0xFF;
    std::fs::write(&log, &b).unwrap();

    let cap = Capture::default();
    let logger = cap.logger();
    let e = Engine::open(dir.path(), Config { logger, ..cfg }).unwrap();
    assert_eq!(e.get(0, b"key009").unwrap(), None, "corrupt record served");
    for i in (0..200u32).filter(|&i| i != 9) {
        assert_eq!(
            e.get(0, format!("key{i:03}").as_bytes()).unwrap().unwrap(),
            &[i as u8; 100][..],
            "key{i:03} lost"
        );
    }
    let lines = cap.lines();
    assert!(
        lines.iter().any(|l| l.contains("bad record")
            && l.contains("0000000001.log")
            && l.contains(&format!("offset={bad_at}"))),
        "corruption not reported with file and offset: {lines:#?}"
    );
    e.close().unwrap();
}
