//! Start-up: rebuild the index from hint files (sealed logs) and CRC-checked scans (the
//! active log, and sealed logs without a valid hint). Every shard's records share the logs;
//! a record goes to its shard by the hash of its key. The newest GSN wins for each key; flush
//! markers drop older records; a torn tail of the active log is cut, and the zero-filled
//! preallocated space after the last record is the expected end of the active log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use crossbeam_epoch as epoch;
use crossbeam_skiplist::SkipMap;
use parking_lot::{Mutex, RwLock};

use crate::cache::BlockCache;
use crate::config::{Config, SyncMode};
use crate::crypto::{ENTRY, FileCipher, MasterKey, PAGE, PageFault, Role, tag_path};
use crate::engine::{DbCounters, Inner, Shard, hash_key};
use crate::error::{Error, Result};
use crate::file::{
    DataFile, Fsyncers, LogCrypt, SyncSeam, entry_off, hint_path, journal_off, parse_name,
};
use crate::hint;
use crate::index::{Index, NewEntry};
use crate::record::{
    self, DB_ALL, FLAG_FLUSH, FLAG_TOMBSTONE, Header, LOG_HEADER, LogKind, RECORD_HEADER,
};
use crate::writer::{Log, Unsynced, Writer};

/// What recovery knows about a key: its newest record so far.
struct Rec {
    gsn: u64,
    expire_at_ms: u64,
    file: u32,
    offset: u32,
    value_len: u32,
    tombstone: bool,
    inline: Option<Box<[u8]>>,
}

/// A key as recovery merges it: its database, its bytes, and its xxh3 hash (computed once,
/// used for the shard, the merge map and the index).
struct RKey {
    hash: u64,
    db: u16,
    key: Box<[u8]>,
}

impl PartialEq for RKey {
    fn eq(&self, o: &Self) -> bool {
        self.hash == o.hash && self.db == o.db && self.key == o.key
    }
}

impl Eq for RKey {}

impl std::hash::Hash for RKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The key's xxh3 hash already mixes the key: no second hash of the bytes (a SipHash
        // of every key was a tenth of start-up). Rotated, because every key of a shard has
        // the same `hash % shards`, so the low bits the map buckets by would be nearly
        // constant.
        state.write_u64(self.hash.rotate_right(17) ^ u64::from(self.db));
    }
}

/// Passes on the one u64 an `RKey` writes.
#[derive(Default)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, _: &[u8]) {
        unreachable!("RKey hashes with write_u64 only")
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The newest record of each (db, key) of one shard.
type ShardKeys = HashMap<RKey, Rec, std::hash::BuildHasherDefault<PassThrough>>;

/// The merge state: per shard, the newest record of each key; the flush markers.
struct Merge {
    nshards: u64,
    keys: Vec<ShardKeys>,
    flush_db: HashMap<u16, u64>,
    flush_all: u64,
    max_gsn: u64,
    records: u64,
}

impl Merge {
    fn new(nshards: usize) -> Merge {
        Merge {
            nshards: nshards as u64,
            keys: (0..nshards).map(|_| ShardKeys::default()).collect(),
            flush_db: HashMap::new(),
            flush_all: 0,
            max_gsn: 0,
            records: 0,
        }
    }

    /// Room for `n` more keys spread over the shards (a hint says how many it holds), so the
    /// maps do not grow and move every record on the way.
    fn reserve(&mut self, n: usize) {
        let per_shard = n.div_ceil(self.keys.len().max(1));
        for k in &mut self.keys {
            k.reserve(per_shard);
        }
    }

    fn add(
        &mut self,
        h: &Header,
        file: u32,
        offset: u32,
        key: &[u8],
        value: Option<&[u8]>,
        inline_max: usize,
    ) {
        self.records += 1;
        self.max_gsn = self.max_gsn.max(h.gsn);
        if h.flags & FLAG_FLUSH != 0 {
            if h.db == DB_ALL {
                self.flush_all = self.flush_all.max(h.gsn);
            } else {
                let g = self.flush_db.entry(h.db).or_default();
                *g = (*g).max(h.gsn);
            }
            return;
        }
        let rec = Rec {
            gsn: h.gsn,
            expire_at_ms: h.expire_at_ms,
            file,
            offset,
            value_len: h.value_len,
            tombstone: h.flags & FLAG_TOMBSTONE != 0,
            inline: value.filter(|v| v.len() <= inline_max).map(Into::into),
        };
        let hash = hash_key(key);
        let shard = (hash % self.nshards) as usize;
        let k = RKey {
            hash,
            db: h.db,
            key: key.into(),
        };
        match self.keys[shard].entry(k) {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                if o.get().gsn < h.gsn {
                    *o.get_mut() = rec;
                }
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(rec);
            }
        }
    }
}

