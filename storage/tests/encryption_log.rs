#![allow(clippy::unwrap_used)]
//! Encryption at rest of the Bitcask side (docs/encryption.md): logs as sealed pages with a
//! journalled tail page, decrypting reads, recovery page by page, encrypted hints.

mod common;

use std::path::{Path, PathBuf};

use common::capture::Capture;
use respite_storage::*;

const PAGE: usize = 4096;
const ENTRY: usize = 40;
const TAG_HEADER: usize = 64;
/// Offset in a log's tag file of data page `i`'s entry (after the two journal slots).
/// Sets `{prefix}{i}` to `value(i + base, size)` in database 0 for each i of `range`.
fn set_range(e: &Engine, prefix: &str, range: std::ops::Range<u32>, base: u32, size: usize) {
    for i in range {
        e.set(
            0,
            format!("{prefix}{i}").as_bytes(),
            &value(i + base, size),
            SetOptions::default(),
        )
        .unwrap();
    }
}

fn entry_off(i: usize) -> usize {
    TAG_HEADER + 2 * (ENTRY + PAGE) + i * ENTRY
}
/// Offset in a log's tag file of journal slot `s`'s entry (its page follows).
fn journal_off(s: usize) -> usize {
    TAG_HEADER + s * (ENTRY + PAGE)
}

fn key(b: u8) -> MasterKey {
    MasterKey::from_bytes([b; 32])
}

fn cfg() -> Config {
    Config {
        shards: 2,
        databases: 2,
        sync_mode: SyncMode::No,
        inline_value_max: 16,
        encryption_key: Some(key(7)),
        ..Config::default()
    }
}

/// A value of `len` bytes that depends on `i`.
fn value(i: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i as usize * 31 + j * 7 + j / 251) as u8)
        .collect()
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn newest_log(dir: &Path) -> PathBuf {
    files(dir, ".log").pop().unwrap()
}

fn tag_of(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.tag", p.display()))
}

fn flip(path: &Path, at: usize, mask: u8) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= mask;
    std::fs::write(path, &b).unwrap();
}

#[test]
fn round_trip_over_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [0usize, 5, 16, 17, 200, 4095, 4096, 10_000, 100_000];
    let e = Engine::open(dir.path(), cfg()).unwrap();
    for (i, &n) in sizes.iter().enumerate() {
        e.set(
            i % 2,
            format!("k{i}").as_bytes(),
            &value(i as u32, n),
            SetOptions::default(),
        )
        .unwrap();
        // Read back at once (from the write buffer or the pages written so far).
        assert_eq!(
            e.get(i % 2, format!("k{i}").as_bytes()).unwrap().unwrap(),
            &value(i as u32, n)[..]
        );
    }
    e.close().unwrap();
    for round in 0..3 {
        let e = Engine::open(dir.path(), cfg()).unwrap();
        for (i, &n) in sizes.iter().enumerate() {
            assert_eq!(
                e.get(i % 2, format!("k{i}").as_bytes()).unwrap().unwrap(),
                &value(i as u32, n)[..],
                "k{i} ({n} bytes) after restart {round}"
            );
        }
        e.set(
            0,
            format!("r{round}").as_bytes(),
            &value(99, 300),
            SetOptions::default(),
        )
        .unwrap();
        if round == 1 {
            // A crash after a sync: the tail page comes back from the journal.
            e.sync_all().unwrap();
            drop(e);
        } else {
            e.close().unwrap();
        }
    }
    let e = Engine::open(dir.path(), cfg()).unwrap();
    for round in 0..3 {
        assert_eq!(
            e.get(0, format!("r{round}").as_bytes()).unwrap().unwrap(),
            &value(99, 300)[..]
        );
    }
    e.close().unwrap();
    // The log holds whole pages, each with its entry after the journal.
    let log = newest_log(dir.path());
    assert_eq!(std::fs::metadata(&log).unwrap().len() % PAGE as u64, 0);
    assert!(tag_of(&log).exists());
}

