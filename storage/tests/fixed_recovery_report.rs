#![allow(clippy::unwrap_used)]
//! A FixedStore slot that fails its CRC at start-up is reported through the logger with its
//! file and byte offset and freed; every other key is recovered, the slot is reused, and the
//! next start-up is clean.

mod common;

use common::capture::Capture;
use respite_storage::*;

fn cfg(logger: slog::Logger) -> Config {
    Config {
        shards: 1,
        databases: 2,
        trees: vec![(
            1,
            TreeConfig::Const {
                value_size: 24,
                backend: BackendKind::Fixed,
            },
        )],
        logger,
        ..Config::default()
    }
}

#[test]
fn unreadable_slot_is_reported_and_freed() {
    let dir = tempfile::tempdir().unwrap();
    let discard = slog::Logger::root(slog::Discard, slog::o!());
    let e = Engine::open(dir.path(), cfg(discard.clone())).unwrap();
    for i in 0..10u8 {
        e.set(1, &[b'k', i], &[i; 24], SetOptions::default())
            .unwrap();
    }
    e.close().unwrap();
    let path = dir.path().join("fixed-01-0000.slots");
    let mut b = std::fs::read(&path).unwrap();
    // Slots of 32 + 64 + 24 = 120 bytes after the 32-byte file header, filled in order:
    // garble a value byte of the 4th (key "k\x03").
    let bad_at = 32 + 3 * 120;
    b[bad_at + 32 + 2 + 5] ^= 0xFF;
    std::fs::write(&path, &b).unwrap();

    let cap = Capture::default();
    let logger = cap.logger();
    let e = Engine::open(dir.path(), cfg(logger)).unwrap();
    assert_eq!(
        e.get(1, b"k\x03").unwrap(),
        None,
        "a corrupt slot was served"
    );
    for i in (0..10u8).filter(|&i| i != 3) {
        assert_eq!(e.get(1, &[b'k', i]).unwrap().unwrap(), &[i; 24][..]);
    }
    assert_eq!(e.len(1), 9);
    assert_eq!(e.fixed_slot_usage(1).unwrap().0, 9);
    let lines = cap.lines();
    assert!(
        lines.iter().any(|l| l.contains("unreadable slot")
            && l.contains("fixed-01-0000.slots")
            && l.contains(&format!("offset={bad_at}"))),
        "the bad slot was not reported with its file and offset: {lines:#?}"
    );
    // The freed slot is reused, and the next start-up finds nothing wrong.
    e.set(1, b"new", &[7; 24], SetOptions::default()).unwrap();
    assert_eq!(e.fixed_slot_usage(1).unwrap().0, 10);
    e.close().unwrap();
    let cap = Capture::default();
    let logger = cap.logger();
    let e = Engine::open(dir.path(), cfg(logger)).unwrap();
    assert_eq!(e.get(1, b"new").unwrap().unwrap(), &[7; 24][..]);
    assert_eq!(e.len(1), 10);
    let lines = cap.lines();
    assert!(
        !lines.iter().any(|l| l.contains("unreadable")),
        "{lines:#?}"
    );
    e.close().unwrap();
}

/// A slot file cut short (a torn copy, a damaged disk) is reported with the file and the
/// bytes dropped, never silently: keys in the slots before the cut are all served, and the
/// file gets its length back so the next start-up is clean.
#[test]
fn truncated_slot_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let discard = slog::Logger::root(slog::Discard, slog::o!());
    let e = Engine::open(dir.path(), cfg(discard.clone())).unwrap();
    for i in 0..10u8 {
        e.set(1, &[b'k', i], &[i; 24], SetOptions::default())
            .unwrap();
    }
    e.close().unwrap();
    let path = dir.path().join("fixed-01-0000.slots");
    let full = std::fs::metadata(&path).unwrap().len();
    // Cut inside the 8th slot (32-byte file header, 120-byte slots, filled in order).
    let cut = 32 + 7 * 120 + 50;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let cap = Capture::default();
    let logger = cap.logger();
    let e = Engine::open(dir.path(), cfg(logger)).unwrap();
    for i in 0..7u8 {
        assert_eq!(e.get(1, &[b'k', i]).unwrap().unwrap(), &[i; 24][..]);
    }
    assert_eq!(e.len(1), 7, "keys past the cut cannot be there");
    let lines = cap.lines();
    assert!(
        lines.iter().any(|l| l.contains("slot file truncated")
            && l.contains("fixed-01-0000.slots")
            && l.contains(&format!("dropped_bytes={}", full - cut))),
        "the cut was not reported: {lines:#?}"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), full);
    e.set(1, b"new", &[7; 24], SetOptions::default()).unwrap();
    e.close().unwrap();

    let cap = Capture::default();
    let logger = cap.logger();
    let e = Engine::open(dir.path(), cfg(logger)).unwrap();
    assert_eq!(e.len(1), 8);
    let lines = cap.lines();
    assert!(!lines.iter().any(|l| l.contains("truncated")), "{lines:#?}");
    e.close().unwrap();
}
