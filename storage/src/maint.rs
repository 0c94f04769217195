//! Background work: the sync thread (group commit) and the maintenance thread (hint files,
//! deletion of compacted files, the expiry sweep, compaction).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_epoch as epoch;

use crate::config::SyncMode;
use crate::engine::{Inner, now_ms};
use crate::error::{Error, Result};
use crate::file::{DataFile, hint_path};
use crate::hint::{HintEntry, HintWriter};
use crate::index::{NewEntry, find};
use crate::record::{FLAG_FLUSH, FLAG_TOMBSTONE, LOG_HEADER, RECORD_HEADER};
use crate::recovery::scan_log;

const SECOND: Duration = Duration::from_secs(1);

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

/// Where the expiry sweep resumes in each (shard, db).
struct Sweep {
    pos: Vec<Option<u64>>,
}

pub(crate) fn maint_thread(inner: &Inner) {
    lower_priority(inner);
    let mut sweep = Sweep {
        pos: vec![None; inner.nshards * inner.databases],
    };
    loop {
        std::thread::park_timeout(Duration::from_millis(100));
        if inner.shutdown.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = write_pending_hints(inner) {
            slog::warn!(inner.logger, "writing a hint file failed; start-up will scan that log"; "error" => %e);
        }
        if let Err(e) = delete_retired(inner) {
            slog::warn!(inner.logger, "deleting compacted logs failed"; "error" => %e);
        }
        if inner.failed.load(Ordering::Acquire) {
            continue;
        }
        sweep_step(inner, &mut sweep);
        for t in inner.consts.iter().flatten() {
            t.sweep_step(inner);
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
    let now = now_ms();
    for db in 0..inner.databases {
        if inner.dbs[db].expires.load(Ordering::Relaxed) == 0 {
            continue;
        }
        for s in 0..inner.nshards {
            let slot = &mut sweep.pos[s * inner.databases + db];
            let idx = &inner.shards[s].index[db];
            let mut expired: Vec<(u64, Box<[u8]>)> = Vec::new();
            {
                let guard = epoch::pin();
                // Resume after the last hash examined (a key sharing that exact 64-bit hash is
                // picked up by the next pass).
                let mut cur = match *slot {
                    Some(h) => idx.seek_after(h, &guard),
                    None => idx.front(&guard),
                };
                let mut n = 0;
                *slot = None;
                while let Some(e) = cur {
                    let k = e.key();
                    if !k.value().load(&guard).live(now) {
                        expired.push((k.hash, k.bytes().into()));
                    }
                    n += 1;
                    if n >= 64 {
                        *slot = Some(k.hash);
                        break;
                    }
                    cur = e.next();
                }
            }
            if expired.is_empty() {
                continue;
            }
            let mut w = inner.shards[s].writer.lock();
            let guard = epoch::pin();
            let mut last = 0;
            for (hash, key) in &expired {
                let (hash, key) = (*hash, &key[..]);
                let still = inner
                    .lookup(db, hash, key, &guard)
                    .is_some_and(|e| !e.live(now_ms()));
                if !still {
                    continue;
                }
                match inner.del_locked(&mut w, db, hash, key, &guard) {
                    Ok(Some(gsn)) => {
                        inner.expired_keys.fetch_add(1, Ordering::Relaxed);
                        last = gsn;
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
            drop(w);
            if last != 0 && inner.sync_mode() == SyncMode::Always {
                inner.request_sync(last);
            }
        }
    }
}

/// A sealed log's records (its plaintext, through page decryption when encrypted).
fn read_file(inner: &Inner, f: &DataFile) -> Result<Vec<u8>> {
    f.read_all_plain(&inner.logger)
}

/// fdatasync of a log's data file and (encrypted) its tag file, through the seam; a failure
/// refuses writes like any fsync failure.
fn datasync_log(inner: &Inner, f: &DataFile) -> Result<()> {
    let tag = f.enc.as_ref().map(|c| (&c.tag, &c.tag_path));
    for (file, path) in std::iter::once((&f.file, &f.path)).chain(tag) {
        if let Err(e) = inner.seam.datasync(file) {
            let msg = format!("fsync failed on {}: {e}", path.display());
            inner.fail(msg.clone());
            return Err(Error::WritesRefused(msg));
        }
    }
    Ok(())
}

/// Writes `bytes` to `tmp` and fdatasyncs it (through the seam).
fn write_synced(inner: &Inner, tmp: &std::path::Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(tmp, bytes).map_err(|e| Error::io(tmp, e))?;
    let t = std::fs::File::open(tmp).map_err(|e| Error::io(tmp, e))?;
    if let Err(e) = inner.seam.datasync(&t) {
        let msg = format!("fsync failed on {}: {e}", tmp.display());
        inner.fail(msg.clone());
        return Err(Error::WritesRefused(msg));
    }
    Ok(())
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

fn write_hint(inner: &Inner, f: &DataFile) -> Result<()> {
    // The hint must never describe records that are not durable in the log: sync the log
    // first (through the seam: a failure here is an fsync failure like any other).
    datasync_log(inner, f)?;
    let data = read_file(inner, f)?;
    let mut hw = HintWriter::new(f.id);
    scan_log(&data, true, &f.path, &inner.logger, |h, off, k, v| {
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
    });
    let bytes = hw.finish();
    let path = hint_path(&inner.dir, f.id);
    let tmp = path.with_extension("hint.tmp");
    match &inner.enc_key {
        None => {
            write_synced(inner, &tmp, &bytes)?;
        }
        Some(k) => {
            // Encrypted: whole pages, the tag file beside them; the tag is renamed into place
            // first, so a hint in place always has its tag (docs/encryption.md).
            let (data, tags) = crate::crypto::seal_whole(k, &bytes)?;
            let tag = crate::crypto::tag_path(&path);
            let tag_tmp = path.with_extension("hint.tag.tmp");
            write_synced(inner, &tmp, &data)?;
            write_synced(inner, &tag_tmp, &tags)?;
            std::fs::rename(&tag_tmp, &tag).map_err(|e| Error::io(&tag, e))?;
        }
    }
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    // fsync the directory, or the rename can be lost (hazard 3).
    if let Err(e) = inner.seam.sync_dir(&inner.dir) {
        let msg = format!("fsync failed on directory {}: {e}", inner.dir.display());
        inner.fail(msg.clone());
        return Err(Error::WritesRefused(msg));
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
        inner.fail(msg.clone());
        return Err(Error::WritesRefused(msg));
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
    inner.sync_round(true)?;
    for f in moved {
        retire(inner, f);
    }
    Ok(())
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
    let data = read_file(inner, f)?;
    let mut recs = Vec::new();
    scan_log(&data, true, &f.path, &inner.logger, |h, off, _, _| {
        recs.push((*h, off))
    });
    // Tombstones and flush markers are dropped only from the oldest log on disk: any older
    // copy of their key lives in an older log (hazard 4). Logs only ever leave that set, so
    // a file that is the oldest now stays the oldest.
    let oldest = inner.log.lock().disk_files.first() == Some(&f.id);
    for chunk in recs.chunks(256) {
        if inner.shutdown.load(Ordering::SeqCst) {
            return Ok(false); // not retired: the copies made so far are harmless duplicates
        }
        inner.check_writable()?;
        let guard = epoch::pin();
        for (h, off) in chunk {
            let start = *off as usize;
            let kend = start + RECORD_HEADER + h.key_len as usize;
            let key = &data[start + RECORD_HEADER..kend];
            let value = &data[kend..kend + h.value_len as usize];
            let hash = crate::engine::hash_key(key);
            let shard = &inner.shards[inner.shard_of(hash)];
            let mut w = shard.writer.lock();
            if h.flags & (FLAG_TOMBSTONE | FLAG_FLUSH) != 0 {
                if !oldest {
                    w.append(inner, h, key, value)?;
                }
                continue;
            }
            let db = h.db as usize;
            if db >= inner.databases {
                continue;
            }
            if let Some(t) = inner.const_tree(db) {
                // A ConstTree on the Bitcask backend: the same compare-and-swap on the
                // location its node keeps (the copy keeps its GSN).
                let (s, loc) = (
                    inner.shard_of(hash),
                    crate::const_tree::bitcask_loc(f.id, *off),
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
                continue;
            }
            let idx = &shard.index[db];
            let Some(node) = find(idx, hash, key, &guard) else {
                continue;
            };
            let cur = node.value().load(&guard);
            // Compare-and-swap under the shard lock: move the value only if the index still
            // points at this very record.
            if cur.file != f.id || cur.offset != *off {
                continue;
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
        }
    }
    f.sealed.store(false, Ordering::Release); // never picked again
    Ok(true)
}