/// Many restarts, each after a few small writes synced one by one (the tail page rewritten
/// to the journal each time), some ending in a crash: nothing synced is lost.
#[test]
fn restarts_with_small_tail_rewrites_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0u32;
    for round in 0..40u32 {
        let e = Engine::open(dir.path(), cfg()).unwrap();
        for i in 0..n {
            assert_eq!(
                e.get(0, format!("k{i}").as_bytes()).unwrap().unwrap(),
                &value(i, 20 + (i as usize * 13) % 300)[..],
                "k{i} lost before round {round}"
            );
        }
        for _ in 0..1 + round % 4 {
            e.set(
                0,
                format!("k{n}").as_bytes(),
                &value(n, 20 + (n as usize * 13) % 300),
                SetOptions::default(),
            )
            .unwrap();
            e.sync_all().unwrap();
            n += 1;
        }
        if round % 3 == 0 {
            e.close().unwrap();
        } else {
            drop(e); // crash
        }
    }
    assert!(n > 80);
}

#[test]
fn wrong_key_is_refused_naming_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    e.set(0, b"k", b"v", SetOptions::default()).unwrap();
    e.close().unwrap();
    let err = Engine::open(
        dir.path(),
        Config {
            encryption_key: Some(key(8)),
            ..cfg()
        },
    )
    .err()
    .unwrap();
    match err {
        Error::WrongKey { file } => assert_eq!(file, dir.path().join("ENCRYPTION")),
        other => panic!("expected WrongKey, got {other}"),
    }
}

#[test]
fn folder_and_key_must_agree() {
    let enc = tempfile::tempdir().unwrap();
    let e = Engine::open(enc.path(), cfg()).unwrap();
    e.set(0, b"k", b"v", SetOptions::default()).unwrap();
    e.close().unwrap();
    let err = Engine::open(
        enc.path(),
        Config {
            encryption_key: None,
            ..cfg()
        },
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("ENCRYPTION")),
        "{err}"
    );

    let plain = tempfile::tempdir().unwrap();
    let e = Engine::open(
        plain.path(),
        Config {
            encryption_key: None,
            ..cfg()
        },
    )
    .unwrap();
    e.set(0, b"k", b"v", SetOptions::default()).unwrap();
    e.close().unwrap();
    let err = Engine::open(plain.path(), cfg()).err().unwrap();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("not encrypted")),
        "{err}"
    );
}

/// Writes 300 keys of 100-byte values into 8 KiB logs and closes (sealed logs get hints).
fn sealed_logs(dir: &Path) -> Config {
    let cfg = Config {
        max_file_bytes: 8 * 1024,
        // No block cache: every read goes to the pages on disk.
        cache_capacity_bytes: 0,
        ..cfg()
    };
    let e = Engine::open(dir, cfg.clone()).unwrap();
    for i in 0..300u32 {
        e.set(
            0,
            format!("key{i:03}").as_bytes(),
            &value(i, 100),
            SetOptions::default(),
        )
        .unwrap();
    }
    e.close().unwrap();
    assert!(dir.join("0000000001.hint").exists());
    cfg
}

/// After damage to page 1 of the first (sealed) log: the keys in that page fail with
/// `Tampered` naming the file and page; every other key reads back.
fn check_tampered_page_1(e: &Engine, log: &Path) {
    let mut tampered = 0;
    for i in 0..300u32 {
        match e.get(0, format!("key{i:03}").as_bytes()) {
            Ok(v) => assert_eq!(v.unwrap(), &value(i, 100)[..], "key{i:03}"),
            Err(Error::Tampered { file, page }) => {
                assert_eq!(file, log);
                assert_eq!(page, 1);
                tampered += 1;
            }
            Err(other) => panic!("key{i:03}: {other}"),
        }
    }
    // A page of 4096 bytes holds about 30 of these 138-byte records.
    assert!((20..=40).contains(&tampered), "{tampered} keys tampered");
}

