#![allow(clippy::unwrap_used)]
//! The model test (tests/common/model.rs) with encryption at rest, database 1 a ConstTree on
//! the FixedStore: random writes, deletes, expiry, multi-key operations, reopen, crash,
//! flush and compaction through encrypted slot files (three copies per page, write-back at
//! the round) and encrypted logs. The crash reverts or tears, chunk by chunk, whatever
//! changed in a slot file since the last sync: with encryption that hits the page copies
//! written since, never the durable copy the copy rule spares, so nothing synced may go.

mod common;

use respite_storage::BackendKind;

#[test]
fn model_fixed_encrypted() {
    common::model::ENCRYPTED.store(true, std::sync::atomic::Ordering::Relaxed);
    let cases = if common::small_scale() { 2 } else { 6 };
    common::model::run_cases(Some(BackendKind::Fixed), cases, 400);
}
