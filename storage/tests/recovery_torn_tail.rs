#![allow(clippy::unwrap_used)]
//! Torn tail: the last record of the active log cut at every byte offset, or garbled at
//! every byte. Recovery keeps every earlier record, drops the torn one, cuts the file back to
//! the last valid record and never panics.

use std::path::Path;

use respite_storage::*;

fn cfg() -> Config {
    Config {
        shards: 1,
        databases: 2,
        ..Config::default()
    }
}

fn log_file(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    assert_eq!(logs.len(), 1);
    logs.pop().unwrap()
}

fn check_earlier(e: &Engine) {
    for i in 0..20u32 {
        let want = format!("value-{i}").repeat(i as usize % 5 + 1);
        assert_eq!(
            e.get(i as usize % 2, format!("key{i}").as_bytes())
                .unwrap()
                .unwrap(),
            want.as_bytes(),
            "earlier record {i} lost"
        );
    }
}

#[test]
fn torn_tail_at_every_offset() {
    let pristine = tempfile::tempdir().unwrap();
    let e = Engine::open(pristine.path(), cfg()).unwrap();
    for i in 0..20u32 {
        let v = format!("value-{i}").repeat(i as usize % 5 + 1);
        e.set(
            i as usize % 2,
            format!("key{i}").as_bytes(),
            v.as_bytes(),
            SetOptions::default(),
        )
        .unwrap();
    }
    e.sync_all().unwrap();
    // The log's records end here (the file itself is preallocated further while open).
    let before = e.stats().disk_bytes;
    let last_value = vec![b'z'; 100];
    e.set(1, b"last", &last_value, SetOptions::default())
        .unwrap();
    e.close().unwrap();
    let path = log_file(pristine.path());
    let full = std::fs::read(&path).unwrap();
    let rec_len = full.len() as u64 - before;
    assert_eq!(rec_len, 32 + 4 + 100, "record framing changed?");

    for cut in before..=full.len() as u64 {
        for garble in [false, true] {
            if garble && cut == full.len() as u64 {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join(path.file_name().unwrap());
            let mut bytes = full.clone();
            if garble {
                bytes[cut as usize] ^= 0x5A;
            } else {
                bytes.truncate(cut as usize);
            }
            std::fs::write(&p, &bytes).unwrap();
            let e = Engine::open(dir.path(), cfg()).unwrap();
            check_earlier(&e);
            let intact = !garble && cut == full.len() as u64;
            let got = e.get(1, b"last").unwrap();
            if intact {
                assert_eq!(got.unwrap(), &last_value[..]);
            } else {
                assert_eq!(
                    got, None,
                    "torn record at cut {cut} (garble {garble}) came back"
                );
                assert_eq!(
                    std::fs::metadata(&p).unwrap().len(),
                    before,
                    "tail not cut back to the last valid record"
                );
            }
            // New writes after the cut land after the last valid record and survive.
            e.set(0, b"after", b"cut", SetOptions::default()).unwrap();
            e.close().unwrap();
            let e = Engine::open(dir.path(), cfg()).unwrap();
            check_earlier(&e);
            assert_eq!(e.get(0, b"after").unwrap().unwrap(), &b"cut"[..]);
            drop(e);
        }
    }
}
