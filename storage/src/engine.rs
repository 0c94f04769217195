//! The engine: databases, shard routing, TTL, wiring index <-> backend.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::{Config, SyncMode};
use crate::error::Result;
use crate::types::*;

/// The storage engine. `Send + Sync`; the server holds it in an `Arc`.
pub struct Engine {
    _private: (),
}

#[allow(unused_variables, clippy::missing_errors_doc)]
impl Engine {
    /// Opens (creating if needed) the data directory and recovers its contents.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Engine> {
        todo!()
    }
    /// Number of databases.
    pub fn databases(&self) -> usize {
        todo!()
    }
    /// The current sync mode.
    pub fn sync_mode(&self) -> SyncMode {
        todo!()
    }
    /// Changes the sync mode (CONFIG SET appendfsync).
    pub fn set_sync_mode(&self, mode: SyncMode) {
        todo!()
    }
    /// The live value of `key`.
    pub fn get(&self, db: usize, key: &[u8]) -> Result<Option<Bytes>> {
        todo!()
    }
    /// The live value of `key` and its expiry.
    pub fn get_with_expiry(&self, db: usize, key: &[u8]) -> Result<Option<(Bytes, Option<u64>)>> {
        todo!()
    }
    /// Whether `key` is live.
    pub fn exists(&self, db: usize, key: &[u8]) -> Result<bool> {
        todo!()
    }
    /// None: no such key. Some(None): key without expiry. Some(Some(ms)): expires at ms.
    pub fn expiry(&self, db: usize, key: &[u8]) -> Result<Option<Option<u64>>> {
        todo!()
    }
    /// Byte length of the value (STRLEN).
    pub fn value_len(&self, db: usize, key: &[u8]) -> Result<Option<usize>> {
        todo!()
    }
    /// Keys in `db` (DBSIZE).
    pub fn len(&self, db: usize) -> u64 {
        todo!()
    }
    /// Resumable cursor scan.
    pub fn scan(
        &self,
        db: usize,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> Result<(u64, Vec<Bytes>)> {
        todo!()
    }
    /// A random live key.
    pub fn random_key(&self, db: usize) -> Result<Option<Bytes>> {
        todo!()
    }
    /// SET with options.
    pub fn set(&self, db: usize, key: &[u8], value: &[u8], opts: SetOptions) -> Result<SetOutcome> {
        todo!()
    }
    /// DEL of one key.
    pub fn delete(&self, db: usize, key: &[u8]) -> Result<(bool, Gsn)> {
        todo!()
    }
    /// Set or clear the expiry of an existing key.
    pub fn set_expiry(&self, db: usize, key: &[u8], at_ms: Option<u64>) -> Result<(bool, Gsn)> {
        todo!()
    }
    /// Atomic read-modify-write of one key under its shard lock.
    pub fn update<R>(
        &self,
        db: usize,
        key: &[u8],
        f: impl FnOnce(Option<Current>) -> (Update, R),
    ) -> Result<(R, Gsn)> {
        todo!()
    }
    /// RENAME / RENAMENX.
    pub fn rename(
        &self,
        db: usize,
        src: &[u8],
        dst: &[u8],
        only_if_absent: bool,
    ) -> Result<(RenameOutcome, Gsn)> {
        todo!()
    }
    /// COPY.
    pub fn copy(
        &self,
        src_db: usize,
        src: &[u8],
        dst_db: usize,
        dst: &[u8],
        replace: bool,
    ) -> Result<(bool, Gsn)> {
        todo!()
    }
    /// MOVE.
    pub fn move_key(&self, src_db: usize, key: &[u8], dst_db: usize) -> Result<(bool, Gsn)> {
        todo!()
    }
    /// MSET / MSETNX.
    pub fn mset(
        &self,
        db: usize,
        pairs: &[(&[u8], &[u8])],
        only_if_none_exist: bool,
    ) -> Result<(bool, Gsn)> {
        todo!()
    }
    /// FLUSHDB / FLUSHALL.
    pub fn flush(&self, db: Option<usize>) -> Result<Gsn> {
        todo!()
    }
    /// Highest GSN handed out.
    pub fn last_gsn(&self) -> Gsn {
        todo!()
    }
    /// Every write up to this GSN is on disk.
    pub fn durable_gsn(&self) -> Gsn {
        todo!()
    }
    /// Asks the sync thread to make `gsn` durable soon. Never blocks.
    pub fn request_sync(&self, gsn: Gsn) {
        todo!()
    }
    /// Registers a hook called from the sync thread after durable_gsn advances or a sync fails.
    pub fn on_durable(&self, hook: Arc<dyn Fn() + Send + Sync>) {
        todo!()
    }
    /// Some(error text) once an fsync failed.
    pub fn sync_failure(&self) -> Option<String> {
        todo!()
    }
    /// Flushes every buffer and fdatasyncs everything now, blocking.
    pub fn sync_all(&self) -> Result<Gsn> {
        todo!()
    }
    /// Counters.
    pub fn stats(&self) -> Stats {
        todo!()
    }
    /// Compacts every sealed file above the dead ratio now (test / ops hook).
    pub fn compact_now(&self) -> Result<()> {
        todo!()
    }
    /// Graceful close.
    pub fn close(self) -> Result<()> {
        todo!()
    }
}