/// Scans the records of a log held in `data`, calling `f` for each valid one. Returns the end
/// of the last valid record. In a sealed file a bad record is reported and skipped (the scan
/// resynchronises on the next record whose CRC checks); in an active file the scan stops there.
/// Zeros from a bad record to the end of the data are the unwritten, preallocated rest of the
/// log: the scan ends there quietly (the caller decides what to say about a torn record
/// before them).
pub(crate) fn scan_log(
    data: &[u8],
    sealed: bool,
    path: &Path,
    logger: &slog::Logger,
    mut f: impl FnMut(&Header, u32, &[u8], &[u8]),
) -> u64 {
    let mut at = LOG_HEADER;
    let mut valid_end = at;
    while at < data.len() {
        match record::decode(&data[at..]) {
            Ok(h) => {
                let kend = at + RECORD_HEADER + h.key_len as usize;
                let vend = kend + h.value_len as usize;
                f(
                    &h,
                    at as u32,
                    &data[at + RECORD_HEADER..kend],
                    &data[kend..vend],
                );
                at = vend;
                valid_end = at;
            }
            Err(bad) => {
                if !sealed || zero_tail(&data[at..]) {
                    break;
                }
                slog::error!(logger, "bad record in sealed log, skipped";
                    "file" => %path.display(), "offset" => at, "reason" => ?bad);
                let next = (at + 1..data.len().saturating_sub(RECORD_HEADER - 1))
                    .find(|&j| record::decode(&data[j..]).is_ok());
                match next {
                    Some(j) => at = j,
                    None => break,
                }
            }
        }
    }
    valid_end as u64
}

/// Whether `b` is all zeros (the unwritten part of a preallocated log).
pub(crate) fn zero_tail(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

fn read_all(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Loads a hint file's entries into `m`; false if the hint is missing or bad. `log_len` is
/// the length of the log's data file (an encrypted log's pages sit at their plaintext
/// offsets, so the same bound holds for it): a hint that describes records past it means
/// the log was cut after its hint was written, so the hint is not used and the log is
/// scanned instead.
fn load_hint(
    dir: &Path,
    id: u32,
    log_len: u64,
    m: &mut Merge,
    inline_max: usize,
    key: Option<&MasterKey>,
    logger: &slog::Logger,
) -> bool {
    let path = hint_path(dir, id);
    let Ok(data) = std::fs::read(&path) else {
        return false;
    };
    let data = match key {
        None => data,
        Some(k) => {
            // Encrypted: the tag file must be there and every page authentic.
            let tag = tag_path(&path);
            let opened = std::fs::read(&tag)
                .map_err(|e| Error::io(&tag, e))
                .and_then(|t| crate::crypto::open_whole(k, data, &t, &path));
            match opened {
                Ok(d) => d,
                Err(e) => {
                    slog::warn!(logger, "encrypted hint file cannot be used; scanning the log instead";
                        "file" => %path.display(), "error" => %e);
                    return false;
                }
            }
        }
    };
    let Some((body, count)) = hint::verify(&data, id) else {
        slog::warn!(logger, "hint file failed its check; scanning the log instead"; "file" => %path.display());
        return false;
    };
    let mut entries = Vec::with_capacity(count as usize);
    for e in hint::entries(body) {
        match e {
            Some(e) => entries.push(e),
            None => {
                slog::warn!(logger, "hint file malformed; scanning the log instead"; "file" => %path.display());
                return false;
            }
        }
    }
    if entries.len() != count as usize {
        slog::warn!(logger, "hint file entry count mismatch; scanning the log instead"; "file" => %path.display());
        return false;
    }
    let past = entries
        .iter()
        .filter(|e| e.offset as u64 + e.header().record_len() as u64 > log_len)
        .count();
    if past > 0 {
        slog::error!(logger, "log is shorter than its hint says: records past its end are lost; scanning the log instead";
            "file" => %crate::file::log_path(dir, id).display(), "log_bytes" => log_len,
            "records_past_end" => past);
        return false;
    }
    m.reserve(entries.len());
    for e in entries {
        m.add(&e.header(), id, e.offset, e.key, e.value, inline_max);
    }
    true
}

/// A log file found at start-up.
struct Found {
    id: u32,
    path: PathBuf,
    len: u64,
    /// The owning shard of a version 1 (per-shard) log; None for a shared log.
    per_shard: Option<u32>,
}

/// Truncates `path` to `len` and makes it durable.
fn cut(path: &Path, len: u64) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.set_len(len).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// What building the shards' indexes from the merged records needs.
struct Build<'a> {
    flush_all: u64,
    flush_db: &'a HashMap<u16, u64>,
    databases: usize,
    inline_max: usize,
    opened: &'a BTreeMap<u32, Arc<DataFile>>,
    dbs: &'a [DbCounters],
    logger: &'a slog::Logger,
}

/// Builds every shard's index from its merged records, the shards spread over one thread per
/// core. Returns the shards in order, and the live bytes per log file.
fn build_shards(keys: Vec<ShardKeys>, b: &Build<'_>) -> Result<(Vec<Shard>, HashMap<u32, u64>)> {
    let n = keys.len();
    let workers = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .clamp(1, n.max(1));
    let mut work: Vec<Vec<(usize, ShardKeys)>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, k) in keys.into_iter().enumerate() {
        work[i % workers].push((i, k));
    }
    let mut shards: Vec<Option<Shard>> = (0..n).map(|_| None).collect();
    let mut live: HashMap<u32, u64> = HashMap::new();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = work
            .into_iter()
            .map(|w| {
                s.spawn(move || {
                    let mut live = HashMap::new();
                    let mut built = Vec::with_capacity(w.len());
                    for (i, keys) in w {
                        built.push((i, build_shard(keys, b, &mut live)?));
                    }
                    Ok::<_, Error>((built, live))
                })
            })
            .collect();
        for h in handles {
            let (built, l) = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            for (i, shard) in built {
                shards[i] = Some(shard);
            }
            for (f, bytes) in l {
                *live.entry(f).or_default() += bytes;
            }
        }
        Ok(())
    })?;
    let shards = shards
        .into_iter()
        .map(|s| s.unwrap_or_else(|| unreachable!("every shard is built by one worker")))
        .collect();
    Ok((shards, live))
}

