//! The model test, optionally with a ConstTree in database 1 (on either backend): random
//! operations on a small key space, checked against a BTreeMap, with
//! reopen, crash (drop without close, then a torn or garbled tail on an active log) and
//! compaction as operations, plus rename/copy/move/mset across the VarTree database 0 and the
//! ConstTree database 1 (a value of the wrong size must be refused and change nothing). After
//! a crash every write at or below the durable GSN must be there, and every key must hold a
//! state it really had at or after that point.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use respite_storage::*;

type Key = (usize, Vec<u8>);
type State = Option<(Vec<u8>, Option<u64>)>;

const FAR: u64 = 4_000_000_000_000;

/// Database 1 of `cfg` is a ConstTree of this many bytes per value.
pub const CONST_SIZE: usize = 12;

/// Set by a test binary to run the model with encryption at rest (a fixed master key).
pub static ENCRYPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The model's config: database 1 is a ConstTree on `backend`, or a VarTree like the rest.
pub fn cfg(backend: Option<BackendKind>) -> Config {
    let encrypted = ENCRYPTED.load(std::sync::atomic::Ordering::Relaxed);
    Config {
        encryption_key: encrypted.then(|| MasterKey::from_bytes([0x42; 32])),
        trees: backend
            .map(|backend| {
                (
                    1,
                    TreeConfig::Const {
                        value_size: CONST_SIZE,
                        backend,
                    },
                )
            })
            .into_iter()
            .collect(),
        shards: 3,
        databases: 3,
        sync_mode: SyncMode::No,
        write_buffer_bytes: 4096,
        max_file_bytes: 8192,
        // Only the explicit compact op compacts, so durability moves only where the test
        // says (sync_all), and the tail beyond it is fair game for the crash.
        compaction_dead_ratio: 2.0,
        inline_value_max: 16,
        cache_capacity_bytes: 64 * 1024,
        ..Config::default()
    }
}

/// Where the records of a log end (an open log is preallocated: zeros follow its records).
/// An encrypted log is not parsed: its whole length counts.
fn records_end(b: &[u8]) -> u64 {
    if ENCRYPTED.load(std::sync::atomic::Ordering::Relaxed) {
        return b.len() as u64;
    }
    let mut at = 24;
    while at + 32 <= b.len() && b[at + 4..at + 12] != [0; 8] {
        let key = u32::from_le_bytes(b[at + 24..at + 28].try_into().unwrap()) as usize;
        let value = u32::from_le_bytes(b[at + 28..at + 32].try_into().unwrap()) as usize;
        if at + 32 + key + value > b.len() {
            break;
        }
        at += 32 + key + value;
    }
    at.min(b.len()) as u64
}

/// Sizes of the records of the log files right after a sync: everything below them is
/// durable.
fn log_sizes(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| {
            let b = std::fs::read(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                records_end(&b),
            )
        })
        .collect()
}

/// Every FixedStore slot file's bytes.
fn slot_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".slots"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Slot geometry of the ConstTree in `cfg` (docs/format-fixed.md): 32-byte file header,
/// slots of 32 + 64 (default key room) + CONST_SIZE bytes rounded up to 8.
const SLOT_FILE_HEADER: usize = 32;
const SLOT_SIZE: usize = (32 + 64 + CONST_SIZE).div_ceil(8) * 8;

/// The newest log of each shard (the active ones).
fn active_logs(dir: &Path) -> Vec<String> {
    let mut by_shard: BTreeMap<u32, String> = BTreeMap::new();
    for name in log_sizes(dir).into_keys() {
        let b = std::fs::read(dir.join(&name)).unwrap();
        if b.len() < 24 {
            continue;
        }
        // An encrypted log's header is not readable here: every log is shared then.
        let shard = if ENCRYPTED.load(std::sync::atomic::Ordering::Relaxed) {
            u32::MAX
        } else {
            u32::from_le_bytes(b[12..16].try_into().unwrap())
        };
        let e = by_shard.entry(shard).or_default();
        if name > *e {
            *e = name;
        }
    }
    by_shard.into_values().collect()
}