#[test]
fn flipped_bit_in_a_sealed_data_page_is_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sealed_logs(dir.path());
    let log = dir.path().join("0000000001.log");
    flip(&log, PAGE + 1000, 0x10);
    let e = Engine::open(dir.path(), cfg).unwrap();
    check_tampered_page_1(&e, &log);
    e.close().unwrap();
}

#[test]
fn flipped_bit_in_a_tag_entry_is_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sealed_logs(dir.path());
    let log = dir.path().join("0000000001.log");
    flip(&tag_of(&log), entry_off(1) + 20, 0x01);
    let e = Engine::open(dir.path(), cfg).unwrap();
    check_tampered_page_1(&e, &log);
    e.close().unwrap();
}

/// Without a hint, recovery reads the damaged sealed log page by page: it reports the bad
/// page with its file and page number and recovers every record outside it.
#[test]
fn a_bad_page_in_a_sealed_log_is_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sealed_logs(dir.path());
    let log = dir.path().join("0000000001.log");
    std::fs::remove_file(dir.path().join("0000000001.hint")).unwrap();
    flip(&log, PAGE + 1000, 0x10);
    let cap = Capture::default();
    let e = Engine::open(
        dir.path(),
        Config {
            logger: cap.logger(),
            ..cfg
        },
    )
    .unwrap();
    let mut missing = 0;
    for i in 0..300u32 {
        match e.get(0, format!("key{i:03}").as_bytes()).unwrap() {
            Some(v) => assert_eq!(v, &value(i, 100)[..]),
            None => missing += 1,
        }
    }
    assert!((20..=40).contains(&missing), "{missing} keys missing");
    let lines = cap.loud();
    assert!(
        lines.iter().any(|l| l.contains("authentication")
            && l.contains("0000000001.log")
            && l.contains("page=1")),
        "bad page not reported with file and page: {lines:#?}"
    );
    e.close().unwrap();
}

/// Data pages of a log written so far (non-zero entries in its tag file).
fn written_pages(log: &Path) -> u64 {
    let t = std::fs::read(tag_of(log)).unwrap();
    t[entry_off(0).min(t.len())..]
        .chunks(ENTRY)
        .filter(|e| e.iter().any(|&b| b != 0))
        .count() as u64
}

/// The state of the active log right after a sync, a crash after more (unsynced) writes,
/// and then damage to what those later writes left (given the data pages synced); nothing
/// synced may be lost.
fn synced_then_crash(damage: impl Fn(&Path, u64)) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        write_buffer_bytes: 4096,
        ..cfg()
    };
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    set_range(&e, "s", 0..50, 0, 150);
    e.sync_all().unwrap();
    let log = newest_log(dir.path());
    let synced_pages = written_pages(&log);
    // Unsynced writes: full pages reach the data file (a full buffer is flushed), and a
    // later round writes the other journal slot.
    set_range(&e, "u", 0..50, 1000, 150);
    drop(e);
    damage(&log, synced_pages);
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    // The reopened log's files match what was recovered: whole pages in the data file, no
    // entry past them, one fresh journal copy of the tail page and the other slot empty (so
    // nothing written before the crash past the cut can come back later).
    let data_len = std::fs::metadata(&log).unwrap().len();
    assert_eq!(data_len % PAGE as u64, 0);
    let tag = std::fs::read(tag_of(&log)).unwrap();
    assert_eq!(tag.len(), entry_off(data_len as usize / PAGE));
    let slots_used = (0..2)
        .filter(|&s| {
            tag[journal_off(s)..journal_off(s) + ENTRY]
                .iter()
                .any(|&b| b != 0)
        })
        .count();
    assert_eq!(slots_used, 1, "one journal copy of the tail page");
    for i in 0..50u32 {
        assert_eq!(
            e.get(0, format!("s{i}").as_bytes()).unwrap().unwrap(),
            &value(i, 150)[..],
            "synced s{i} lost"
        );
        if let Some(v) = e.get(0, format!("u{i}").as_bytes()).unwrap() {
            assert_eq!(v, &value(i + 1000, 150)[..]);
        }
    }
    // New writes continue the log after the cut, and survive another restart.
    e.set(0, b"after", &value(5, 3000), SetOptions::default())
        .unwrap();
    e.close().unwrap();
    let e = Engine::open(dir.path(), cfg).unwrap();
    assert_eq!(e.get(0, b"after").unwrap().unwrap(), &value(5, 3000)[..]);
    assert_eq!(e.get(0, b"s49").unwrap().unwrap(), &value(49, 150)[..]);
    e.close().unwrap();
}