/// One shard's index from its merged records. No sort is needed for speed: the skiplist is
/// in insertion order, so every insert appends along the path the previous one left in the
/// CPU cache, whatever order the records come in.
fn build_shard(keys: ShardKeys, b: &Build<'_>, live: &mut HashMap<u32, u64>) -> Result<Shard> {
    let recs = keys.into_iter().filter(|(k, rec)| {
        let flushed_at = b.flush_all.max(b.flush_db.get(&k.db).copied().unwrap_or(0));
        !rec.tombstone && rec.gsn >= flushed_at
    });
    let index: Box<[_]> = (0..b.databases).map(|_| Index::new()).collect();
    let guard = epoch::pin();
    for (RKey { hash, db, key }, rec) in recs {
        if db as usize >= b.databases {
            slog::warn!(b.logger, "record of a database beyond the configured count skipped"; "db" => db);
            continue;
        }
        let mut inline = rec.inline;
        if rec.value_len as usize > b.inline_max {
            inline = None;
        } else if inline.is_none() {
            let Some(df) = b.opened.get(&rec.file) else {
                continue;
            };
            let v = df.read_plain(
                rec.offset as u64 + (RECORD_HEADER + key.len()) as u64,
                rec.value_len as usize,
            )?;
            inline = Some(v.into_boxed_slice());
        }
        *live.entry(rec.file).or_default() +=
            (RECORD_HEADER + key.len() + rec.value_len as usize) as u64;
        let c = &b.dbs[db as usize];
        c.keys.fetch_add(1, Ordering::Relaxed);
        if rec.expire_at_ms != 0 {
            c.expires.fetch_add(1, Ordering::Relaxed);
        }
        let e = NewEntry {
            expire_at_ms: rec.expire_at_ms,
            file: rec.file,
            offset: rec.offset,
            value_len: rec.value_len,
            inline: inline.as_deref(),
        };
        index[db as usize].insert_new(hash, &key, e, &guard);
    }
    drop(guard);
    Ok(Shard {
        writer: Mutex::new(Writer),
        index,
    })
}

