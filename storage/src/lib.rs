//! Respite's storage engine. No sockets, no RESP: usable as an embedded library.
//!
//! Map of the modules:
//! - `engine`: databases, shard routing, TTL, the public [`Engine`].
//! - `config`, `types`, `error`: the public vocabulary.
//! - `glob`: Redis glob matching for SCAN MATCH / KEYS.
//! - `index`: the lock-free index: an ordered skiplist (scans) with a hash table over its nodes
//!   (point lookups, `lookup`, shared with the ConstTree); each node holds its key's entry.
//! - `record`, `hint`, `file`, `writer`: the Bitcask backend (formats in docs/format-bitcask.md);
//!   one active log shared by every shard, so a group-commit round is one fdatasync.
//! - `const_tree`: ConstTree databases (fixed-size values inline in the index, SeqLock reads),
//!   on the shared Bitcask log or on the FixedStore.
//! - `fixed`: the FixedStore backend of a ConstTree (formats in docs/format-fixed.md): slot
//!   files per (database, shard), fdatasync'd by the same group-commit round as the log.
//! - `tree`: per-database dispatch between the VarTree paths in `engine` and ConstTrees.
//! - `crypto`: encryption at rest (AES-256-GCM pages, tag files; docs/encryption.md), the one
//!   module that sees keys.
//! - `cache`: the 4 KiB block cache.
//! - `recovery`: start-up from hints and log scans.
//! - `maint`: the sync thread (group commit) and the maintenance thread (hints, expiry sweep,
//!   compaction, deletion of compacted logs).
//!
//! This crate must not depend on the protocol or server crates.

mod cache;
mod config;
mod const_tree;
mod crypto;
mod engine;
mod error;
mod file;
mod fixed;
mod glob;
mod hint;
mod index;
mod lookup;
mod maint;
mod record;
mod recovery;
mod tree;
mod types;
mod writer;

pub use bytes::Bytes;
pub use config::{BackendKind, Config, SyncMode, TreeConfig};
pub use crypto::MasterKey;
#[doc(hidden)]
pub use crypto::{PageBench, record_nonces, recorded_nonces};
pub use engine::Engine;
pub use error::{Error, Result};
pub use glob::glob_match;
pub use types::{
    Current, DbStats, Expired, Expiry, Gsn, RenameOutcome, SetCondition, SetOptions, SetOutcome,
    Stats, Update,
};
