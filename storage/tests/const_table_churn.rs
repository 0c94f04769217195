#![allow(clippy::unwrap_used)]
//! ConstTree readers never lose a key while its lookup table grows, fills with tombstones and
//! is rebuilt (tests/common/churn.rs), on both backends.

mod common;

use respite_storage::BackendKind;

#[test]
fn stable_keys_stay_visible_on_bitcask() {
    common::churn::run(Some(BackendKind::Bitcask), 20_000);
}

#[test]
fn stable_keys_stay_visible_on_fixed() {
    common::churn::run(Some(BackendKind::Fixed), 5_000);
}