pub(crate) fn recover(dir: PathBuf, cfg: Config) -> Result<Inner> {
    let logger = cfg.logger.clone();
    let key = cfg.encryption_key.clone();
    let mut tags: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut logs: BTreeMap<u32, PathBuf> = BTreeMap::new();
    let mut hints: Vec<(u32, PathBuf)> = Vec::new();
    // The highest id any file carries: a new log never takes the id of a leftover hint or a
    // set-aside `.bad` log.
    let mut max_id = 0;
    let rd = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(&dir, e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            // An unfinished hint: never renamed into place, so never trusted.
            let _ = std::fs::remove_file(ent.path());
            continue;
        }
        let parsed = parse_name(name);
        if let Some((id, _)) = parsed {
            max_id = max_id.max(id);
        }
        match parsed {
            Some((id, "log")) => {
                logs.insert(id, ent.path());
            }
            Some((id, "hint")) => hints.push((id, ent.path())),
            Some((_, "log.tag" | "hint.tag")) => {
                let p = ent.path();
                tags.push((p.with_extension(""), p));
            }
            _ => {}
        }
    }
    for (id, hint) in hints {
        // The hint of a compacted log, left behind by a crash between unlinking the log and
        // its hint: nothing refers to it.
        if !logs.contains_key(&id) {
            slog::info!(logger, "removing the hint of a log that is gone"; "file" => %hint.display());
            std::fs::remove_file(&hint).map_err(|e| Error::io(&hint, e))?;
        }
    }
    for (data, tag) in tags {
        // The tag file of a log or hint that is gone (a crash between the two unlinks, or a
        // hint's tag renamed into place just before a crash): nothing refers to it.
        if !data.exists() {
            std::fs::remove_file(&tag).map_err(|e| Error::io(&tag, e))?;
        }
    }

    // Every log's header: the shard count, and whether it is shared or (version 1) per shard.
    let mut found: Vec<Found> = Vec::new();
    let mut stored_shards: Option<u32> = None;
    for (&id, path) in &logs {
        let mut hdr = [0u8; LOG_HEADER];
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        let (kind, empty) = if let Some(key) = &key {
            // Encrypted: the header is the start of page 0's plaintext (its data page, or
            // the journal copy while the log is shorter than a page). Encrypted logs were
            // never per shard.
            let page0 = match EncLog::read(path, key, PAGE as u64, entry_off(1))? {
                Some(enc) => enc.page(0, &mut 0).0,
                None => None,
            };
            let kind = page0
                .as_deref()
                .and_then(record::parse_log_header)
                .filter(|k| matches!(k, LogKind::Shared { .. }));
            (kind, page0.is_none() && len == 0)
        } else {
            let kind = if len >= LOG_HEADER as u64 {
                let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
                std::os::unix::fs::FileExt::read_exact_at(&f, &mut hdr, 0)
                    .map_err(|e| Error::io(path, e))?;
                record::parse_log_header(&hdr)
            } else {
                None
            };
            // A log created but never written has a header and zeros (preallocation) or
            // nothing.
            let empty = len <= LOG_HEADER as u64
                || (kind.is_none() && zero_tail(&read_all(path)?[LOG_HEADER..]));
            (kind, empty)
        };
        match kind {
            Some(kind) => {
                let (per_shard, shards) = match kind {
                    LogKind::Shared { shards } => (None, shards),
                    LogKind::PerShard { shard, shards } => (Some(shard), shards),
                };
                if *stored_shards.get_or_insert(shards) != shards
                    || per_shard.is_some_and(|s| s >= shards)
                {
                    return Err(Error::Corrupt {
                        file: path.clone(),
                        offset: 0,
                        reason: "log header disagrees with the other logs on the shard count",
                    });
                }
                found.push(Found {
                    id,
                    path: path.clone(),
                    len,
                    per_shard,
                });
            }
            None if empty => {
                // Created but its header never reached the disk: it holds nothing.
                slog::warn!(logger, "removing empty log with a torn header";
                    "file" => %path.display(), "encrypted" => key.is_some());
                remove_log(path)?;
            }
            None => {
                let bad = path.with_extension("bad");
                slog::error!(logger, "log file header is corrupt (encrypted: its first page); file set aside, its records are skipped";
                    "file" => %path.display(), "encrypted" => key.is_some(), "page" => 0,
                    "renamed_to" => %bad.display());
                std::fs::rename(path, &bad).map_err(|e| Error::io(path, e))?;
            }
        }
    }
    let nshards = match stored_shards {
        Some(n) => {
            if n as usize != cfg.shards {
                slog::warn!(logger, "using the shard count stored in the data directory";
                    "stored" => n, "configured" => cfg.shards);
            }
            n as usize
        }
        None => cfg.shards,
    };
    let databases = cfg.databases;
    let inline_max = cfg.inline_value_max;

    // The logs that were being appended to at the crash, whose tail may be torn: the newest
    // shared log; in a directory written before logs were shared, the newest log of each
    // shard (those are then sealed, and a new shared log is started).
    let active_id = found
        .iter()
        .filter(|f| f.per_shard.is_none())
        .map(|f| f.id)
        .max();
    let tails: BTreeSet<u32> = match active_id {
        Some(id) => BTreeSet::from([id]),
        None => {
            let mut newest = BTreeMap::new();
            for f in &found {
                newest.insert(f.per_shard, f.id); // ids ascend: the last one wins
            }
            newest.into_values().collect()
        }
    };

    let mut m = Merge::new(nshards);
    let mut opened: BTreeMap<u32, Arc<DataFile>> = BTreeMap::new();
    let mut need_hints: Vec<Arc<DataFile>> = Vec::new();
    let started = std::time::Instant::now();
    let mut last_progress = started;
    // Encrypted: the recovered active log's partly filled tail page and journal sequence.
    let mut active_tail: Option<(Vec<u8>, u64)> = None;
    for Found { id, path, len, .. } in found {
        let tail = tails.contains(&id);
        let mut end = len;
        let mut hinted = false;
        if !tail {
            hinted = load_hint(&dir, id, len, &mut m, inline_max, key.as_ref(), &logger);
        }
        let mut crypt = None;
        if let Some(k) = &key {
            let enc = EncLog::read(&path, k, if hinted { 0 } else { u64::MAX }, u64::MAX)?
                .ok_or_else(|| {
                    Error::io(
                        tag_path(&path),
                        std::io::Error::from(std::io::ErrorKind::NotFound),
                    )
                })?;
            if hinted {
                end = enc.sealed_len();
            } else {
                let view = enc.view(&path, tail, &logger);
                let valid = scan_log(&view.plain, !tail, &path, &logger, |h, off, k, v| {
                    m.add(h, id, off, k, Some(v), inline_max);
                });
                if tail {
                    if valid < view.plain.len() as u64 && !zero_tail(&view.plain[valid as usize..])
                    {
                        slog::warn!(logger, "cut the torn tail of a log";
                            "file" => %path.display(), "offset" => valid,
                            "page" => valid / PAGE as u64,
                            "dropped_bytes" => view.plain.len() as u64 - valid);
                    }
                    let (buf, seq) = fix_active_tail(&path, &enc, &view, valid, &logger)?;
                    end = valid / PAGE as u64 * PAGE as u64;
                    if Some(id) == active_id {
                        active_tail = Some((buf, seq));
                    }
                } else {
                    end = view.plain.len() as u64;
                    for f in [
                        &enc.crypt.tag,
                        &std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?,
                    ] {
                        f.sync_data().map_err(|e| Error::io(&path, e))?;
                    }
                }
            }
            crypt = Some(enc.crypt);
        } else if !hinted {
            let data = read_all(&path)?;
            let valid = scan_log(&data, !tail, &path, &logger, |h, off, k, v| {
                m.add(h, id, off, k, Some(v), inline_max);
            });
            let clean = zero_tail(&data[valid as usize..]);
            if tail && valid < len {
                if clean {
                    // The preallocated space after the last record: expected, not damage.
                    slog::debug!(logger, "trimmed the preallocated tail of the active log";
                        "file" => %path.display(), "offset" => valid, "bytes" => len - valid);
                } else {
                    // Torn or corrupt tail: cut it, so new records follow the last valid one.
                    slog::warn!(logger, "cut the torn tail of a log";
                        "file" => %path.display(), "offset" => valid, "dropped_bytes" => len - valid);
                }
                cut(&path, valid)?;
                end = valid;
            } else if !tail && clean && valid < len {
                // A sealed log whose trim to its records did not reach the disk.
                cut(&path, valid)?;
                end = valid;
            }
        }
        let encrypted = crypt.is_some();
        let df = Arc::new(DataFile::open_existing(path, id, end, crypt)?);
        if !hinted && !encrypted {
            // Everything recovered is reported durable (durable_gsn starts at the highest GSN
            // seen): make it so, in case it was only in the page cache at the crash. (A
            // sealed log with a valid hint was synced before its hint was written.)
            df.file.sync_data().map_err(|e| Error::io(&df.path, e))?;
        }
        let active = Some(id) == active_id;
        df.sealed.store(!active, Ordering::Relaxed);
        if !hinted && !active {
            need_hints.push(df.clone());
        }
        opened.insert(id, df);
        if last_progress.elapsed().as_secs() >= 1 {
            last_progress = std::time::Instant::now();
            slog::info!(logger, "recovery progress"; "file" => id, "records" => m.records,
                "elapsed_ms" => started.elapsed().as_millis() as u64);
        }
    }

    let dbs: Box<[DbCounters]> = (0..databases).map(|_| DbCounters::default()).collect();
    let (shards, live) = build_shards(
        std::mem::take(&mut m.keys),
        &Build {
            flush_all: m.flush_all,
            flush_db: &m.flush_db,
            databases,
            inline_max,
            opened: &opened,
            dbs: &dbs,
            logger: &logger,
        },
    )?;

    let files = SkipMap::new();
    for f in opened.values() {
        let body = f.len().saturating_sub(LOG_HEADER as u64);
        let l = live.get(&f.id).copied().unwrap_or(0);
        f.dead.store(body.saturating_sub(l), Ordering::Relaxed);
        files.insert(f.id, f.clone());
    }
    let mut disk_files: BTreeSet<u32> = opened.keys().copied().collect();
    let mut next_id = max_id + 1;
    let mut dir_dirty = false;
    let active = match active_id.and_then(|id| opened.get(&id)) {
        Some(f) => f.clone(),
        None => {
            let id = next_id;
            next_id += 1;
            let header = record::encode_log_header(nshards as u32);
            let f = Arc::new(DataFile::create(&dir, id, &header, key.as_ref())?);
            // Durable once the directory is fsynced: the first sync round does it.
            dir_dirty = true;
            files.insert(id, f.clone());
            disk_files.insert(id);
            f
        }
    };
    let max_gsn = m.max_gsn;
    let write_buffer_bytes = cfg.write_buffer_bytes.max(4096);
    let fresh = active.enc.is_some() && active_tail.is_none();
    // A reopened encrypted log's tag file was cut after the entries of its whole pages
    // (`fix_active_tail`); a fresh one's is set by `start_buffer`.
    let tag_alloc_end = entry_off(active.len() / PAGE as u64);
    let seam = Arc::new(SyncSeam::default());
    let mut log = Log {
        buf: Vec::with_capacity(write_buffer_bytes),
        buf_start: active.len(),
        unsynced: vec![Unsynced {
            file: active.clone(),
            data: true,
            tag: active.enc.is_some(),
        }],
        alloc_end: active.len(),
        no_prealloc: false,
        prealloc_short: false,
        active,
        disk_files,
        jseq: 0,
        jdurable: None,
        journaled_end: 0,
        scratch: Vec::new(),
        tag_alloc_end,
        sealing: false,
    };
    if fresh {
        // A new encrypted log: its header waits in the buffer as page 0's start.
        log.start_buffer(&record::encode_log_header(nshards as u32));
    } else if let Some((tail, seq)) = active_tail {
        // The reopened encrypted log continues its tail page (journalled at `seq`).
        log.buf.extend_from_slice(&tail);
        log.jseq = seq;
        // Recovery fdatasync'd that copy.
        log.jdurable = Some(seq % 2);
        log.journaled_end = log.buf_start + tail.len() as u64;
    }
    let inner = Inner {
        dir: dir.clone(),
        logger: logger.clone(),
        enc_key: key,
        databases,
        nshards,
        inline_value_max: inline_max,
        max_key_bytes: cfg.max_key_bytes,
        max_file_bytes: cfg.max_file_bytes.clamp(4096, 1 << 31),
        write_buffer_bytes,
        dead_ratio: cfg.compaction_dead_ratio,
        shards: shards.into_boxed_slice(),
        // ConstTree databases are attached after recovery (`tree::attach_const_trees`).
        consts: Box::new([]),
        log: Mutex::new(log),
        log_idle: Default::default(),
        dbs,
        files,
        next_file_id: AtomicU32::new(next_id),
        cache: BlockCache::new(cfg.cache_capacity_bytes),
        fsyncers: Fsyncers::new(seam.clone()),
        seam,
        gsn: AtomicU64::new(max_gsn),
        durable: AtomicU64::new(max_gsn),
        requested: AtomicU64::new(max_gsn),
        sync_mode: AtomicU8::new(match cfg.sync_mode {
            SyncMode::Always => 0,
            SyncMode::EverySec => 1,
            SyncMode::No => 2,
        }),
        sync_round: Mutex::new(()),
        dir_dirty: AtomicBool::new(dir_dirty),
        failed: AtomicBool::new(false),
        failure: Mutex::new(None),
        hooks: RwLock::new(Vec::new()),
        syncs: AtomicU64::new(0),
        last_sync_ms: AtomicU64::new(0),
        pending_hints: Mutex::new(need_hints),
        retired: Arc::new(Mutex::new(Vec::new())),
        compaction: Mutex::new(()),
        compactions: AtomicU64::new(0),
        expired_keys: AtomicU64::new(0),
        active_expire: cfg.active_expire,
        shutdown: AtomicBool::new(false),
        sync_thread: Default::default(),
        maint_thread: Default::default(),
    };
    // Keys in the logs; FixedStore databases report their own line once their slot files
    // are read (tree.rs), and the server logs the total.
    slog::info!(logger, "recovered the Bitcask logs"; "dir" => %dir.display(), "records" => m.records,
        "keys" => inner.dbs.iter().map(|c| c.keys.load(Ordering::Relaxed)).sum::<u64>(),
        "last_gsn" => max_gsn, "elapsed_ms" => started.elapsed().as_millis() as u64);
    Ok(inner)
}

