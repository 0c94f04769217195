//! The FixedStore backend of a ConstTree: one file of fixed-size slots per (database, shard),
//! drawn byte by byte in docs/format-fixed.md.
//!
//! A slot is a 32-byte header (CRC32, GSN, expiry, flags, db, key length, value length), the
//! key (up to `max_key` bytes) and the value. A slot whose GSN is 0 is free. A bitmap in
//! memory says which slots are used; it is rebuilt by recovery.
//!
//! Durability (hazard 5): an update never overwrites the only durable copy of a value. It
//! writes the new version to a free slot (`pwrite` into the page cache) and frees the old slot
//! only once the new one is durable (the sync round calls `after_sync`). A delete writes a
//! tombstone to a free slot; once it is durable the old copy's header is zeroed, and the
//! tombstone's slot is freed only after a later sync round made that zeroing durable (until
//! then recovery could still find the old copy, and the tombstone is what beats it).
//!
//! The group-commit round (the same one that flushes and fdatasyncs the shared log) takes no
//! shard lock. A slot write takes its GSN from the engine's counter under its slot file's
//! lock and does its pwrite under that same lock hold; the round reads the counter (under
//! the log lock, after flushing the log), then takes each slot file's lock briefly to pick
//! the files written since the last round, and fdatasyncs them with the log outside every
//! lock. So every slot write with a GSN at or below the published one is on disk.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::record::{FLAG_TOMBSTONE, VTYPE_STRING};

/// Slot file magic.
pub(crate) const SLOT_MAGIC: [u8; 8] = *b"RSPTSLOT";
/// Slot file format version.
pub(crate) const SLOT_VERSION: u32 = 1;
/// Bytes in the slot file header (magic, version, db, shard, value size, max key, crc32).
pub(crate) const SLOT_FILE_HEADER: usize = 32;
/// Bytes in a slot header.
pub(crate) const SLOT_HEADER: usize = 32;
/// Slot flags a slot may carry (the record flags: tombstone); anything else is corruption.
pub(crate) const SLOT_FLAGS_KNOWN: u8 = FLAG_TOMBSTONE;
/// The file grows by at least this many slots at a time.
const GROW_MIN_SLOTS: u64 = 256;

/// The slot count after the growth step from `nslots`: a quarter more, at least
/// GROW_MIN_SLOTS. Starting from 0, these are the only lengths a slot file ever has.
fn next_growth(nslots: u64) -> u64 {
    nslots + (nslots / 4).max(GROW_MIN_SLOTS)
}

/// The smallest slot count on the growth sequence that holds at least `n` slots.
fn grown_slots_at_least(n: u64) -> u64 {
    let mut s = 0;
    while s < n {
        s = next_growth(s);
    }
    s
}

/// Path of the slot file of (db, shard).
pub(crate) fn slot_path(dir: &Path, db: usize, shard: usize) -> PathBuf {
    dir.join(format!("fixed-{db:02}-{shard:04}.slots"))
}

/// Bytes per slot: header, key room and value, rounded up to 8.
pub(crate) fn slot_size(max_key: usize, value_size: usize) -> usize {
    (SLOT_HEADER + max_key + value_size).div_ceil(8) * 8
}

