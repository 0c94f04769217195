#![allow(clippy::unwrap_used)]
//! A crash between unlinking a compacted log and unlinking its hint leaves the hint behind.
//! Start-up removes it (nothing refers to it) and serves every key's newest value.

use respite_storage::*;

fn cfg() -> Config {
    Config {
        shards: 2,
        write_buffer_bytes: 4096,
        max_file_bytes: 8 * 1024,
        // Only compact_now compacts.
        compaction_dead_ratio: 2.0,
        inline_value_max: 16,
        ..Config::default()
    }
}

fn files(dir: &std::path::Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    v.sort();
    v
}

#[test]
fn orphan_hint_is_removed_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let key = |i: usize| format!("key{i:04}").into_bytes();
    let value = |i: usize, round: u8| vec![round; 100 + i % 7];
    let e = Engine::open(dir.path(), cfg()).unwrap();
    for i in 0..300 {
        e.set(0, &key(i), &value(i, 1), SetOptions::default())
            .unwrap();
    }
    e.close().unwrap();

    // The first sealed log and its hint, as they were before compaction.
    let hint = files(dir.path(), ".hint").into_iter().next().unwrap();
    let log = hint.replace(".hint", ".log");
    let saved = std::fs::read(dir.path().join(&hint)).unwrap();

    // Every key rewritten: the first log is all dead and compaction deletes it with its hint.
    let e = Engine::open(dir.path(), cfg()).unwrap();
    for i in 0..300 {
        e.set(0, &key(i), &value(i, 2), SetOptions::default())
            .unwrap();
    }
    e.compact_now().unwrap();
    e.close().unwrap();
    assert!(
        !dir.path().join(&log).exists(),
        "{log} was not compacted away"
    );
    assert!(!dir.path().join(&hint).exists());

    // The crash between the two unlinks: the hint is back, its log is not.
    std::fs::write(dir.path().join(&hint), &saved).unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    assert!(
        !dir.path().join(&hint).exists(),
        "start-up left the orphan hint {hint}"
    );
    for i in 0..300 {
        assert_eq!(e.get(0, &key(i)).unwrap().unwrap(), value(i, 2), "key {i}");
    }
    // The directory works on: a write after the clean-up survives another restart.
    e.set(0, b"after", b"restart", SetOptions::default())
        .unwrap();
    e.close().unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    assert_eq!(e.get(0, b"after").unwrap().unwrap(), &b"restart"[..]);
    assert_eq!(e.len(0), 301);
    e.close().unwrap();
}