#[test]
fn a_cut_data_file_loses_nothing_synced() {
    for cut_back in [0u64, 1, 100, PAGE as u64] {
        synced_then_crash(|log, synced| {
            let written = written_pages(log);
            assert!(written > synced, "unsynced full pages were written");
            // Cut inside the unsynced pages (the data file is preallocated beyond them).
            let at = (synced + (written - synced) / 2) * PAGE as u64;
            let f = std::fs::OpenOptions::new().write(true).open(log).unwrap();
            f.set_len(at.saturating_sub(cut_back).max(synced * PAGE as u64))
                .unwrap();
        });
    }
}

/// The newest journal slot of `log`'s tag file (the higher sequence number).
fn newest_slot(log: &Path) -> usize {
    let b = std::fs::read(tag_of(log)).unwrap();
    let seq = |s: usize| {
        let e = &b[journal_off(s)..journal_off(s) + ENTRY];
        u64::from_le_bytes(e[28..36].try_into().unwrap())
    };
    if seq(0) > seq(1) { 0 } else { 1 }
}

#[test]
fn a_torn_newest_journal_slot_loses_nothing_synced() {
    // Round A makes s0..s9 durable through a journal copy of the tail page; round B (more
    // writes to the same page) is torn by a crash while it writes its journal copy: the
    // slot round A wrote still holds everything synced before round B.
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    set_range(&e, "s", 0..10, 0, 150);
    e.sync_all().unwrap();
    let log = newest_log(dir.path());
    let a = newest_slot(&log);
    set_range(&e, "u", 0..5, 1000, 150);
    e.sync_all().unwrap();
    drop(e);
    assert_eq!(
        written_pages(&log),
        0,
        "the tail page is only in the journal"
    );
    let b = newest_slot(&log);
    assert_ne!(a, b, "round B wrote the other slot");
    let tag = tag_of(&log);
    let mut bytes = std::fs::read(&tag).unwrap();
    for x in &mut bytes[journal_off(b) + ENTRY + 100..journal_off(b) + ENTRY + 400] {
        *x = 0xA5;
    }
    std::fs::write(&tag, &bytes).unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    for i in 0..10u32 {
        assert_eq!(
            e.get(0, format!("s{i}").as_bytes()).unwrap().unwrap(),
            &value(i, 150)[..],
            "s{i}, synced by round A, lost"
        );
    }
    for i in 0..5u32 {
        assert_eq!(e.get(0, format!("u{i}").as_bytes()).unwrap(), None);
    }
    // The log goes on after the torn round, and a restart keeps both.
    e.set(0, b"after", &value(5, 300), SetOptions::default())
        .unwrap();
    e.close().unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    assert_eq!(e.get(0, b"after").unwrap().unwrap(), &value(5, 300)[..]);
    assert_eq!(e.get(0, b"s9").unwrap().unwrap(), &value(9, 150)[..]);
    e.close().unwrap();
}

/// Scribbling the newest journal slot right after a sync (no later round) does lose the
/// tail page: a control for the test above, showing the slot is what holds the tail.
#[test]
fn the_journal_holds_the_synced_tail_page() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), cfg()).unwrap();
    e.set(0, b"only", &value(1, 100), SetOptions::default())
        .unwrap();
    e.sync_all().unwrap();
    drop(e);
    let log = newest_log(dir.path());
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        0,
        "a partly filled page was written to the data file"
    );
    let e = Engine::open(dir.path(), cfg()).unwrap();
    assert_eq!(e.get(0, b"only").unwrap().unwrap(), &value(1, 100)[..]);
    drop(e);
    // Both slots scribbled: the tail page is gone, and the log with it (nothing else holds
    // its records), without a panic or garbage.
    let tag = tag_of(&log);
    for s in 0..2 {
        flip(&tag, journal_off(s) + ENTRY + 10, 0xFF);
    }
    let e = Engine::open(dir.path(), cfg()).unwrap();
    assert_eq!(e.get(0, b"only").unwrap(), None);
    e.close().unwrap();
}