// ---------------------------------------------------------------- encrypted logs

/// An encrypted log's files as read at start-up.
struct EncLog {
    crypt: LogCrypt,
    data: Vec<u8>,
    tags: Vec<u8>,
}

/// The plaintext view of an encrypted log, page by page (docs/encryption.md).
struct View {
    /// Page `i` at byte `i * PAGE`; ends at the last good page's meaningful bytes.
    plain: Vec<u8>,
    /// The highest sequence number of a journal copy that authenticated.
    max_jseq: u64,
    /// The journal slot the last page came from, if it came from the journal.
    last_slot: Option<u64>,
}

impl EncLog {
    /// Opens the tag file of `path` under `key` and reads both files. None if the log holds
    /// nothing (its data file is empty and its tag file missing or never completed): it was
    /// created just before a crash.
    /// Reads at most `data_max` bytes of the data file and `tag_max` of the tag file.
    fn read(path: &Path, key: &MasterKey, data_max: u64, tag_max: u64) -> Result<Option<EncLog>> {
        let tag_path = tag_path(path);
        let read = |p: &Path, max: u64| -> std::io::Result<Vec<u8>> {
            let mut b = Vec::new();
            let f = std::fs::File::open(p)?;
            std::io::Read::read_to_end(&mut std::io::Read::take(f, max), &mut b)?;
            Ok(b)
        };
        let data = read(path, data_max).map_err(|e| Error::io(path, e))?;
        let tags = match read(&tag_path, tag_max) {
            Ok(t) => t,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && data.is_empty() && data_max > 0 =>
            {
                return Ok(None);
            }
            Err(e) => return Err(Error::io(&tag_path, e)),
        };
        let cipher = match FileCipher::open(key, &tags, &tag_path) {
            Ok(c) => c,
            Err(Error::Corrupt { .. }) if data.is_empty() && data_max > 0 => return Ok(None),
            Err(e) => return Err(e),
        };
        let tag = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&tag_path)
            .map_err(|e| Error::io(&tag_path, e))?;
        Ok(Some(EncLog {
            crypt: LogCrypt {
                cipher,
                tag,
                tag_path,
            },
            data,
            tags,
        }))
    }

    /// `len` bytes of the tag file at `at`, zeros past its end.
    fn tag_bytes<const N: usize>(&self, at: u64) -> [u8; N] {
        let mut b = [0u8; N];
        let at = at as usize;
        if at < self.tags.len() {
            let n = (self.tags.len() - at).min(N);
            b[..n].copy_from_slice(&self.tags[at..at + n]);
        }
        b
    }

    /// Entries the tag file has room for after its journal.
    fn entries(&self) -> u64 {
        (self.tags.len() as u64).saturating_sub(entry_off(0)) / ENTRY as u64
    }

    /// Page `i`: the data page if it authenticates, else the newest journal copy of page
    /// `i` that does. Returns the page (cut to its meaningful length), whether the data
    /// page's entry was written (so a miss is damage, not the end of the log), and the
    /// journal slot the page came from.
    fn page(&self, i: u64, max_jseq: &mut u64) -> (Option<Vec<u8>>, bool, Option<u64>) {
        let e: [u8; ENTRY] = self.tag_bytes(entry_off(i));
        let mut p = vec![0u8; PAGE];
        let at = i as usize * PAGE;
        if at < self.data.len() {
            let n = (self.data.len() - at).min(PAGE);
            p[..n].copy_from_slice(&self.data[at..at + n]);
        }
        let written = match self.crypt.cipher.open_page(i, Role::Data, &mut p, &e) {
            Ok(info) => {
                p.truncate(info.len as usize);
                return (Some(p), true, None);
            }
            Err(PageFault::Unwritten) => false,
            Err(PageFault::Bad) => true,
        };
        let mut best: Option<(u64, Vec<u8>, u64)> = None;
        for slot in 0..2 {
            let s: [u8; ENTRY + PAGE] = self.tag_bytes(journal_off(slot));
            let mut p = s[ENTRY..].to_vec();
            if let Ok(info) = self
                .crypt
                .cipher
                .open_page(i, Role::Journal, &mut p, &s[..ENTRY])
            {
                *max_jseq = (*max_jseq).max(info.seq);
                if best.as_ref().is_none_or(|(seq, _, _)| info.seq > *seq) {
                    p.truncate(info.len as usize);
                    best = Some((info.seq, p, slot));
                }
            }
        }
        match best {
            Some((_, p, slot)) => (Some(p), written, Some(slot)),
            None => (None, written, None),
        }
    }

    /// The log's plaintext. The active log (`tail`) ends at the first page with neither an
    /// authentic data page nor journal copy, or after a partly filled page. A sealed log
    /// goes on past a bad page (logged with the file and page; it reads as zeros, and the
    /// record scan resynchronises after it).
    fn view(&self, path: &Path, tail: bool, logger: &slog::Logger) -> View {
        let pages = (self.data.len().div_ceil(PAGE) as u64).max(self.entries());
        let mut v = View {
            plain: Vec::new(),
            max_jseq: 0,
            last_slot: None,
        };
        let mut i = 0u64;
        loop {
            let (page, written, slot) = self.page(i, &mut v.max_jseq);
            match page {
                Some(p) => {
                    v.last_slot = slot;
                    let full = p.len() == PAGE;
                    v.plain.resize(i as usize * PAGE, 0);
                    v.plain.extend_from_slice(&p);
                    if tail && !full {
                        break;
                    }
                }
                None if tail || i >= pages => break,
                None if written => {
                    slog::error!(logger, "encrypted log page failed authentication; its records are skipped";
                        "file" => %path.display(), "page" => i);
                }
                None => {}
            }
            i += 1;
        }
        v
    }

    /// The meaningful end of a sealed log, from its last written entry (without reading its
    /// pages: a log with a hint is not read). Reads past the true end fail authentication.
    fn sealed_len(&self) -> u64 {
        for i in (0..self.entries()).rev() {
            let e: [u8; ENTRY] = self.tag_bytes(entry_off(i));
            if e.iter().any(|&b| b != 0) {
                let len = u32::from_le_bytes([e[36], e[37], e[38], e[39]]).min(PAGE as u32);
                return i * PAGE as u64 + len as u64;
            }
        }
        0
    }
}

