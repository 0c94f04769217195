//! A shard's writer: its active log file, write buffer and the files written since the last
//! sync. Lives under the shard's mutex; readers never take it except to read a record that is
//! still in the buffer.

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::file::DataFile;
use crate::record::{self, Header};

pub(crate) struct Writer {
    pub shard: u32,
    pub active: Arc<DataFile>,
    /// Records not yet written to the OS.
    pub buf: Vec<u8>,
    /// File offset of `buf[0]`.
    pub buf_start: u64,
    /// Files written to the OS since the last fdatasync (the sync thread takes this list).
    pub unsynced: Vec<Arc<DataFile>>,
    /// Ids of this shard's log files still on disk (including compacted files whose unlink
    /// is not yet durable): a tombstone may be dropped only from the oldest of them.
    pub disk_files: BTreeSet<u32>,
}

impl Writer {
    /// Appends a record; returns (file id, record offset). The record is in the buffer
    /// (or written to the OS) when this returns.
    pub(crate) fn append(
        &mut self,
        inner: &Inner,
        h: &Header,
        key: &[u8],
        value: &[u8],
    ) -> Result<(u32, u32)> {
        let len = h.record_len();
        let end = self.buf_start + self.buf.len() as u64;
        if end >= inner.max_file_bytes && end > record::LOG_HEADER as u64 {
            self.rotate(inner)?;
        }
        if !self.buf.is_empty() && self.buf.len() + len > inner.write_buffer_bytes {
            self.flush(inner)?;
        }
        let offset = self.buf_start + self.buf.len() as u64;
        record::encode(&mut self.buf, h, key, value);
        let at = (self.active.id, offset as u32);
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

    /// Seals the active file and starts a new one.
    pub(crate) fn rotate(&mut self, inner: &Inner) -> Result<()> {
        self.flush(inner)?;
        let id = inner.next_file_id.fetch_add(1, Ordering::SeqCst);
        let header = record::encode_log_header(self.shard, inner.nshards as u32);
        let f = Arc::new(DataFile::create(&inner.dir, id, self.shard, &header)?);
        // The new file's directory entry is durable only once the directory is fsynced
        // (hazard 3): the next sync round does that before publishing durability.
        inner.dir_dirty.store(true, Ordering::SeqCst);
        inner.files.insert(id, f.clone());
        self.disk_files.insert(id);
        self.unsynced.push(f.clone());
        let old = std::mem::replace(&mut self.active, f);
        self.buf_start = record::LOG_HEADER as u64;
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