/// Every file in the folder (logs, tag files, hints, the marker) is searched for a
/// distinctive value and a 32-byte piece of it: never found encrypted, always found plain
/// (which shows the search works).
#[test]
fn no_plaintext_value_on_disk() {
    let distinctive: Vec<u8> = (0..200u32)
        .map(|i| b"PLAINTEXT-CANARY-"[i as usize % 17] ^ (i / 17) as u8)
        .collect();
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for encrypted in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            max_file_bytes: 8 * 1024,
            // Inline, so hint files carry the value too.
            inline_value_max: 256,
            encryption_key: encrypted.then(|| key(7)),
            ..cfg()
        };
        let e = Engine::open(dir.path(), cfg.clone()).unwrap();
        for i in 0..120u32 {
            e.set(
                0,
                format!("k{}", i % 40).as_bytes(),
                &distinctive,
                SetOptions::default(),
            )
            .unwrap();
            if i % 17 == 0 {
                e.sync_all().unwrap();
            }
        }
        e.compact_now().unwrap();
        e.close().unwrap();
        let e = Engine::open(dir.path(), cfg).unwrap();
        assert_eq!(e.get(0, b"k3").unwrap().unwrap(), &distinctive[..]);
        e.set(0, b"tail", &distinctive, SetOptions::default())
            .unwrap();
        e.sync_all().unwrap();
        drop(e);
        let mut found = Vec::new();
        for p in files(dir.path(), "") {
            let b = std::fs::read(&p).unwrap();
            if contains(&b, &distinctive) || contains(&b, &distinctive[80..112]) {
                found.push(p);
            }
        }
        if encrypted {
            assert!(found.is_empty(), "plaintext found in {found:?}");
        } else {
            // The search works: logs and hints hold the plain value.
            assert!(found.iter().any(|p| p.to_string_lossy().ends_with(".log")));
            assert!(found.iter().any(|p| p.to_string_lossy().ends_with(".hint")));
        }
        assert!(!files(dir.path(), ".hint").is_empty());
    }
}

#[test]
fn compaction_and_hints_work_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        max_file_bytes: 8 * 1024,
        cache_capacity_bytes: 0,
        ..cfg()
    };
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    for round in 0..5u32 {
        for i in 0..60u32 {
            e.set(
                0,
                format!("k{i}").as_bytes(),
                &value(i * 10 + round, 200),
                SetOptions::default(),
            )
            .unwrap();
        }
    }
    for i in 0..60u32 {
        if i % 5 == 0 {
            e.delete(0, format!("k{i}").as_bytes()).unwrap();
        }
    }
    let logs_before = files(dir.path(), ".log").len();
    e.compact_now().unwrap();
    assert!(e.stats().compactions > 0);
    // More sealed logs after the compaction, for the hint checks below.
    for i in 0..100u32 {
        e.set(
            1,
            format!("x{i}").as_bytes(),
            &value(i, 300),
            SetOptions::default(),
        )
        .unwrap();
    }
    let check = |e: &Engine| {
        for i in 0..100u32 {
            assert_eq!(
                e.get(1, format!("x{i}").as_bytes()).unwrap().unwrap(),
                &value(i, 300)[..]
            );
        }
        for i in 0..60u32 {
            let got = e.get(0, format!("k{i}").as_bytes()).unwrap();
            if i % 5 == 0 {
                assert_eq!(got, None);
            } else {
                assert_eq!(got.unwrap(), &value(i * 10 + 4, 200)[..], "k{i}");
            }
        }
    };
    check(&e);
    e.close().unwrap();
    assert!(files(dir.path(), ".log").len() < logs_before);
    // Every log and hint has its tag file, and no tag file outlived its log or hint.
    let hints = files(dir.path(), ".hint");
    for p in files(dir.path(), ".log").iter().chain(&hints) {
        assert!(tag_of(p).exists(), "{} has no tag file", p.display());
    }
    for t in files(dir.path(), ".tag") {
        let data = PathBuf::from(t.to_string_lossy().trim_end_matches(".tag"));
        assert!(data.exists(), "{} outlived its file", t.display());
    }
    // The hints of logs still there (a compacted log's hint can outlive it: harmless).
    let hints: Vec<PathBuf> = hints
        .into_iter()
        .filter(|h| h.with_extension("log").exists())
        .collect();
    assert!(hints.len() >= 2);
    // Start-up from the encrypted hints.
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    check(&e);
    e.close().unwrap();
    // A damaged hint page, or a hint without its tag file: start-up scans the logs instead,
    // with the same result, and says so.
    flip(&hints[0], 100, 0x04);
    std::fs::remove_file(tag_of(&hints[hints.len() - 1])).unwrap();
    let cap = Capture::default();
    let e = Engine::open(
        dir.path(),
        Config {
            logger: cap.logger(),
            ..cfg
        },
    )
    .unwrap();
    check(&e);
    let loud = cap.loud();
    assert!(
        loud.iter()
            .filter(|l| l.contains("hint") && l.contains("scanning the log"))
            .count()
            >= 2,
        "{loud:#?}"
    );
    e.close().unwrap();
}

