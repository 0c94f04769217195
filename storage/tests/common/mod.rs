//! Code shared by the integration tests.
#![allow(dead_code)]

pub mod capture;
pub mod churn;
pub mod model;
pub mod signal;

/// Under valgrind (ci/valgrind sets RESPITE_TEST_SCALE=small) tests shrink their loops: the
/// paths still run, at a fraction of the count.
pub fn small_scale() -> bool {
    std::env::var("RESPITE_TEST_SCALE").as_deref() == Ok("small")
}

/// An engine of 4 shards and 3 databases, database 1 a ConstTree of `value_size`-byte values
/// on `backend`, without fsync.
pub fn engine_with_const_db1(
    dir: &std::path::Path,
    value_size: usize,
    backend: respite_storage::BackendKind,
) -> respite_storage::Engine {
    let cfg = respite_storage::Config {
        shards: 4,
        databases: 3,
        sync_mode: respite_storage::SyncMode::No,
        trees: vec![(
            1,
            respite_storage::TreeConfig::Const {
                value_size,
                backend,
            },
        )],
        ..respite_storage::Config::default()
    };
    respite_storage::Engine::open(dir, cfg).unwrap()
}
