#![allow(clippy::unwrap_used)]
//! No nonce is ever used twice under one key (docs/encryption.md): every (file key, nonce)
//! pair the engine seals is recorded across random writes to a VarTree and a FixedStore
//! ConstTree, tail-page rewrites (a sync after every few writes), slot reuse, log rotation,
//! compaction, restarts, and a copy of the data folder that is then written both ways. No pair
//! may repeat. The same run also checks the data reads back, so a recorder that saw nothing
//! (encryption off) fails the "sealed something" assertion instead of passing.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use proptest::prelude::*;
use respite_storage::*;

const FIXED_SIZE: usize = 8;

fn cfg() -> Config {
    Config {
        trees: vec![(
            1,
            TreeConfig::Const {
                value_size: FIXED_SIZE,
                backend: BackendKind::Fixed,
            },
        )],
        databases: 2,
        shards: 2,
        sync_mode: SyncMode::No,
        write_buffer_bytes: 8192,
        max_file_bytes: 64 * 1024,
        inline_value_max: 16,
        cache_capacity_bytes: 64 * 1024,
        encryption_key: Some(MasterKey::from_bytes([0x42; 32])),
        ..Config::default()
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Set key `k` of database `db` to a value of `len` bytes (database 1: FIXED_SIZE).
    Set {
        db: usize,
        k: u8,
        len: usize,
    },
    Del {
        db: usize,
        k: u8,
    },
    Sync,
    Restart,
    Compact,
    /// Close, copy the folder, and from now on write every op to both copies (with
    /// different values), as two servers started from one backup would.
    Copy,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..2usize, 0..40u8, prop_oneof![1..16usize, 17..300usize, 4000..9000usize])
            .prop_map(|(db, k, len)| Op::Set { db, k, len }),
        2 => (0..2usize, 0..40u8).prop_map(|(db, k)| Op::Del { db, k }),
        5 => Just(Op::Sync),
        1 => Just(Op::Restart),
        1 => Just(Op::Compact),
        1 => Just(Op::Copy),
    ]
}

type Model = BTreeMap<(usize, u8), Vec<u8>>;

struct Copy {
    dir: tempfile::TempDir,
    engine: Option<Engine>,
    model: Model,
    /// Distinguishes the values each copy writes.
    salt: u8,
}

impl Copy {
    fn engine(&self) -> &Engine {
        self.engine.as_ref().unwrap()
    }

    fn apply(&mut self, op: &Op, step: usize) {
        match *op {
            Op::Set { db, k, len } => {
                let len = if db == 1 { FIXED_SIZE } else { len };
                let v: Vec<u8> = (0..len)
                    .map(|i| (i as u8) ^ (step as u8) ^ self.salt)
                    .collect();
                self.engine()
                    .set(db, &[k], &v, SetOptions::default())
                    .unwrap();
                self.model.insert((db, k), v);
            }
            Op::Del { db, k } => {
                self.engine().delete(db, &[k]).unwrap();
                self.model.remove(&(db, k));
            }
            Op::Sync => {
                self.engine().sync_all().unwrap();
            }
            Op::Restart => self.restart(),
            Op::Compact => self.engine().compact_now().unwrap(),
            Op::Copy => unreachable!("handled by the caller"),
        }
    }

    fn restart(&mut self) {
        self.engine.take().unwrap().close().unwrap();
        self.engine = Some(Engine::open(self.dir.path(), cfg()).unwrap());
    }

    fn check(&self) {
        for db in 0..2 {
            for k in 0..40u8 {
                let got = self.engine().get(db, &[k]).unwrap().map(|b| b.to_vec());
                assert_eq!(got.as_ref(), self.model.get(&(db, k)), "db {db} key {k}");
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() && e.file_name() != "LOCK" {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The recorder is process-wide: the tests of this file take turns (under `cargo test`'s
/// threads; nextest runs each in its own process anyway).
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(ops: &[Op]) -> usize {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    respite_storage::record_nonces(true);
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), cfg()).unwrap();
    let mut copies = vec![Copy {
        dir,
        engine: Some(engine),
        model: Model::new(),
        salt: 0,
    }];
    for (step, op) in ops.iter().enumerate() {
        if let Op::Copy = op {
            if copies.len() == 2 {
                continue;
            }
            let first = &mut copies[0];
            first.engine.take().unwrap().close().unwrap();
            let dir = tempfile::tempdir().unwrap();
            copy_dir(first.dir.path(), dir.path());
            first.engine = Some(Engine::open(first.dir.path(), cfg()).unwrap());
            let engine = Engine::open(dir.path(), cfg()).unwrap();
            let model = first.model.clone();
            copies.push(Copy {
                dir,
                engine: Some(engine),
                model,
                salt: 0x80,
            });
            continue;
        }
        for c in &mut copies {
            c.apply(op, step);
        }
    }
    for c in &mut copies {
        c.engine().sync_all().unwrap();
        c.check();
        c.restart();
        c.check();
        c.engine.take().unwrap().close().unwrap();
    }
    respite_storage::record_nonces(false);
    let seen = respite_storage::recorded_nonces();
    let wrote_data = ops.iter().any(|o| matches!(o, Op::Set { .. }));
    if wrote_data {
        assert!(!seen.is_empty(), "writes with a key sealed no page");
    }
    let mut uniq = HashSet::with_capacity(seen.len());
    for pair in &seen {
        assert!(
            uniq.insert(*pair),
            "nonce {:02x?} used twice under one file key ({} pages sealed)",
            pair.1,
            seen.len()
        );
    }
    seen.len()
}

proptest! {
    // Under valgrind (RESPITE_TEST_SCALE=small) three cases: the paths, not the breadth.
    #![proptest_config(ProptestConfig {
        cases: if std::env::var("RESPITE_TEST_SCALE").as_deref() == Ok("small") { 3 } else { 12 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_nonce_repeats_across_rewrites_restarts_and_copies(ops in prop::collection::vec(op(), 20..160)) {
        run(&ops);
    }
}

/// A fixed sequence that surely exercises every kind of rewrite: the same tail page synced
/// again and again (journal slots reused), the same slot page rewritten, restarts between,
/// and a diverging copy.
#[test]
fn no_nonce_repeats_in_a_rewrite_heavy_sequence() {
    let mut ops = Vec::new();
    for round in 0..6 {
        for i in 0..30u8 {
            ops.push(Op::Set {
                db: (i % 2) as usize,
                k: i % 5,
                len: 20 + i as usize,
            });
            ops.push(Op::Sync);
        }
        if round == 2 {
            ops.push(Op::Copy);
        }
        ops.push(Op::Restart);
    }
    ops.push(Op::Compact);
    // Sanity of the recorder itself: each of the 180 syncs rewrote a tail page or a slot
    // page, so far more pages were sealed than distinct pages exist.
    assert!(run(&ops) > 300);
}
