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

use crate::crypto::{ENTRY, PAGE, Role};
use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::file::{DataFile, LogCrypt, entry_off, journal_off};
use crate::record::{self, Header};
use crate::types::Gsn;

/// The active log is preallocated (fallocate) this far ahead of its records, so an fdatasync
/// rarely has to commit a change of the file's size along with the records.
pub(crate) const PREALLOC_STEP: u64 = 16 * 1024 * 1024;

/// An encrypted log's tag file is extended with written zeros (entries reading as "never
/// written") this far ahead of its entries, so that most rounds' fdatasync of the tag file
/// has only overwritten blocks to flush: no block allocation and no size change, which would
/// cost an inode write along with them. 64 KiB is the entries of 1638 pages (6.4 MiB of log).
const TAG_PREALLOC_STEP: u64 = 64 * 1024;

/// A shard's writer lock token. Holding `&mut Writer` means holding the shard's lock, which
/// serialises the index updates of the shard's keys; the record itself goes to the shared log.
pub(crate) struct Writer;

impl Writer {
    /// Appends a record to the shared log under the shard's lock; see `Log::append`.
    /// Encrypted, a full buffer's pages are sealed and written after the log lock is
    /// released (see `Log::take_pages`), so other writers go on appending meanwhile.
    #[inline]
    pub(crate) fn append(
        &mut self,
        inner: &Inner,
        h: &Header,
        key: &[u8],
        value: &[u8],
    ) -> Result<(u32, u32, Gsn)> {
        let mut log = inner.log.lock();
        if log.active.enc.is_none() {
            return log.append(inner, h, key, value);
        }
        // Rotating seals the active log's pages, so it waits for pages in flight.
        while log.sealing && log.must_rotate(inner) {
            inner.log_idle.wait(&mut log);
        }
        let at = log.push(inner, h, key, value)?;
        if log.sealing || log.buf.len() < inner.write_buffer_bytes {
            return Ok(at);
        }
        let mut pages = log.take_pages(inner)?;
        drop(log);
        let written = pages.write(inner);
        inner.log.lock().put_pages(pages, written.is_ok());
        inner.log_idle.notify_all();
        written.map(|()| at)
    }
}

/// Full pages of the encrypted active log taken out of the buffer to be sealed and written
/// without the log lock (`Log::take_pages`).
pub(crate) struct Pages {
    file: Arc<DataFile>,
    /// Page number of the first page.
    first: u64,
    /// Their plaintext (whole pages), sealed in place by `write`.
    bytes: Vec<u8>,
    /// Zeros to write after their entries (see `TAG_PREALLOC_STEP`), in bytes.
    tag_zeros: usize,
}

impl Pages {
    /// Seals the pages and writes them and their entries (no lock held: the pages are the
    /// taker's alone, and their places in both files were reserved by `take_pages`).
    fn write(&mut self, inner: &Inner) -> Result<()> {
        let Some(c) = &self.file.enc else {
            return Ok(());
        };
        let mut entries = Vec::with_capacity(self.bytes.len() / PAGE * ENTRY + self.tag_zeros);
        for (i, p) in self.bytes.chunks_mut(PAGE).enumerate() {
            entries.extend_from_slice(&c.cipher.seal(
                self.first + i as u64,
                0,
                PAGE as u32,
                Role::Data,
                p,
            )?);
        }
        entries.resize(entries.len() + self.tag_zeros, 0);
        if let Err(e) = self
            .file
            .file
            .write_all_at(&self.bytes, self.first * PAGE as u64)
        {
            return Err(Log::write_failed(inner, &self.file.path, e));
        }
        if let Err(e) = c.tag.write_all_at(&entries, entry_off(self.first)) {
            return Err(Log::write_failed(inner, &c.tag_path, e));
        }
        Ok(())
    }
}

/// A file written since the last fdatasync, and which of its parts need one.
pub(crate) struct Unsynced {
    pub file: Arc<DataFile>,
    /// The data file was written.
    pub data: bool,
    /// The tag file (of an encrypted log) was written.
    pub tag: bool,
}

