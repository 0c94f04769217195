#![allow(clippy::unwrap_used)]
//! The model test (tests/common/model.rs) with encryption at rest, database 1 a ConstTree on
//! the Bitcask backend: random writes, deletes, expiry, multi-key operations, reopen, crash,
//! flush and compaction, all through encrypted logs and hints. (Its crash damage targets
//! the plaintext layout, so on encrypted logs it mostly lands past the pages written; the
//! torn-tail cases of encrypted logs are in encryption_log.rs.)

mod common;

use respite_storage::BackendKind;

#[test]
fn model_bitcask_encrypted() {
    common::model::ENCRYPTED.store(true, std::sync::atomic::Ordering::Relaxed);
    let cases = if common::small_scale() { 2 } else { 6 };
    let compactions = common::model::run_cases(Some(BackendKind::Bitcask), cases, 400);
    assert!(compactions > 0, "the compact op never compacted anything");
}
