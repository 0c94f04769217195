//! The engine's one log writer, shared by every shard: the active log file, its write buffer
//! and the files written since the last sync. One active log means one fdatasync per
//! group-commit round whatever the shard count (a round with a file per shard cost one
//! fdatasync per shard).
//!
//! Lock order: a shard's writer lock, then the log lock. The log lock is held only to append a
//! record to the buffer (and to write the buffer to the OS when it is full), never across an
//! fdatasync, so writes keep arriving and form the next group while a sync runs.

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::file::DataFile;
use crate::record::{self, Header};
use crate::types::Gsn;

/// The active log is preallocated (fallocate) this far ahead of its records, so an fdatasync
/// rarely has to commit a change of the file's size along with the records.
pub(crate) const PREALLOC_STEP: u64 = 16 * 1024 * 1024;

/// A shard's writer lock token. Holding `&mut Writer` means holding the shard's lock, which
/// serialises the index updates of the shard's keys; the record itself goes to the shared log.
pub(crate) struct Writer;

impl Writer {
    /// Appends a record to the shared log under the shard's lock; see `Log::append`.
    #[inline]
    pub(crate) fn append(
        &mut self,
        inner: &Inner,
        h: &Header,
        key: &[u8],
        value: &[u8],
    ) -> Result<(u32, u32, Gsn)> {
        inner.log.lock().append(inner, h, key, value)
    }
}

/// The shared log writer (under `Inner::log`).
pub(crate) struct Log {
    pub active: Arc<DataFile>,
    /// Records not yet written to the OS.
    pub buf: Vec<u8>,
    /// File offset of `buf[0]`.
    pub buf_start: u64,
    /// Files written to the OS since the last fdatasync (the sync round takes this list).
    pub unsynced: Vec<Arc<DataFile>>,
    /// Ids of the log files still on disk (including compacted files whose unlink is not yet
    /// durable): a tombstone may be dropped only from the oldest of them.
    pub disk_files: BTreeSet<u32>,
    /// Size of the active file on disk: records end at `active.len()`, zeros follow up to here.
    pub alloc_end: u64,
    /// Set once fallocate failed (a file system without it): files then just grow.
    pub no_prealloc: bool,
}

impl Log {
    /// Appends a record; returns (file id, record offset, GSN). A header with GSN 0 gets the
    /// next GSN here, under the log lock: every GSN at or below `Inner::gsn` is then in the
    /// buffer or the file once the lock is released, which is what lets a sync round publish
    /// `gsn` as durable after flushing the buffer, without taking any shard lock. A non-zero
    /// GSN (a compaction copy) is kept.
    pub(crate) fn append(
        &mut self,
        inner: &Inner,
        h: &Header,
        key: &[u8],
        value: &[u8],
    ) -> Result<(u32, u32, Gsn)> {
        let len = h.record_len();
        let end = self.buf_start + self.buf.len() as u64;
        if end >= inner.max_file_bytes && end > record::LOG_HEADER as u64 {
            self.rotate(inner)?;
        }
        if !self.buf.is_empty() && self.buf.len() + len > inner.write_buffer_bytes {
            self.flush(inner)?;
        }
        let mut h = *h;
        if h.gsn == 0 {
            h.gsn = inner.gsn.fetch_add(1, Ordering::SeqCst) + 1;
        }
        let offset = self.buf_start + self.buf.len() as u64;
        record::encode(&mut self.buf, &h, key, value);
        let at = (self.active.id, offset as u32, h.gsn);
        if self.buf.len() >= inner.write_buffer_bytes {
            self.flush(inner)?;
        }
        Ok(at)
    }

    /// Writes the buffer to the OS (no fdatasync). A failed write refuses further writes the
    /// same way a failed fsync does: the file's tail is now unknown.
    pub(crate) fn flush(&mut self, inner: &Inner) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        inner.check_writable()?;
        let end = self.buf_start + self.buf.len() as u64;
        if end > self.alloc_end {
            self.preallocate(inner, end);
        }
        if let Err(e) = self.active.file.write_all_at(&self.buf, self.buf_start) {
            let msg = format!("write failed on {}: {e}", self.active.path.display());
            inner.fail(msg.clone());
            return Err(Error::WritesRefused(msg));
        }
        self.buf_start += self.buf.len() as u64;
        self.active.flushed.store(self.buf_start, Ordering::Release);
        self.buf.clear();
        if !self.unsynced.iter().any(|f| f.id == self.active.id) {
            self.unsynced.push(self.active.clone());
        }
        Ok(())
    }

    /// Extends the active file to at least `end`, a step ahead where `max_file_bytes` allows.
    /// Best effort: a file system without fallocate just grows the file as it is written.
    fn preallocate(&mut self, inner: &Inner, end: u64) {
        let target = (self.alloc_end + PREALLOC_STEP)
            .min(inner.max_file_bytes)
            .max(end);
        if target > end && !self.no_prealloc {
            match crate::file::fallocate(&self.active.file, self.alloc_end, target) {
                Ok(()) => {
                    self.alloc_end = target;
                    return;
                }
                Err(e) => {
                    slog::info!(inner.logger, "cannot preallocate log files; they grow as written";
                        "file" => %self.active.path.display(), "error" => %e);
                    self.no_prealloc = true;
                }
            }
        }
        self.alloc_end = end;
    }

    /// Cuts the preallocated zeros off the active file, so it ends at its last record (the
    /// next fdatasync of the file makes the new size durable).
    pub(crate) fn trim(&mut self) -> Result<()> {
        let len = self.active.len();
        if self.alloc_end > len {
            self.active
                .file
                .set_len(len)
                .map_err(|e| Error::io(&self.active.path, e))?;
            self.alloc_end = len;
        }
        Ok(())
    }

    /// Seals the active file and starts a new one.
    pub(crate) fn rotate(&mut self, inner: &Inner) -> Result<()> {
        self.flush(inner)?;
        // A sealed log ends at its last record; it is in `unsynced`, so the next sync round
        // makes the trim durable before any hint describes the file.
        self.trim()?;
        let id = inner.next_file_id.fetch_add(1, Ordering::SeqCst);
        let header = record::encode_log_header(inner.nshards as u32);
        let f = Arc::new(DataFile::create(&inner.dir, id, &header)?);
        // The new file's directory entry is durable only once the directory is fsynced
        // (hazard 3): the next sync round does that before publishing durability.
        inner.dir_dirty.store(true, Ordering::SeqCst);
        inner.files.insert(id, f.clone());
        self.disk_files.insert(id);
        self.unsynced.push(f.clone());
        let old = std::mem::replace(&mut self.active, f);
        self.buf_start = record::LOG_HEADER as u64;
        self.alloc_end = record::LOG_HEADER as u64;
        old.sealed.store(true, Ordering::Release);
        inner.pending_hints.lock().push(old);
        Ok(())
    }

    /// Copies `len` bytes at `offset` of file `file` out of the buffer, if they are there.
    pub(crate) fn read_buffered(&self, file: u32, offset: u64, len: usize) -> Option<&[u8]> {
        if file != self.active.id || offset < self.buf_start {
            return None;
        }
        let at = (offset - self.buf_start) as usize;
        self.buf.get(at..at + len)
    }
}
