#![allow(clippy::unwrap_used)]
//! The model test (tests/common/model.rs) with database 1 a ConstTree on the FixedStore:
//! random set (NX/XX/expiry/GET), delete, expiry, update, rename, copy, move and mset across a
//! VarTree and the ConstTree, with reopen, crash (slot files as the page cache left them, the
//! VarTree's log tail torn), flush and compaction.

mod common;

use respite_storage::BackendKind;

#[test]
fn model_const_fixed() {
    common::model::run_cases(Some(BackendKind::Fixed), 10, 400);
}