/// Makes the recovered active log's files match its plaintext up to `valid`, durably, and
/// returns its partly filled tail page (which the writer's buffer continues from): whole
/// pages before it stay in the data file; the tail page gets a fresh journal copy (sequence
/// above every one seen, in the slot not holding the newest), then the other slot and every
/// entry and data page from the tail page on are dropped. So no stale copy of a page past
/// the cut can come back, and the next journal copies continue the sequence.
fn fix_active_tail(
    path: &Path,
    enc: &EncLog,
    view: &View,
    valid: u64,
    logger: &slog::Logger,
) -> Result<(Vec<u8>, u64)> {
    let c = &enc.crypt;
    let data = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let tag_err = |e| Error::io(&c.tag_path, e);
    // The whole pages kept are durable before the journal copies that might be their
    // fallback go.
    data.sync_data().map_err(|e| Error::io(path, e))?;
    let p = valid / PAGE as u64;
    let tail = view.plain[(p as usize * PAGE)..valid as usize].to_vec();
    // Above every copy seen, in the slot the tail page did not come from (a slot's parity
    // is its sequence number's).
    let mut seq = view.max_jseq + 1;
    if view.last_slot == Some(seq % 2) && valid > p * PAGE as u64 {
        seq += 1;
    }
    if !tail.is_empty() {
        let mut slot = Vec::new();
        c.seal_journal(p, seq, &tail, &mut slot)?;
        c.tag
            .write_all_at(&slot, journal_off(seq % 2))
            .map_err(tag_err)?;
        c.tag.sync_data().map_err(tag_err)?;
    } else {
        c.tag
            .write_all_at(&[0u8; ENTRY], journal_off(seq % 2))
            .map_err(tag_err)?;
    }
    c.tag
        .write_all_at(&[0u8; ENTRY], journal_off((seq + 1) % 2))
        .map_err(tag_err)?;
    c.tag.set_len(entry_off(p)).map_err(tag_err)?;
    c.tag.sync_all().map_err(tag_err)?;
    data.set_len(p * PAGE as u64)
        .map_err(|e| Error::io(path, e))?;
    data.sync_all().map_err(|e| Error::io(path, e))?;
    slog::debug!(logger, "encrypted active log reopened"; "file" => %path.display(),
        "end" => valid, "tail_bytes" => tail.len(), "journal_seq" => seq);
    Ok((tail, seq))
}

