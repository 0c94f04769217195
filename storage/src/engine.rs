//! The engine: databases, shard routing, TTL, wiring index <-> backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use crossbeam_epoch::{self as epoch, Guard};
use crossbeam_skiplist::SkipMap;
use parking_lot::{Mutex, MutexGuard, RwLock};

use crate::cache::{BLOCK, BlockCache, VALUE_MIN};
use crate::config::{Config, SyncMode};
use crate::error::{Error, Result};
use crate::file::{DataFile, Fsyncers, SyncJob, SyncSeam};
use crate::index::{Entry, Index, NewEntry, Node, Slot, find, random_live, scan_lists};
use crate::lookup::prefetch_probes;
use crate::record::{DB_ALL, FLAG_FLUSH, FLAG_TOMBSTONE, Header, RECORD_HEADER, VTYPE_STRING};
use crate::types::*;
use crate::writer::{Log, Writer};

/// `b[from..to]` without `Bytes::slice`, which takes a second reference to the shared
/// buffer (an atomic add, and later a sub, on a counter every reactor reading that cached
/// block touches): the reference the caller owns is narrowed in place instead.
fn narrow(mut b: Bytes, from: usize, to: usize) -> Bytes {
    b.truncate(to);
    b.advance(from);
    b
}

/// Largest value a record can hold.
const MAX_VALUE: usize = 1 << 30;
/// Values at least this large are read with one pread, bypassing the block cache.
const CACHE_BYPASS: usize = 64 * 1024;
/// Most keys `Engine::prefetch` looks at in one call (a pipeline batch).
const PREFETCH_MAX: usize = 32;

