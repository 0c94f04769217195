#![allow(clippy::unwrap_used)]
//! The model test (tests/common/model.rs) with database 1 a ConstTree on the Bitcask backend:
//! random set (NX/XX/expiry/GET), delete, expiry, update, rename, copy, move and mset across a
//! VarTree and the ConstTree, with reopen, crash with a torn log tail, flush and compaction.

mod common;

use respite_storage::BackendKind;

#[test]
fn model_const_bitcask() {
    let compactions = common::model::run_cases(Some(BackendKind::Bitcask), 10, 400);
    assert!(compactions > 0, "the compact op never compacted anything");
}