pub(crate) fn encode_file_header(db: u32, shard: u32, value_size: u32, max_key: u32) -> [u8; 32] {
    let mut b = [0u8; SLOT_FILE_HEADER];
    b[0..8].copy_from_slice(&SLOT_MAGIC);
    b[8..12].copy_from_slice(&SLOT_VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&db.to_le_bytes());
    b[16..20].copy_from_slice(&shard.to_le_bytes());
    b[20..24].copy_from_slice(&value_size.to_le_bytes());
    b[24..28].copy_from_slice(&max_key.to_le_bytes());
    let crc = crc32fast::hash(&b[0..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Encodes a slot (header, key, value) into `out` (cleared first; `slot_size` bytes).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_slot(
    out: &mut Vec<u8>,
    slot_size: usize,
    gsn: u64,
    expire: u64,
    flags: u8,
    db: u16,
    key: &[u8],
    value: &[u8],
) {
    out.clear();
    out.resize(slot_size, 0);
    out[4..12].copy_from_slice(&gsn.to_le_bytes());
    out[12..20].copy_from_slice(&expire.to_le_bytes());
    out[20] = flags;
    out[21] = VTYPE_STRING;
    out[22..24].copy_from_slice(&db.to_le_bytes());
    out[24..26].copy_from_slice(&(key.len() as u16).to_le_bytes());
    out[26..30].copy_from_slice(&(value.len() as u32).to_le_bytes());
    // 30..32 reserved, zero.
    let kend = SLOT_HEADER + key.len();
    out[SLOT_HEADER..kend].copy_from_slice(key);
    out[kend..kend + value.len()].copy_from_slice(value);
    let crc = crc32fast::hash(&out[4..kend + value.len()]);
    out[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// A slot that decoded and passed its CRC.
pub(crate) struct SlotRecord<'a> {
    pub gsn: u64,
    pub expire: u64,
    pub flags: u8,
    pub db: u16,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// Decodes one slot. Ok(None): a free slot (GSN 0). Err: unreadable (bad CRC or fields).
pub(crate) fn decode_slot(
    b: &[u8],
    max_key: usize,
) -> std::result::Result<Option<SlotRecord<'_>>, &'static str> {
    let gsn = u64::from_le_bytes(b[4..12].try_into().unwrap_or_default());
    if gsn == 0 {
        return Ok(None);
    }
    let key_len = u16::from_le_bytes([b[24], b[25]]) as usize;
    let value_len = u32::from_le_bytes(b[26..30].try_into().unwrap_or_default()) as usize;
    if key_len > max_key || SLOT_HEADER + key_len + value_len > b.len() {
        return Err("slot lengths out of range");
    }
    let end = SLOT_HEADER + key_len + value_len;
    let crc = u32::from_le_bytes(b[0..4].try_into().unwrap_or_default());
    if crc32fast::hash(&b[4..end]) != crc {
        return Err("slot checksum mismatch");
    }
    let flags = b[20];
    if flags & !SLOT_FLAGS_KNOWN != 0 || b[21] != VTYPE_STRING {
        return Err("unknown slot flags or value type");
    }
    Ok(Some(SlotRecord {
        gsn,
        expire: u64::from_le_bytes(b[12..20].try_into().unwrap_or_default()),
        flags,
        db: u16::from_le_bytes([b[22], b[23]]),
        key: &b[SLOT_HEADER..SLOT_HEADER + key_len],
        value: &b[SLOT_HEADER + key_len..end],
    }))
}

/// A key recovered from a slot file.
pub(crate) struct Recovered {
    pub key: Box<[u8]>,
    pub value: Box<[u8]>,
    pub expire: u64,
    pub slot: u64,
}

/// Recovery's newest slot of a key so far: (gsn, slot, tombstone, expiry, value).
type Best = (u64, u64, bool, u64, Box<[u8]>);

/// One slot file and its allocation state. Lives in a mutex taken under the shard's writer
/// lock, or by the sync round (which takes no shard lock). Never held across the round's
/// fdatasync, and nothing takes a shard lock or the log lock while holding it.
pub(crate) struct FixedShard {
    pub path: PathBuf,
    pub file: Arc<File>,
    db: u16,
    max_key: usize,
    slot_size: usize,
    /// One bit per slot, 1 = used (a live value, a tombstone, or an old copy not yet freed).
    bitmap: Vec<u64>,
    nslots: u64,
    used: u64,
    /// Word of the bitmap where the search for a free slot starts.
    hint: usize,
    /// Old copies to free once the GSN that superseded them is durable.
    pending: Vec<(u64, u64)>,
    /// Tombstones whose GSN is not durable yet.
    tombs: Vec<(u64, u64)>,
    /// Durable tombstones, freed after sync round number `.0` has been followed by another.
    tombs_durable: Vec<(u64, u64)>,
    /// Written since the sync round last took the file.
    dirty: bool,
    scratch: Vec<u8>,
}

impl FixedShard {
    /// Opens (creating if needed) the slot file of (db, shard) and recovers it: every slot's
    /// CRC is checked, the highest GSN per key wins, losers, tombstones and unreadable slots
    /// are zeroed (and the file synced), and the bitmap is rebuilt. Returns the live keys and
    /// the highest GSN seen.
    pub(crate) fn open(
        dir: &Path,
        db: usize,
        shard: usize,
        value_size: usize,
        max_key: usize,
        logger: &slog::Logger,
    ) -> Result<(FixedShard, Vec<Recovered>, u64)> {
        let path = slot_path(dir, db, shard);
        let header = encode_file_header(db as u32, shard as u32, value_size as u32, max_key as u32);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        if len < SLOT_FILE_HEADER as u64 {
            // New (or its header never reached the disk: then it holds nothing).
            file.set_len(0).map_err(|e| Error::io(&path, e))?;
            file.write_all_at(&header, 0)
                .map_err(|e| Error::io(&path, e))?;
            file.sync_all().map_err(|e| Error::io(&path, e))?;
            // fsync the directory, or the new file can be lost (hazard 3).
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io(dir, e))?;
        } else {
            let mut got = [0u8; SLOT_FILE_HEADER];
            file.read_exact_at(&mut got, 0)
                .map_err(|e| Error::io(&path, e))?;
            if got != header {
                return Err(Error::Config(format!(
                    "slot file {} was written for another database, shard, value size or \
                     maximum key size than the config now says (tree {db} const {value_size}, \
                     fixed max key {max_key}); restore the old config",
                    path.display()
                )));
            }
        }
        let slot_size = slot_size(max_key, value_size);
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let body = len - SLOT_FILE_HEADER as u64;
        // The file only ever grows by whole steps (see `grow`), each made durable, so its
        // length is always a step boundary. Anything else means it was cut (a torn copy, a
        // damaged disk): say so, and put the length back so the slot layout goes on.
        let nslots = grown_slots_at_least(body.div_ceil(slot_size as u64));
        let want = SLOT_FILE_HEADER as u64 + nslots * slot_size as u64;
        if want != len {
            slog::warn!(logger, "slot file truncated: the slots past the cut were dropped";
                "file" => %path.display(), "length" => len, "expected" => want,
                "dropped_bytes" => want - len);
            file.set_len(want).map_err(|e| Error::io(&path, e))?;
            file.sync_all().map_err(|e| Error::io(&path, e))?;
        }
        let mut fs = FixedShard {
            path,
            file: Arc::new(file),
            db: db as u16,
            max_key,
            slot_size,
            bitmap: vec![0; (nslots as usize).div_ceil(64)],
            nslots,
            used: 0,
            hint: 0,
            pending: Vec::new(),
            tombs: Vec::new(),
            tombs_durable: Vec::new(),
            dirty: false,
            scratch: Vec::with_capacity(slot_size),
        };
        let (live, max_gsn) = fs.recover(logger)?;
        Ok((fs, live, max_gsn))
    }

    fn offset_of(&self, slot: u64) -> u64 {
        SLOT_FILE_HEADER as u64 + slot * self.slot_size as u64
    }

    fn recover(&mut self, logger: &slog::Logger) -> Result<(Vec<Recovered>, u64)> {
        let mut best: HashMap<Box<[u8]>, Best> = HashMap::new();
        let mut zero: Vec<u64> = Vec::new();
        let mut max_gsn = 0;
        let per_chunk = (1 << 20) / self.slot_size as u64 + 1;
        let mut buf = vec![0u8; per_chunk as usize * self.slot_size];
        let mut at = 0u64;
        while at < self.nslots {
            let n = per_chunk.min(self.nslots - at);
            let bytes = n as usize * self.slot_size;
            self.file
                .read_exact_at(&mut buf[..bytes], self.offset_of(at))
                .map_err(|e| Error::io(&self.path, e))?;
            for i in 0..n {
                let slot = at + i;
                let b = &buf[i as usize * self.slot_size..(i as usize + 1) * self.slot_size];
                match decode_slot(b, self.max_key) {
                    Ok(None) => {}
                    Err(reason) => {
                        if b[..SLOT_HEADER].iter().any(|&x| x != 0) {
                            slog::warn!(logger, "unreadable slot freed (corrupt)";
                                "file" => %self.path.display(), "offset" => self.offset_of(slot),
                                "slot" => slot, "reason" => reason);
                            zero.push(slot);
                        }
                    }
                    Ok(Some(r)) if r.db != self.db => {
                        slog::warn!(logger, "slot of another database freed";
                            "file" => %self.path.display(), "offset" => self.offset_of(slot), "db" => r.db);
                        zero.push(slot);
                    }
                    Ok(Some(r)) => {
                        max_gsn = max_gsn.max(r.gsn);
                        let tomb = r.flags & FLAG_TOMBSTONE != 0;
                        match best.get_mut(r.key) {
                            Some(cur) if cur.0 >= r.gsn => zero.push(slot),
                            Some(cur) => {
                                zero.push(cur.1);
                                *cur = (r.gsn, slot, tomb, r.expire, r.value.into());
                            }
                            None => {
                                best.insert(
                                    r.key.into(),
                                    (r.gsn, slot, tomb, r.expire, r.value.into()),
                                );
                            }
                        }
                    }
                }
            }
            at += n;
        }
        let mut live = Vec::with_capacity(best.len());
        for (key, (_, slot, tomb, expire, value)) in best {
            if tomb {
                // No older copy survives the zeroing below: the tombstone has done its job.
                zero.push(slot);
            } else {
                self.mark(slot);
                live.push(Recovered {
                    key,
                    value,
                    expire,
                    slot,
                });
            }
        }
        if !zero.is_empty() {
            for &slot in &zero {
                self.zero_slot(slot)?;
            }
            // Durable before start-up goes on: a zeroed loser must never come back once its
            // slot is reused and a newer copy deleted.
            self.file
                .sync_data()
                .map_err(|e| Error::io(&self.path, e))?;
            self.dirty = false;
        }
        Ok((live, max_gsn))
    }

    fn mark(&mut self, slot: u64) {
        self.bitmap[(slot / 64) as usize] |= 1 << (slot % 64);
        self.used += 1;
    }

    fn free(&mut self, slot: u64) {
        let w = (slot / 64) as usize;
        debug_assert!(
            self.bitmap[w] & (1 << (slot % 64)) != 0,
            "double free of slot {slot}"
        );
        self.bitmap[w] &= !(1 << (slot % 64));
        self.used -= 1;
        self.hint = self.hint.min(w);
    }

    fn zero_slot(&mut self, slot: u64) -> Result<()> {
        let zero = [0u8; SLOT_HEADER];
        self.file
            .write_all_at(&zero, self.offset_of(slot))
            .map_err(|e| Error::io(&self.path, e))?;
        self.dirty = true;
        Ok(())
    }

    /// A free slot, growing the file if none is left.
    fn alloc(&mut self) -> Result<u64> {
        if self.used == self.nslots {
            self.grow()?;
        }
        for w in self.hint..self.bitmap.len() {
            let word = self.bitmap[w];
            if word != u64::MAX {
                let slot = w as u64 * 64 + (!word).trailing_zeros() as u64;
                if slot < self.nslots {
                    self.hint = w;
                    self.mark(slot);
                    return Ok(slot);
                }
            }
        }
        // `used < nslots` guarantees a clear bit below nslots; the hint only moves past full
        // words. Reaching here is a bug in this file.
        unreachable!(
            "slot bitmap full with {} of {} used",
            self.used, self.nslots
        )
    }

    /// Extends the file by a step (a quarter of its size, at least GROW_MIN_SLOTS slots) and
    /// makes the new length durable before any slot in it is used.
    fn grow(&mut self) -> Result<()> {
        let n = next_growth(self.nslots);
        self.file
            .set_len(self.offset_of(n))
            .map_err(|e| Error::io(&self.path, e))?;
        // The size is metadata: fsync it now (rare: once per step), and the directory with
        // it, or a crash could cut off slots whose writes were acknowledged (hazard 3). This
        // runs under the shard lock: a growth step is the one fsync a writer waits for.
        self.file.sync_all().map_err(|e| Error::io(&self.path, e))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io(dir, e))?;
        }
        self.nslots = n;
        self.bitmap.resize((n as usize).div_ceil(64), 0);
        Ok(())
    }

    /// Writes a slot (value or tombstone) into a free slot; returns its number and the
    /// write's GSN, taken from `gsns` (the engine's GSN counter) here, under this slot file's
    /// lock, just before the pwrite. A sync round reads the counter first and then takes this
    /// lock, so every slot write with a GSN at or below what it read has completed by then.
    pub(crate) fn write(
        &mut self,
        gsns: &AtomicU64,
        expire: u64,
        flags: u8,
        key: &[u8],
        value: &[u8],
    ) -> Result<(u64, u64)> {
        if key.len() > self.max_key {
            return Err(Error::KeyTooLarge {
                got: key.len(),
                max: self.max_key,
            });
        }
        let slot = self.alloc()?;
        let gsn = gsns.fetch_add(1, Ordering::SeqCst) + 1;
        let mut buf = std::mem::take(&mut self.scratch);
        encode_slot(
            &mut buf,
            self.slot_size,
            gsn,
            expire,
            flags,
            self.db,
            key,
            value,
        );
        let r = self.file.write_all_at(&buf, self.offset_of(slot));
        self.scratch = buf;
        if let Err(e) = r {
            self.free(slot);
            return Err(Error::io(&self.path, e));
        }
        self.dirty = true;
        Ok((slot, gsn))
    }

    /// Frees `slot` (an old copy) once `gsn` is durable.
    pub(crate) fn free_after(&mut self, gsn: u64, slot: u64) {
        self.pending.push((gsn, slot));
    }

    /// A tombstone slot written at `gsn`.
    pub(crate) fn tomb_after(&mut self, gsn: u64, slot: u64) {
        self.tombs.push((gsn, slot));
    }

    /// FLUSHDB: zeroes every used slot and frees it.
    pub(crate) fn zero_all(&mut self) -> Result<()> {
        for w in 0..self.bitmap.len() {
            let mut word = self.bitmap[w];
            while word != 0 {
                let bit = word.trailing_zeros() as u64;
                word &= word - 1;
                self.zero_slot(w as u64 * 64 + bit)?;
            }
            self.bitmap[w] = 0;
        }
        self.used = 0;
        self.hint = 0;
        self.pending.clear();
        self.tombs.clear();
        self.tombs_durable.clear();
        Ok(())
    }

    /// Takes the file for a sync round if it was written since the last one.
    pub(crate) fn take_dirty(&mut self) -> Option<Arc<File>> {
        std::mem::take(&mut self.dirty).then(|| self.file.clone())
    }

    /// After sync round number `round` made everything up to `durable` durable: zero and free
    /// the superseded copies, and free the tombstones whose zeroing is now durable.
    fn after_sync(&mut self, durable: u64, round: u64) -> Result<()> {
        let mut tombs_done = Vec::new();
        self.tombs_durable.retain(|&(r, slot)| {
            let done = r < round;
            if done {
                tombs_done.push(slot);
            }
            !done
        });
        for slot in tombs_done {
            self.zero_slot(slot)?;
            self.free(slot);
        }
        let mut freed = Vec::new();
        self.pending.retain(|&(g, slot)| {
            let done = g <= durable;
            if done {
                freed.push(slot);
            }
            !done
        });
        for slot in freed {
            self.zero_slot(slot)?;
            self.free(slot);
        }
        let mut moved = Vec::new();
        self.tombs.retain(|&(g, slot)| {
            let done = g <= durable;
            if done {
                moved.push((round, slot));
            }
            !done
        });
        self.tombs_durable.extend(moved);
        Ok(())
    }

    /// (used slots, total slots).
    pub(crate) fn usage(&self) -> (u64, u64) {
        (self.used, self.nslots)
    }

    /// Bytes of the file.
    pub(crate) fn file_bytes(&self) -> u64 {
        self.offset_of(self.nslots)
    }
}

/// Slot files written since the last sync round (each taken once: a write after this sets
/// its flag again, for the next round). The round calls this after reading the GSN it will
/// publish: taking each slot file's lock waits out a slot write in progress, whose GSN may
/// be at or below that one.
pub(crate) fn dirty_files(inner: &Inner) -> Vec<(PathBuf, Arc<File>)> {
    let mut out = Vec::new();
    for t in inner.consts.iter().flatten() {
        for f in t.fixed().iter().flatten() {
            {
                let mut f = f.lock();
                if let Some(file) = f.take_dirty() {
                    out.push((f.path.clone(), file));
                }
            }
        }
    }
    out
}

/// Called by the sync round after it published `durable`.
pub(crate) fn after_sync(inner: &Inner, durable: u64) {
    let round = inner.syncs.load(Ordering::Relaxed);
    for t in inner.consts.iter().flatten() {
        for f in t.fixed().iter().flatten() {
            {
                let mut f = f.lock();
                if let Err(e) = f.after_sync(durable, round) {
                    inner.fail(format!("freeing slots failed: {e}"));
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Persisted constants: changing one makes old slot files unreadable.
    #[test]
    fn growth_sequence() {
        assert_eq!(grown_slots_at_least(0), 0);
        assert_eq!(grown_slots_at_least(1), 256);
        assert_eq!(grown_slots_at_least(256), 256);
        assert_eq!(grown_slots_at_least(257), 512);
        assert_eq!(grown_slots_at_least(1025), 1280);
        assert_eq!(next_growth(1280), 1600);
    }

    #[test]
    fn golden_constants() {
        assert_eq!(&SLOT_MAGIC, b"RSPTSLOT");
        assert_eq!(SLOT_VERSION, 1);
        assert_eq!(SLOT_FILE_HEADER, 32);
        assert_eq!(SLOT_HEADER, 32);
        assert_eq!(SLOT_FLAGS_KNOWN, 0x01);
        assert_eq!(FLAG_TOMBSTONE, 0x01);
        assert_eq!(VTYPE_STRING, 0);
        assert_eq!(slot_size(64, 100), 200);
        assert_eq!(slot_size(64, 8), 104);
        assert_eq!(slot_size(5, 1), 40);
    }

    #[test]
    fn golden_file_header() {
        let h = encode_file_header(1, 2, 100, 64);
        let mut want = Vec::new();
        want.extend_from_slice(b"RSPTSLOT");
        want.extend_from_slice(&[
            1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 100, 0, 0, 0, 64, 0, 0, 0,
        ]);
        want.extend_from_slice(&crc32fast::hash(&want).to_le_bytes());
        assert_eq!(&h[..], &want[..]);
    }

    #[test]
    fn golden_slot_bytes() {
        let mut b = Vec::new();
        encode_slot(&mut b, 48, 0x0102, 0x0304, FLAG_TOMBSTONE, 7, b"ab", b"xyz");
        let mut want = vec![0u8; 48];
        want[4..12].copy_from_slice(&[2, 1, 0, 0, 0, 0, 0, 0]);
        want[12..20].copy_from_slice(&[4, 3, 0, 0, 0, 0, 0, 0]);
        want[20] = 1;
        want[21] = 0;
        want[22..24].copy_from_slice(&[7, 0]);
        want[24..26].copy_from_slice(&[2, 0]);
        want[26..30].copy_from_slice(&[3, 0, 0, 0]);
        want[32..34].copy_from_slice(b"ab");
        want[34..37].copy_from_slice(b"xyz");
        let crc = crc32fast::hash(&want[4..37]);
        want[0..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(b, want);
        let r = decode_slot(&b, 64).unwrap().unwrap();
        assert_eq!((r.gsn, r.expire, r.flags, r.db), (0x0102, 0x0304, 1, 7));
        assert_eq!((r.key, r.value), (&b"ab"[..], &b"xyz"[..]));
        let mut bad = b.clone();
        bad[35] ^= 1;
        assert!(decode_slot(&bad, 64).is_err());
        assert!(decode_slot(&[0u8; 48], 64).unwrap().is_none());
    }
}