/// The shared log writer (under `Inner::log`).
///
/// Encrypted (docs/encryption.md), `buf_start` is always at a page boundary: a flush writes
/// only the buffer's full pages (each sealed once) and keeps the partly filled tail page in
/// the buffer; a group-commit round's flush also writes that tail page to one of the two
/// journal slots of the tag file, alternating slots.
pub(crate) struct Log {
    pub active: Arc<DataFile>,
    /// Records not yet written to the OS.
    pub buf: Vec<u8>,
    /// File offset of `buf[0]`.
    pub buf_start: u64,
    /// Files written to the OS since the last fdatasync (the sync round takes this list).
    pub unsynced: Vec<Unsynced>,
    /// Ids of the log files still on disk (including compacted files whose unlink is not yet
    /// durable): a tombstone may be dropped only from the oldest of them.
    pub disk_files: BTreeSet<u32>,
    /// Size of the active file on disk: records end at `active.len()`, zeros follow up to here.
    pub alloc_end: u64,
    /// Set once fallocate failed (a file system without it): files then just grow.
    pub no_prealloc: bool,
    /// The last preallocation failed for want of space (warned once until one succeeds).
    pub prealloc_short: bool,
    /// Encrypted: the sequence number of the last journal copy written for the active log
    /// (the next goes to slot `(jseq + 1) % 2`).
    pub jseq: u64,
    /// Encrypted: the slot (0 or 1) of the newest durable journal copy of the active log.
    pub jdurable: Option<u64>,
    /// Encrypted: the log end (`buf_start + buf.len()`) the last journal copy covered.
    pub journaled_end: u64,
    /// Encrypted: scratch space for sealing pages.
    pub scratch: Vec<u8>,
    /// Encrypted: the active log's tag file holds entries or written zeros up to here (see
    /// `TAG_PREALLOC_STEP`); nothing was ever written beyond it.
    pub tag_alloc_end: u64,
    /// Encrypted: the buffer's first pages are being sealed and written without the log
    /// lock (`take_pages`). Until `put_pages` they stay in the buffer (readers find them
    /// there), and nothing else may write pages: flushes, rounds and rotations wait for
    /// `Inner::log_idle` (`Inner::log_quiet`).
    pub sealing: bool,
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
        if self.must_rotate(inner) {
            self.rotate(inner)?;
        }
        if !self.buf.is_empty() && self.buf.len() + len > inner.write_buffer_bytes {
            self.flush(inner)?;
        }
        let at = self.encode(inner, h, key, value);
        if self.buf.len() >= inner.write_buffer_bytes
            && let Err(e) = self.flush(inner)
            && !inner.stalled()
        {
            return Err(e);
        }
        // A stalled flush keeps the record in the buffer, to be written by the retry: it is
        // this write's, so the caller must show it (reads find it in the buffer).
        Ok(at)
    }

    /// Makes the next append of a record smaller than the write buffer only encode it
    /// (no rotation, no write to the OS, so it cannot fail): rotates the log if that is due,
    /// else writes the buffer out.
    pub(crate) fn make_room(&mut self, inner: &Inner) -> Result<()> {
        if self.must_rotate(inner) {
            self.rotate(inner)
        } else {
            self.flush(inner)
        }
    }

    /// Whether the next append rotates the active log.
    fn must_rotate(&self, inner: &Inner) -> bool {
        let end = self.buf_start + self.buf.len() as u64;
        end >= inner.max_file_bytes && end > record::LOG_HEADER as u64
    }

    /// Appends a record to the buffer (rotating first if the log is full), without writing
    /// the buffer out; as `append`.
    fn push(
        &mut self,
        inner: &Inner,
        h: &Header,
        key: &[u8],
        value: &[u8],
    ) -> Result<(u32, u32, Gsn)> {
        if self.must_rotate(inner) {
            debug_assert!(!self.sealing);
            self.rotate(inner)?;
        }
        Ok(self.encode(inner, h, key, value))
    }

    /// Encodes a record at the end of the buffer, giving it the next GSN if it has none.
    fn encode(&mut self, inner: &Inner, h: &Header, key: &[u8], value: &[u8]) -> (u32, u32, Gsn) {
        let mut h = *h;
        if h.gsn == 0 {
            h.gsn = inner.gsn.fetch_add(1, Ordering::SeqCst) + 1;
        }
        let offset = self.buf_start + self.buf.len() as u64;
        record::encode(&mut self.buf, &h, key, value);
        (self.active.id, offset as u32, h.gsn)
    }

    /// Encrypted: takes the buffer's full pages to be sealed and written by the caller
    /// without the log lock (`Pages::write`), then handed back with `put_pages`. Reserves
    /// their places: data file preallocation and tag file zeros are decided here.
    fn take_pages(&mut self, inner: &Inner) -> Result<Pages> {
        inner.check_writable()?;
        debug_assert!(!self.sealing);
        debug_assert_eq!(self.buf_start % PAGE as u64, 0);
        let full = self.buf.len() / PAGE * PAGE;
        let first = self.buf_start / PAGE as u64;
        let data_end = self.buf_start + full as u64;
        if data_end > self.alloc_end {
            self.preallocate(inner, data_end);
        }
        let tag_zeros = self.tag_zeros_after(entry_off(first) + (full / PAGE * ENTRY) as u64);
        self.sealing = true;
        Ok(Pages {
            file: self.active.clone(),
            first,
            bytes: self.buf[..full].to_vec(),
            tag_zeros,
        })
    }

    /// Encrypted: pages taken by `take_pages` are back; if they were `written`, they leave
    /// the buffer (readers find them in the file from now on). If not, writes are refused
    /// already (the file's tail is unknown) and they stay in the buffer for readers.
    fn put_pages(&mut self, pages: Pages, written: bool) {
        self.sealing = false;
        if !written {
            return;
        }
        debug_assert_eq!(pages.first * PAGE as u64, self.buf_start);
        let n = pages.bytes.len();
        self.buf.drain(..n);
        self.buf_start += n as u64;
        pages.file.flushed.store(self.buf_start, Ordering::Release);
        self.mark_unsynced(&pages.file, true, true);
    }

    /// Writes the buffer to the OS (no fdatasync). A failed write refuses further writes the
    /// same way a failed fsync does: the file's tail is now unknown.
    pub(crate) fn flush(&mut self, inner: &Inner) -> Result<()> {
        if self.active.enc.is_some() {
            return self.flush_enc(inner, false);
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        inner.check_writable()?;
        self.write_out(inner)
    }

    /// Writes the (plain) buffer to the OS at its place in the file. If the OS refuses (a
    /// full disk), the buffer stays as it was and writes stall (`Inner::stall`) until a retry
    /// of this succeeds: a retry rewrites the same bytes at the same offsets, so whatever
    /// part of them reached the file is overwritten with itself.
    pub(crate) fn write_out(&mut self, inner: &Inner) -> Result<()> {
        let end = self.buf_start + self.buf.len() as u64;
        if end > self.alloc_end {
            self.preallocate(inner, end);
        }
        if let Err(e) = inner
            .seam
            .write_at(&self.active.file, &self.buf, self.buf_start)
        {
            let msg = format!("write failed on {}: {e}", self.active.path.display());
            return Err(inner.stall(msg));
        }
        self.buf_start += self.buf.len() as u64;
        self.active.flushed.store(self.buf_start, Ordering::Release);
        self.buf.clear();
        let f = self.active.clone();
        self.mark_unsynced(&f, true, false);
        Ok(())
    }

    /// The flush of a round (under the round lock, with `fsync` if the round fdatasyncs):
    /// as `flush`, and for an encrypted log also the journal copy of the partly filled tail
    /// page, so that under `appendfsync no` too the tail reaches the OS once a second.
    pub(crate) fn flush_round(&mut self, inner: &Inner, fsync: bool) -> Result<()> {
        if self.active.enc.is_some() {
            self.flush_enc(inner, true)?;
            if fsync {
                // The round fdatasyncs the tag file next; if that fails, no journal copy is
                // ever written again (writes are refused). So by the next journal write, the
                // newest copy is durable.
                self.jdurable = (self.jseq > 0).then_some(self.jseq % 2);
            }
            return Ok(());
        }
        self.flush(inner)
    }

    /// Adds `f` to the files the next sync round fdatasyncs.
    pub(crate) fn mark_unsynced(&mut self, f: &Arc<DataFile>, data: bool, tag: bool) {
        match self.unsynced.iter_mut().find(|u| u.file.id == f.id) {
            Some(u) => {
                u.data |= data;
                u.tag |= tag;
            }
            None => self.unsynced.push(Unsynced {
                file: f.clone(),
                data,
                tag,
            }),
        }
    }

    /// A failed write of an encrypted log's pages or entries: writes are refused from now on
    /// (its tail is unknown: pages are sealed once, so they are not simply written again).
    pub(crate) fn write_failed(inner: &Inner, path: &std::path::Path, e: std::io::Error) -> Error {
        inner.fail(format!("write failed on {}: {e}", path.display()))
    }

    /// The encrypted flush: writes the buffer's full pages (sealed, each written once, with
    /// their entries) and drains them; with `journal` (a sync round only: rounds never
    /// overlap, so the slot written never holds the newest durable copy) also the tail page's
    /// journal copy. A flush because the buffer is full must not touch the journal: it can
    /// run while a round's fdatasync of the other slot is in flight.
    fn flush_enc(&mut self, inner: &Inner, journal: bool) -> Result<()> {
        let end = self.buf_start + self.buf.len() as u64;
        let full = self.buf.len() / PAGE * PAGE;
        let journal = journal && self.buf.len() > full && end != self.journaled_end;
        if full == 0 && !journal {
            return Ok(());
        }
        inner.check_writable()?;
        let active = self.active.clone();
        let Some(c) = &active.enc else {
            return Ok(());
        };
        if full > 0 {
            // What a writer does without the lock (`Writer::append`), here under it.
            let mut pages = self.take_pages(inner)?;
            let written = pages.write(inner);
            self.put_pages(pages, written.is_ok());
            written?;
        }
        if journal {
            // Never the slot of the newest durable copy (a slot's parity is its sequence
            // number's): a copy written by a round without fdatasync (`appendfsync no`) is
            // not durable, so the next such round writes over it, not over the durable one.
            let mut seq = self.jseq + 1;
            if self.jdurable == Some(seq % 2) {
                seq += 1;
            }
            c.seal_journal(
                self.buf_start / PAGE as u64,
                seq,
                &self.buf,
                &mut self.scratch,
            )?;
            if let Err(e) = c.tag.write_all_at(&self.scratch, journal_off(seq % 2)) {
                return Err(Self::write_failed(inner, &c.tag_path, e));
            }
            self.jseq = seq;
            self.journaled_end = end;
        }
        self.mark_unsynced(&active, full > 0, true);
        Ok(())
    }

    /// Encrypted: how many zeros to write after entries that end at `end` of the tag file: a
    /// step (`TAG_PREALLOC_STEP`) when they reach beyond `tag_alloc_end`, which then moves
    /// past it; else none. The zeros cover only tag bytes never written: pages are written
    /// once, in order.
    fn tag_zeros_after(&mut self, end: u64) -> usize {
        if end <= self.tag_alloc_end {
            return 0;
        }
        self.tag_alloc_end = end + TAG_PREALLOC_STEP;
        TAG_PREALLOC_STEP as usize
    }

    /// Encrypted: writes the entries of the data pages from `first` on to the tag file, with
    /// the zeros `tag_zeros_after` asks for behind them (in the same write).
    fn write_entries(
        &mut self,
        inner: &Inner,
        c: &LogCrypt,
        first: u64,
        mut entries: Vec<u8>,
    ) -> Result<()> {
        let zeros = self.tag_zeros_after(entry_off(first) + entries.len() as u64);
        entries.resize(entries.len() + zeros, 0);
        if let Err(e) = c.tag.write_all_at(&entries, entry_off(first)) {
            return Err(Self::write_failed(inner, &c.tag_path, e));
        }
        Ok(())
    }

    /// Encrypted: seals the active log's last, partly filled page into the data file (its
    /// one data-file write, zero-padded; the entry says how much of it is meaningful).
    fn seal_tail_enc(&mut self, inner: &Inner) -> Result<()> {
        let active = self.active.clone();
        let Some(c) = &active.enc else {
            return Ok(());
        };
        if self.buf.is_empty() {
            return Ok(());
        }
        inner.check_writable()?;
        let page = self.buf_start / PAGE as u64;
        let len = self.buf.len();
        self.scratch.clear();
        self.scratch.resize(PAGE, 0);
        self.scratch[..len].copy_from_slice(&self.buf);
        let e = c
            .cipher
            .seal(page, 0, len as u32, Role::Data, &mut self.scratch)?;
        if let Err(e) = active.file.write_all_at(&self.scratch, self.buf_start) {
            return Err(Self::write_failed(inner, &active.path, e));
        }
        self.write_entries(inner, c, page, e.to_vec())?;
        self.buf_start += len as u64;
        active.flushed.store(self.buf_start, Ordering::Release);
        self.buf.clear();
        self.mark_unsynced(&active, true, true);
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
                    self.prealloc_short = false;
                    return;
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => {
                    // Not for good: the next step tries again, once space is freed.
                    if !self.prealloc_short {
                        slog::warn!(inner.logger, "the disk is nearly full: cannot preallocate the log";
                            "file" => %self.active.path.display(), "error" => %e);
                        self.prealloc_short = true;
                    }
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
        let mut len = self.active.len();
        if self.active.enc.is_some() {
            // An encrypted log's data file holds whole pages.
            len = len.div_ceil(PAGE as u64) * PAGE as u64;
        }
        if self.alloc_end > len {
            self.active
                .file
                .set_len(len)
                .map_err(|e| Error::io(&self.active.path, e))?;
            self.alloc_end = len;
        }
        if let Some(c) = &self.active.enc {
            // Nor zeros after the tag file's entries (one per page written).
            let tag_len = entry_off(len / PAGE as u64);
            if self.tag_alloc_end > tag_len {
                c.tag
                    .set_len(tag_len)
                    .map_err(|e| Error::io(&c.tag_path, e))?;
                self.tag_alloc_end = tag_len;
            }
        }
        Ok(())
    }

    /// Seals the active file and starts a new one.
    pub(crate) fn rotate(&mut self, inner: &Inner) -> Result<()> {
        self.flush(inner)?;
        self.seal_tail_enc(inner)?;
        // A sealed log ends at its last record; it is in `unsynced`, so the next sync round
        // makes the trim durable before any hint describes the file.
        self.trim()?;
        let id = inner.next_file_id.fetch_add(1, Ordering::SeqCst);
        let header = record::encode_log_header(inner.nshards as u32);
        let f = Arc::new(DataFile::create(
            &inner.dir,
            id,
            &header,
            inner.enc_key.as_ref(),
        )?);
        // The new file's directory entry is durable only once the directory is fsynced
        // (hazard 3): the next sync round does that before publishing durability.
        inner.dir_dirty.store(true, Ordering::SeqCst);
        inner.files.insert(id, f.clone());
        self.disk_files.insert(id);
        self.mark_unsynced(&f, true, f.enc.is_some());
        let old = std::mem::replace(&mut self.active, f);
        self.start_buffer(&header);
        old.sealed.store(true, Ordering::Release);
        inner.pending_hints.lock().push(old);
        Ok(())
    }

    /// Points the buffer at the start of a new active log: encrypted, its header is the
    /// start of page 0's plaintext and waits in the buffer; plain, it is in the file already.
    pub(crate) fn start_buffer(&mut self, header: &[u8]) {
        self.buf.clear();
        self.jseq = 0;
        self.jdurable = None;
        self.journaled_end = 0;
        if self.active.enc.is_some() {
            self.buf.extend_from_slice(header);
            self.buf_start = 0;
            self.alloc_end = 0;
            self.tag_alloc_end = entry_off(0);
        } else {
            self.buf_start = record::LOG_HEADER as u64;
            self.alloc_end = record::LOG_HEADER as u64;
        }
    }

    /// Encrypted: the part of `len` bytes at `offset` of file `file` that is in the buffer,
    /// if it ends there: (where that part starts, its bytes). Anything before it is in the
    /// full pages already written.
    pub(crate) fn read_buffered_from(
        &self,
        file: u32,
        offset: u64,
        len: usize,
    ) -> Option<(u64, Vec<u8>)> {
        let end = offset + len as u64;
        if file != self.active.id || end <= self.buf_start {
            return None;
        }
        let split = offset.max(self.buf_start);
        let at = (split - self.buf_start) as usize;
        let to = (end - self.buf_start) as usize;
        self.buf.get(at..to).map(|b| (split, b.to_vec()))
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