/// Current UNIX time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[inline]
pub(crate) fn hash_key(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

pub(crate) struct Shard {
    /// The shard's writer lock: serialises writes to the shard's keys (taken before `Inner::log`).
    pub writer: Mutex<Writer>,
    /// One skiplist per database. Mutated only under `writer`.
    pub index: Box<[Index]>,
}

#[derive(Default)]
pub(crate) struct DbCounters {
    pub keys: AtomicU64,
    pub expires: AtomicU64,
}

pub(crate) type Hook = Arc<dyn Fn() + Send + Sync>;

/// Everything the engine's threads share.
pub(crate) struct Inner {
    pub dir: PathBuf,
    pub logger: slog::Logger,
    /// The master key of an encrypted folder (docs/encryption.md).
    pub enc_key: Option<crate::MasterKey>,
    pub databases: usize,
    pub nshards: usize,
    pub inline_value_max: usize,
    pub max_key_bytes: usize,
    pub max_file_bytes: u64,
    pub write_buffer_bytes: usize,
    pub dead_ratio: f64,
    /// The background sweep deletes expired keys (Config::active_expire).
    pub active_expire: bool,
    pub shards: Box<[Shard]>,
    /// Per database: its ConstTree, or None for a VarTree. Empty when no database is a
    /// ConstTree (the VarTree paths then pay one length check).
    pub consts: Box<[Option<crate::const_tree::AnyConst>]>,
    /// The one log writer every shard appends to (lock order: shard lock, then this).
    pub log: Mutex<Log>,
    /// Signalled when pages the writer sealed without the log lock are back (`Log::sealing`).
    pub log_idle: parking_lot::Condvar,
    pub dbs: Box<[DbCounters]>,
    /// Every log file on disk, by id. A compacted file leaves this map only after the epoch
    /// says no reader can still hold a location inside it.
    pub files: SkipMap<u32, Arc<DataFile>>,
    pub next_file_id: AtomicU32,
    pub cache: BlockCache,
    pub seam: Arc<SyncSeam>,
    /// Helper threads for a round's concurrent fdatasyncs.
    pub fsyncers: Fsyncers,

    pub gsn: AtomicU64,
    pub durable: AtomicU64,
    pub requested: AtomicU64,
    pub sync_mode: AtomicU8,
    /// Serialises sync rounds, so durability is published in order.
    pub sync_round: Mutex<()>,
    pub dir_dirty: AtomicBool,
    /// Writes are refused (`failure` says why); one atomic load for the hot paths.
    pub failed: AtomicBool,
    pub failure: Mutex<Option<Failure>>,
    pub hooks: RwLock<Vec<Hook>>,
    pub syncs: AtomicU64,
    pub last_sync_ms: AtomicU64,

    pub pending_hints: Mutex<Vec<Arc<DataFile>>>,
    /// Compacted files that no reader can reach any more, waiting to be unlinked.
    pub retired: Arc<Mutex<Vec<Arc<DataFile>>>>,
    /// Serialises compaction runs (the maintenance thread and `compact_now`).
    pub compaction: Mutex<()>,
    pub compactions: AtomicU64,
    pub expired_keys: AtomicU64,

    pub shutdown: AtomicBool,
    pub sync_thread: OnceLock<Thread>,
    pub maint_thread: OnceLock<Thread>,
}

/// Why writes are refused.
pub(crate) struct Failure {
    /// What failed, naming the file and the OS error.
    pub msg: String,
    /// A stalled write (`Inner::stall`) that the sync thread retries; false once something
    /// only a restart clears has failed (`Inner::fail`).
    pub retry: bool,
}

impl Failure {
    /// The text clients and INFO see: what failed and what happens now.
    pub(crate) fn describe(&self) -> String {
        if self.retry {
            format!(
                "{}; writes are refused until a retry succeeds (once a second), and a write \
                 already applied is durable only then",
                self.msg
            )
        } else {
            format!(
                "{}; writes are refused until the server is restarted",
                self.msg
            )
        }
    }
}

fn mode_to_u8(m: SyncMode) -> u8 {
    match m {
        SyncMode::Always => 0,
        SyncMode::EverySec => 1,
        SyncMode::No => 2,
    }
}

fn mode_from_u8(m: u8) -> SyncMode {
    match m {
        0 => SyncMode::Always,
        1 => SyncMode::EverySec,
        _ => SyncMode::No,
    }
}

impl Inner {
    pub(crate) fn sync_mode(&self) -> SyncMode {
        mode_from_u8(self.sync_mode.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.failed.load(Ordering::Acquire)
            && let Some(f) = &*self.failure.lock()
        {
            return Err(Error::WritesRefused(f.describe()));
        }
        Ok(())
    }

    /// Records a failure only a restart clears (an fsync failed, or a file's tail is unknown):
    /// writes are refused from now on, waiters are told. It replaces a stall. Returns the
    /// error to hand back.
    pub(crate) fn fail(&self, msg: String) -> Error {
        self.refuse(Failure { msg, retry: false })
    }

    /// Records a write the OS refused (a full disk, a quota) whose bytes are still in the
    /// log's buffer: writes are refused meanwhile, waiters are told, and the sync thread
    /// writes the buffer again once a second (`retry_stalled`) until it succeeds. A failure
    /// already recorded stays. Returns the error to hand back.
    pub(crate) fn stall(&self, msg: String) -> Error {
        self.refuse(Failure { msg, retry: true })
    }

    /// `fail` and `stall`: records `new` unless a failure at least as final is recorded.
    fn refuse(&self, new: Failure) -> Error {
        let failure = {
            let mut f = self.failure.lock();
            if f.as_ref().is_none_or(|old| old.retry && !new.retry) {
                if new.retry {
                    slog::error!(
                        self.logger,
                        "{}; refusing writes until a retry succeeds",
                        new.msg
                    );
                } else {
                    slog::crit!(self.logger, "{}; refusing writes until restart", new.msg);
                }
                *f = Some(new);
            }
            self.failed.store(true, Ordering::Release);
            f.as_ref().map(Failure::describe).unwrap_or_default()
        };
        // The sync thread tells the waiters (calls the hooks) outside every lock: this can
        // run under a shard lock or the sync-round lock.
        if let Some(t) = self.sync_thread.get() {
            t.unpark();
        }
        Error::WritesRefused(failure)
    }

    /// Whether writes are refused by a stall (`stall`) that a retry may clear.
    pub(crate) fn stalled(&self) -> bool {
        self.failure.lock().as_ref().is_some_and(|f| f.retry)
    }

    /// Writes the buffer of a stalled log again; if the OS takes it now, clears the stall
    /// and writes are accepted again. True if it did.
    pub(crate) fn retry_stalled(&self) -> bool {
        let _round = self.sync_round.lock();
        let mut log = self.log_quiet();
        // Only a plain log's write stalls (an encrypted log's pages are sealed once: its
        // failed write is final, `Log::write_failed`).
        if !self.stalled() || log.active.enc.is_some() || log.write_out(self).is_err() {
            return false;
        }
        // Cleared under the log lock: a writer that appended during the stall decided, under
        // that lock, whether its record stays (see `Log::append`); none may see the stall
        // gone before its buffer is written.
        let mut f = self.failure.lock();
        if !f.as_ref().is_some_and(|f| f.retry) {
            return false;
        }
        slog::warn!(self.logger, "the log write error looks solved; accepting writes again";
            "was" => f.as_ref().map(|f| f.msg.as_str()).unwrap_or_default());
        *f = None;
        self.failed.store(false, Ordering::Release);
        drop(f);
        drop(log);
        true
    }

    /// The log lock, once no pages are being sealed without it (`Log::sealing`): for
    /// anything that writes the log's pages, seals its tail or rotates it.
    pub(crate) fn log_quiet(&self) -> MutexGuard<'_, Log> {
        let mut log = self.log.lock();
        while log.sealing {
            self.log_idle.wait(&mut log);
        }
        log
    }

    pub(crate) fn call_hooks(&self) {
        for h in self.hooks.read().iter() {
            h();
        }
    }

    #[inline]
    pub(crate) fn shard_of(&self, hash: u64) -> usize {
        (hash % self.nshards as u64) as usize
    }

    /// One group-commit round: flush the log's buffer and, if `fsync`, fdatasync every file
    /// written since the last round (the active log; also the one sealed since, if any; and
    /// the FixedStore slot files written since), then the directory if a file was created,
    /// then publish durability. One log fdatasync covers every write buffered before the
    /// round began.
    pub(crate) fn sync_round(&self, fsync: bool) -> Result<Gsn> {
        let published = self.sync_round_locked(fsync)?;
        if published {
            // Outside the round lock, so a hook may call back into the engine.
            self.call_hooks();
        }
        Ok(self.durable.load(Ordering::Acquire))
    }

    /// The round itself, under the round lock; true if it published a durable GSN.
    fn sync_round_locked(&self, fsync: bool) -> Result<bool> {
        let _round = self.sync_round.lock();
        self.check_writable()?;
        // GSNs are handed out under the log lock as records are appended, so under it every
        // write with a GSN <= target is in the buffer or already written to the OS. The lock
        // is held only for the write to the OS, never across the fdatasync: writes that
        // arrive meanwhile form the next group.
        let (target, files) = {
            // Pages being sealed by a writer are written before the round flushes the rest.
            let mut log = self.log_quiet();
            // Encrypted: also the journal copy of the tail page (rounds never overlap).
            log.flush_round(self, fsync)?;
            let target = self.gsn.load(Ordering::SeqCst);
            if !fsync {
                drop(log);
                // Encrypted slot files hand their edited pages to the OS too, without a
                // take: the next fdatasync round carries them.
                if let Err(e) = crate::fixed::write_back_all(self) {
                    let msg = format!("slot file write-back failed: {e}");
                    return Err(self.fail(msg));
                }
                return Ok(false);
            }
            (target, std::mem::take(&mut log.unsynced))
        };
        // FixedStore slot files written since the last round. A slot write takes its GSN and
        // does its pwrite under its FixedStore's own lock (never across an fdatasync), so
        // once each of those locks has been taken after `target` was read, every slot write
        // with a GSN <= target has completed. No shard lock is taken.
        let slot_files = match crate::fixed::dirty_files(self) {
            Ok(f) => f,
            Err(e) => {
                // An encrypted slot file could not write its pages back: its tail is now
                // unknown, as after a failed log write.
                let msg = format!("slot file write-back failed: {e}");
                return Err(self.fail(msg));
            }
        };
        let dir_dirty = self.dir_dirty.swap(false, Ordering::SeqCst);
        // Every file this round makes durable: slot files, and per log its data file and (an
        // encrypted log) its tag file. No order among them is needed (recovery takes any
        // combination), so when there are several their fdatasyncs run at once: an encrypted
        // round of a full page and the journal costs one device flush of waiting, not two.
        let mut syncs: Vec<SyncJob> = slot_files
            .into_iter()
            .map(|(path, f)| SyncJob::Slots(path, f))
            .collect();
        for u in &files {
            if u.data {
                syncs.push(SyncJob::Log(u.file.clone()));
            }
            if u.tag && u.file.enc.is_some() {
                syncs.push(SyncJob::Tag(u.file.clone()));
            }
        }
        let failed = self.fsyncers.run_all(syncs);
        if let Some(msg) = failed {
            // Never retry: the kernel may have dropped the dirty pages, and a second fsync
            // would report success for data that is not on disk (hazard 2).
            return Err(self.fail(msg));
        }
        if dir_dirty && let Err(e) = self.seam.sync_dir(&self.dir) {
            let msg = format!("fsync failed on directory {}: {e}", self.dir.display());
            return Err(self.fail(msg));
        }
        self.durable.fetch_max(target, Ordering::SeqCst);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.last_sync_ms.store(now_ms(), Ordering::Relaxed);
        // Superseded FixedStore slots can be freed now that their successors are durable.
        crate::fixed::after_sync(self, target);
        Ok(true)
    }

    pub(crate) fn request_sync(&self, gsn: Gsn) {
        if gsn <= self.durable.load(Ordering::Acquire) {
            return;
        }
        if self.requested.fetch_max(gsn, Ordering::SeqCst) >= gsn {
            return; // someone already asked for at least this much
        }
        if let Some(t) = self.sync_thread.get() {
            t.unpark();
        }
    }

    // ---------------------------------------------------------------- reads

    /// Prefetches the lookup-table slots of `hashes` in `db` (which must exist), then the
    /// nodes they point at (see `Engine::prefetch`).
    fn prefetch_hashes(&self, db: usize, hashes: &[u64], guard: &Guard) {
        match self.const_tree(db) {
            Some(t) => crate::const_tree::with_const!(t, t => prefetch_probes(hashes, guard, |h| {
                t.shards[self.shard_of(h)].table()
            })),
            None => prefetch_probes(hashes, guard, |h| {
                self.shards[self.shard_of(h)].index[db].table()
            }),
        }
    }

    #[inline]
    pub(crate) fn check_db(&self, db: usize) -> Result<()> {
        if db >= self.databases {
            return Err(Error::InvalidDb {
                db,
                databases: self.databases,
            });
        }
        Ok(())
    }

    /// The entry of a key (live or expired), valid while `guard` is pinned.
    #[inline]
    pub(crate) fn lookup<'g>(
        &'g self,
        db: usize,
        hash: u64,
        key: &[u8],
        guard: &'g Guard,
    ) -> Option<Entry<'g>> {
        let idx = &self.shards[self.shard_of(hash)].index[db];
        find(idx, hash, key, guard).map(|e| e.value().load(guard))
    }

    #[inline]
    pub(crate) fn lookup_live<'g>(
        &'g self,
        db: usize,
        hash: u64,
        key: &[u8],
        guard: &'g Guard,
    ) -> Option<Entry<'g>> {
        // Most keys have no expiry: do not read the clock for them.
        self.lookup(db, hash, key, guard)
            .filter(|e| e.expire_at_ms == 0 || e.live(now_ms()))
    }

    /// The value of an entry: inline, from the write buffer, or through the block cache.
    /// Takes the log lock if the record is still in the write buffer (callers may hold a
    /// shard lock: that is the lock order).
    pub(crate) fn entry_value(&self, key_len: usize, e: Entry<'_>) -> Result<Bytes> {
        if let Some(v) = e.inline() {
            return Ok(Bytes::copy_from_slice(v));
        }
        let off = e.offset as u64 + (RECORD_HEADER + key_len) as u64;
        self.read_value(e.file, off, e.value_len as usize)
    }

    pub(crate) fn read_value(&self, file: u32, off: u64, len: usize) -> Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let whole = (VALUE_MIN..CACHE_BYPASS).contains(&len);
        if whole {
            if let Some(v) = self.cache.get_value(file, off) {
                debug_assert_eq!(v.len(), len);
                self.cache.count_hit();
                return Ok(v);
            }
        } else if len < VALUE_MIN {
            let first = (off / BLOCK) as u32;
            let last = ((off + len as u64 - 1) / BLOCK) as u32;
            if first == last {
                let in_block = (off % BLOCK) as usize;
                if let Some(b) = self.cache.get(file, first, in_block + len) {
                    self.cache.count_hit();
                    return Ok(narrow(b, in_block, in_block + len));
                }
            }
        }
        let Some(f) = self.files.get(&file).map(|e| e.value().clone()) else {
            return Err(Error::Corrupt {
                file: crate::file::log_path(&self.dir, file),
                offset: off,
                reason: "index points into a missing log file",
            });
        };
        if let Some(c) = &f.enc {
            return self.read_value_enc(&f, c, off, len);
        }
        if off + len as u64 > f.len() {
            // Not written to the OS yet: serve it from the log's write buffer (if it was
            // flushed meanwhile, `flushed` was raised first and the pread below finds it).
            let log = self.log.lock();
            if let Some(b) = log.read_buffered(file, off, len) {
                return Ok(Bytes::copy_from_slice(b));
            }
        }
        if len >= VALUE_MIN {
            // One pread of the value alone (cached whole unless it is large).
            if off + len as u64 > f.len() {
                return Err(Error::Corrupt {
                    file: f.path.clone(),
                    offset: off,
                    reason: "value extends past the end of its log file",
                });
            }
            let mut v = vec![0u8; len];
            f.read_exact_at(&mut v, off)?;
            let v = Bytes::from(v);
            if whole {
                self.cache.count_miss();
                self.cache.insert_value(file, off, v.clone());
            }
            return Ok(v);
        }
        self.read_blocks(&f, off, len, true, |blk, _last| {
            // Never past what was written: the rest of a preallocated log reads as zeros,
            // and a block cached with them would hide records written later.
            let bstart = blk as u64 * BLOCK;
            let avail = f.len().saturating_sub(bstart).min(BLOCK) as usize;
            let mut v = vec![0u8; avail];
            let n = f.read_at_most(&mut v, bstart)?;
            v.truncate(n);
            Ok(vec![Bytes::from(v)])
        })
    }

    /// `len` bytes at `off` of log `f`, block by block: each from the block cache if
    /// `cached`, else from `load` (and then offered to the cache if `cached`). `load(blk,
    /// last)` returns block `blk` and may return the blocks after it up to `last` too (read
    /// together); those are used as they are. A block shorter than the value needs is
    /// corruption.
    fn read_blocks(
        &self,
        f: &DataFile,
        off: u64,
        len: usize,
        cached: bool,
        load: impl Fn(u32, u32) -> Result<Vec<Bytes>>,
    ) -> Result<Bytes> {
        let first = (off / BLOCK) as u32;
        let last = ((off + len as u64 - 1) / BLOCK) as u32;
        if cached {
            self.cache.count_miss();
        }
        let short = || Error::Corrupt {
            file: f.path.clone(),
            offset: off,
            reason: "value extends past the end of its log file",
        };
        let mut out = Vec::with_capacity(if first == last { 0 } else { len });
        // Blocks after `blk` that the last `load` returned, in order.
        let mut read_ahead = Vec::new().into_iter();
        for blk in first..=last {
            let bstart = blk as u64 * BLOCK;
            let from = off.max(bstart) - bstart;
            let to = (off + len as u64).min(bstart + BLOCK) - bstart;
            // A block just read: long enough, and offered to the cache.
            let fresh = |d: Bytes| {
                if d.len() < to as usize {
                    return Err(short());
                }
                if cached {
                    self.cache.insert(f.id, blk, d.clone());
                }
                Ok(d)
            };
            let data = if let Some(d) = read_ahead.next() {
                fresh(d)?
            } else if let Some(d) = cached
                .then(|| self.cache.get(f.id, blk, to as usize))
                .flatten()
            {
                d
            } else {
                let mut run = load(blk, last)?.into_iter();
                let d = run.next().ok_or_else(short)?;
                read_ahead = run;
                fresh(d)?
            };
            if first == last {
                return Ok(narrow(data, from as usize, to as usize));
            }
            out.extend_from_slice(&data[from as usize..to as usize]);
        }
        Ok(Bytes::from(out))
    }

    /// `read_value` of an encrypted log past the cache hit: whole pages, decrypted (a page
    /// that fails authentication is `Tampered`, never data), cached decrypted, so a cache
    /// hit costs what it costs unencrypted. Large values bypass the cache, as plain ones do.
    /// The active log's partly filled tail page is in the write buffer, so a value may start
    /// in the pages written and end in the buffer.
    #[cold]
    fn read_value_enc(
        &self,
        f: &DataFile,
        c: &crate::file::LogCrypt,
        off: u64,
        len: usize,
    ) -> Result<Bytes> {
        if off + len as u64 > f.len() {
            // Copied under the log lock; the pages before it (written once, never changed)
            // are read after the lock is released.
            let tail = self.log.lock().read_buffered_from(f.id, off, len);
            if let Some((split, tail)) = tail {
                if split == off {
                    return Ok(Bytes::from(tail));
                }
                let head = self.read_pages_enc(f, c, off, (split - off) as usize, len)?;
                let mut v = Vec::with_capacity(len);
                v.extend_from_slice(&head);
                v.extend_from_slice(&tail);
                return Ok(Bytes::from(v));
            }
        }
        self.read_pages_enc(f, c, off, len, len)
    }

    /// `len` bytes at `off` of an encrypted log's pages (through the block cache unless
    /// `value_len` is large).
    fn read_pages_enc(
        &self,
        f: &DataFile,
        c: &crate::file::LogCrypt,
        off: u64,
        len: usize,
        value_len: usize,
    ) -> Result<Bytes> {
        self.read_blocks(f, off, len, value_len < CACHE_BYPASS, |blk, last| {
            f.read_pages(c, blk as u64, (last - blk) as usize + 1)
        })
    }

    // ---------------------------------------------------------------- write primitives

    fn make_entry<'v>(
        &self,
        file: u32,
        offset: u32,
        value: &'v [u8],
        expire_at_ms: u64,
    ) -> NewEntry<'v> {
        NewEntry {
            expire_at_ms,
            file,
            offset,
            value_len: value.len() as u32,
            inline: (value.len() <= self.inline_value_max).then_some(value),
        }
    }

    pub(crate) fn add_dead(&self, file: u32, bytes: u64) {
        if let Some(f) = self.files.get(&file) {
            f.value().dead.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    pub(crate) fn check_sizes(&self, key: &[u8], value: &[u8]) -> Result<()> {
        if key.len() > self.max_key_bytes || key.len() > MAX_VALUE {
            return Err(Error::KeyTooLarge {
                got: key.len(),
                max: self.max_key_bytes.min(MAX_VALUE),
            });
        }
        if value.len() > MAX_VALUE {
            return Err(Error::ValueTooLarge {
                got: value.len(),
                max: MAX_VALUE,
            });
        }
        Ok(())
    }

    /// Writes `key = value` in `db` under the shard's lock `w`; returns the write's GSN.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put_locked(
        &self,
        w: &mut Writer,
        db: usize,
        hash: u64,
        key: &[u8],
        value: &[u8],
        expire_at_ms: u64,
        guard: &Guard,
    ) -> Result<Gsn> {
        let idx = &self.shards[self.shard_of(hash)].index[db];
        let existing = find(idx, hash, key, guard);
        self.put_with(w, db, hash, key, value, expire_at_ms, guard, existing)
    }

    /// `put_locked` with the key's node already looked up under the same lock hold.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put_with(
        &self,
        w: &mut Writer,
        db: usize,
        hash: u64,
        key: &[u8],
        value: &[u8],
        expire_at_ms: u64,
        guard: &Guard,
        existing: Option<Node<'_>>,
    ) -> Result<Gsn> {
        let h = Header {
            gsn: 0,
            expire_at_ms,
            flags: 0,
            vtype: VTYPE_STRING,
            db: db as u16,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
        };
        let (file, offset, gsn) = w.append(self, &h, key, value)?;
        let entry = self.make_entry(file, offset, value, expire_at_ms);
        match existing {
            Some(node) => self.replace_entry(db, key.len(), node.value(), entry, guard),
            None => {
                let idx = &self.shards[self.shard_of(hash)].index[db];
                idx.insert_new(hash, key, entry, guard);
                self.count_new(db, expire_at_ms);
            }
        }
        Ok(gsn)
    }

    /// Plain SET (no condition, no KEEPTTL, no GET): one skiplist search, which finds the
    /// key's node or inserts it.
    #[allow(clippy::too_many_arguments)]
    fn put_blind(
        &self,
        w: &mut Writer,
        db: usize,
        hash: u64,
        key: &[u8],
        value: &[u8],
        expire_at_ms: u64,
        guard: &Guard,
    ) -> Result<Gsn> {
        let h = Header {
            gsn: 0,
            expire_at_ms,
            flags: 0,
            vtype: VTYPE_STRING,
            db: db as u16,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
        };
        let (file, offset, gsn) = w.append(self, &h, key, value)?;
        let entry = self.make_entry(file, offset, value, expire_at_ms);
        let idx = &self.shards[self.shard_of(hash)].index[db];
        match find(idx, hash, key, guard) {
            Some(node) => self.replace_entry(db, key.len(), node.value(), entry, guard),
            None => {
                idx.insert_new(hash, key, entry, guard);
                self.count_new(db, expire_at_ms);
            }
        }
        Ok(gsn)
    }

    fn count_new(&self, db: usize, expire_at_ms: u64) {
        let counters = &self.dbs[db];
        counters.keys.fetch_add(1, Ordering::Relaxed);
        if expire_at_ms != 0 {
            counters.expires.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publishes `entry` for an existing key and accounts for the record it supersedes.
    fn replace_entry(
        &self,
        db: usize,
        key_len: usize,
        slot: &Slot,
        entry: NewEntry<'_>,
        guard: &Guard,
    ) {
        let counters = &self.dbs[db];
        let old = slot.load(guard);
        self.add_dead(old.file, old.record_len(key_len));
        match (old.expire_at_ms != 0, entry.expire_at_ms != 0) {
            (false, true) => {
                counters.expires.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                counters.expires.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        slot.replace(entry, guard);
    }

    /// Deletes `key` in `db` under the shard's lock `w`, writing a tombstone if it is in the
    /// index (expired or not). Returns the tombstone's GSN, or None if the key was not there.
    pub(crate) fn del_locked(
        &self,
        w: &mut Writer,
        db: usize,
        hash: u64,
        key: &[u8],
        guard: &Guard,
    ) -> Result<Option<Gsn>> {
        let idx = &self.shards[self.shard_of(hash)].index[db];
        let Some(node) = find(idx, hash, key, guard) else {
            return Ok(None);
        };
        self.del_with(w, db, key, guard, node).map(Some)
    }

    /// `del_locked` with the key's node already looked up under the same lock hold.
    pub(crate) fn del_with(
        &self,
        w: &mut Writer,
        db: usize,
        key: &[u8],
        guard: &Guard,
        node: Node<'_>,
    ) -> Result<Gsn> {
        let h = Header {
            gsn: 0,
            expire_at_ms: 0,
            flags: FLAG_TOMBSTONE,
            vtype: VTYPE_STRING,
            db: db as u16,
            key_len: key.len() as u32,
            value_len: 0,
        };
        let (file, _, gsn) = w.append(self, &h, key, b"")?;
        let old = node.value().load(guard);
        self.add_dead(old.file, old.record_len(key.len()));
        // The tombstone itself is dead weight from the start.
        self.add_dead(file, h.record_len() as u64);
        let counters = &self.dbs[db];
        if old.expire_at_ms != 0 {
            counters.expires.fetch_sub(1, Ordering::Relaxed);
        }
        counters.keys.fetch_sub(1, Ordering::Relaxed);
        self.shards[self.shard_of(node.hash)].index[db].remove(node, guard);
        Ok(gsn)
    }

    /// Locks the shards of `hashes` in shard order (the one lock order every multi-shard
    /// operation uses, so they cannot deadlock).
    pub(crate) fn lock_shards(&self, hashes: &[u64]) -> Vec<(usize, MutexGuard<'_, Writer>)> {
        let mut ids: Vec<usize> = hashes.iter().map(|&h| self.shard_of(h)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|i| (i, self.shards[i].writer.lock()))
            .collect()
    }
}

pub(crate) fn writer_for<'a, 'b>(
    locks: &'a mut [(usize, MutexGuard<'b, Writer>)],
    shard: usize,
) -> &'a mut Writer {
    let i = locks.iter().position(|(s, _)| *s == shard);
    // The caller locked every shard it writes to; a miss is a bug in this file.
    let i = i.unwrap_or_else(|| unreachable!("shard {shard} not locked"));
    &mut locks[i].1
}

