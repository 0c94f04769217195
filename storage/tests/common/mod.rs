//! Code shared by the integration tests.
#![allow(dead_code)]

pub mod capture;
pub mod churn;
pub mod model;

/// Under valgrind (ci/valgrind sets RESPITE_TEST_SCALE=small) tests shrink their loops: the
/// paths still run, at a fraction of the count.
pub fn small_scale() -> bool {
    std::env::var("RESPITE_TEST_SCALE").as_deref() == Ok("small")
}