/// Removes a log that holds nothing, and its tag file.
fn remove_log(path: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
    let t = tag_path(path);
    match std::fs::remove_file(&t) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(&t, e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::config::Config;
    use crate::engine::{Engine, hash_key};
    use crate::record::{self, Header, LogKind};
    use crate::types::SetOptions;

    fn rec(out: &mut Vec<u8>, gsn: u64, flags: u8, db: u16, key: &[u8], value: &[u8]) {
        let h = Header {
            gsn,
            expire_at_ms: 0,
            flags,
            vtype: record::VTYPE_STRING,
            db,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
        };
        record::encode(out, &h, key, value);
    }

    /// A directory written before logs were shared (one version 1 log per shard) opens: every
    /// record reaches its key's shard, a flush marker (one per shard log) and a tombstone
    /// apply, a torn tail of a per-shard active log is cut, and new writes go to a shared log.
    #[test]
    fn version_1_per_shard_logs_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut logs = [
            record::encode_log_header_version(1, 0, 2).to_vec(),
            record::encode_log_header_version(1, 1, 2).to_vec(),
        ];
        let shard = |k: &[u8]| (hash_key(k) % 2) as usize;
        let mut gsn = 0;
        let put = |logs: &mut [Vec<u8>; 2], gsn: &mut u64, flags, db, k: &[u8], v: &[u8]| {
            *gsn += 1;
            rec(&mut logs[shard(k)], *gsn, flags, db, k, v);
        };
        for i in 0..40u32 {
            let k = format!("key{i}");
            put(
                &mut logs,
                &mut gsn,
                0,
                0,
                k.as_bytes(),
                format!("old{i}").as_bytes(),
            );
            put(&mut logs, &mut gsn, 0, 1, k.as_bytes(), b"db1");
        }
        // FLUSHDB 1: a marker with one GSN in every shard's log.
        gsn += 1;
        for l in &mut logs {
            rec(l, gsn, record::FLAG_FLUSH, 1, b"", b"");
        }
        for i in 0..40u32 {
            let k = format!("key{i}");
            put(
                &mut logs,
                &mut gsn,
                0,
                0,
                k.as_bytes(),
                format!("new{i}").as_bytes(),
            );
        }
        put(&mut logs, &mut gsn, record::FLAG_TOMBSTONE, 0, b"key7", b"");
        // A torn record at the end of each shard's log.
        for l in &mut logs {
            let mut torn = Vec::new();
            rec(&mut torn, 999, 0, 0, b"torn", b"never acknowledged");
            l.extend_from_slice(&torn[..torn.len() - 3]);
        }
        for (i, l) in logs.iter().enumerate() {
            std::fs::write(crate::file::log_path(dir.path(), i as u32 + 1), l).unwrap();
        }
        let cfg = Config {
            shards: 2,
            databases: 2,
            ..Config::default()
        };
        for round in 0..2 {
            let e = Engine::open(dir.path(), cfg.clone()).unwrap();
            for i in 0..40u32 {
                let k = format!("key{i}");
                let want = (i != 7).then(|| format!("new{i}").into_bytes());
                assert_eq!(e.get(0, k.as_bytes()).unwrap().map(|b| b.to_vec()), want);
                assert_eq!(
                    e.get(1, k.as_bytes()).unwrap(),
                    None,
                    "flushed db came back"
                );
            }
            assert_eq!(e.get(0, b"torn").unwrap(), None);
            assert!(e.last_gsn() >= gsn);
            e.set(
                0,
                format!("round{round}").as_bytes(),
                b"v",
                SetOptions::default(),
            )
            .unwrap();
            e.close().unwrap();
        }
        let e = Engine::open(dir.path(), cfg).unwrap();
        assert!(e.get(0, b"round0").unwrap().is_some());
        assert!(e.get(0, b"round1").unwrap().is_some());
        e.close().unwrap();
        // The per-shard logs were cut at their torn tails; new records went to one shared log.
        for (i, l) in logs.iter().enumerate() {
            let len = std::fs::metadata(crate::file::log_path(dir.path(), i as u32 + 1))
                .unwrap()
                .len();
            assert!(len < l.len() as u64, "torn tail of shard {i}'s log not cut");
        }
        let shared = std::fs::read(crate::file::log_path(dir.path(), 3)).unwrap();
        assert_eq!(
            record::parse_log_header(&shared),
            Some(LogKind::Shared { shards: 2 })
        );
        assert!(!crate::file::log_path(dir.path(), 4).exists());
    }
}