/// The active log's tag file runs ahead of its entries with zeros (so a round's fdatasync of
/// it rarely changes its size), and a log ends at its last entry once sealed or closed:
/// zeros beyond read as pages never written, before and after a restart.
#[test]
fn tag_files_run_ahead_while_written_and_end_at_their_entries() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        max_file_bytes: 64 * 1024,
        write_buffer_bytes: 4096,
        ..cfg()
    };
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    set_range(&e, "k", 0..40, 0, 3000);
    e.sync_all().unwrap();
    let logs = files(dir.path(), ".log");
    assert!(logs.len() >= 2, "some logs were sealed: {logs:?}");
    let active = logs.last().unwrap();
    let pages = written_pages(active) as usize;
    assert!(pages > 0, "the active log has full pages");
    let ahead = std::fs::metadata(tag_of(active)).unwrap().len() as usize;
    assert!(ahead > entry_off(pages), "the active tag file runs ahead");
    let ends_at_entries = |log: &Path| {
        let data = std::fs::metadata(log).unwrap().len() as usize;
        let tag = std::fs::metadata(tag_of(log)).unwrap().len() as usize;
        assert_eq!(tag, entry_off(data.div_ceil(PAGE)), "{}", log.display());
        assert_eq!(written_pages(log) as usize, data.div_ceil(PAGE));
    };
    for log in &logs[..logs.len() - 1] {
        ends_at_entries(log);
    }
    // A crash leaves the zeros: the log reopens past them and goes on.
    drop(e);
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    set_range(&e, "m", 0..10, 100, 3000);
    e.close().unwrap();
    for log in &files(dir.path(), ".log") {
        let data = std::fs::metadata(log).unwrap().len() as usize;
        let tag = std::fs::metadata(tag_of(log)).unwrap().len() as usize;
        // A closed active log keeps its tail page in the journal only.
        assert!(
            tag == entry_off(data.div_ceil(PAGE)) || tag == entry_off(data / PAGE),
            "{} ends at its entries",
            log.display()
        );
    }
    let e = Engine::open(dir.path(), cfg).unwrap();
    for i in 0..40u32 {
        assert_eq!(
            e.get(0, format!("k{i}").as_bytes()).unwrap().unwrap(),
            &value(i, 3000)[..]
        );
    }
    for i in 0..10u32 {
        assert_eq!(
            e.get(0, format!("m{i}").as_bytes()).unwrap().unwrap(),
            &value(i + 100, 3000)[..]
        );
    }
    e.close().unwrap();
}

