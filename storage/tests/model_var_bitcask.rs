#![allow(clippy::unwrap_used)]
//! The model test (tests/common/model.rs) with every database a VarTree on the Bitcask
//! backend: random set (NX/XX/expiry/GET), delete, expiry, update, rename, copy, move and
//! mset on a small key space, checked against a BTreeMap, with reopen, crash (drop without
//! close, then a torn or garbled tail on an active log) and compaction as operations. After a
//! crash every write at or below the durable GSN must be there, and every key must hold a
//! state it really had at or after that point.

mod common;

#[test]
fn model_random_ops() {
    let compactions = common::model::run_cases(None, 12, 400);
    assert!(compactions > 0, "the compact op never compacted anything");
}
