//! Argument and outcome types of the engine's operations.

use bytes::Bytes;

/// A global sequence number: every write gets the next one.
pub type Gsn = u64;

/// What a scan does with the expired keys it matches (`Engine::scan_with`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// Delete them, as Redis's SCAN does.
    Delete,
    /// Only leave them out of the reply, as Redis 7.0's KEYS does.
    Skip,
}

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

impl SetCondition {
    /// Whether a write with this condition goes ahead, given whether the key is live.
    #[inline]
    pub(crate) fn holds(self, live: bool) -> bool {
        match self {
            SetCondition::Always => true,
            SetCondition::IfAbsent => !live,
            SetCondition::IfPresent => live,
        }
    }
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

impl Expiry {
    /// The expiry as records and index entries hold it (absolute UNIX ms, 0 for none),
    /// given the key's current one in the same form (0 when it has none or is absent).
    #[inline]
    pub(crate) fn raw_ms(self, current: u64) -> u64 {
        match self {
            Expiry::Persist => 0,
            Expiry::KeepTtl => current,
            // 0 means "no expiry", so the epoch's first millisecond expires at 1.
            Expiry::At(t) => t.max(1),
        }
    }
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

impl SetOutcome {
    /// A SET whose NX/XX condition did not hold: nothing written, `old` if asked for.
    pub(crate) fn not_written(old: Option<Bytes>) -> SetOutcome {
        SetOutcome {
            written: false,
            old,
            gsn: 0,
        }
    }

    /// A SET that wrote, with its GSN.
    pub(crate) fn written(old: Option<Bytes>, gsn: Gsn) -> SetOutcome {
        SetOutcome {
            written: true,
            old,
            gsn,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_conditions_and_expiries_decide_as_redis_set_does() {
        for live in [false, true] {
            assert!(SetCondition::Always.holds(live));
            assert_eq!(SetCondition::IfAbsent.holds(live), !live);
            assert_eq!(SetCondition::IfPresent.holds(live), live);
        }
        assert_eq!(Expiry::Persist.raw_ms(5_000), 0);
        assert_eq!(Expiry::KeepTtl.raw_ms(5_000), 5_000);
        assert_eq!(Expiry::KeepTtl.raw_ms(0), 0);
        assert_eq!(Expiry::At(7_000).raw_ms(5_000), 7_000);
        // PXAT 0 must still expire (0 is "none" in records and entries).
        assert_eq!(Expiry::At(0).raw_ms(0), 1);
    }
}
