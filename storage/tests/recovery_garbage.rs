#![allow(clippy::unwrap_used)]
//! Start-up on garbage never panics: random bytes after a valid log header, random whole
//! files, random hints. Whatever it cannot read it reports; the engine opens and takes writes.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use respite_storage::*;

#[test]
fn garbage_logs_and_hints_never_panic() {
    let mut rng = StdRng::seed_from_u64(42);
    // A real log header, so the garbage is read as records.
    let header = {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(
            dir.path(),
            Config {
                shards: 1,
                ..Config::default()
            },
        )
        .unwrap();
        e.close().unwrap();
        std::fs::read(dir.path().join("0000000001.log")).unwrap()
    };
    assert_eq!(header.len(), 24);
    for round in 0..60 {
        let dir = tempfile::tempdir().unwrap();
        let files = rng.random_range(1..4);
        for id in 1..=files {
            let mut b = if rng.random_bool(0.8) {
                header.clone()
            } else {
                Vec::new()
            };
            let n = rng.random_range(0..3000);
            b.extend((0..n).map(|_| rng.random::<u8>()));
            std::fs::write(dir.path().join(format!("{id:010}.log")), &b).unwrap();
            if rng.random_bool(0.5) {
                let n = rng.random_range(0..500);
                let h: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                std::fs::write(dir.path().join(format!("{id:010}.hint")), &h).unwrap();
            }
        }
        let e = Engine::open(
            dir.path(),
            Config {
                shards: 1,
                ..Config::default()
            },
        )
        .unwrap_or_else(|err| panic!("round {round}: open failed: {err}"));
        e.set(0, b"k", b"v", SetOptions::default()).unwrap();
        let (_, keys) = e.scan(0, 0, None, 10_000).unwrap();
        assert!(keys.iter().any(|k| k.as_ref() == b"k"));
        e.close().unwrap();
    }
}