struct Harness {
    /// The ConstTree backend of database 1; None: database 1 is a VarTree.
    backend: Option<BackendKind>,
    rng: StdRng,
    model: BTreeMap<Key, (Vec<u8>, Option<u64>)>,
    /// Every state each key had since the last crash check, with the GSN that made it.
    history: HashMap<Key, Vec<(u64, State)>>,
    durable_sizes: BTreeMap<String, u64>,
    /// FixedStore slot files as they were right after the last sync.
    durable_slots: BTreeMap<String, Vec<u8>>,
    durable_gsn: u64,
    compactions: u64,
}

impl Harness {
    fn record(&mut self, k: &Key, gsn: u64) {
        let st = self.model.get(k).cloned();
        self.history.entry(k.clone()).or_default().push((gsn, st));
    }

    fn mark_durable(&mut self, e: &Engine, dir: &Path) {
        let g = e.sync_all().unwrap();
        assert!(e.durable_gsn() >= g);
        self.durable_gsn = e.durable_gsn();
        self.durable_sizes = log_sizes(dir);
        self.durable_slots = slot_files(dir);
    }

    fn key(&mut self) -> Key {
        let db = self.rng.random_range(0..2);
        let k = format!("k{}", self.rng.random_range(0..6));
        (db, k.into_bytes())
    }

    /// Whether `db` is the ConstTree.
    fn is_const(&self, db: usize) -> bool {
        self.backend.is_some() && db == 1
    }

    /// A value for `db`: in the ConstTree, nearly always of its size.
    fn value_for(&mut self, db: usize) -> Vec<u8> {
        if self.is_const(db) && self.rng.random_range(0..10) != 0 {
            let b: u8 = self.rng.random();
            return (0..CONST_SIZE).map(|i| b.wrapping_add(i as u8)).collect();
        }
        self.value()
    }

    fn value(&mut self) -> Vec<u8> {
        let len = match self.rng.random_range(0..4) {
            0 => 0,
            1 => self.rng.random_range(1..16),
            2 => self.rng.random_range(16..200),
            _ => self.rng.random_range(4000..9000),
        };
        let b: u8 = self.rng.random();
        (0..len).map(|i| b.wrapping_add(i as u8)).collect()
    }

    fn check_all(&self, e: &Engine) {
        for db in 0..2 {
            for i in 0..6 {
                let k = (db, format!("k{i}").into_bytes());
                let got = e
                    .get_with_expiry(db, &k.1)
                    .unwrap()
                    .map(|(v, x)| (v.to_vec(), x));
                assert_eq!(got, self.model.get(&k).cloned(), "key {k:?}");
            }
            let mut cursor = 0;
            let mut seen = std::collections::BTreeSet::new();
            loop {
                let (c, keys) = e.scan(db, cursor, None, 2).unwrap();
                seen.extend(keys.into_iter().map(|k| k.to_vec()));
                if c == 0 {
                    break;
                }
                cursor = c;
            }
            let want: std::collections::BTreeSet<_> = self
                .model
                .keys()
                .filter(|(d, _)| *d == db)
                .map(|(_, k)| k.clone())
                .collect();
            assert_eq!(seen, want, "scan of db {db}");
            assert_eq!(e.len(db), want.len() as u64);
        }
    }

