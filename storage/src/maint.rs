//! Background work: the sync thread (group commit) and the maintenance thread (hint files,
//! deletion of compacted files, the expiry sweep, compaction).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_epoch as epoch;

use crate::config::SyncMode;
use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::file::{DataFile, hint_path};
use crate::hint::{HintEntry, HintWriter};
use crate::index::{NewEntry, find, sweep_list};
use crate::record::{
    Bad, FLAG_FLUSH, FLAG_TOMBSTONE, Header, LOG_HEADER, RECORD_HEADER, decode, parse_header,
};
use crate::recovery::zero_tail;

const SECOND: Duration = Duration::from_secs(1);

/// How long the maintenance thread waits before it tries again to write hints that failed.
const HINT_RETRY: Duration = Duration::from_secs(5);

/// The group-commit loop. Under `always` it runs a round as soon as there are unsynced writes
/// (writes that arrive during a round wait for the next one, so rounds coalesce); under
/// `everysec` at least once a second; under `no` it only writes buffers to the OS each second,
/// unless someone calls `request_sync`.
pub(crate) fn sync_thread(inner: &Inner) {
    let mut last_timer = Instant::now();
    let mut told_failure = false;
    loop {
        if inner.shutdown.load(Ordering::SeqCst) {
            return;
        }
        if inner.failed.load(Ordering::Acquire) {
            if !told_failure {
                // Every waiter of the failed group learns it now (sync_failure() is set).
                inner.call_hooks();
                told_failure = true;
            }
            std::thread::park_timeout(SECOND);
            // A stalled write (a full disk) is retried once a second, as Redis retries a
            // failed AOF write; a later failure is told again.
            if inner.retry_stalled() {
                told_failure = false;
            }
            continue;
        }
        let mode = inner.sync_mode();
        let last = inner.gsn.load(Ordering::SeqCst);
        let durable = inner.durable.load(Ordering::SeqCst);
        let requested = inner.requested.load(Ordering::SeqCst);
        if requested > durable || (mode == SyncMode::Always && last > durable) {
            let _ = inner.sync_round(true);
            continue;
        }
        let since = last_timer.elapsed();
        if since >= SECOND {
            last_timer = Instant::now();
            if mode == SyncMode::No {
                let _ = inner.sync_round(false);
            } else if last > durable {
                let _ = inner.sync_round(true);
            }
            continue;
        }
        std::thread::park_timeout(SECOND - since);
    }
}

/// Where the expiry sweep resumes in each (shard, db): the sequence number to resume at.
struct Sweep {
    pos: Vec<u64>,
}

pub(crate) fn maint_thread(inner: &Inner) {
    lower_priority(inner);
    let mut sweep = Sweep {
        pos: vec![0; inner.nshards * inner.databases],
    };
    // After a failed hint (a full disk, say), the next try waits `HINT_RETRY`, and only the
    // first failure of a run of them is logged.
    let mut hints_after = Instant::now();
    let mut hints_failing = false;
    loop {
        std::thread::park_timeout(Duration::from_millis(100));
        if inner.shutdown.load(Ordering::SeqCst) {
            return;
        }
        if Instant::now() >= hints_after {
            match write_pending_hints(inner) {
                Ok(()) => hints_failing = false,
                Err(e) => {
                    if !hints_failing {
                        slog::warn!(inner.logger, "writing a hint file failed; start-up will scan that log until one is written";
                            "error" => %e, "retry_s" => HINT_RETRY.as_secs());
                    }
                    hints_failing = true;
                    hints_after = Instant::now() + HINT_RETRY;
                }
            }
        }
        if let Err(e) = delete_retired(inner) {
            slog::warn!(inner.logger, "deleting compacted logs failed"; "error" => %e);
        }
        if inner.failed.load(Ordering::Acquire) {
            continue;
        }
        if inner.active_expire {
            sweep_step(inner, &mut sweep);
            for t in inner.consts.iter().flatten() {
                t.sweep_step(inner);
            }
        }
        if let Err(e) = crate::fixed::grow_ahead(inner) {
            slog::warn!(inner.logger, "growing a slot file ahead of need failed; writers will grow it"; "error" => %e);
        }
        if let Err(e) = compact_some(inner, 1, inner.dead_ratio) {
            slog::warn!(inner.logger, "compaction failed"; "error" => %e);
        }
    }
}

