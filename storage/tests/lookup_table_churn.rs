#![allow(clippy::unwrap_used)]
//! VarTree readers never lose a key while the lookup table under them grows, fills with
//! tombstones and is rebuilt (tests/common/churn.rs).

mod common;

#[test]
fn stable_keys_stay_visible_through_table_rebuilds() {
    common::churn::run(None, 20_000);
}
