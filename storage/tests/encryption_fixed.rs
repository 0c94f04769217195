#![allow(clippy::unwrap_used)]
//! Encryption at rest on the FixedStore, through the engine: values survive restarts and
//! many synced updates, no plaintext value reaches a slot file, a wrong key is refused naming
//! a file. (The page-level cases, flipped bits, crash images and the copy-choice rule, are
//! in `fixed.rs`'s `enc_tests`, on the slot file directly.)

mod common;

use std::collections::HashMap;
use std::path::Path;

use respite_storage::*;

fn cfg(key: Option<u8>) -> Config {
    Config {
        shards: 4,
        databases: 2,
        sync_mode: SyncMode::No,
        trees: vec![(
            1,
            TreeConfig::Const {
                value_size: 8,
                backend: BackendKind::Fixed,
            },
        )],
        encryption_key: key.map(|b| MasterKey::from_bytes([b; 32])),
        ..Config::default()
    }
}

/// A distinctive 8-byte value.
fn val(i: u64, round: u64) -> Vec<u8> {
    format!("V{round:02}{i:05}").into_bytes()
}

fn files(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

#[test]
fn synced_updates_survive_restarts_and_never_reach_disk_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let mut want: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut written = Vec::new();
    let (rounds, keys) = if common::small_scale() {
        (3, 60)
    } else {
        (10, 300)
    };
    for restart in 0..3u64 {
        let e = Engine::open(dir.path(), cfg(Some(1))).unwrap();
        for (k, v) in &want {
            assert_eq!(
                e.get(1, k).unwrap().as_deref(),
                Some(&v[..]),
                "restart {restart}"
            );
        }
        for round in 0..rounds {
            for i in 0..keys {
                let v = val(i, restart * 10 + round);
                let k = format!("key{i}").into_bytes();
                e.set(1, &k, &v, SetOptions::default()).unwrap();
                want.insert(k, v.clone());
                written.push(v);
            }
            if round % 3 == 0 {
                e.delete(1, b"key7").unwrap();
                want.remove(&b"key7"[..]);
            }
            e.sync_all().unwrap();
        }
        e.close().unwrap();
    }
    let e = Engine::open(dir.path(), cfg(Some(1))).unwrap();
    assert_eq!(e.len(1), want.len() as u64);
    for (k, v) in &want {
        assert_eq!(e.get(1, k).unwrap().as_deref(), Some(&v[..]));
    }
    drop(e);
    let slots = files(dir.path(), ".slots");
    assert_eq!(slots.len(), 4, "one slot file per shard");
    assert_eq!(
        files(dir.path(), ".slots.tag").len(),
        4,
        "each with its tag file"
    );
    let written: std::collections::HashSet<Vec<u8>> = written.into_iter().collect();
    for p in slots.iter().chain(files(dir.path(), ".slots.tag").iter()) {
        let b = std::fs::read(p).unwrap();
        if let Some(w) = b.windows(8).find(|w| written.contains(*w)) {
            panic!(
                "{} holds the plaintext value {}",
                p.display(),
                String::from_utf8_lossy(w)
            );
        }
    }
}

#[test]
fn wrong_key_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg(Some(1))).unwrap();
    e.set(1, b"k", b"12345678", SetOptions::default()).unwrap();
    e.close().unwrap();
    let err = Engine::open(dir.path(), cfg(Some(2))).err().unwrap();
    // The folder's marker if the engine checks it first, else the slot file's tag file.
    match &err {
        Error::WrongKey { file } => {
            let name = file.to_string_lossy();
            assert!(
                name.ends_with(".slots.tag") || name.ends_with("ENCRYPTION"),
                "{err}"
            );
        }
        _ => panic!("expected WrongKey, got {err}"),
    }
    let e = Engine::open(dir.path(), cfg(Some(1))).unwrap();
    assert_eq!(e.get(1, b"k").unwrap().as_deref(), Some(&b"12345678"[..]));
    // FLUSHDB zeroes the slots (sealed like any write); a restart finds nothing.
    e.flush(Some(1)).unwrap();
    e.sync_all().unwrap();
    e.close().unwrap();
    let e = Engine::open(dir.path(), cfg(Some(1))).unwrap();
    assert_eq!(e.len(1), 0);
}