/// The storage engine. `Send + Sync`; the server holds it in an `Arc`.
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
    /// Holds the directory's flock until the engine is dropped (after its threads stop).
    _lock: std::fs::File,
}

impl Engine {
    /// Opens (creating if needed) the data directory and recovers its contents: hint files
    /// for sealed logs, a CRC-checked scan of the active log (a torn tail is cut).
    ///
    /// # Errors
    /// `Error::Config` for an unusable config (a tree setting beyond `databases`, a ConstTree
    /// value size or key room out of range, slot files or logs written under another tree
    /// setting for a ConstTree database),
    /// `Error::Io` if the directory or a file cannot be read or created.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Engine> {
        if config.databases == 0 || config.databases > DB_ALL as usize {
            return Err(Error::Config(format!(
                "databases must be 1..{}, got {}",
                DB_ALL, config.databases
            )));
        }
        if config.shards == 0 || config.shards > 4096 {
            return Err(Error::Config(format!(
                "shards must be 1..=4096, got {}",
                config.shards
            )));
        }
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock = crate::file::lock_dir(&dir)?;
        // An encrypted folder without its key, a plain folder holding data with a key, or a
        // wrong key: refused here, before anything is read (docs/encryption.md).
        crate::crypto::check_folder(
            &dir,
            config.encryption_key.as_ref(),
            crate::file::has_data(&dir)?,
        )?;
        let trees = config.trees.clone();
        let fixed_max_key = config.fixed_max_key_bytes;
        let key = config.encryption_key.clone();
        crate::tree::check_config(&trees, config.databases, fixed_max_key)?;
        let mut inner = crate::recovery::recover(dir, config)?;
        crate::tree::attach_const_trees(&mut inner, &trees, fixed_max_key, key.as_ref())?;
        let inner = Arc::new(inner);
        let mut threads = Vec::new();
        let i2 = inner.clone();
        let t = std::thread::Builder::new()
            .name("respite-sync".into())
            .spawn(move || crate::maint::sync_thread(&i2))
            .map_err(|e| Error::io(&inner.dir, e))?;
        let _ = inner.sync_thread.set(t.thread().clone());
        threads.push(t);
        let i2 = inner.clone();
        let t = std::thread::Builder::new()
            .name("respite-maint".into())
            .spawn(move || crate::maint::maint_thread(&i2))
            .map_err(|e| Error::io(&inner.dir, e))?;
        let _ = inner.maint_thread.set(t.thread().clone());
        threads.push(t);
        Ok(Engine {
            inner,
            threads,
            _lock: lock,
        })
    }

    /// Number of databases.
    pub fn databases(&self) -> usize {
        self.inner.databases
    }

    /// The current sync mode.
    pub fn sync_mode(&self) -> SyncMode {
        self.inner.sync_mode()
    }

    /// Changes the sync mode (CONFIG SET appendfsync). Takes effect at the next write.
    pub fn set_sync_mode(&self, mode: SyncMode) {
        self.inner
            .sync_mode
            .store(mode_to_u8(mode), Ordering::Relaxed);
        if let Some(t) = self.inner.sync_thread.get() {
            t.unpark();
        }
    }

    // ---------------------------------------------------------------- reads

    /// Starts loading the index memory that commands on `keys` in `db` are about to read:
    /// the lookup-table slots of all of them first, then the nodes those slots point at. A
    /// pipeline of requests then waits for its cache misses together instead of one after
    /// another. A hint: it changes no state and no result; keys past the first `PREFETCH_MAX`
    /// (32) and an unknown `db` are ignored.
    pub fn prefetch<'k>(&self, db: usize, keys: impl IntoIterator<Item = &'k [u8]>) {
        let inner = &*self.inner;
        if inner.check_db(db).is_err() {
            return;
        }
        let mut hashes = [0u64; PREFETCH_MAX];
        let mut n = 0;
        for (h, k) in hashes.iter_mut().zip(keys) {
            *h = hash_key(k);
            n += 1;
        }
        inner.prefetch_hashes(db, &hashes[..n], &epoch::pin());
    }

    /// The live value of `key`. Lock-free unless the value is still in a write buffer.
    ///
    /// # Errors
    /// `InvalidDb`; `Io`/`Corrupt` if the value cannot be read from its log.
    #[inline]
    pub fn get(&self, db: usize, key: &[u8]) -> Result<Option<Bytes>> {
        let inner = &*self.inner;
        inner.check_db(db)?;
        if let Some(t) = inner.const_tree(db) {
            return Ok(self.const_get(t, key).map(|(v, _)| v));
        }
        self.read_live(db, key, |e| inner.entry_value(key.len(), e))
            .transpose()
    }

    /// `f` of the live entry of `key` in VarTree `db`. An expired entry found on the way is
    /// deleted at once (tombstone and all), as Redis deletes a key on access: DBSIZE stops
    /// counting it now, not at the next sweep.
    fn read_live<R>(&self, db: usize, key: &[u8], f: impl FnOnce(Entry<'_>) -> R) -> Option<R> {
        let inner = &*self.inner;
        let hash = hash_key(key);
        {
            let guard = epoch::pin();
            match inner.lookup(db, hash, key, &guard) {
                Some(e) if e.expire_at_ms == 0 || e.live(now_ms()) => return Some(f(e)),
                Some(_) => {}
                None => return None,
            }
        }
        inner.reap(inner.shard_of(hash), db, &[(hash, key)]);
        None
    }

    /// The live value of `key` and its expiry.
    ///
    /// # Errors
    /// As `get`.
    pub fn get_with_expiry(&self, db: usize, key: &[u8]) -> Result<Option<(Bytes, Option<u64>)>> {
        let inner = &*self.inner;
        inner.check_db(db)?;
        if let Some(t) = inner.const_tree(db) {
            return Ok(self.const_get(t, key));
        }
        self.read_live(db, key, |e| {
            inner.entry_value(key.len(), e).map(|v| (v, e.expiry()))
        })
        .transpose()
    }

    /// Whether `key` is live.
    ///
    /// # Errors
    /// `InvalidDb`.
    pub fn exists(&self, db: usize, key: &[u8]) -> Result<bool> {
        self.inner.check_db(db)?;
        if let Some(t) = self.inner.const_tree(db) {
            return Ok(self.const_expiry(t, key).is_some());
        }
        Ok(self.read_live(db, key, |_| ()).is_some())
    }

    /// None: no such key. Some(None): key without expiry. Some(Some(ms)): expires at ms.
    ///
    /// # Errors
    /// `InvalidDb`.
    pub fn expiry(&self, db: usize, key: &[u8]) -> Result<Option<Option<u64>>> {
        self.inner.check_db(db)?;
        if let Some(t) = self.inner.const_tree(db) {
            return Ok(self.const_expiry(t, key));
        }
        Ok(self.read_live(db, key, |e| e.expiry()))
    }

    /// Byte length of the value, without reading it (STRLEN).
    ///
    /// # Errors
    /// `InvalidDb`.
    pub fn value_len(&self, db: usize, key: &[u8]) -> Result<Option<usize>> {
        self.inner.check_db(db)?;
        if let Some(t) = self.inner.const_tree(db) {
            return Ok(self.const_expiry(t, key).map(|_| t.value_size()));
        }
        Ok(self.read_live(db, key, |e| e.value_len as usize))
    }

    /// Keys in `db`, counting expired keys not yet swept (as Redis's DBSIZE). 0 for an
    /// out-of-range db.
    pub fn len(&self, db: usize) -> u64 {
        self.inner
            .dbs
            .get(db)
            .map_or(0, |c| c.keys.load(Ordering::Relaxed))
    }

    /// Whether `db` holds no keys.
    pub fn is_empty(&self, db: usize) -> bool {
        self.len(db) == 0
    }

    /// Resumable cursor scan. Cursor 0 starts; a returned cursor of 0 means done. Never
    /// misses a key that exists for the whole scan; may return a key twice. `count` bounds
    /// the entries examined per call (as Redis's COUNT hint). Expired keys that match are
    /// deleted, as Redis's SCAN does (`Expired::Delete`).
    ///
    /// The cursor is (shard << SEQ_BITS) | (the sequence number to resume at), in a VarTree
    /// and a ConstTree alike.
    ///
    /// # Errors
    /// `InvalidDb`.
    pub fn scan(
        &self,
        db: usize,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> Result<(u64, Vec<Bytes>)> {
        self.scan_with(db, cursor, pattern, count, Expired::Delete)
    }

    /// `scan`, choosing what happens to the expired keys that match: deleted (Redis's SCAN)
    /// or only left out of the reply (Redis 7.0's KEYS, which leaves them to be deleted on
    /// access or by the sweep, so DBSIZE still counts them).
    ///
    /// # Errors
    /// `InvalidDb`.
    pub fn scan_with(
        &self,
        db: usize,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
        expired: Expired,
    ) -> Result<(u64, Vec<Bytes>)> {
        let inner = &*self.inner;
        inner.check_db(db)?;
        let mut dead = Vec::new();
        let out = match inner.const_tree(db) {
            Some(t) => self.const_scan(t, cursor, pattern, count, &mut dead),
            None => self.scan_var(db, cursor, pattern, count, &mut dead),
        };
        if expired == Expired::Delete {
            // Each shard's (the scan walks the shards in turn) under one hold of its lock.
            for run in dead.chunk_by(|a, b| a.0 == b.0) {
                let keys: Vec<(u64, &Bytes)> = run.iter().map(|(_, h, k)| (*h, k)).collect();
                inner.reap(run[0].0, db, &keys);
            }
        }
        Ok(out)
    }

    /// `scan` of a VarTree database; expired keys that match are noted in `expired` as
    /// (shard, hash, key).
    fn scan_var(
        &self,
        db: usize,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
        expired: &mut Vec<(usize, u64, Bytes)>,
    ) -> (u64, Vec<Bytes>) {
        let inner = &*self.inner;
        let now = now_ms();
        let guard = epoch::pin();
        scan_lists(
            inner.nshards,
            cursor,
            count,
            |s, pos| inner.shards[s].index[db].seek(pos, &guard),
            |k| (k.bytes(), k.hash, k.value().load(&guard).live(now)),
            pattern,
            expired,
        )
    }

    /// A random live key, or None if the database has none.
    ///
    /// # Errors
    /// `InvalidDb`.
    pub fn random_key(&self, db: usize) -> Result<Option<Bytes>> {
        let inner = &*self.inner;
        inner.check_db(db)?;
        if let Some(t) = inner.const_tree(db) {
            return Ok(self.const_random_key(t));
        }
        let guard = epoch::pin();
        let idx = |s: usize| &inner.shards[s].index[db];
        Ok(random_live(
            inner.nshards,
            |s| idx(s).next_seq(),
            |s, pos| idx(s).seek(pos, &guard),
            |k, now| k.value().load(&guard).live(now).then(|| k.bytes()),
            || inner.dbs[db].keys.load(Ordering::Relaxed) == 0,
        ))
    }

    // ---------------------------------------------------------------- writes

    pub(crate) fn after_write(&self, gsn: Gsn) {
        if gsn != 0 && self.inner.sync_mode() == SyncMode::Always {
            self.inner.request_sync(gsn);
        }
    }

    /// SET with NX/XX, expiry and GET options.
    ///
    /// # Errors
    /// `InvalidDb`, `KeyTooLarge`/`ValueTooLarge`, `ValueSize` for a ConstTree database and a
    /// value of another size, `WritesRefused` after an fsync failure, `Io` if a write to the
    /// log failed.
    pub fn set(&self, db: usize, key: &[u8], value: &[u8], opts: SetOptions) -> Result<SetOutcome> {
        let inner = &*self.inner;
        inner.check_db(db)?;
        if let Some(t) = inner.const_tree(db) {
            return self.const_set(t, key, value, opts);
        }
        inner.check_sizes(key, value)?;
        let hash = hash_key(key);
        let shard = &inner.shards[inner.shard_of(hash)];
        let mut w = shard.writer.lock();
        inner.check_writable()?;
        let guard = epoch::pin();
        if let (SetCondition::Always, false, Expiry::Persist | Expiry::At(_)) =
            (opts.condition, opts.return_old, opts.expiry)
        {
            let expire = opts.expiry.raw_ms(0);
            let gsn = inner.put_blind(&mut w, db, hash, key, value, expire, &guard)?;
            drop(w);
            self.after_write(gsn);
            return Ok(SetOutcome::written(None, gsn));
        }
        let node = find(&shard.index[db], hash, key, &guard);
        let cur = node
            .as_ref()
            .map(|n| n.value().load(&guard))
            .filter(|e| e.expire_at_ms == 0 || e.live(now_ms()));
        let old = match (opts.return_old, cur) {
            (true, Some(e)) => Some(inner.entry_value(key.len(), e)?),
            _ => None,
        };
        if !opts.condition.holds(cur.is_some()) {
            return Ok(SetOutcome::not_written(old));
        }
        let expire = opts.expiry.raw_ms(cur.map_or(0, |e| e.expire_at_ms));
        let gsn = inner.put_with(&mut w, db, hash, key, value, expire, &guard, node)?;
        drop(w);
        self.after_write(gsn);
        Ok(SetOutcome::written(old, gsn))
    }

    /// DEL of one key: (whether a live key was deleted, GSN).
    ///
    /// # Errors
    /// As `set`.
    pub fn delete(&self, db: usize, key: &[u8]) -> Result<(bool, Gsn)> {
        let inner = &*self.inner;
        inner.check_db(db)?;
        if let Some(t) = inner.const_tree(db) {
            return self.const_delete(t, key);
        }
        let hash = hash_key(key);
        let shard = &inner.shards[inner.shard_of(hash)];
        let mut w = shard.writer.lock();
        inner.check_writable()?;
        let guard = epoch::pin();
        let Some(node) = find(&shard.index[db], hash, key, &guard) else {
            return Ok((false, 0));
        };
        // An expired key still gets a tombstone (or an older copy could come back), but
        // reports false like a key that was not there.
        let live = node.value().load(&guard).live(now_ms());
        let gsn = inner.del_with(&mut w, db, key, &guard, node)?;
        drop(w);
        self.after_write(gsn);
        Ok((live, gsn))
    }

    /// Sets (Some) or clears (None) the expiry of an existing key; false if it does not
    /// exist. An expiry in the past deletes the key (and returns true).
    ///
    /// # Errors
    /// As `set`.
    pub fn set_expiry(&self, db: usize, key: &[u8], at_ms: Option<u64>) -> Result<(bool, Gsn)> {
        self.update(db, key, |cur| match cur {
            None => (Update::Keep, false),
            Some(_) => (Update::SetExpiry(at_ms), true),
        })
    }

    /// Atomic read-modify-write of one key under its shard lock. `f` sees the live value
    /// (None if absent or expired) and decides; the GSN is 0 if nothing was written.
    ///
    /// # Errors
    /// As `set`; `f` is not called if the current value cannot be read.
    pub fn update<R>(
        &self,
        db: usize,
        key: &[u8],
        f: impl FnOnce(Option<Current>) -> (Update, R),
    ) -> Result<(R, Gsn)> {
        let inner = &*self.inner;
        inner.check_db(db)?;
        if inner.any_const(&[db]) {
            return self.update_any(db, key, f);
        }
        let hash = hash_key(key);
        let mut w = inner.shards[inner.shard_of(hash)].writer.lock();
        inner.check_writable()?;
        let guard = epoch::pin();
        let cur_entry = inner.lookup_live(db, hash, key, &guard);
        let cur = match cur_entry {
            Some(e) => Some(Current {
                value: inner.entry_value(key.len(), e)?,
                expire_at_ms: e.expiry(),
            }),
            None => None,
        };
        let cur_value = cur.as_ref().map(|c| c.value.clone());
        let (u, r) = f(cur);
        let gsn = match u {
            Update::Keep => 0,
            Update::Delete => inner
                .del_locked(&mut w, db, hash, key, &guard)?
                .unwrap_or(0),
            Update::Set { value, expiry } => {
                inner.check_sizes(key, &value)?;
                let expire = expiry.raw_ms(cur_entry.map_or(0, |e| e.expire_at_ms));
                inner.put_locked(&mut w, db, hash, key, &value, expire, &guard)?
            }
            Update::SetExpiry(at) => match cur_value {
                None => 0,
                Some(v) => match at {
                    Some(t) if t <= now_ms() => inner
                        .del_locked(&mut w, db, hash, key, &guard)?
                        .unwrap_or(0),
                    _ => {
                        let expire = at.unwrap_or(0);
                        inner.put_locked(&mut w, db, hash, key, &v, expire, &guard)?
                    }
                },
            },
        };
        drop(w);
        self.after_write(gsn);
        Ok((r, gsn))
    }

    /// RENAME (only_if_absent = false) / RENAMENX (true), atomic across shards.
    ///
    /// # Errors
    /// As `set`.
    pub fn rename(
        &self,
        db: usize,
        src: &[u8],
        dst: &[u8],
        only_if_absent: bool,
    ) -> Result<(RenameOutcome, Gsn)> {
        let inner = &*self.inner;
        inner.check_db(db)?;
        if inner.any_const(&[db]) {
            return self.rename_any(db, src, dst, only_if_absent);
        }
        inner.check_sizes(dst, b"")?;
        let (hs, hd) = (hash_key(src), hash_key(dst));
        let mut locks = inner.lock_shards(&[hs, hd]);
        inner.check_writable()?;
        let guard = epoch::pin();
        let Some(se) = inner.lookup_live(db, hs, src, &guard) else {
            return Ok((RenameOutcome::NoSuchKey, 0));
        };
        if src == dst {
            let outcome = if only_if_absent {
                RenameOutcome::TargetExists
            } else {
                RenameOutcome::Renamed
            };
            return Ok((outcome, 0));
        }
        if only_if_absent && inner.lookup_live(db, hd, dst, &guard).is_some() {
            return Ok((RenameOutcome::TargetExists, 0));
        }
        let value = inner.entry_value(src.len(), se)?;
        let expire = se.expire_at_ms;
        let wd = writer_for(&mut locks, inner.shard_of(hd));
        let g1 = inner.put_locked(wd, db, hd, dst, &value, expire, &guard)?;
        let ws = writer_for(&mut locks, inner.shard_of(hs));
        let g2 = inner.del_locked(ws, db, hs, src, &guard)?.unwrap_or(g1);
        drop(locks);
        self.after_write(g2);
        Ok((RenameOutcome::Renamed, g2))
    }

    /// COPY: copies value and expiry; false if src is missing or dst exists and !replace.
    ///
    /// # Errors
    /// As `set`.
    pub fn copy(
        &self,
        src_db: usize,
        src: &[u8],
        dst_db: usize,
        dst: &[u8],
        replace: bool,
    ) -> Result<(bool, Gsn)> {
        let inner = &*self.inner;
        inner.check_db(src_db)?;
        inner.check_db(dst_db)?;
        if inner.any_const(&[src_db, dst_db]) {
            return self.copy_any(src_db, src, dst_db, dst, replace);
        }
        inner.check_sizes(dst, b"")?;
        let (hs, hd) = (hash_key(src), hash_key(dst));
        let mut locks = inner.lock_shards(&[hs, hd]);
        inner.check_writable()?;
        let guard = epoch::pin();
        let Some(se) = inner.lookup_live(src_db, hs, src, &guard) else {
            return Ok((false, 0));
        };
        if src_db == dst_db && src == dst {
            return Ok((false, 0));
        }
        if !replace && inner.lookup_live(dst_db, hd, dst, &guard).is_some() {
            return Ok((false, 0));
        }
        let value = inner.entry_value(src.len(), se)?;
        let wd = writer_for(&mut locks, inner.shard_of(hd));
        let gsn = inner.put_locked(wd, dst_db, hd, dst, &value, se.expire_at_ms, &guard)?;
        drop(locks);
        self.after_write(gsn);
        Ok((true, gsn))
    }

    /// MOVE: false if the key is missing in src_db or present in dst_db.
    ///
    /// # Errors
    /// As `set`.
    pub fn move_key(&self, src_db: usize, key: &[u8], dst_db: usize) -> Result<(bool, Gsn)> {
        let inner = &*self.inner;
        inner.check_db(src_db)?;
        inner.check_db(dst_db)?;
        if src_db == dst_db {
            return Ok((false, 0));
        }
        if inner.any_const(&[src_db, dst_db]) {
            return self.move_any(src_db, key, dst_db);
        }
        let hash = hash_key(key);
        let mut w = inner.shards[inner.shard_of(hash)].writer.lock();
        inner.check_writable()?;
        let guard = epoch::pin();
        let Some(se) = inner.lookup_live(src_db, hash, key, &guard) else {
            return Ok((false, 0));
        };
        if inner.lookup_live(dst_db, hash, key, &guard).is_some() {
            return Ok((false, 0));
        }
        let value = inner.entry_value(key.len(), se)?;
        let expire = se.expire_at_ms;
        let g1 = inner.put_locked(&mut w, dst_db, hash, key, &value, expire, &guard)?;
        let g2 = inner
            .del_locked(&mut w, src_db, hash, key, &guard)?
            .unwrap_or(g1);
        drop(w);
        self.after_write(g2);
        Ok((true, g2))
    }

    /// MSET (only_if_none_exist = false) / MSETNX (true), atomic across shards. Later pairs
    /// win over earlier ones with the same key.
    ///
    /// # Errors
    /// As `set`.
    pub fn mset(
        &self,
        db: usize,
        pairs: &[(&[u8], &[u8])],
        only_if_none_exist: bool,
    ) -> Result<(bool, Gsn)> {
        let inner = &*self.inner;
        inner.check_db(db)?;
        if inner.any_const(&[db]) {
            return self.mset_any(db, pairs, only_if_none_exist);
        }
        for (k, v) in pairs {
            inner.check_sizes(k, v)?;
        }
        let hashes: Vec<u64> = pairs.iter().map(|(k, _)| hash_key(k)).collect();
        // The keys' lookups miss together before the locks are taken, not one by one while
        // every shard of the request is held (MSET of 10 keys: 28-36% less CPU per request).
        let guard = epoch::pin();
        inner.prefetch_hashes(db, &hashes[..hashes.len().min(PREFETCH_MAX)], &guard);
        let mut locks = inner.lock_shards(&hashes);
        inner.check_writable()?;
        if only_if_none_exist
            && pairs
                .iter()
                .zip(&hashes)
                .any(|((k, _), &h)| inner.lookup_live(db, h, k, &guard).is_some())
        {
            return Ok((false, 0));
        }
        let mut gsn = 0;
        for ((k, v), &h) in pairs.iter().zip(&hashes) {
            let w = writer_for(&mut locks, inner.shard_of(h));
            gsn = inner.put_locked(w, db, h, k, v, 0, &guard)?;
        }
        drop(locks);
        self.after_write(gsn);
        Ok((true, gsn))
    }

    /// FLUSHDB (Some(db)) / FLUSHALL (None). A flush marker goes into the log, so recovery
    /// drops every older record of the database(s).
    ///
    /// # Errors
    /// As `set`.
    pub fn flush(&self, db: Option<usize>) -> Result<Gsn> {
        let inner = &*self.inner;
        if let Some(d) = db {
            inner.check_db(d)?;
        }
        let locks: Vec<_> = inner.shards.iter().map(|s| s.writer.lock()).collect();
        inner.check_writable()?;
        let h = Header {
            gsn: 0,
            expire_at_ms: 0,
            flags: FLAG_FLUSH,
            vtype: VTYPE_STRING,
            db: db.map_or(DB_ALL, |d| d as u16),
            key_len: 0,
            value_len: 0,
        };
        let dbs: Vec<usize> = match db {
            Some(d) => vec![d],
            None => (0..inner.databases).collect(),
        };
        // A FixedStore database's flush is its zeroed slots, not the marker: zero them first,
        // so the zeroing is complete before the marker's GSN exists (see `zero_slots`). Once
        // slots are zeroed the marker must not fail (the flush would be refused in memory and
        // done on disk), so the log makes room for it first.
        let mut log = inner.log_quiet();
        log.make_room(inner)?;
        for &d in &dbs {
            if let Some(t) = inner.const_tree(d) {
                t.zero_slots()?;
            }
        }
        // Every shard lock is held: no write can slip between the marker and the clearing.
        let (file, _, gsn) = log.append(inner, &h, b"", b"")?;
        drop(log);
        inner.add_dead(file, h.record_len() as u64);
        let mut guard = epoch::pin();
        for si in 0..locks.len() {
            for &d in &dbs {
                inner.shards[si].index[d].clear(&mut guard, |k, g| {
                    let old = k.value().load(g);
                    inner.add_dead(old.file, old.record_len(k.bytes().len()));
                });
                if let Some(t) = inner.const_tree(d) {
                    t.clear_shard(inner, si, &guard)?;
                }
            }
        }
        for &d in &dbs {
            inner.dbs[d].keys.store(0, Ordering::Relaxed);
            inner.dbs[d].expires.store(0, Ordering::Relaxed);
        }
        drop(locks);
        self.after_write(gsn);
        Ok(gsn)
    }

    // ---------------------------------------------------------------- durability

    /// Highest GSN handed out.
    pub fn last_gsn(&self) -> Gsn {
        self.inner.gsn.load(Ordering::SeqCst)
    }

    /// Every write up to this GSN is on disk (fdatasync'd).
    pub fn durable_gsn(&self) -> Gsn {
        self.inner.durable.load(Ordering::SeqCst)
    }

    /// Asks the sync thread to make `gsn` durable soon (any mode). Never blocks.
    pub fn request_sync(&self, gsn: Gsn) {
        self.inner.request_sync(gsn);
    }

    /// Registers a hook called after durable_gsn advances or a sync fails. It runs outside
    /// the engine's locks, on the thread that completed the sync round: usually the sync
    /// thread (always for failures), but also a caller of `sync_all` or the maintenance
    /// thread after a compaction. It must be cheap and thread-safe (the server's wakes its
    /// reactor).
    pub fn on_durable(&self, hook: Arc<dyn Fn() + Send + Sync>) {
        self.inner.hooks.write().push(hook);
    }

    /// Some(error text) while writes are refused, reads go on: after an fsync failure (until
    /// a restart), or while a write the OS refused (a full disk) waits for its retry to
    /// succeed. The text names the cause and which of the two it is.
    pub fn sync_failure(&self) -> Option<String> {
        self.inner.failure.lock().as_ref().map(Failure::describe)
    }

    /// True while writes are refused (see `sync_failure`); one atomic load, for hot paths
    /// (`sync_failure` has the text but takes a lock).
    #[inline]
    pub fn writes_refused(&self) -> bool {
        self.inner.failed.load(Ordering::Acquire)
    }

    /// Flushes every buffer and fdatasyncs everything now, blocking.
    ///
    /// # Errors
    /// `WritesRefused` if this or an earlier fsync failed.
    pub fn sync_all(&self) -> Result<Gsn> {
        self.inner.sync_round(true)
    }

    /// Test hook (the file layer's fault seam): the next fdatasync/fsync the engine issues
    /// fails with EIO, as a failing disk would.
    #[doc(hidden)]
    pub fn fail_next_sync(&self) {
        self.inner.seam.arm_failure();
    }

    /// Test hook (the same seam): while `full` is true, writes of the log's buffer to the
    /// OS fail with ENOSPC, as on a full disk.
    #[doc(hidden)]
    pub fn set_disk_full(&self, full: bool) {
        self.inner.seam.set_disk_full(full);
    }

    /// Test hook (the same seam): while `hold` is true every fdatasync waits before it
    /// starts, so durability stays frozen at a known GSN until released.
    #[doc(hidden)]
    pub fn hold_syncs(&self, hold: bool) {
        self.inner.seam.hold(hold);
    }

    /// Counters for INFO.
    pub fn stats(&self) -> Stats {
        let inner = &*self.inner;
        let mut s = Stats {
            dbs: inner
                .dbs
                .iter()
                .map(|c| DbStats {
                    keys: c.keys.load(Ordering::Relaxed),
                    expires: c.expires.load(Ordering::Relaxed),
                })
                .collect(),
            cache_hits: inner.cache.hits.load(),
            cache_misses: inner.cache.misses.load(),
            cache_bytes: inner.cache.bytes(),
            last_gsn: self.last_gsn(),
            durable_gsn: self.durable_gsn(),
            last_sync_unix_ms: inner.last_sync_ms.load(Ordering::Relaxed),
            syncs: inner.syncs.load(Ordering::Relaxed),
            sync_failed: inner.failed.load(Ordering::Relaxed),
            compactions: inner.compactions.load(Ordering::Relaxed),
            expired_keys: inner.expired_keys.load(Ordering::Relaxed),
            ..Stats::default()
        };
        for f in inner.files.iter() {
            let f = f.value();
            s.files += 1;
            s.disk_bytes += f.len();
            s.dead_bytes += f.dead.load(Ordering::Relaxed);
        }
        let keys: u64 = s.dbs.iter().map(|d| d.keys).sum();
        // Skiplist node with the key (<= 22 bytes) and its entry inline, lookup-table word and
        // allocator overhead: the bench measures about 128 bytes of RSS per 16-byte key.
        s.index_bytes_estimate = keys * 128;
        for t in inner.consts.iter().flatten() {
            let n = inner.dbs[t.db()].keys.load(Ordering::Relaxed);
            s.index_bytes_estimate = s.index_bytes_estimate - n * 128 + n * t.bytes_per_key();
            s.disk_bytes += t.disk_bytes();
        }
        s
    }

    /// Compacts every sealed log that has any dead bytes now (the background compactor waits
    /// for `compaction_dead_ratio`), and removes compacted files once no reader can reach them
    /// (test / ops hook).
    ///
    /// # Errors
    /// `WritesRefused` after an fsync failure; `Io` on a read or write error.
    pub fn compact_now(&self) -> Result<()> {
        crate::maint::compact_all(&self.inner)?;
        crate::maint::delete_retired(&self.inner)
    }

    /// Graceful close: flush, sync, write hints for sealed files, stop threads, release files.
    ///
    /// # Errors
    /// `WritesRefused` if an fsync failed (now or earlier), or a write the OS refused (a full
    /// disk) still fails: the data after the last durable GSN may be lost. `Io` if a hint
    /// cannot be written (start-up then scans that log).
    pub fn close(mut self) -> Result<()> {
        // Stop the background threads first, so nothing (an expiry sweep, a compaction)
        // writes after the final sync.
        self.stop_threads();
        // A stalled write gets one more try (space may have been freed since the sync
        // thread's last); `sync_round` refuses if writes are still refused.
        if self.inner.failed.load(Ordering::Acquire) {
            self.inner.retry_stalled();
        }
        self.inner.sync_round(true)?;
        // The active log ends at its last record once closed (no preallocated zeros).
        {
            let mut log = self.inner.log_quiet();
            log.trim()?;
            log.active
                .file
                .sync_all()
                .map_err(|e| Error::io(&log.active.path, e))?;
            if let Some(c) = &log.active.enc {
                c.tag.sync_all().map_err(|e| Error::io(&c.tag_path, e))?;
            }
        }
        crate::maint::write_pending_hints(&self.inner)?;
        crate::maint::delete_retired(&self.inner)?;
        Ok(())
    }

    fn stop_threads(&mut self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    /// Without `close()` this is a crash: threads stop, buffers are dropped unwritten.
    fn drop(&mut self) {
        self.stop_threads();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Hazard 3: a new log file is durable only once its directory entry is. A round that
    /// covers writes in a log file created since the last round fsyncs the directory before
    /// it publishes them as durable.
    #[test]
    fn a_round_after_a_new_log_file_fsyncs_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            shards: 1,
            sync_mode: SyncMode::No,
            max_file_bytes: 8192,
            ..Config::default()
        };
        let e = Engine::open(dir.path(), cfg).unwrap();
        e.sync_all().unwrap();
        let inner = &*e.inner;
        let logs = |d: &std::path::Path| {
            std::fs::read_dir(d)
                .unwrap()
                .filter(|f| {
                    f.as_ref()
                        .is_ok_and(|f| f.path().extension().is_some_and(|x| x == "log"))
                })
                .count()
        };
        let files_before = logs(dir.path());
        let before = inner.seam.dir_syncs();
        // Enough to seal the active log (8 KiB) and start new ones.
        for i in 0..40u32 {
            e.set(
                0,
                format!("k{i}").as_bytes(),
                &[b'v'; 1024],
                SetOptions::default(),
            )
            .unwrap();
        }
        let g = e.last_gsn();
        assert!(
            logs(dir.path()) > files_before,
            "no new log file was created"
        );
        assert!(e.sync_all().unwrap() >= g);
        assert!(
            inner.seam.dir_syncs() > before,
            "writes in a new log file were made durable without fsyncing the directory"
        );
        e.close().unwrap();
    }

    /// One group-commit round over writes to every shard and several databases costs one
    /// data-file fdatasync (the shared log), not one per shard.
    #[test]
    fn one_sync_round_is_one_fdatasync_whatever_the_shard_count() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            shards: 16,
            sync_mode: SyncMode::No,
            ..Config::default()
        };
        let e = Engine::open(dir.path(), cfg).unwrap();
        // The first round also fsyncs the directory (the new log's entry); not counted here.
        e.sync_all().unwrap();
        let inner = &*e.inner;
        let mut shards_hit = std::collections::BTreeSet::new();
        for i in 0..200u32 {
            let key = format!("key-{i}");
            shards_hit.insert(inner.shard_of(hash_key(key.as_bytes())));
            e.set(i as usize % 4, key.as_bytes(), b"v", SetOptions::default())
                .unwrap();
        }
        assert_eq!(shards_hit.len(), 16, "the writes must touch every shard");
        for _ in 0..3 {
            let before = inner.seam.datasyncs();
            let g = e.last_gsn();
            assert!(e.sync_all().unwrap() >= g);
            assert_eq!(
                inner.seam.datasyncs() - before,
                1,
                "one round, one fdatasync"
            );
            e.set(0, b"again", b"v", SetOptions::default()).unwrap();
        }
        // A round with nothing written since the last one needs no fdatasync at all.
        e.sync_all().unwrap();
        let before = inner.seam.datasyncs();
        e.sync_all().unwrap();
        assert_eq!(inner.seam.datasyncs(), before);
        e.close().unwrap();
    }

    /// With a FixedStore database beside VarTree ones, a round is still one fdatasync of the
    /// data log; the slot files written since the last round are fdatasync'd in the same
    /// round (at most one per slot file), and none when no slot was written.
    #[test]
    fn a_round_with_a_fixedstore_is_one_log_fdatasync_plus_the_slot_files_written() {
        use crate::config::{BackendKind, TreeConfig};
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            shards: 4,
            sync_mode: SyncMode::No,
            trees: vec![(
                1,
                TreeConfig::Const {
                    value_size: 8,
                    backend: BackendKind::Fixed,
                },
            )],
            ..Config::default()
        };
        let e = Engine::open(dir.path(), cfg).unwrap();
        e.sync_all().unwrap();
        let inner = &*e.inner;
        for _ in 0..3 {
            for i in 0..100u32 {
                let key = format!("key-{i}");
                e.set(0, key.as_bytes(), b"v", SetOptions::default())
                    .unwrap();
                e.set(1, key.as_bytes(), b"12345678", SetOptions::default())
                    .unwrap();
            }
            let (logs, slots) = (inner.seam.datasyncs(), inner.seam.slot_datasyncs());
            let g = e.last_gsn();
            assert!(e.sync_all().unwrap() >= g);
            assert_eq!(inner.seam.datasyncs() - logs, 1, "one log fdatasync");
            let n = inner.seam.slot_datasyncs() - slots;
            assert!((1..=4).contains(&n), "{n} slot file fdatasyncs");
        }
        // Only VarTree writes: the slot files need no fdatasync. (Freeing superseded slots
        // after the last round wrote to them: let one more round sync that first.)
        e.sync_all().unwrap();
        e.set(0, b"var-only", b"v", SetOptions::default()).unwrap();
        let (logs, slots) = (inner.seam.datasyncs(), inner.seam.slot_datasyncs());
        e.sync_all().unwrap();
        assert_eq!(inner.seam.datasyncs() - logs, 1);
        assert_eq!(inner.seam.slot_datasyncs(), slots);
        e.close().unwrap();
    }

    /// A round takes no shard lock, so it must not publish a GSN whose slot write is still in
    /// progress: a slot write holds its slot file's lock from taking its GSN to the end of its
    /// pwrite, and the round waits for that lock after reading the GSN it will publish.
    #[test]
    fn a_round_waits_out_a_slot_write_in_progress() {
        use crate::config::{BackendKind, TreeConfig};
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            shards: 1,
            sync_mode: SyncMode::No,
            trees: vec![(
                0,
                TreeConfig::Const {
                    value_size: 8,
                    backend: BackendKind::Fixed,
                },
            )],
            ..Config::default()
        };
        let e = Arc::new(Engine::open(dir.path(), cfg).unwrap());
        e.set(0, b"k", b"12345678", SetOptions::default()).unwrap();
        e.sync_all().unwrap();
        let t = e.inner.const_tree(0).unwrap();
        let slots = t.fixed()[0].as_ref().unwrap();
        // A slot write in progress: its slot file's lock held, its GSN taken, no pwrite yet.
        let held = slots.lock();
        let g = e.inner.gsn.fetch_add(1, Ordering::SeqCst) + 1;
        let e2 = e.clone();
        let round = std::thread::spawn(move || e2.sync_all().unwrap());
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            e.durable_gsn() < g,
            "published a GSN whose slot write had not completed"
        );
        drop(held);
        assert!(round.join().unwrap() >= g);
        Arc::into_inner(e).unwrap().close().unwrap();
    }

    /// Encrypted: only a sync round writes the journal. Flushes because the buffer is full,
    /// made while a round's fdatasync is in flight, write full data pages and leave both
    /// journal slots alone (one of them is what that round is making durable, the other the
    /// newest durable copy before it).
    #[test]
    fn encrypted_full_buffer_flushes_leave_the_journal_alone() {
        use crate::crypto::{ENTRY, PAGE, TAG_HEADER};
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            shards: 1,
            sync_mode: SyncMode::No,
            write_buffer_bytes: 4096,
            encryption_key: Some(crate::MasterKey::from_bytes([3; 32])),
            ..Config::default()
        };
        let e = Arc::new(Engine::open(dir.path(), cfg).unwrap());
        e.set(0, b"first", &[1; 100], SetOptions::default())
            .unwrap();
        e.sync_all().unwrap();
        let log = e.inner.log.lock().active.path.clone();
        let tag = crate::crypto::tag_path(&log);
        let journal =
            || std::fs::read(&tag).unwrap()[TAG_HEADER..TAG_HEADER + 2 * (ENTRY + PAGE)].to_vec();
        let pages = || e.inner.log.lock().active.len() / PAGE as u64;
        e.hold_syncs(true);
        e.set(0, b"second", &[2; 100], SetOptions::default())
            .unwrap();
        let e2 = e.clone();
        let round = std::thread::spawn(move || e2.sync_all().unwrap());
        // The round has written its journal copy and waits in its fdatasync.
        assert!(e.inner.seam.wait_held(1, Duration::from_secs(10)));
        let before = (journal(), pages());
        for i in 0..100u32 {
            e.set(
                0,
                format!("k{i}").as_bytes(),
                &[3; 200],
                SetOptions::default(),
            )
            .unwrap();
        }
        assert!(pages() > before.1 + 3, "full pages were flushed meanwhile");
        assert!(
            before.0 == journal(),
            "a full-buffer flush wrote the journal"
        );
        e.hold_syncs(false);
        round.join().unwrap();
        e.sync_all().unwrap();
        assert!(before.0 != journal(), "the next round writes the journal");
        Arc::into_inner(e).unwrap().close().unwrap();
    }

    /// What a process crash leaves: the data folder's files as the OS has them now (its lock
    /// file aside), copied to a new folder while the engine still runs.
    fn process_crash_image(dir: &Path) -> tempfile::TempDir {
        let copy = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(dir).unwrap() {
            let f = f.unwrap();
            if f.file_name() != "LOCK" {
                std::fs::copy(f.path(), copy.path().join(f.file_name())).unwrap();
            }
        }
        copy
    }

    /// Encrypted, `appendfsync no`: the once-a-second round (no fdatasync) writes the tail
    /// page's journal copy to the OS, so a process crash loses nothing written before it (as
    /// with plain logs); and those rounds write over each other's copy, never over the newest
    /// copy an fdatasync made durable.
    #[test]
    fn encrypted_rounds_without_fsync_journal_the_tail_but_spare_the_durable_copy() {
        use crate::crypto::{ENTRY, PAGE, TAG_HEADER};
        let dir = tempfile::tempdir().unwrap();
        let cfg = || Config {
            shards: 1,
            sync_mode: SyncMode::No,
            encryption_key: Some(crate::MasterKey::from_bytes([4; 32])),
            ..Config::default()
        };
        let e = Engine::open(dir.path(), cfg()).unwrap();
        e.set(0, b"durable", &[1; 100], SetOptions::default())
            .unwrap();
        e.sync_all().unwrap();
        let tag = crate::crypto::tag_path(&e.inner.log.lock().active.path);
        let slot = |i: u64| {
            let b = std::fs::read(&tag).unwrap();
            let at = TAG_HEADER + i as usize * (ENTRY + PAGE);
            b[at..at + ENTRY + PAGE].to_vec()
        };
        let durable_slot = e.inner.log.lock().jseq % 2;
        let durable_copy = slot(durable_slot);
        for i in 0..3u8 {
            e.set(0, &[b'n', i], &[2; 100], SetOptions::default())
                .unwrap();
            e.inner.sync_round(false).unwrap();
            assert_eq!(
                slot(durable_slot),
                durable_copy,
                "round {i} without fdatasync wrote over the durable journal copy"
            );
        }
        let copy = process_crash_image(dir.path());
        drop(e);
        let e = Engine::open(copy.path(), cfg()).unwrap();
        assert_eq!(
            e.get(0, b"durable").unwrap().as_deref(),
            Some(&[1u8; 100][..])
        );
        for i in 0..3u8 {
            assert_eq!(
                e.get(0, &[b'n', i]).unwrap().as_deref(),
                Some(&[2u8; 100][..]),
                "a write the once-a-second round gave the OS was lost"
            );
        }
        e.close().unwrap();
    }

    /// Encrypted FixedStore, `appendfsync no`: slot writes wait in memory for a round, and
    /// the once-a-second round (no fdatasync) hands them to the OS, so a process crash after
    /// it loses none of them (as with plain slot files, written at once).
    #[test]
    fn encrypted_slot_pages_reach_the_os_in_rounds_without_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = || Config {
            shards: 2,
            databases: 2,
            sync_mode: SyncMode::No,
            trees: vec![(
                1,
                crate::TreeConfig::Const {
                    value_size: 8,
                    backend: crate::BackendKind::Fixed,
                },
            )],
            encryption_key: Some(crate::MasterKey::from_bytes([5; 32])),
            ..Config::default()
        };
        let e = Engine::open(dir.path(), cfg()).unwrap();
        e.sync_all().unwrap();
        for i in 0..50u64 {
            e.set(
                1,
                &i.to_le_bytes(),
                &(i * 3).to_le_bytes(),
                SetOptions::default(),
            )
            .unwrap();
        }
        e.inner.sync_round(false).unwrap();
        let copy = process_crash_image(dir.path());
        drop(e);
        let e = Engine::open(copy.path(), cfg()).unwrap();
        for i in 0..50u64 {
            assert_eq!(
                e.get(1, &i.to_le_bytes()).unwrap().as_deref(),
                Some(&(i * 3).to_le_bytes()[..]),
                "slot write {i} never reached the OS"
            );
        }
        e.close().unwrap();
    }

    /// While one round's fdatasync runs, writes are accepted (the log lock is not held
    /// across it) and form the next group, made durable by the next round.
    #[test]
    fn writes_go_on_during_an_fdatasync_and_form_the_next_group() {
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            shards: 4,
            sync_mode: SyncMode::Always,
            ..Config::default()
        };
        let e = Arc::new(Engine::open(dir.path(), cfg).unwrap());
        e.sync_all().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<Gsn>();
        e.on_durable(Arc::new(move || {
            let _ = tx.send(0);
        }));
        e.hold_syncs(true);
        let first = e.set(0, b"first", b"v", SetOptions::default()).unwrap().gsn;
        // The sync thread is now inside the round's fdatasync, held there.
        assert!(e.inner.seam.wait_held(1, Duration::from_secs(10)));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let e2 = e.clone();
        let writer = std::thread::spawn(move || {
            let mut last = 0;
            for i in 0..100u32 {
                let k = format!("during-{i}");
                last = e2
                    .set(0, k.as_bytes(), b"v", SetOptions::default())
                    .unwrap()
                    .gsn;
                assert_eq!(e2.get(0, k.as_bytes()).unwrap().as_deref(), Some(&b"v"[..]));
            }
            let _ = done_tx.send(last);
        });
        let last = done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("writes blocked while an fdatasync ran");
        writer.join().unwrap();
        assert!(
            e.durable_gsn() < first,
            "durable before its fdatasync returned"
        );
        e.hold_syncs(false);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while e.durable_gsn() < last {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "the next group never became durable");
            let _ = rx.recv_timeout(left);
        }
        Arc::into_inner(e).unwrap().close().unwrap();
    }
}