    fn crash_and_check(&mut self, e: Engine, dir: &Path) -> Engine {
        assert_eq!(
            e.durable_gsn(),
            self.durable_gsn,
            "only sync_all makes writes durable in this test"
        );
        drop(e);
        self.lose_unsynced_slots(dir);
        // Tear or garble the tail of an active log, beyond what was synced.
        let logs = active_logs(dir);
        if !logs.is_empty() && self.rng.random_bool(0.8) {
            let name = &logs[self.rng.random_range(0..logs.len())];
            let path = dir.join(name);
            let mut b = std::fs::read(&path).unwrap();
            let synced = self.durable_sizes.get(name).copied().unwrap_or(24) as usize;
            if b.len() >= synced {
                let at = self.rng.random_range(synced..=b.len());
                match self.rng.random_range(0..3) {
                    0 => b.truncate(at),
                    1 if at < b.len() => b[at] ^= 1 << self.rng.random_range(0..8),
                    _ => {
                        b.truncate(at);
                        let n = self.rng.random_range(1..64);
                        b.extend((0..n).map(|_| self.rng.random::<u8>()));
                    }
                }
                std::fs::write(&path, &b).unwrap();
            }
        }
        let e = Engine::open(dir, cfg(self.backend)).unwrap();
        let mut recovered = BTreeMap::new();
        let keys: Vec<Key> = self.history.keys().cloned().collect();
        for k in keys {
            let got: State = e
                .get_with_expiry(k.0, &k.1)
                .unwrap()
                .map(|(v, x)| (v.to_vec(), x));
            let h = &self.history[&k];
            let from = h
                .iter()
                .rposition(|(g, _)| *g <= self.durable_gsn)
                .unwrap_or(0);
            assert!(
                h[from..].iter().any(|(_, s)| *s == got),
                "key {k:?} recovered as {got:?}; allowed: {:?}",
                &h[from..]
            );
            if let Some(s) = got {
                recovered.insert(k, s);
            }
        }
        self.model = recovered;
        self.reset_history();
        e
    }

    /// One of rename, copy, move, mset, update, across the two databases.
    fn multi_op(&mut self, e: &Engine) {
        let a = self.key();
        let b = (
            self.rng.random_range(0..2),
            format!("k{}", self.rng.random_range(0..6)).into_bytes(),
        );
        let cur_a = self.model.get(&a).cloned();
        let is_const = self.backend.is_some();
        let wrong = |db: usize, v: &[u8]| is_const && db == 1 && v.len() != CONST_SIZE;
        match self.rng.random_range(0..5) {
            0 => {
                // rename within a's database
                let dst = (a.0, b.1.clone());
                let nx = self.rng.random_bool(0.5);
                let r = e.rename(a.0, &a.1, &dst.1, nx);
                let Some(v) = cur_a else {
                    assert_eq!(r.unwrap().0, RenameOutcome::NoSuchKey);
                    return;
                };
                let (out, gsn) = r.unwrap();
                if a == dst {
                    return;
                }
                if nx && self.model.contains_key(&dst) {
                    assert_eq!(out, RenameOutcome::TargetExists);
                    return;
                }
                assert_eq!(out, RenameOutcome::Renamed);
                self.model.remove(&a);
                self.model.insert(dst.clone(), v);
                self.record(&dst, gsn);
                self.record(&a, gsn);
            }
            1 => {
                let replace = self.rng.random_bool(0.5);
                let r = e.copy(a.0, &a.1, b.0, &b.1, replace);
                let Some(v) = cur_a else {
                    assert!(!r.unwrap().0);
                    return;
                };
                if a == b || (!replace && self.model.contains_key(&b)) {
                    assert!(!r.unwrap().0);
                    return;
                }
                if wrong(b.0, &v.0) {
                    refused(r, v.0.len());
                    return;
                }
                let (ok, gsn) = r.unwrap();
                assert!(ok);
                self.model.insert(b.clone(), v);
                self.record(&b, gsn);
            }
            2 => {
                let dst_db = 1 - a.0;
                let dst = (dst_db, a.1.clone());
                let r = e.move_key(a.0, &a.1, dst_db);
                let Some(v) = cur_a else {
                    assert!(!r.unwrap().0);
                    return;
                };
                if self.model.contains_key(&dst) {
                    assert!(!r.unwrap().0);
                    return;
                }
                if wrong(dst_db, &v.0) {
                    refused(r, v.0.len());
                    return;
                }
                let (ok, gsn) = r.unwrap();
                assert!(ok);
                self.model.remove(&a);
                self.model.insert(dst.clone(), v);
                self.record(&dst, gsn);
                self.record(&a, gsn);
            }
            3 => {
                let db = a.0;
                let n = self.rng.random_range(1..4);
                let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
                    .map(|_| {
                        let k = format!("k{}", self.rng.random_range(0..6)).into_bytes();
                        (k, self.value_for(db))
                    })
                    .collect();
                let nx = self.rng.random_bool(0.3);
                let refs: Vec<(&[u8], &[u8])> =
                    pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
                let r = e.mset(db, &refs, nx);
                if let Some((_, v)) = pairs.iter().find(|(_, v)| wrong(db, v)) {
                    refused(r, v.len());
                    return;
                }
                let (ok, gsn) = r.unwrap();
                let any = pairs
                    .iter()
                    .any(|(k, _)| self.model.contains_key(&(db, k.clone())));
                assert_eq!(ok, !(nx && any));
                if ok {
                    for (k, v) in pairs {
                        let k = (db, k);
                        self.model.insert(k.clone(), (v, None));
                        self.record(&k, gsn);
                    }
                }
            }
            _ => {
                // update: an INCR-like read-modify-write that keeps the size, or grows it
                let grow = self.rng.random_bool(0.2);
                let r = e.update(a.0, &a.1, |cur| match cur {
                    None => (Update::Keep, None),
                    Some(c) => {
                        let mut v = c.value.to_vec();
                        if grow {
                            v.push(1);
                        } else if let Some(x) = v.first_mut() {
                            *x = x.wrapping_add(1);
                        }
                        (
                            Update::Set {
                                value: Bytes::from(v.clone()),
                                expiry: Expiry::KeepTtl,
                            },
                            Some(v),
                        )
                    }
                });
                let Some(cur) = cur_a else {
                    assert_eq!(r.unwrap(), (None, 0));
                    return;
                };
                if self.is_const(a.0) && grow {
                    refused(r, cur.0.len() + 1);
                    return;
                }
                let (v, gsn) = r.unwrap();
                let v = v.unwrap();
                self.model.insert(a.clone(), (v, cur.1));
                self.record(&a, gsn);
            }
        }
    }

