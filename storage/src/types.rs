//! Argument and outcome types of the engine's operations.

use bytes::Bytes;

/// A global sequence number: every write gets the next one.
pub type Gsn = u64;

/// When a `set` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCondition {
    /// Always (plain SET).
    Always,
    /// Only if the key does not exist (NX).
    IfAbsent,
    /// Only if the key exists (XX).
    IfPresent,
}

/// The expiry a write leaves on the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// No expiry.
    Persist,
    /// Keep the key's current expiry (KEEPTTL).
    KeepTtl,
    /// Expire at this absolute UNIX time in milliseconds.
    At(u64),
}

/// Options of `Engine::set`.
#[derive(Clone, Copy, Debug)]
pub struct SetOptions {
    /// NX / XX.
    pub condition: SetCondition,
    /// The expiry to leave on the key.
    pub expiry: Expiry,
    /// Return the previous value (SET ... GET).
    pub return_old: bool,
}

impl Default for SetOptions {
    fn default() -> Self {
        SetOptions {
            condition: SetCondition::Always,
            expiry: Expiry::Persist,
            return_old: false,
        }
    }
}

/// What `Engine::set` did.
#[derive(Clone, Debug, Default)]
pub struct SetOutcome {
    /// Whether the value was written (false when NX/XX did not hold).
    pub written: bool,
    /// The previous live value, if `return_old` was asked for.
    pub old: Option<Bytes>,
    /// The write's GSN, 0 if nothing was written.
    pub gsn: Gsn,
}

/// What an `update` closure sees: the current live value and its expiry.
pub struct Current {
    /// The value.
    pub value: Bytes,
    /// Absolute UNIX ms, None for no expiry.
    pub expire_at_ms: Option<u64>,
}

/// What an `update` closure decides.
pub enum Update {
    /// Leave the key as it is (nothing is written).
    Keep,
    /// Delete the key.
    Delete,
    /// Write a new value with the given expiry.
    Set {
        /// The new value.
        value: Bytes,
        /// Its expiry (`KeepTtl` keeps the current one).
        expiry: Expiry,
    },
    /// Change only the expiry (None clears it). A time in the past deletes the key.
    SetExpiry(Option<u64>),
}

/// What `Engine::rename` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenameOutcome {
    /// The source key does not exist.
    NoSuchKey,
    /// RENAMENX and the target exists.
    TargetExists,
    /// Done.
    Renamed,
}

/// Per-database counters.
#[derive(Clone, Debug, Default)]
pub struct DbStats {
    /// Keys, including expired ones not yet swept (as Redis's DBSIZE).
    pub keys: u64,
    /// Keys with an expiry.
    pub expires: u64,
}

/// Engine counters for INFO.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// One entry per database.
    pub dbs: Vec<DbStats>,
    /// Bytes in log files.
    pub disk_bytes: u64,
    /// Bytes in log files no longer referenced by the index.
    pub dead_bytes: u64,
    /// Log files.
    pub files: u64,
    /// Block cache hits.
    pub cache_hits: u64,
    /// Block cache misses.
    pub cache_misses: u64,
    /// Bytes held by the block cache.
    pub cache_bytes: u64,
    /// Estimated index memory.
    pub index_bytes_estimate: u64,
    /// Highest GSN handed out.
    pub last_gsn: Gsn,
    /// Every write up to this GSN is on disk.
    pub durable_gsn: Gsn,
    /// UNIX ms of the last successful fdatasync round.
    pub last_sync_unix_ms: u64,
    /// Successful sync rounds.
    pub syncs: u64,
    /// An fsync failed; writes are refused.
    pub sync_failed: bool,
    /// Files compacted.
    pub compactions: u64,
    /// Keys removed by the expiry sweep.
    pub expired_keys: u64,
}
