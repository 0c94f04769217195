//! Engine configuration and the durability mode.

use std::fmt;
use std::str::FromStr;

/// When the engine calls `fdatasync`, with Redis's `appendfsync` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// The sync thread runs as soon as there are unsynced writes; a write is durable once
    /// `durable_gsn()` reaches its GSN (one fdatasync covers every write buffered before it).
    Always,
    /// Buffers are written and fdatasync'd at least once a second: a crash loses at most
    /// about one second of acknowledged writes.
    EverySec,
    /// Buffers are written to the OS about once a second; the OS decides when they reach the
    /// disk. `durable_gsn()` only advances on `sync_all` or an explicit `request_sync`.
    No,
}

impl FromStr for SyncMode {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("always") {
            Ok(SyncMode::Always)
        } else if s.eq_ignore_ascii_case("everysec") {
            Ok(SyncMode::EverySec)
        } else if s.eq_ignore_ascii_case("no") {
            Ok(SyncMode::No)
        } else {
            Err(crate::Error::Config(format!(
                "unknown sync mode {s:?} (expected always, everysec or no)"
            )))
        }
    }
}

impl fmt::Display for SyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncMode::Always => "always",
            SyncMode::EverySec => "everysec",
            SyncMode::No => "no",
        })
    }
}

/// The backend a ConstTree keeps its values on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// Append-only logs with hint files.
    Bitcask,
    /// One file of fixed-size slots per shard.
    Fixed,
}

/// The kind of tree a database is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeConfig {
    /// Variable-size values on the Bitcask backend (the default).
    Var,
    /// Fixed-size values kept inline in the index, on either backend.
    Const {
        /// Every value's size in bytes.
        value_size: usize,
        /// Where the values are made durable.
        backend: BackendKind,
    },
}

/// Engine configuration. Start from `Config::default()` and change fields.
#[derive(Clone, Debug)]
pub struct Config {
    /// Number of databases (`SELECT 0..databases`).
    pub databases: usize,
    /// Number of shards (writer locks and index slices; every shard appends to the one
    /// shared log). Fixed when the data directory is created: a later open uses the number
    /// stored on disk. The default is 64: two writers collide on a shard lock in proportion
    /// to 1/shards, and a collision costs a futex sleep or a `sched_yield`; with 16, two
    /// reactors under `redis-benchmark -t set -P 16` spent 0.09 yields and 0.04 context
    /// switches per SET, with 64 a third of that and 12-19% more SETs/s. A shard costs about
    /// 13 KiB of empty indexes with 16 databases (idle RSS 4.8 MiB with 16 shards, 5.5 with 64).
    pub shards: usize,
    /// When fdatasync runs.
    pub sync_mode: SyncMode,
    /// Block cache capacity in bytes.
    pub cache_capacity_bytes: u64,
    /// The log's write buffer, in bytes (one buffer, shared by every shard).
    pub write_buffer_bytes: usize,
    /// A log file is sealed (and gets a hint file) once it reaches this size.
    pub max_file_bytes: u64,
    /// A sealed file whose dead bytes exceed this fraction of its size is compacted.
    pub compaction_dead_ratio: f64,
    /// Values up to this many bytes live in the index and are read without disk access.
    pub inline_value_max: usize,
    /// Longest key accepted.
    pub max_key_bytes: usize,
    /// Longest key a FixedStore slot holds (every slot reserves this much room for its key,
    /// so it costs disk per key). Fixed when a slot file is created.
    pub fixed_max_key_bytes: usize,
    /// Per-database tree overrides; every other database is `TreeConfig::Var`.
    pub trees: Vec<(usize, TreeConfig)>,
    /// Encrypt every data, hint and slot file under this master key (AES-256-GCM pages with a
    /// tag file beside each; docs/encryption.md). A folder is encrypted or not from its
    /// creation: opening it the other way is an error.
    pub encryption_key: Option<crate::MasterKey>,
    /// Whether the background sweep deletes expired keys (Redis's active expiry). Off, an
    /// expired key is deleted only when something reads or writes it (for tests that count
    /// keys, as DEBUG SET-ACTIVE-EXPIRE 0 is in Redis's).
    pub active_expire: bool,
    /// Where the engine logs (recovery progress, dropped tails, sync failures).
    pub logger: slog::Logger,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            databases: 16,
            shards: 64,
            sync_mode: SyncMode::EverySec,
            cache_capacity_bytes: 256 * 1024 * 1024,
            write_buffer_bytes: 64 * 1024,
            max_file_bytes: 128 * 1024 * 1024,
            compaction_dead_ratio: 0.5,
            inline_value_max: 64,
            max_key_bytes: 512 * 1024 * 1024,
            fixed_max_key_bytes: 64,
            trees: Vec::new(),
            encryption_key: None,
            active_expire: true,
            logger: slog::Logger::root(slog::Discard, slog::o!()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_mode_names() {
        for (s, m) in [
            ("always", SyncMode::Always),
            ("EverySec", SyncMode::EverySec),
            ("NO", SyncMode::No),
        ] {
            assert_eq!(s.parse::<SyncMode>().unwrap(), m);
            assert_eq!(m.to_string(), s.to_ascii_lowercase());
        }
        assert!("sometimes".parse::<SyncMode>().is_err());
    }
}