    /// A crash loses page-cache writes: every slot written since the last sync is, at random,
    /// kept, lost (back to its synced bytes) or torn (a prefix of the new bytes over the old).
    fn lose_unsynced_slots(&mut self, dir: &Path) {
        for (name, now) in slot_files(dir) {
            let mut old = self.durable_slots.get(&name).cloned().unwrap_or_default();
            // Growth is synced when it happens: the length survives, new slots read as zeros.
            old.resize(now.len(), 0);
            let mut out = now.clone();
            let mut at = SLOT_FILE_HEADER;
            while at + SLOT_SIZE <= now.len() {
                let (o, n) = (&old[at..at + SLOT_SIZE], &now[at..at + SLOT_SIZE]);
                if o != n {
                    match self.rng.random_range(0..3) {
                        0 => {}
                        1 => out[at..at + SLOT_SIZE].copy_from_slice(o),
                        _ => {
                            let cut = self.rng.random_range(0..SLOT_SIZE);
                            out[at..at + SLOT_SIZE].copy_from_slice(o);
                            out[at..at + cut].copy_from_slice(&n[..cut]);
                        }
                    }
                }
                at += SLOT_SIZE;
            }
            std::fs::write(dir.join(&name), &out).unwrap();
        }
    }

    fn reset_history(&mut self) {
        self.history.clear();
        for db in 0..2 {
            for i in 0..6 {
                let k = (db, format!("k{i}").into_bytes());
                let st = self.model.get(&k).cloned();
                self.history.insert(k, vec![(0, st)]);
            }
        }
    }
}

/// A ConstTree write of the wrong size: refused with ValueSize naming the sizes.
fn refused(r: Result<impl std::fmt::Debug>, v_len: usize) {
    match r {
        Err(Error::ValueSize { db, expected, got }) => {
            assert_eq!((db, expected, got), (1, CONST_SIZE, v_len));
        }
        other => panic!("expected a ValueSize error, got {other:?}"),
    }
}