/// The nice value of the maintenance thread: the lowest priority there is.
pub(crate) const MAINT_NICE: i32 = 19;

/// Moves the calling thread (the maintenance thread) to nice `MAINT_NICE`, so compaction,
/// hint files and the expiry sweep take only CPU the reactors leave: on a busy machine they
/// slow down instead of the requests. They still progress (the scheduler gives a nice-19
/// thread a small share, never none) and run at full speed once the load lets up.
fn lower_priority(inner: &Inner) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions. On Linux the nice value is per thread and
        // PRIO_PROCESS with a thread id changes that thread only (setpriority(2), NOTES).
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, MAINT_NICE)
        };
        if rc != 0 {
            slog::warn!(inner.logger, "could not lower the maintenance thread's priority";
                "error" => %std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = inner;
}

/// One bounded step of the expiry sweep: examines up to 64 entries of each (shard, db) that
/// has keys with an expiry, and deletes (tombstones) the expired ones, a few per lock hold.
fn sweep_step(inner: &Inner, sweep: &mut Sweep) {
    for db in 0..inner.databases {
        if inner.dbs[db].expires.load(Ordering::Relaxed) == 0 {
            continue;
        }
        for s in 0..inner.nshards {
            let idx = &inner.shards[s].index[db];
            let expired = {
                let guard = epoch::pin();
                sweep_list(
                    &mut sweep.pos[s * inner.databases + db],
                    |pos| idx.seek(pos, &guard),
                    |k, now| (!k.value().load(&guard).live(now)).then(|| (k.hash, k.bytes())),
                )
            };
            inner.reap(s, db, &expired);
        }
    }
}

impl Inner {
    /// Deletes those of `keys` ((hash, key) pairs of shard `s` in `db`, a VarTree or a
    /// ConstTree) that are still expired, tombstone and all: the sweep's step, and what a
    /// read does with an expired key it finds (Redis deletes a key on access, so DBSIZE stops
    /// counting it at once). Stops at the first failed write (writes refused after a failed
    /// fsync: the key stays expired, and reads go on).
    pub(crate) fn reap<K: AsRef<[u8]>>(&self, s: usize, db: usize, keys: &[(u64, K)]) {
        if keys.is_empty() {
            return;
        }
        let mut w = self.shards[s].writer.lock();
        let guard = epoch::pin();
        let mut last = 0;
        for (hash, key) in keys {
            let (hash, key) = (*hash, key.as_ref());
            if !self.t_expired(db, hash, key, &guard) {
                continue;
            }
            match self.t_del(&mut w, db, hash, key, &guard) {
                Ok(Some(gsn)) => {
                    self.expired_keys.fetch_add(1, Ordering::Relaxed);
                    last = gsn;
                }
                Ok(None) => {}
                Err(_) => break,
            }
        }
        drop(w);
        if last != 0 && self.sync_mode() == SyncMode::Always {
            self.request_sync(last);
        }
    }
}

/// Bytes of a sealed log that hint writing and compaction read at a time.
pub(crate) const SCAN_CHUNK: usize = 1 << 20;

/// Visits the records of sealed log `f` as `scan_log` does over the whole file (the same
/// records at the same offsets, bad ones logged and skipped), reading its plaintext `chunk`
/// bytes at a time into one buffer (more when one record is larger): a log of any size
/// costs a bounded buffer, not an allocation of its size. `visit` returns false to stop;
/// the result is whether the scan reached the end of the log.
pub(crate) fn scan_sealed(
    inner: &Inner,
    f: &DataFile,
    chunk: usize,
    mut visit: impl FnMut(&Header, u32, &[u8], &[u8]) -> Result<bool>,
) -> Result<bool> {
    let end = f.len();
    let mut buf: Vec<u8> = Vec::new();
    // The window: `buf` holds the log's bytes from `base` on.
    let mut base = 0u64;
    let fill = |buf: &mut Vec<u8>, base: &mut u64, from: u64, want: usize| -> Result<()> {
        buf.resize((end - from).min(want as u64) as usize, 0);
        *base = from;
        f.read_plain_into(from, buf, &inner.logger)
    };
    let mut at = LOG_HEADER as u64;
    // After a bad record: looking for the next offset where a record decodes.
    let mut resync = false;
    while at < end {
        if resync && at + RECORD_HEADER as u64 > end {
            break;
        }
        if at < base || at >= base + buf.len() as u64 {
            fill(&mut buf, &mut base, at, chunk)?;
        }
        let i = (at - base) as usize;
        let last = base + buf.len() as u64 == end;
        let decoded = match decode(&buf[i..]) {
            Err(Bad::Short) if !last => {
                // Runs past the window: read again from here, enough for the whole record
                // (one that claims to run past the end of the log is bad, as scan_log finds).
                let claim = parse_header(&buf[i..]).map_or(RECORD_HEADER, |h| h.record_len());
                if at + claim as u64 <= end {
                    fill(&mut buf, &mut base, at, chunk.max(claim))?;
                    continue;
                }
                Err(Bad::Short)
            }
            other => other,
        };
        match (decoded, resync) {
            (Ok(h), _) => {
                resync = false;
                let kend = i + RECORD_HEADER + h.key_len as usize;
                let vend = kend + h.value_len as usize;
                if !visit(
                    &h,
                    at as u32,
                    &buf[i + RECORD_HEADER..kend],
                    &buf[kend..vend],
                )? {
                    return Ok(false);
                }
                at += h.record_len() as u64;
            }
            (Err(_), true) => at += 1,
            (Err(bad), false) => {
                if zeros_from(&mut buf, &mut base, at, end, chunk, &fill)? {
                    break; // the unwritten rest of a preallocated log
                }
                slog::error!(inner.logger, "bad record in sealed log, skipped";
                    "file" => %f.path.display(), "offset" => at, "reason" => ?bad);
                resync = true;
                at += 1;
            }
        }
    }
    Ok(true)
}

/// Whether the log is all zeros from `at` (inside the window) to `end`, reading on
/// through the window.
fn zeros_from(
    buf: &mut Vec<u8>,
    base: &mut u64,
    mut at: u64,
    end: u64,
    chunk: usize,
    fill: &impl Fn(&mut Vec<u8>, &mut u64, u64, usize) -> Result<()>,
) -> Result<bool> {
    loop {
        if !zero_tail(&buf[(at - *base) as usize..]) {
            return Ok(false);
        }
        at = *base + buf.len() as u64;
        if at >= end {
            return Ok(true);
        }
        fill(buf, base, at, chunk)?;
    }
}

/// fdatasync of a log's data file and (encrypted) its tag file, through the seam; a failure
/// refuses writes like any fsync failure.
fn datasync_log(inner: &Inner, f: &DataFile) -> Result<()> {
    let tag = f.enc.as_ref().map(|c| (&c.tag, &c.tag_path));
    for (file, path) in std::iter::once((&f.file, &f.path)).chain(tag) {
        datasync(inner, file, path)?;
    }
    Ok(())
}

/// fdatasyncs `file` (through the seam); a failure fails the engine (writes are refused
/// from then on: hazard 2).
fn datasync(inner: &Inner, file: &std::fs::File, path: &std::path::Path) -> Result<()> {
    if let Err(e) = inner.seam.datasync(file) {
        let msg = format!("fsync failed on {}: {e}", path.display());
        return Err(inner.fail(msg));
    }
    Ok(())
}

/// Writes `bytes` to `tmp` and fdatasyncs it (through the seam).
fn write_synced(inner: &Inner, tmp: &std::path::Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(tmp, bytes).map_err(|e| Error::io(tmp, e))?;
    let t = std::fs::File::open(tmp).map_err(|e| Error::io(tmp, e))?;
    datasync(inner, &t, tmp)
}

/// Writes the hint files of sealed logs that have none yet.
pub(crate) fn write_pending_hints(inner: &Inner) -> Result<()> {
    let files = std::mem::take(&mut *inner.pending_hints.lock());
    let mut res = Ok(());
    for (i, f) in files.iter().enumerate() {
        if inner.files.get(&f.id).is_none() {
            continue; // compacted away meanwhile
        }
        if let Err(e) = write_hint(inner, f) {
            inner
                .pending_hints
                .lock()
                .extend(files[i..].iter().cloned());
            res = Err(e);
            break;
        }
    }
    res
}

/// Bytes of a hint made before they are written out: a hint is written as it is made, so
/// writing the hint of a full log (some 45 MiB for a million small records) costs this much
/// memory, not the hint's size (twice that and more when encrypted).
const HINT_CHUNK: usize = 1 << 20;

/// A hint's `.tmp` file being written as the hint is made: plain bytes as they come, or
/// (encrypted) pages sealed as they fill, their tags kept for the tag file.
struct HintOut {
    file: std::fs::File,
    path: std::path::PathBuf,
    sealer: Option<crate::crypto::Sealer>,
}

impl HintOut {
    fn create(inner: &Inner, path: std::path::PathBuf) -> Result<HintOut> {
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        let sealer = match &inner.enc_key {
            None => None,
            Some(k) => Some(crate::crypto::Sealer::new(k)?),
        };
        Ok(HintOut { file, path, sealer })
    }

    /// Writes the next piece (whole pages unless it is the last).
    fn write(&mut self, bytes: Vec<u8>) -> Result<()> {
        use std::io::Write as _;
        let bytes = match &mut self.sealer {
            None => bytes,
            Some(s) => s.seal(bytes)?,
        };
        self.file
            .write_all(&bytes)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Makes the file durable; returns the tag file's bytes when encrypted.
    fn finish(self, inner: &Inner) -> Result<Option<Vec<u8>>> {
        datasync(inner, &self.file, &self.path)?;
        Ok(self.sealer.map(crate::crypto::Sealer::into_tags))
    }
}

fn write_hint(inner: &Inner, f: &DataFile) -> Result<()> {
    // The hint must never describe records that are not durable in the log: sync the log
    // first (through the seam: a failure here is an fsync failure like any other).
    datasync_log(inner, f)?;
    let path = hint_path(&inner.dir, f.id);
    let tmp = path.with_extension("hint.tmp");
    let tag_tmp = path.with_extension("hint.tag.tmp");
    let written = make_hint(inner, f, &path, &tmp, &tag_tmp);
    if written.is_err() {
        // Half a hint only takes space (start-up would delete it): on a full disk that is
        // space the log needs.
        for p in [&tmp, &tag_tmp] {
            let _ = std::fs::remove_file(p);
        }
    }
    written
}

/// Writes log `f`'s hint to `tmp` (an encrypted one's tag to `tag_tmp`) and renames it into
/// place at `path`.
fn make_hint(
    inner: &Inner,
    f: &DataFile,
    path: &std::path::Path,
    tmp: &std::path::Path,
    tag_tmp: &std::path::Path,
) -> Result<()> {
    let mut out = HintOut::create(inner, tmp.to_path_buf())?;
    let mut hw = HintWriter::new(f.id);
    scan_sealed(inner, f, SCAN_CHUNK, |h, off, k, v| {
        let keep_value =
            h.flags & (FLAG_TOMBSTONE | FLAG_FLUSH) == 0 && v.len() <= inner.inline_value_max;
        hw.push(&HintEntry {
            gsn: h.gsn,
            expire_at_ms: h.expire_at_ms,
            offset: off,
            value_len: h.value_len,
            db: h.db,
            flags: h.flags,
            vtype: h.vtype,
            key: k,
            value: keep_value.then_some(v),
        });
        if hw.pending() >= HINT_CHUNK {
            // Whole pages, as the sealer of an encrypted hint needs.
            out.write(hw.take(crate::crypto::PAGE))?;
        }
        Ok(true)
    })?;
    out.write(hw.finish())?;
    if let Some(tags) = out.finish(inner)? {
        // Encrypted: the tag is renamed into place first, so a hint in place always has its
        // tag (docs/encryption.md).
        let tag = crate::crypto::tag_path(path);
        write_synced(inner, tag_tmp, &tags)?;
        std::fs::rename(tag_tmp, &tag).map_err(|e| Error::io(&tag, e))?;
    }
    std::fs::rename(tmp, path).map_err(|e| Error::io(path, e))?;
    // fsync the directory, or the rename can be lost (hazard 3).
    if let Err(e) = inner.seam.sync_dir(&inner.dir) {
        let msg = format!("fsync failed on directory {}: {e}", inner.dir.display());
        return Err(inner.fail(msg));
    }
    Ok(())
}

/// Unlinks compacted logs that no reader can reach any more (the epoch said so), makes the
/// unlinks durable, and only then lets compaction drop tombstones that relied on them.
pub(crate) fn delete_retired(inner: &Inner) -> Result<()> {
    // Give deferred functions a chance to run: readers pinned before the retirement finish.
    epoch::pin().flush();
    let list = std::mem::take(&mut *inner.retired.lock());
    if list.is_empty() {
        return Ok(());
    }
    for f in &list {
        inner.files.remove(&f.id);
        let hint = hint_path(&inner.dir, f.id);
        let tags = [
            crate::crypto::tag_path(&f.path),
            crate::crypto::tag_path(&hint),
        ];
        for p in [f.path.clone(), hint].into_iter().chain(tags) {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
    }
    if let Err(e) = inner.seam.sync_dir(&inner.dir) {
        let msg = format!("fsync failed on directory {}: {e}", inner.dir.display());
        return Err(inner.fail(msg));
    }
    let mut log = inner.log.lock();
    for f in &list {
        log.disk_files.remove(&f.id);
    }
    Ok(())
}

fn over_ratio(f: &DataFile, ratio: f64) -> bool {
    let body = f.len().saturating_sub(LOG_HEADER as u64);
    let dead = f.dead.load(Ordering::Relaxed);
    f.sealed.load(Ordering::Acquire) && dead > 0 && dead as f64 > ratio * body as f64
}

/// Compacts up to `max` sealed files whose dead fraction exceeds `ratio`.
fn compact_some(inner: &Inner, max: usize, ratio: f64) -> Result<()> {
    let candidates: Vec<Arc<DataFile>> = inner
        .files
        .iter()
        .map(|e| e.value().clone())
        .filter(|f| over_ratio(f, ratio))
        .take(max)
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let _one_at_a_time = inner.compaction.lock();
    let mut moved = Vec::new();
    for f in candidates {
        if compact_file(inner, &f)? {
            moved.push(f);
        }
    }
    if moved.is_empty() {
        return Ok(());
    }
    // The moved records must be durable before the old copies go: one sync for the batch.
    await_round(inner)?;
    for f in moved {
        retire(inner, f);
    }
    Ok(())
}

/// Waits for a group-commit round that covers everything appended so far, run by the sync
/// thread. This thread runs at nice 19: running the round itself would hold the log lock
/// and the round lock at the lowest priority, and on a busy machine every `always` reply
/// would wait for it to be scheduled again. Compaction copies keep their records' old GSNs,
/// so the wait is for a fresh GSN taken (without a record) under the log lock after them:
/// a round that publishes it flushed and synced every copy.
fn await_round(inner: &Inner) -> Result<()> {
    let target = {
        let _log = inner.log.lock();
        inner.gsn.fetch_add(1, Ordering::SeqCst) + 1
    };
    loop {
        if inner.durable.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        inner.check_writable()?;
        if inner.shutdown.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        inner.request_sync(target);
        // Compaction is in no hurry: a poll every millisecond, not a wake-up per round.
        std::thread::park_timeout(Duration::from_millis(1));
    }
}

/// Hands a compacted file to the epoch: it is unlinked only after every reader that could
/// have loaded a location inside it has unpinned.
fn retire(inner: &Inner, f: Arc<DataFile>) {
    inner.pending_hints.lock().retain(|p| p.id != f.id);
    let retired = inner.retired.clone();
    let guard = epoch::pin();
    guard.defer(move || retired.lock().push(f));
    guard.flush();
    inner.compactions.fetch_add(1, Ordering::Relaxed);
}

/// `compact_now`: every sealed file with any dead bytes, whatever the configured ratio.
pub(crate) fn compact_all(inner: &Inner) -> Result<()> {
    compact_some(inner, usize::MAX, 0.0)
}

/// Rewrites the live records of a sealed file into the active log, each under the lock of
/// its key's shard. Returns whether the file is done and may be retired (after a sync). The
/// caller holds `inner.compaction`.
fn compact_file(inner: &Inner, f: &Arc<DataFile>) -> Result<bool> {
    if inner.files.get(&f.id).is_none()
        || !f.sealed.load(Ordering::Acquire)
        || inner.retired.lock().iter().any(|r| r.id == f.id)
    {
        return Ok(false);
    }
    // Tombstones and flush markers are dropped only from the oldest log on disk: any older
    // copy of their key lives in an older log (hazard 4). Logs only ever leave that set, so
    // a file that is the oldest now stays the oldest.
    let oldest = inner.log.lock().disk_files.first() == Some(&f.id);
    let mut seen = 0usize;
    let mut guard = epoch::pin();
    let done = scan_sealed(inner, f, SCAN_CHUNK, |h, off, key, value| {
        if seen.is_multiple_of(256) {
            if inner.shutdown.load(Ordering::SeqCst) {
                return Ok(false); // not retired: the copies made so far are harmless duplicates
            }
            inner.check_writable()?;
            guard = epoch::pin(); // unpinned now and then, so garbage can be collected
        }
        seen += 1;
        let hash = crate::engine::hash_key(key);
        let shard = &inner.shards[inner.shard_of(hash)];
        let mut w = shard.writer.lock();
        if h.flags & (FLAG_TOMBSTONE | FLAG_FLUSH) != 0 {
            if !oldest {
                w.append(inner, h, key, value)?;
            }
            return Ok(true);
        }
        let db = h.db as usize;
        if db >= inner.databases {
            return Ok(true);
        }
        if let Some(t) = inner.const_tree(db) {
            // A ConstTree on the Bitcask backend: the same compare-and-swap on the
            // location its node keeps (the copy keeps its GSN).
            let (s, loc) = (
                inner.shard_of(hash),
                crate::const_tree::bitcask_loc(f.id, off),
            );
            if t.loc_of(s, hash, key, &guard) == Some(loc) {
                let (nf, noff, _) = w.append(inner, h, key, value)?;
                t.set_loc_of(
                    s,
                    hash,
                    key,
                    crate::const_tree::bitcask_loc(nf, noff),
                    &guard,
                );
            }
            return Ok(true);
        }
        let idx = &shard.index[db];
        let Some(node) = find(idx, hash, key, &guard) else {
            return Ok(true);
        };
        let cur = node.value().load(&guard);
        // Compare-and-swap under the shard lock: move the value only if the index still
        // points at this very record.
        if cur.file != f.id || cur.offset != off {
            return Ok(true);
        }
        let (nf, noff, _) = w.append(inner, h, key, value)?;
        node.value().replace(
            NewEntry {
                expire_at_ms: cur.expire_at_ms,
                file: nf,
                offset: noff,
                value_len: cur.value_len,
                inline: cur.inline(),
            },
            &guard,
        );
        Ok(true)
    })?;
    if !done {
        return Ok(false);
    }
    f.sealed.store(false, Ordering::Release); // never picked again
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Config;
    use crate::engine::Engine;
    use crate::types::SetOptions;

    type Rec = (u64, u32, Vec<u8>, Vec<u8>);

    /// Sealed logs holding records of many sizes, one larger than the small chunks below.
    fn engine(dir: &std::path::Path, key: Option<crate::MasterKey>) -> Engine {
        let cfg = Config {
            shards: 1,
            sync_mode: SyncMode::No,
            max_file_bytes: 64 * 1024,
            encryption_key: key,
            ..Config::default()
        };
        let e = Engine::open(dir, cfg).unwrap();
        for i in 0..300u32 {
            let len = [0, 1, 100, 700, 4096, 10_000][i as usize % 6];
            let v = vec![i as u8; len];
            e.set(0, format!("key{i}").as_bytes(), &v, SetOptions::default())
                .unwrap();
            if i % 7 == 0 {
                e.delete(0, format!("key{}", i / 2).as_bytes()).unwrap();
            }
        }
        e.sync_all().unwrap();
        e
    }

    fn sealed(e: &Engine) -> Vec<Arc<DataFile>> {
        let mut v: Vec<_> = e
            .inner
            .files
            .iter()
            .map(|f| f.value().clone())
            .filter(|f| f.sealed.load(Ordering::Acquire))
            .collect();
        v.sort_by_key(|f| f.id);
        assert!(v.len() >= 3, "only {} sealed logs", v.len());
        v
    }

    /// The records `scan_log` finds in the whole plaintext of `f`.
    fn whole(e: &Engine, f: &DataFile) -> Vec<Rec> {
        let mut data = vec![0u8; f.len() as usize];
        f.read_plain_into(0, &mut data, &e.inner.logger).unwrap();
        let mut out = Vec::new();
        crate::recovery::scan_log(&data, true, &f.path, &e.inner.logger, |h, off, k, v| {
            out.push((h.gsn, off, k.to_vec(), v.to_vec()))
        });
        out
    }

    fn chunked(e: &Engine, f: &DataFile, chunk: usize) -> Vec<Rec> {
        let mut out = Vec::new();
        let done = scan_sealed(&e.inner, f, chunk, |h, off, k, v| {
            out.push((h.gsn, off, k.to_vec(), v.to_vec()));
            Ok(true)
        })
        .unwrap();
        assert!(done);
        out
    }

    fn same_records_whatever_the_chunk(e: &Engine) {
        // An encrypted read decrypts every page it touches: the tiny chunks (tens of
        // thousands of reads, each decrypting a page, for minutes under valgrind) run on
        // plain logs only; the chunk boundaries are the same code either way.
        let chunks: &[usize] = if e.inner.log.lock().active.enc.is_some() {
            &[1000, 4096, 10_000, SCAN_CHUNK]
        } else {
            &[1, 100, 1000, 4096, 10_000, SCAN_CHUNK]
        };
        for f in sealed(e) {
            let want = whole(e, &f);
            assert!(want.len() > 3);
            assert!(f.len() > 10_000 + SCAN_CHUNK.min(4096) as u64);
            for &chunk in chunks {
                assert!(chunked(e, &f, chunk) == want, "log {} chunk {chunk}", f.id);
            }
        }
    }

    #[test]
    fn a_chunked_scan_finds_what_a_whole_file_scan_finds() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), None);
        same_records_whatever_the_chunk(&e);
        e.close().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), Some(crate::MasterKey::from_bytes([7; 32])));
        same_records_whatever_the_chunk(&e);
        e.close().unwrap();
    }

    /// Bad records in a sealed log are skipped the same way, wherever the chunks end.
    #[test]
    fn a_chunked_scan_skips_bad_records_as_a_whole_file_scan_does() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), None);
        for f in sealed(&e) {
            let before = whole(&e, &f);
            // Garble a byte inside the third record, and one inside the first key of a
            // value larger than 4 KiB.
            let w = std::fs::OpenOptions::new()
                .write(true)
                .open(&f.path)
                .unwrap();
            let third = before[2].1 as u64;
            w.write_at(&[0xff], third + RECORD_HEADER as u64).unwrap();
            if let Some(big) = before.iter().find(|r| r.3.len() > 4096) {
                w.write_at(&[0xee], big.1 as u64 + RECORD_HEADER as u64)
                    .unwrap();
            }
            let want = whole(&e, &f);
            assert!(want.len() < before.len() && want.len() > 1);
            for chunk in [1, 100, 1000, 4096, 10_000, SCAN_CHUNK] {
                assert!(chunked(&e, &f, chunk) == want, "log {} chunk {chunk}", f.id);
            }
        }
        e.close().unwrap();
    }
}
