#![allow(clippy::unwrap_used)]
//! Torn slot write (hazard 5): an update of a FixedStore key is cut at every byte offset of
//! its new slot (a crash mid-`pwrite`). Recovery must still read the previous, acknowledged
//! value (or the new one once the cut is past the bytes its CRC covers), never lose the key.

use respite_storage::*;

const SIZE: usize = 100;

fn cfg() -> Config {
    Config {
        shards: 1,
        databases: 2,
        sync_mode: SyncMode::No,
        trees: vec![(
            1,
            TreeConfig::Const {
                value_size: SIZE,
                backend: BackendKind::Fixed,
            },
        )],
        ..Config::default()
    }
}

fn slot_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "slots"))
        .collect();
    assert_eq!(
        v.len(),
        1,
        "one shard, one ConstTree database: one slot file"
    );
    v.pop().unwrap()
}

#[test]
fn torn_update_keeps_the_previous_value() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = vec![0x11u8; SIZE];
    let v2 = vec![0x22u8; SIZE];
    let e = Engine::open(dir.path(), cfg()).unwrap();
    e.set(1, b"key", &v1, SetOptions::default()).unwrap();
    e.close().unwrap();
    let path = slot_file(dir.path());
    let before = std::fs::read(&path).unwrap();

    // The update, then a crash: its slot is in the page cache, the old slot not yet freed.
    let e = Engine::open(dir.path(), cfg()).unwrap();
    e.set(1, b"key", &v2, SetOptions::default()).unwrap();
    drop(e);
    let after = std::fs::read(&path).unwrap();
    assert_eq!(before.len(), after.len(), "no growth for one more slot");
    let changed: Vec<usize> = (0..after.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    let (first, last) = (changed[0], *changed.last().unwrap());
    // File header 32 bytes, slots of 32 + 64 (max key) + 100 bytes rounded to 200.
    let slot_size = 200;
    let slot_start = 32 + (first - 32) / slot_size * slot_size;
    assert!(last < slot_start + slot_size, "only the new slot changed");
    let covered = slot_start + 32 + 3 + SIZE; // header + key + value: what the CRC covers

    for cut in 0..=slot_size {
        let mut torn = before.clone();
        torn[slot_start..slot_start + cut].copy_from_slice(&after[slot_start..slot_start + cut]);
        std::fs::write(&path, &torn).unwrap();
        let e = Engine::open(dir.path(), cfg()).unwrap();
        let got = e.get(1, b"key").unwrap().unwrap();
        if slot_start + cut < covered {
            assert_eq!(&got[..], &v1[..], "cut at byte {cut} of the new slot");
        } else {
            assert_eq!(&got[..], &v2[..], "cut at byte {cut} (whole slot written)");
        }
        assert_eq!(e.len(1), 1);
        assert_eq!(e.fixed_slot_usage(1).unwrap().0, 1, "losers are freed");
        drop(e);
    }
}