/// Runs one case; returns how many compactions the compact op reported.
pub fn run(backend: Option<BackendKind>, seed: u64, ops: usize) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::open(dir.path(), cfg(backend)).unwrap();
    let mut h = Harness {
        backend,
        rng: StdRng::seed_from_u64(seed),
        model: BTreeMap::new(),
        history: HashMap::new(),
        durable_sizes: BTreeMap::new(),
        durable_slots: BTreeMap::new(),
        durable_gsn: 0,
        compactions: 0,
    };
    h.reset_history();
    h.mark_durable(&e, dir.path());
    for _ in 0..ops {
        let op = h.rng.random_range(0..100);
        match op {
            0..=34 => {
                let k = h.key();
                let v = h.value_for(k.0);
                let cond = match h.rng.random_range(0..4) {
                    0 => SetCondition::IfAbsent,
                    1 => SetCondition::IfPresent,
                    _ => SetCondition::Always,
                };
                let expiry = match h.rng.random_range(0..4) {
                    0 => Expiry::At(FAR + h.rng.random_range(0..1000)),
                    1 => Expiry::KeepTtl,
                    _ => Expiry::Persist,
                };
                let r = e.set(
                    k.0,
                    &k.1,
                    &v,
                    SetOptions {
                        condition: cond,
                        expiry,
                        return_old: true,
                    },
                );
                if h.is_const(k.0) && v.len() != CONST_SIZE {
                    refused(r, v.len());
                    continue;
                }
                let o = r.unwrap();
                let cur = h.model.get(&k).cloned();
                assert_eq!(o.old, cur.as_ref().map(|c| Bytes::from(c.0.clone())));
                let should = match cond {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => cur.is_none(),
                    SetCondition::IfPresent => cur.is_some(),
                };
                assert_eq!(o.written, should);
                if should {
                    let x = match expiry {
                        Expiry::At(t) => Some(t),
                        Expiry::KeepTtl => cur.and_then(|c| c.1),
                        Expiry::Persist => None,
                    };
                    h.model.insert(k.clone(), (v, x));
                    h.record(&k, o.gsn);
                }
            }
            35..=49 => {
                let k = h.key();
                let (existed, gsn) = e.delete(k.0, &k.1).unwrap();
                assert_eq!(existed, h.model.remove(&k).is_some());
                if gsn != 0 {
                    h.record(&k, gsn);
                }
            }
            50..=57 => {
                let k = h.key();
                let at = match h.rng.random_range(0..3) {
                    0 => None,
                    1 => Some(1),
                    _ => Some(FAR + 7),
                };
                let (ok, gsn) = e.set_expiry(k.0, &k.1, at).unwrap();
                assert_eq!(ok, h.model.contains_key(&k));
                if ok {
                    match at {
                        Some(1) => {
                            h.model.remove(&k);
                        }
                        x => {
                            if let Some(s) = h.model.get_mut(&k) {
                                s.1 = x;
                            }
                        }
                    }
                    h.record(&k, gsn);
                }
            }
            68..=75 => h.multi_op(&e),
            58..=67 => {
                let k = h.key();
                let got = e
                    .get_with_expiry(k.0, &k.1)
                    .unwrap()
                    .map(|(v, x)| (v.to_vec(), x));
                assert_eq!(got, h.model.get(&k).cloned());
            }
            76..=79 => h.check_all(&e),
            80..=84 => h.mark_durable(&e, dir.path()),
            85..=86 => {
                let db = h.rng.random_range(0..2);
                let gsn = e.flush(Some(db)).unwrap();
                let keys: Vec<Key> = h.history.keys().filter(|k| k.0 == db).cloned().collect();
                for k in keys {
                    h.model.remove(&k);
                    h.record(&k, gsn);
                }
            }
            87..=90 => {
                e.close().unwrap();
                e = Engine::open(dir.path(), cfg(backend)).unwrap();
                h.check_all(&e);
                h.reset_history();
                h.mark_durable(&e, dir.path());
            }
            91..=95 => {
                e = h.crash_and_check(e, dir.path());
                h.check_all(&e);
                h.mark_durable(&e, dir.path());
            }
            _ => {
                e.compact_now().unwrap();
                h.compactions += e.stats().compactions;
                h.mark_durable(&e, dir.path());
                h.check_all(&e);
            }
        }
    }
    h.check_all(&e);
    e.close().unwrap();
    h.compactions
}

/// Runs the cases of a test: MODEL_SEED picks the base seed.
pub fn run_cases(backend: Option<BackendKind>, cases: u64, ops: usize) -> u64 {
    let base: u64 = std::env::var("MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED);
    let mut compactions = 0;
    for i in 0..cases {
        compactions += run(backend, base + i, ops);
    }
    compactions
}
