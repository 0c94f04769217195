//! Respite's storage engine. No sockets, no RESP: usable as an embedded library.
//!
//! Map of the modules:
//! - `engine`: databases, shard routing, TTL, the public [`Engine`].
//! - `config`, `types`, `error`: the public vocabulary.
//! - `glob`: Redis glob matching for SCAN MATCH / KEYS.
//!
//! This crate must not depend on the protocol or server crates.

mod config;
mod engine;
mod error;
mod glob;
mod types;

pub use bytes::Bytes;
pub use config::{BackendKind, Config, SyncMode, TreeConfig};
pub use engine::Engine;
pub use error::{Error, Result};
pub use glob::glob_match;
pub use types::{
    Current, DbStats, Expiry, Gsn, RenameOutcome, SetCondition, SetOptions, SetOutcome, Stats,
    Update,
};
