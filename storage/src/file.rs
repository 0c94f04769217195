//! The file layer: log files, paths, and the seam where tests inject fsync failures and a
//! full disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use bytes::Bytes;

use crate::crypto::{ENTRY, FileCipher, MasterKey, PAGE, Role, TAG_HEADER, tag_path};
use crate::error::{Error, Result};

/// Path of log file `id`.
pub(crate) fn log_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}.log"))
}

/// Path of the hint file of log `id`.
pub(crate) fn hint_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}.hint"))
}

/// Whether `dir` holds data files: a log, hint or FixedStore slot file.
pub(crate) fn has_data(dir: &Path) -> Result<bool> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(dir, e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".slots") || matches!(parse_name(name), Some((_, "log" | "hint"))) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Parses `0000000042.log` / `.hint` names.
pub(crate) fn parse_name(name: &str) -> Option<(u32, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 10 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

/// The seam through which every fdatasync/fsync goes. Tests arm `fail_next` to make the next
/// sync fail the way a real disk error would (EIO), or hold syncs to freeze durability at a
/// known point (a slow disk, made deterministic).
#[derive(Default)]
pub(crate) struct SyncSeam {
    /// fdatasyncs of log and hint files issued through the seam (directory fsyncs are not
    /// counted): tests check that one group-commit round costs one.
    datasyncs: AtomicU64,
    /// fdatasyncs of FixedStore slot files (counted apart from the log's).
    slot_datasyncs: AtomicU64,
    /// fsyncs of the data directory (new files, renames, unlinks: hazard 3).
    dir_syncs: AtomicU64,
    fail_next: AtomicBool,
    /// While set, writes of the log's buffer fail with ENOSPC, as on a full disk.
    disk_full: AtomicBool,
    holding: AtomicBool,
    hold: parking_lot::Mutex<bool>,
    released: parking_lot::Condvar,
    /// Syncs that have waited at the hold so far (under `hold`), announced on `entered`.
    held_syncs: AtomicU64,
    entered: parking_lot::Condvar,
}

impl SyncSeam {
    pub(crate) fn arm_failure(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }

    /// While `full`, writes of the log's buffer fail with ENOSPC (see `write_at`).
    pub(crate) fn set_disk_full(&self, full: bool) {
        self.disk_full.store(full, Ordering::SeqCst);
    }

    /// The write of the log's buffer to the OS at `off` of `file` (a plain log's), which
    /// tests can make fail as a full disk does.
    pub(crate) fn write_at(&self, file: &File, bytes: &[u8], off: u64) -> io::Result<()> {
        if self.disk_full.load(Ordering::Relaxed) {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        file.write_all_at(bytes, off)
    }

    /// While held, every fdatasync waits before it starts; releasing lets them all go.
    pub(crate) fn hold(&self, hold: bool) {
        let mut h = self.hold.lock();
        *h = hold;
        self.holding.store(hold, Ordering::SeqCst);
        if !hold {
            self.released.notify_all();
        }
    }

    /// fdatasync of a log or hint file.
    pub(crate) fn datasync(&self, file: &File) -> io::Result<()> {
        self.datasync_counted(file, &self.datasyncs)
    }

    /// fdatasync of a FixedStore slot file (same hold and failure injection as the logs').
    pub(crate) fn datasync_slots(&self, file: &File) -> io::Result<()> {
        self.datasync_counted(file, &self.slot_datasyncs)
    }

    fn datasync_counted(&self, file: &File, counter: &AtomicU64) -> io::Result<()> {
        if self.holding.load(Ordering::Acquire) {
            let mut h = self.hold.lock();
            if *h {
                self.held_syncs.fetch_add(1, Ordering::SeqCst);
                self.entered.notify_all();
            }
            while *h {
                self.released.wait(&mut h);
            }
        }
        counter.fetch_add(1, Ordering::Relaxed);
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        file.sync_data()
    }

    /// Waits (up to `timeout`) until at least `n` syncs have waited at the hold; false if
    /// they did not in time.
    #[cfg(test)]
    pub(crate) fn wait_held(&self, n: u64, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut h = self.hold.lock();
        while self.held_syncs.load(Ordering::SeqCst) < n {
            if self.entered.wait_until(&mut h, deadline).timed_out() {
                return self.held_syncs.load(Ordering::SeqCst) >= n;
            }
        }
        true
    }

    /// fdatasyncs of log and hint files issued through the seam so far.
    #[cfg(test)]
    pub(crate) fn datasyncs(&self) -> u64 {
        self.datasyncs.load(Ordering::Relaxed)
    }

    /// fdatasyncs of FixedStore slot files issued through the seam so far.
    #[cfg(test)]
    pub(crate) fn slot_datasyncs(&self) -> u64 {
        self.slot_datasyncs.load(Ordering::Relaxed)
    }

    /// fsync a directory: makes new files, renames and unlinks in it durable (hazard 3).
    pub(crate) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        File::open(dir)?.sync_all()?;
        self.dir_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Directory fsyncs issued through the seam so far.
    #[cfg(test)]
    pub(crate) fn dir_syncs(&self) -> u64 {
        self.dir_syncs.load(Ordering::Relaxed)
    }
}

/// One fdatasync of a group-commit round, owning its file so that another thread can run it.
pub(crate) enum SyncJob {
    /// A log's data file.
    Log(Arc<DataFile>),
    /// An encrypted log's tag file.
    Tag(Arc<DataFile>),
    /// A FixedStore slot file.
    Slots(PathBuf, Arc<File>),
}

impl SyncJob {
    fn run(&self, seam: &SyncSeam) -> std::result::Result<(), String> {
        let (r, path) = match self {
            SyncJob::Log(f) => (seam.datasync(&f.file), &f.path),
            SyncJob::Tag(f) => match &f.enc {
                Some(c) => (seam.datasync(&c.tag), &c.tag_path),
                None => return Ok(()),
            },
            SyncJob::Slots(path, f) => (seam.datasync_slots(f), path),
        };
        r.map_err(|e| format!("fsync failed on {}: {e}", path.display()))
    }
}

/// A helper thread of `Fsyncers`: takes a job, sends back its result.
struct Fsyncer {
    jobs: mpsc::Sender<SyncJob>,
    done: mpsc::Receiver<std::result::Result<(), String>>,
}

/// The threads that run a round's fdatasyncs beside the sync thread's own, so that a round
/// of several files (an encrypted log's data and tag files) waits for about one. They live
/// as long as the engine: a thread spawned per round cost its creation, its stack's page
/// faults and its exit every round. Only the sync-round lock's holder uses them.
pub(crate) struct Fsyncers {
    seam: Arc<SyncSeam>,
    helpers: parking_lot::Mutex<Vec<Fsyncer>>,
}

impl Fsyncers {
    pub(crate) fn new(seam: Arc<SyncSeam>) -> Fsyncers {
        Fsyncers {
            seam,
            helpers: parking_lot::Mutex::new(Vec::new()),
        }
    }

    fn spawn(&self) -> io::Result<Fsyncer> {
        let (jobs, rx) = mpsc::channel::<SyncJob>();
        let (tx, done) = mpsc::channel();
        let seam = self.seam.clone();
        // Ends when the engine drops its `Fsyncers` (the job channel closes).
        std::thread::Builder::new()
            .name("respite-fsync".into())
            .spawn(move || {
                for job in rx {
                    if tx.send(job.run(&seam)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Fsyncer { jobs, done })
    }

    /// Runs every job at once: the first on this thread, the others on helpers (a job no
    /// helper could take runs here after it). Returns the first failure's message; every
    /// job has finished by then.
    pub(crate) fn run_all(&self, jobs: Vec<SyncJob>) -> Option<String> {
        let mut jobs = jobs.into_iter();
        let first = jobs.next()?;
        let mut helpers = self.helpers.lock();
        let mut here = vec![first];
        let mut waiting = Vec::new();
        for (i, job) in jobs.enumerate() {
            if helpers.len() <= i {
                match self.spawn() {
                    Ok(h) => helpers.push(h),
                    Err(_) => {
                        here.push(job);
                        continue;
                    }
                }
            }
            match helpers[i].jobs.send(job) {
                Ok(()) => waiting.push(i),
                Err(mpsc::SendError(job)) => here.push(job),
            }
        }
        let mut failed = None;
        for job in &here {
            failed = failed.or(job.run(&self.seam).err());
        }
        let mut dead = Vec::new();
        for i in waiting {
            let r = helpers[i].done.recv().unwrap_or_else(|_| {
                dead.push(i);
                Err("fsync thread panicked".to_string())
            });
            failed = failed.or(r.err());
        }
        // A helper that died is replaced at the next round.
        for i in dead.into_iter().rev() {
            helpers.remove(i);
        }
        failed
    }
}

/// Allocates `[from, to)` of `file` (zero-filled, the file size becomes at least `to`), so
/// writes there change no file size.
pub(crate) fn fallocate(file: &File, from: u64, to: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (
        libc::off_t::try_from(from),
        libc::off_t::try_from(to - from),
    ) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    // SAFETY: fallocate on a valid open descriptor owned by `file`; no memory is involved.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, off, len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Bytes of a log tag file's two journal slots (each an entry, then a page of ciphertext).
pub(crate) const JOURNAL: u64 = 2 * (ENTRY + PAGE) as u64;

/// Offset in a log's tag file of journal slot `slot`'s entry (its page follows it).
pub(crate) fn journal_off(slot: u64) -> u64 {
    TAG_HEADER as u64 + slot * (ENTRY + PAGE) as u64
}

/// Offset in a log's tag file of data page `page`'s entry.
pub(crate) fn entry_off(page: u64) -> u64 {
    TAG_HEADER as u64 + JOURNAL + page * ENTRY as u64
}

/// The encryption side of an encrypted log (docs/encryption.md): its cipher and tag file.
pub(crate) struct LogCrypt {
    pub cipher: FileCipher,
    pub tag: File,
    pub tag_path: PathBuf,
}

impl LogCrypt {
    /// A journal slot's bytes in `out` (its entry, then the sealed page): the tail page
    /// `page` holding `tail` (zero-padded), as journal copy number `seq`. It belongs at
    /// `journal_off(seq % 2)` of the tag file.
    pub(crate) fn seal_journal(
        &self,
        page: u64,
        seq: u64,
        tail: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        out.clear();
        out.resize(ENTRY + PAGE, 0);
        out[ENTRY..ENTRY + tail.len()].copy_from_slice(tail);
        let e = self.cipher.seal(
            page,
            seq,
            tail.len() as u32,
            Role::Journal,
            &mut out[ENTRY..],
        )?;
        out[..ENTRY].copy_from_slice(&e);
        Ok(())
    }
}

/// One log file.
pub(crate) struct DataFile {
    pub id: u32,
    pub path: PathBuf,
    pub file: File,
    /// Bytes written to the OS (readers may pread below this). Encrypted: the end of the
    /// full pages written (the partial tail page is in the writer's buffer), or of the
    /// meaningful bytes once sealed.
    pub flushed: AtomicU64,
    /// Bytes of records no longer referenced (superseded, deleted, tombstones, markers).
    pub dead: AtomicU64,
    /// Full: no more appends; compaction and hints may use it.
    pub sealed: AtomicBool,
    /// Some when the folder is encrypted.
    pub enc: Option<LogCrypt>,
}

impl DataFile {
    /// Creates log `id`. Plain: writes `header` at offset 0. Encrypted: creates the tag file
    /// first (its header and empty journal), then an empty data file; the log header is then
    /// the start of page 0's plaintext, which the writer keeps in its buffer.
    pub(crate) fn create(
        dir: &Path,
        id: u32,
        header: &[u8],
        key: Option<&MasterKey>,
    ) -> Result<DataFile> {
        let path = log_path(dir, id);
        let enc = match key {
            None => None,
            Some(k) => {
                let (cipher, th) = FileCipher::create(k)?;
                let tag_path = tag_path(&path);
                let tag = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tag_path)
                    .map_err(|e| Error::io(&tag_path, e))?;
                tag.write_all_at(&th, 0)
                    .and_then(|()| tag.set_len(TAG_HEADER as u64 + JOURNAL))
                    .map_err(|e| Error::io(&tag_path, e))?;
                Some(LogCrypt {
                    cipher,
                    tag,
                    tag_path,
                })
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let flushed = if enc.is_none() {
            if let Err(e) = file.write_all_at(header, 0) {
                // A log without its whole header (a full disk) is of no use: start-up drops
                // it, and a rotation that retries would leave one more each time.
                let _ = std::fs::remove_file(&path);
                return Err(Error::io(&path, e));
            }
            header.len() as u64
        } else {
            0
        };
        Ok(DataFile {
            id,
            path,
            file,
            flushed: AtomicU64::new(flushed),
            dead: AtomicU64::new(0),
            sealed: AtomicBool::new(false),
            enc,
        })
    }

    pub(crate) fn open_existing(
        path: PathBuf,
        id: u32,
        len: u64,
        enc: Option<LogCrypt>,
    ) -> Result<DataFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(DataFile {
            id,
            path,
            file,
            flushed: AtomicU64::new(len),
            dead: AtomicU64::new(0),
            sealed: AtomicBool::new(false),
            enc,
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.flushed.load(Ordering::Acquire)
    }

    pub(crate) fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many (short at end of file).
    pub(crate) fn read_at_most(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        read_at_most(&self.file, &self.path, buf, offset)
    }

    /// Encrypted: the `count` pages from `first`, read with one pread of the data file and
    /// one of the tag file, and decrypted in place. Returns their bytes and, page by page,
    /// its meaningful length, or `None` if it does not authenticate or cannot be read whole.
    fn open_pages(
        &self,
        c: &LogCrypt,
        first: u64,
        count: usize,
    ) -> Result<(Vec<u8>, Vec<Option<usize>>)> {
        let mut data = vec![0u8; count * PAGE];
        let got = self.read_at_most(&mut data, first * PAGE as u64)?;
        let mut entries = vec![0u8; count * ENTRY];
        let got_entries = read_at_most(&c.tag, &c.tag_path, &mut entries, entry_off(first))?;
        let lens = data
            .chunks_exact_mut(PAGE)
            .zip(entries.chunks_exact(ENTRY))
            .enumerate()
            .map(|(i, (p, e))| {
                let whole = (i + 1) * PAGE <= got && (i + 1) * ENTRY <= got_entries;
                let info = c.cipher.open_page(first + i as u64, Role::Data, p, e);
                info.ok().filter(|_| whole).map(|info| info.len as usize)
            })
            .collect();
        Ok((data, lens))
    }

    /// Encrypted: up to `count` consecutive pages from `first` (`open_pages`: a value of a
    /// few KiB spans two pages, read with two preads, not four), each cut to its meaningful
    /// length. The run stops before the first page that does not authenticate (or cannot be
    /// read whole); if that is `first` itself, it is `Tampered`, naming the page. So a caller
    /// that needs the pages after the run asks again from there, and meets the same errors,
    /// in the same order, as it would reading page by page.
    pub(crate) fn read_pages(&self, c: &LogCrypt, first: u64, count: usize) -> Result<Vec<Bytes>> {
        let (data, lens) = self.open_pages(c, first, count)?;
        let data = Bytes::from(data);
        let pages: Vec<Bytes> = lens
            .into_iter()
            .map_while(|len| len)
            .enumerate()
            .map(|(i, len)| data.slice(i * PAGE..i * PAGE + len))
            .collect();
        if pages.is_empty() {
            return Err(Error::Tampered {
                file: self.path.clone(),
                page: first,
            });
        }
        Ok(pages)
    }

    /// `len` bytes at `offset` of the log's plaintext (the file's bytes when not encrypted),
    /// from what is on disk (below `len()`).
    pub(crate) fn read_plain(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let Some(c) = &self.enc else {
            let mut v = vec![0u8; len];
            self.read_exact_at(&mut v, offset)?;
            return Ok(v);
        };
        let mut out = Vec::with_capacity(len);
        let end = offset + len as u64;
        let mut at = offset;
        while at < end {
            let page = at / PAGE as u64;
            let last = (end - 1) / PAGE as u64;
            for (i, p) in self
                .read_pages(c, page, (last - page) as usize + 1)?
                .iter()
                .enumerate()
            {
                let pstart = (page + i as u64) * PAGE as u64;
                let from = (at - pstart) as usize;
                let to = ((end - pstart) as usize).min(PAGE);
                if p.len() < to {
                    return Err(Error::Corrupt {
                        file: self.path.clone(),
                        offset,
                        reason: "value extends past the end of its log file",
                    });
                }
                out.extend_from_slice(&p[from..to]);
                at = pstart + to as u64;
            }
        }
        Ok(out)
    }

    /// `buf.len()` bytes of a log's plaintext at `offset`, from what is on disk (below
    /// `len()`). Encrypted: the pages and entries the range covers are read at once (one
    /// pread each) and decrypted in place; a page that fails authentication (or is missing)
    /// is logged with the file and page and reads as zeros (the record scan then skips it,
    /// as it skips a bad record of a plain log).
    pub(crate) fn read_plain_into(
        &self,
        offset: u64,
        buf: &mut [u8],
        logger: &slog::Logger,
    ) -> Result<()> {
        let Some(c) = &self.enc else {
            return self.read_exact_at(buf, offset);
        };
        if buf.is_empty() {
            return Ok(());
        }
        let first = offset / PAGE as u64;
        let last = (offset + buf.len() as u64 - 1) / PAGE as u64;
        let (mut data, lens) = self.open_pages(c, first, (last - first + 1) as usize)?;
        for (i, (p, len)) in data.chunks_mut(PAGE).zip(lens).enumerate() {
            match len {
                Some(len) => p[len..].fill(0),
                None => {
                    p.fill(0);
                    let page = first + i as u64;
                    let e = Error::Tampered {
                        file: self.path.clone(),
                        page,
                    };
                    slog::error!(logger, "encrypted log page failed authentication; its records are skipped";
                        "file" => %self.path.display(), "page" => page, "error" => %e);
                }
            }
        }
        let from = (offset - first * PAGE as u64) as usize;
        buf.copy_from_slice(&data[from..from + buf.len()]);
        Ok(())
    }
}

/// Reads up to `buf.len()` bytes of `file` at `offset`; returns how many (short at its end).
pub(crate) fn read_at_most(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(done)
}

/// Takes an exclusive advisory lock (flock) on `<dir>/LOCK`, held for as long as the returned
/// file is open: a second engine on the same directory is refused instead of corrupting it.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    // SAFETY: flock on a valid open descriptor owned by `f`; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(Error::DirInUse(dir.to_path_buf()));
        }
        return Err(Error::io(&path, err));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name("0000000042.log"), Some((42, "log")));
        assert_eq!(parse_name("0000000042.hint"), Some((42, "hint")));
        assert_eq!(parse_name("42.log"), None);
        assert_eq!(
            log_path(Path::new("/d"), 42),
            PathBuf::from("/d/0000000042.log")
        );
    }
}