/// Writers seal full pages without the log lock while others append, read their own
/// values back and sync rounds run: every value reads back as written, during the run and
/// after a restart (a round or another writer touching pages in flight would write them
/// twice or drop buffered records).
#[test]
fn pages_sealed_outside_the_log_lock_stay_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        write_buffer_bytes: 8192,
        max_file_bytes: 256 * 1024,
        ..cfg()
    };
    let per_thread = if common::small_scale() { 60 } else { 200 };
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..4u32)
            .map(|t| {
                let e = &e;
                s.spawn(move || {
                    for i in 0..per_thread {
                        let k = format!("t{t}-{i}");
                        let v = value(t * 10_000 + i, 1000 + (i as usize * 37) % 3000);
                        e.set(0, k.as_bytes(), &v, SetOptions::default()).unwrap();
                        assert_eq!(e.get(0, k.as_bytes()).unwrap().unwrap(), &v[..], "{k}");
                    }
                })
            })
            .collect();
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                e.sync_all().unwrap();
            }
        });
        let joined: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        for j in joined {
            j.unwrap();
        }
    });
    e.sync_all().unwrap();
    drop(e);
    let e = Engine::open(dir.path(), cfg).unwrap();
    for t in 0..4u32 {
        for i in 0..per_thread {
            let v = value(t * 10_000 + i, 1000 + (i as usize * 37) % 3000);
            assert_eq!(
                e.get(0, format!("t{t}-{i}").as_bytes()).unwrap().unwrap(),
                &v[..],
                "t{t}-{i} after restart"
            );
        }
    }
    e.close().unwrap();
}

/// Values of a few KiB span two or three pages, which a read takes with one pread of the
/// data and one of the tags: they read back whole, with or without the block cache, and a
/// flipped bit in one page fails exactly the values that span that page, naming it (not the
/// first page of the run).
#[test]
fn values_spanning_pages_read_whole_and_a_bad_page_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        max_file_bytes: 64 * 1024,
        ..cfg()
    };
    let e = Engine::open(dir.path(), cfg.clone()).unwrap();
    // 20 records of 5000-byte values: log 1 takes about 13 and is sealed (with a hint, so
    // damage to it is found when read, not at recovery).
    for i in 0..20u32 {
        e.set(
            0,
            format!("v{i}").as_bytes(),
            &value(i, 5000),
            SetOptions::default(),
        )
        .unwrap();
    }
    e.close().unwrap();
    assert!(dir.path().join("0000000001.hint").exists());
    for cache in [0, 64 << 20] {
        let e = Engine::open(
            dir.path(),
            Config {
                cache_capacity_bytes: cache,
                ..cfg.clone()
            },
        )
        .unwrap();
        for round in 0..3 {
            for i in 0..20u32 {
                let got = e.get(0, format!("v{i}").as_bytes()).unwrap().unwrap();
                assert!(
                    got == value(i, 5000)[..],
                    "v{i}, cache {cache}, round {round}"
                );
            }
        }
        e.close().unwrap();
    }
    let log = dir.path().join("0000000001.log");
    flip(&log, 3 * PAGE + 100, 0x04);
    let e = Engine::open(
        dir.path(),
        Config {
            cache_capacity_bytes: 0,
            ..cfg
        },
    )
    .unwrap();
    let mut bad = Vec::new();
    for i in 0..20u32 {
        match e.get(0, format!("v{i}").as_bytes()) {
            Ok(v) => assert!(v.unwrap() == value(i, 5000)[..], "v{i}"),
            Err(Error::Tampered { file, page }) => {
                assert_eq!(file, log);
                assert_eq!(page, 3, "v{i}");
                bad.push(i);
            }
            Err(other) => panic!("v{i}: {other}"),
        }
    }
    // Records are a little over 5000 bytes after the 24-byte header: record 2 spans pages 2
    // and 3 (its read names page 3, the second of its run), record 3 pages 3 and 4; no other
    // record touches page 3.
    assert_eq!(bad, vec![2, 3]);
    e.close().unwrap();
}
