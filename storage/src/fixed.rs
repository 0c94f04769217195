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
//!
//! Encryption at rest (a master key in the config): the file's logical bytes are the same,
//! cut into 4096-byte pages, each kept in three sealed copies with their entries in a tag
//! file beside it (docs/format-fixed.md, "Encrypted slot files"). A write edits its page in
//! memory; the next round (`take_dirty`, under this file's lock, before the fdatasync) seals
//! each touched page once, to a copy that holds neither the newest durable version nor one
//! a sync round has in flight (`choose_copy`), so a crash between a page and its entry only
//! loses that page's newest, not yet durable, version. Without a
//! key every write is one pwrite, as drawn above: the only cost is a branch on an `Option`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::crypto::{ENTRY, FileCipher, MasterKey, PAGE, Role, TAG_HEADER, tag_path};
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

/// Recovery's scan so far: the newest slot per key, the slots to zero, the highest GSN.
#[derive(Default)]
struct Scan {
    best: HashMap<Box<[u8]>, Best>,
    zero: Vec<u64>,
    max_gsn: u64,
}

fn mismatch(path: &Path, db: usize, value_size: usize, max_key: usize) -> Error {
    Error::Config(format!(
        "slot file {} was written for another database, shard, value size or maximum key \
         size than the config now says (tree {db} const {value_size}, fixed max key \
         {max_key}); restore the old config",
        path.display()
    ))
}

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
    /// Encryption at rest: None for a plain file (then every write is one pwrite, as before).
    enc: Option<Box<Enc>>,
    /// The file's (and tag file's) durable lengths, in their own lock so that a growth step
    /// taken ahead of need (`grow_ahead`) extends and fsyncs the files without holding this
    /// slot file's lock. Taken under the slot file's lock by `grow`, never the other way.
    growth: Arc<parking_lot::Mutex<Lengths>>,
    /// Growth steps a writer had to take itself, waiting for their fsync under the shard
    /// lock (`grow_ahead` keeps this from rising once a file has slots).
    #[cfg_attr(not(test), allow(dead_code))]
    steps_in_write: u64,
}

/// Lengths of a slot file and its tag file (0 when plain) for a slot count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lengths {
    file: u64,
    tag: u64,
}

/// What a growth step ahead of need works with, taken under the slot file's lock.
struct GrowPlan {
    nslots: u64,
    want: Lengths,
    growth: Arc<parking_lot::Mutex<Lengths>>,
    file: Arc<File>,
    path: PathBuf,
    tag: Option<(Arc<File>, PathBuf)>,
}

/// Makes the files at least `want` long, durably (the length is metadata: fsync, and the
/// directory with it, or a crash could cut off slots whose writes were acknowledged, hazard
/// 3). Never shortens: a step taken meanwhile by someone else stays.
fn extend_durably(
    growth: &parking_lot::Mutex<Lengths>,
    file: &File,
    path: &Path,
    tag: Option<(&File, &Path)>,
    want: Lengths,
) -> Result<()> {
    let mut have = growth.lock();
    if have.file >= want.file && have.tag >= want.tag {
        return Ok(());
    }
    if let Some((tag, tag_path)) = tag.filter(|_| have.tag < want.tag) {
        tag.set_len(want.tag)
            .and_then(|()| tag.sync_all())
            .map_err(|e| Error::io(tag_path, e))?;
        have.tag = want.tag;
    }
    if have.file < want.file {
        file.set_len(want.file)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(path, e))?;
        have.file = want.file;
    }
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

impl FixedShard {
    /// Opens (creating if needed) the slot file of (db, shard) and recovers it: every slot's
    /// CRC is checked, the highest GSN per key wins, losers, tombstones and unreadable slots
    /// are zeroed (and the file synced), and the bitmap is rebuilt. Returns the live keys and
    /// the highest GSN seen. With `key`, the file is encrypted (three copies per page and a
    /// tag file: docs/encryption.md); without, it is plain, as its format doc draws it.
    pub(crate) fn open(
        dir: &Path,
        db: usize,
        shard: usize,
        value_size: usize,
        max_key: usize,
        key: Option<&MasterKey>,
        logger: &slog::Logger,
    ) -> Result<(FixedShard, Vec<Recovered>, u64)> {
        if let Some(key) = key {
            return Self::open_encrypted(dir, db, shard, value_size, max_key, key, logger);
        }
        let path = slot_path(dir, db, shard);
        let tpath = tag_path(&path);
        if tpath.exists() {
            return Err(Error::Config(format!(
                "slot file {} is encrypted ({} exists) but no encryption key was given \
                 (set encryption-key-file)",
                path.display(),
                tpath.display()
            )));
        }
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
                return Err(mismatch(&path, db, value_size, max_key));
            }
        }
        let slot_size = slot_size(max_key, value_size);
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let body = len - SLOT_FILE_HEADER as u64;
        // The file only ever grows by whole steps (see `grow`), each made durable, so its
        // length is always a step boundary. Anything else means it was cut (a torn copy, a
        // damaged disk): say so, and put the length back so the slot layout goes on.
        let nslots = grown_slots_at_least(body.div_ceil(slot_size as u64));
        let want = lengths_of(nslots, slot_size, false).file;
        if want != len {
            slog::warn!(logger, "slot file truncated: the slots past the cut were dropped";
                "file" => %path.display(), "length" => len, "expected" => want,
                "dropped_bytes" => want - len);
            file.set_len(want).map_err(|e| Error::io(&path, e))?;
            file.sync_all().map_err(|e| Error::io(&path, e))?;
        }
        let mut fs = FixedShard::new(path, file, db, max_key, slot_size, nslots, None);
        let (live, max_gsn) = fs.recover(logger)?;
        Ok((fs, live, max_gsn))
    }

    fn new(
        path: PathBuf,
        file: File,
        db: usize,
        max_key: usize,
        slot_size: usize,
        nslots: u64,
        enc: Option<Box<Enc>>,
    ) -> FixedShard {
        FixedShard {
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
            growth: Arc::new(parking_lot::Mutex::new(lengths_of(
                nslots,
                slot_size,
                enc.is_some(),
            ))),
            enc,
            steps_in_write: 0,
        }
    }

    /// `open` for an encrypted slot file: the logical bytes (header and slots, as in the
    /// plain file) are cut into pages, each kept in three copies, each copy sealed with its
    /// entry in the tag file (docs/encryption.md, docs/format-fixed.md).
    fn open_encrypted(
        dir: &Path,
        db: usize,
        shard: usize,
        value_size: usize,
        max_key: usize,
        key: &MasterKey,
        logger: &slog::Logger,
    ) -> Result<(FixedShard, Vec<Recovered>, u64)> {
        let path = slot_path(dir, db, shard);
        let tpath = tag_path(&path);
        let header = encode_file_header(db as u32, shard as u32, value_size as u32, max_key as u32);
        let open = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .map_err(|e| Error::io(p, e))
        };
        let tag_len = match std::fs::metadata(&tpath) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io(&tpath, e)),
        };
        if tag_len < TAG_HEADER as u64 {
            // Never wipe (or add a tag file to) a plain slot file.
            let mut magic = [0u8; 8];
            if File::open(&path)
                .and_then(|f| f.read_exact_at(&mut magic, 0))
                .is_ok()
                && magic == SLOT_MAGIC
            {
                return Err(Error::Config(format!(
                    "slot file {} is not encrypted, but an encryption key was given; start \
                     without encryption-key-file, or use a new folder",
                    path.display()
                )));
            }
        }
        let file = open(&path)?;
        let tag = open(&tpath)?;
        let page = PAGE as u64;
        let copies = COPIES as u64;
        if tag_len < TAG_HEADER as u64 {
            // New, or torn at creation before its tag header was durable: then nothing in
            // it was ever used.
            let (cipher, th) = FileCipher::create(key)?;
            let mut p0 = vec![0u8; PAGE];
            p0[..SLOT_FILE_HEADER].copy_from_slice(&header);
            let entry = cipher.seal(0, 1, PAGE as u32, Role::Data, &mut p0)?;
            // The data file first, then the tag file that makes it readable, then the
            // directory, or a new file can be lost (hazard 3).
            file.set_len(0)
                .and_then(|()| file.write_all_at(&p0, 0))
                .and_then(|()| file.set_len(copies * page))
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(&path, e))?;
            tag.set_len(0)
                .and_then(|()| tag.write_all_at(&th, 0))
                .and_then(|()| tag.write_all_at(&entry, TAG_HEADER as u64))
                .and_then(|()| tag.set_len((TAG_HEADER + COPIES * ENTRY) as u64))
                .and_then(|()| tag.sync_all())
                .map_err(|e| Error::io(&tpath, e))?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io(dir, e))?;
        }
        let mut th = [0u8; TAG_HEADER];
        tag.read_exact_at(&mut th, 0)
            .map_err(|e| Error::io(&tpath, e))?;
        // A wrong key fails here, naming the tag file.
        let cipher = FileCipher::open(key, &th, &tpath)?;
        let read_entries = |from: u64, n: u64| -> Result<Vec<u8>> {
            let mut v = vec![0u8; (n * ENTRY as u64) as usize];
            let at = TAG_HEADER as u64 + from * ENTRY as u64;
            let mut done = 0;
            // Entries past the end of the tag file read as zeros (never written).
            while done < v.len() {
                match tag.read_at(&mut v[done..], at + done as u64) {
                    Ok(0) => break,
                    Ok(k) => done += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io(&tpath, e)),
                }
            }
            Ok(v)
        };
        // The header page first: a config mismatch is refused before anything is changed.
        let (p0, p0_copy) =
            recover_page(&cipher, &file, &path, 0, &read_entries(0, copies)?, logger)?;
        let needs_header = p0[..SLOT_FILE_HEADER].iter().all(|&b| b == 0);
        if !needs_header && p0[..SLOT_FILE_HEADER] != header {
            return Err(mismatch(&path, db, value_size, max_key));
        }
        let slot_size = slot_size(max_key, value_size);
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        // Lengths are `pages * 3 * 4096` for a page count on the growth sequence; anything
        // else was cut (see `slots_for_pages`): say so and put the length back.
        let (nslots, exact) = slots_for_pages(len.div_ceil(copies * page), slot_size);
        let pages = logical_pages(nslots, slot_size);
        let Lengths {
            file: want,
            tag: want_tag,
        } = lengths_of(nslots, slot_size, true);
        if !exact || len != want {
            slog::warn!(logger, "slot file truncated: the slots past the cut were dropped";
                "file" => %path.display(), "length" => len, "expected" => want);
            file.set_len(want)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
        if tag_len != want_tag {
            tag.set_len(want_tag)
                .and_then(|()| tag.sync_all())
                .map_err(|e| Error::io(&tpath, e))?;
        }
        // What recovery reads must be on disk before any copy is overwritten: the rule that
        // keeps the durable copy of each page counts on it.
        file.sync_data().map_err(|e| Error::io(&path, e))?;
        tag.sync_data().map_err(|e| Error::io(&tpath, e))?;
        let entries = read_entries(0, pages * copies)?;
        let enc = Enc {
            cipher,
            tag: Arc::new(tag),
            tag_path: tpath,
            seq: 0,
            copies: vec![[CopyState::default(); COPIES]; pages as usize],
            takes: 0,
            completed: 0,
            cache: Vec::with_capacity(CACHE_PAGES),
            clock: 0,
            seal: vec![0u8; PAGE].into_boxed_slice(),
            pending: std::collections::BTreeMap::new(),
        };
        let mut fs = FixedShard::new(
            path,
            file,
            db,
            max_key,
            slot_size,
            nslots,
            Some(Box::new(enc)),
        );
        let (live, max_gsn) =
            fs.recover_encrypted(&p0, p0_copy, &entries, needs_header, &header, logger)?;
        Ok((fs, live, max_gsn))
    }

    fn offset_of(&self, slot: u64) -> u64 {
        SLOT_FILE_HEADER as u64 + slot * self.slot_size as u64
    }

    fn recover(&mut self, logger: &slog::Logger) -> Result<(Vec<Recovered>, u64)> {
        let mut scan = Scan::default();
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
                let b = &buf[i as usize * self.slot_size..(i as usize + 1) * self.slot_size];
                self.visit(&mut scan, at + i, b, logger);
            }
            at += n;
        }
        let (live, zeroed) = self.finish(scan)?;
        if zeroed {
            // Durable before start-up goes on: a zeroed loser must never come back once its
            // slot is reused and a newer copy deleted.
            self.file
                .sync_data()
                .map_err(|e| Error::io(&self.path, e))?;
            self.dirty = false;
        }
        Ok(live)
    }

    /// `recover` of an encrypted file: each logical page from its newest authenticated copy
    /// (`recover_page`), streamed through the same slot scan. `p0` is page 0, already read.
    fn recover_encrypted(
        &mut self,
        p0: &[u8],
        p0_copy: Won,
        entries: &[u8],
        needs_header: bool,
        header: &[u8; SLOT_FILE_HEADER],
        logger: &slog::Logger,
    ) -> Result<(Vec<Recovered>, u64)> {
        let Some(mut enc) = self.enc.take() else {
            return self.recover(logger);
        };
        let note = |enc: &mut Enc, p: u64, won: Won| {
            if let Some((c, seq)) = won {
                enc.copies[p as usize][c] = CopyState { seq, round: 0 };
                enc.seq = enc.seq.max(seq);
            }
        };
        note(&mut enc, 0, p0_copy);
        let mut scan = Scan::default();
        let mut buf: Vec<u8> = p0[SLOT_FILE_HEADER..].to_vec();
        let mut done = 0;
        let mut slot = 0;
        let pages = enc.copies.len() as u64;
        let mut p = 1;
        let r = (|| -> Result<()> {
            loop {
                while slot < self.nslots && buf.len() - done >= self.slot_size {
                    self.visit(&mut scan, slot, &buf[done..done + self.slot_size], logger);
                    done += self.slot_size;
                    slot += 1;
                }
                if p >= pages {
                    return Ok(());
                }
                buf.drain(..done);
                done = 0;
                let e = &entries[(p as usize) * COPIES * ENTRY..(p as usize + 1) * COPIES * ENTRY];
                let (plain, won) = recover_page(&enc.cipher, &self.file, &self.path, p, e, logger)?;
                note(&mut enc, p, won);
                buf.extend_from_slice(&plain);
                p += 1;
            }
        })();
        self.enc = Some(enc);
        r?;
        let (live, zeroed) = self.finish(scan)?;
        if needs_header {
            self.write_at(0, header)?;
        }
        if zeroed || needs_header {
            self.sync_now()?;
        }
        Ok(live)
    }

    /// fdatasyncs the file (and its tag file) outside a sync round, at open: what was
    /// written counts as durable from here on.
    fn sync_now(&mut self) -> Result<()> {
        if let Some(enc) = &mut self.enc {
            enc.write_back(&self.file, &self.path)?;
        }
        self.file
            .sync_data()
            .map_err(|e| Error::io(&self.path, e))?;
        if let Some(enc) = &mut self.enc {
            enc.tag
                .sync_data()
                .map_err(|e| Error::io(&enc.tag_path, e))?;
            // As if a round had taken and completed: every copy written so far is durable.
            enc.takes += 1;
            enc.completed += 1;
        }
        self.dirty = false;
        Ok(())
    }

    /// One slot of recovery's scan.
    fn visit(&self, scan: &mut Scan, slot: u64, b: &[u8], logger: &slog::Logger) {
        match decode_slot(b, self.max_key) {
            Ok(None) => {}
            Err(reason) => {
                if b[..SLOT_HEADER].iter().any(|&x| x != 0) {
                    slog::warn!(logger, "unreadable slot freed (corrupt)";
                        "file" => %self.path.display(), "offset" => self.offset_of(slot),
                        "slot" => slot, "reason" => reason);
                    scan.zero.push(slot);
                }
            }
            Ok(Some(r)) if r.db != self.db => {
                slog::warn!(logger, "slot of another database freed";
                    "file" => %self.path.display(), "offset" => self.offset_of(slot), "db" => r.db);
                scan.zero.push(slot);
            }
            Ok(Some(r)) => {
                scan.max_gsn = scan.max_gsn.max(r.gsn);
                let tomb = r.flags & FLAG_TOMBSTONE != 0;
                match scan.best.get_mut(r.key) {
                    Some(cur) if cur.0 >= r.gsn => scan.zero.push(slot),
                    Some(cur) => {
                        scan.zero.push(cur.1);
                        *cur = (r.gsn, slot, tomb, r.expire, r.value.into());
                    }
                    None => {
                        scan.best
                            .insert(r.key.into(), (r.gsn, slot, tomb, r.expire, r.value.into()));
                    }
                }
            }
        }
    }

    /// The end of recovery's scan: marks the winners, zeroes losers and tombstones. Returns
    /// the live keys, the highest GSN, and whether anything was zeroed.
    fn finish(&mut self, scan: Scan) -> Result<((Vec<Recovered>, u64), bool)> {
        let Scan {
            best,
            mut zero,
            max_gsn,
        } = scan;
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
        let zeroed = !zero.is_empty();
        self.zero_slots(&mut zero)?;
        Ok(((live, max_gsn), zeroed))
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

    /// Writes `bytes` at logical offset `off`: a pwrite on a plain file; on an encrypted one,
    /// a read-modify-write of the pages it touches, each sealed to a fresh copy.
    fn write_at(&mut self, off: u64, bytes: &[u8]) -> Result<()> {
        match &mut self.enc {
            None => self
                .file
                .write_all_at(bytes, off)
                .map_err(|e| Error::io(&self.path, e))?,
            Some(enc) => enc.edit(&self.file, &self.path, &[(off, bytes)])?,
        }
        self.dirty = true;
        Ok(())
    }

    /// Zeroes the header of every slot in `slots` (GSN 0 = free). On an encrypted file, each
    /// page touched is sealed and written once.
    fn zero_slots(&mut self, slots: &mut [u64]) -> Result<()> {
        if slots.is_empty() {
            return Ok(());
        }
        const ZERO: [u8; SLOT_HEADER] = [0u8; SLOT_HEADER];
        match &mut self.enc {
            None => {
                for &slot in slots.iter() {
                    self.file
                        .write_all_at(&ZERO, self.offset_of(slot))
                        .map_err(|e| Error::io(&self.path, e))?;
                }
            }
            Some(enc) => {
                slots.sort_unstable();
                let ss = self.slot_size as u64;
                let edits: Vec<(u64, &[u8])> = slots
                    .iter()
                    .map(|&s| (SLOT_FILE_HEADER as u64 + s * ss, &ZERO[..]))
                    .collect();
                enc.edit(&self.file, &self.path, &edits)?;
            }
        }
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
    /// makes the new length durable before any slot in it is used. This runs under the shard
    /// lock, so a writer waits for its fsync; the maintenance thread's `grow_ahead` normally
    /// takes each step before the file is full, and then this is not reached.
    fn grow(&mut self) -> Result<()> {
        let plan = self.grow_plan();
        plan.extend()?;
        self.publish(plan.nslots);
        self.steps_in_write += 1;
        Ok(())
    }

    /// The next growth step and what extending the files needs.
    fn grow_plan(&self) -> GrowPlan {
        let n = next_growth(self.nslots);
        GrowPlan {
            nslots: n,
            want: lengths_of(n, self.slot_size, self.enc.is_some()),
            growth: self.growth.clone(),
            file: self.file.clone(),
            path: self.path.clone(),
            tag: self
                .enc
                .as_ref()
                .map(|e| (e.tag.clone(), e.tag_path.clone())),
        }
    }

    /// Makes slots below `n` usable, once the files are durably long enough for them (a step
    /// already taken is not taken again).
    fn publish(&mut self, n: u64) {
        if n <= self.nslots {
            return;
        }
        debug_assert!({
            let (have, want) = (
                *self.growth.lock(),
                lengths_of(n, self.slot_size, self.enc.is_some()),
            );
            have.file >= want.file && have.tag >= want.tag
        });
        if let Some(enc) = &mut self.enc {
            let pages = logical_pages(n, self.slot_size);
            enc.copies
                .resize(pages as usize, [CopyState::default(); COPIES]);
        }
        self.nslots = n;
        self.bitmap.resize((n as usize).div_ceil(64), 0);
    }

    /// Whether the file is full enough that the next step should be taken ahead of need:
    /// three quarters of its slots hold data that stays. Old copies and tombstones waiting
    /// for a sync round to free them do not count: updates of every key between two rounds
    /// hold twice the slots for a moment, and reusing those is what the file is for. A file
    /// with no slots yet grows on its first write.
    fn wants_growth(&self) -> bool {
        let freeing = (self.pending.len() + self.tombs.len() + self.tombs_durable.len()) as u64;
        self.nslots > 0 && self.used.saturating_sub(freeing) * 4 >= self.nslots * 3
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
        let r = self.write_at(self.offset_of(slot), &buf);
        self.scratch = buf;
        if let Err(e) = r {
            self.free(slot);
            return Err(e);
        }
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
        let mut used = Vec::with_capacity(self.used as usize);
        for w in 0..self.bitmap.len() {
            let mut word = self.bitmap[w];
            while word != 0 {
                let bit = word.trailing_zeros() as u64;
                word &= word - 1;
                used.push(w as u64 * 64 + bit);
            }
        }
        self.zero_slots(&mut used)?;
        self.bitmap.fill(0);
        self.used = 0;
        self.hint = 0;
        self.pending.clear();
        self.tombs.clear();
        self.tombs_durable.clear();
        Ok(())
    }

    /// Takes the file (and its tag file) for a sync round if it was written since the last
    /// one. Called once per round, whether or not the file is dirty: an encrypted file counts
    /// the rounds that took it, so it knows which copies a round has in flight.
    pub(crate) fn take_dirty(&mut self, out: &mut Vec<(PathBuf, Arc<File>)>) -> Result<()> {
        if let Some(enc) = &mut self.enc {
            // The pages edited since the last round are sealed and written now, once each,
            // and carried by this round.
            enc.write_back(&self.file, &self.path)?;
            enc.takes += 1;
        }
        if std::mem::take(&mut self.dirty) {
            out.push((self.path.clone(), self.file.clone()));
            if let Some(enc) = &self.enc {
                out.push((enc.tag_path.clone(), enc.tag.clone()));
            }
        }
        Ok(())
    }

    /// After sync round number `round` made everything up to `durable` durable: zero and free
    /// the superseded copies, and free the tombstones whose zeroing is now durable.
    fn after_sync(&mut self, durable: u64, round: u64) -> Result<()> {
        if let Some(enc) = &mut self.enc {
            // The copies the round took are durable now; what is written below is not.
            enc.completed += 1;
        }
        let mut tombs_done = Vec::new();
        self.tombs_durable.retain(|&(r, slot)| {
            let done = r < round;
            if done {
                tombs_done.push(slot);
            }
            !done
        });
        let mut freed = Vec::new();
        self.pending.retain(|&(g, slot)| {
            let done = g <= durable;
            if done {
                freed.push(slot);
            }
            !done
        });
        freed.extend_from_slice(&tombs_done);
        self.zero_slots(&mut freed)?;
        for slot in freed {
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
        let l = lengths_of(self.nslots, self.slot_size, self.enc.is_some());
        l.file + l.tag
    }
}

// ------------------------------------------------------------------ encryption at rest

/// Physical copies of each logical page of an encrypted slot file (docs/encryption.md).
const COPIES: usize = 3;
/// Plaintext pages an encrypted slot file keeps, so consecutive slot writes to one page do
/// not read and decrypt it again.
const CACHE_PAGES: usize = 16;
/// Edited pages an encrypted slot file holds for the next round before it writes them early
/// (16 MiB of plaintext).
const MAX_PENDING_PAGES: usize = 4096;

/// What one physical copy of a logical page holds, as far as writes are concerned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct CopyState {
    /// Sequence number of the version it holds; 0: nothing that must be kept.
    seq: u64,
    /// The take (sync round) that carries it to disk: `takes + 1` when it was written. It is
    /// durable once `completed >= round`, in flight while `takes >= round > completed`, and
    /// not yet taken while `round > takes`. Recovered copies have 0 (durable).
    round: u64,
}

/// The copy a new version of a page goes to (hazard 5 and 7). Never the copy holding the
/// newest durable version, never a copy a sync round has in flight. The newest version, if
/// no round has taken it yet, is overwritten in place (it protects nothing); otherwise the
/// oldest of what is left. Rounds never overlap, so at most one copy is in flight and one is
/// the durable newest: of three, one is always left.
fn choose_copy(copies: &[CopyState; COPIES], takes: u64, completed: u64) -> usize {
    if let Some(c) = (0..COPIES).find(|&c| copies[c].seq != 0 && copies[c].round > takes) {
        return c;
    }
    let durable_newest = (0..COPIES)
        .filter(|&c| copies[c].seq != 0 && copies[c].round <= completed)
        .max_by_key(|&c| copies[c].seq);
    let in_flight = |c: usize| copies[c].seq != 0 && copies[c].round > completed;
    let pick = (0..COPIES)
        .filter(|&c| Some(c) != durable_newest && !in_flight(c))
        .min_by_key(|&c| copies[c].seq);
    match pick {
        Some(c) => c,
        // One durable newest and at most one in flight leave a third copy. Reaching here is
        // a bug in this file.
        None => {
            unreachable!("no free copy among {copies:?} (takes {takes}, completed {completed})")
        }
    }
}

/// Logical pages of a slot file of `nslots` slots.
fn logical_pages(nslots: u64, slot_size: usize) -> u64 {
    (SLOT_FILE_HEADER as u64 + nslots * slot_size as u64).div_ceil(PAGE as u64)
}

/// Inverts the growth sequence for an encrypted slot file of `pages` logical pages: the slot
/// count on the sequence whose logical length fills exactly that many pages, or (not on the
/// sequence: a cut file) the smallest one that needs more. A growth step is at least
/// GROW_MIN_SLOTS slots of at least 40 bytes, more than two pages, so the page count grows
/// strictly along the sequence and the slot count it gives is unique.
fn slots_for_pages(pages: u64, slot_size: usize) -> (u64, bool) {
    let mut s = 0;
    while logical_pages(s, slot_size) < pages {
        s = next_growth(s);
    }
    (s, logical_pages(s, slot_size) == pages)
}

/// A plaintext page in the cache.
struct CachedPage {
    page: u64,
    used: u64,
    plain: Box<[u8]>,
}

/// The encryption state of one slot file: its cipher and tag file, the copies of each
/// logical page, the sync rounds seen, and a few plaintext pages.
struct Enc {
    cipher: FileCipher,
    tag: Arc<File>,
    tag_path: PathBuf,
    /// The file's write counter: the last sequence number used.
    seq: u64,
    copies: Vec<[CopyState; COPIES]>,
    /// Sync rounds that took this file (`take_dirty`), and rounds completed (`after_sync`).
    takes: u64,
    completed: u64,
    cache: Vec<CachedPage>,
    clock: u64,
    seal: Box<[u8]>,
    /// Pages edited since the last write-back, by page number: sealed and written once each
    /// by the next sync round (`write_back` from `take_dirty`), however many slot writes
    /// touched them meanwhile.
    pending: std::collections::BTreeMap<u64, Box<[u8]>>,
}

impl Enc {
    /// The newest plaintext of logical page `p` (taken out of the cache, or read and
    /// decrypted from its newest copy; zeros if never written).
    fn take_page(&mut self, file: &File, path: &Path, p: u64) -> Result<Box<[u8]>> {
        if let Some(plain) = self.pending.remove(&p) {
            return Ok(plain);
        }
        if let Some(i) = self.cache.iter().position(|c| c.page == p) {
            return Ok(self.cache.swap_remove(i).plain);
        }
        let mut plain = vec![0u8; PAGE].into_boxed_slice();
        let copies = &self.copies[p as usize];
        let Some(c) = (0..COPIES)
            .filter(|&c| copies[c].seq != 0)
            .max_by_key(|&c| copies[c].seq)
        else {
            return Ok(plain);
        };
        let phys = COPIES as u64 * p + c as u64;
        file.read_exact_at(&mut plain, phys * PAGE as u64)
            .map_err(|e| Error::io(path, e))?;
        let mut entry = [0u8; ENTRY];
        self.tag
            .read_exact_at(&mut entry, TAG_HEADER as u64 + phys * ENTRY as u64)
            .map_err(|e| Error::io(&self.tag_path, e))?;
        match self.cipher.open_page(p, Role::Data, &mut plain, &entry) {
            Ok(_) => Ok(plain),
            Err(_) => Err(Error::Tampered {
                file: path.to_path_buf(),
                page: phys,
            }),
        }
    }

    /// Seals `plain` as the new version of logical page `p`, writes it and its entry to the
    /// copy `choose_copy` picks, and keeps the plaintext in the cache. On an error the page
    /// leaves the cache (the next write reads its newest intact copy).
    fn put_page(&mut self, file: &File, path: &Path, p: u64, plain: Box<[u8]>) -> Result<()> {
        let c = choose_copy(&self.copies[p as usize], self.takes, self.completed);
        self.seq += 1;
        let seq = self.seq;
        self.seal.copy_from_slice(&plain);
        let entry = self
            .cipher
            .seal(p, seq, PAGE as u32, Role::Data, &mut self.seal)?;
        let phys = COPIES as u64 * p + c as u64;
        // Until both writes are done the copy holds nothing (a torn page fails its tag).
        self.copies[p as usize][c] = CopyState::default();
        file.write_all_at(&self.seal, phys * PAGE as u64)
            .map_err(|e| Error::io(path, e))?;
        self.tag
            .write_all_at(&entry, TAG_HEADER as u64 + phys * ENTRY as u64)
            .map_err(|e| Error::io(&self.tag_path, e))?;
        self.copies[p as usize][c] = CopyState {
            seq,
            round: self.takes + 1,
        };
        self.clock += 1;
        if self.cache.len() >= CACHE_PAGES
            && let Some(i) = (0..self.cache.len()).min_by_key(|&i| self.cache[i].used)
        {
            self.cache.swap_remove(i);
        }
        self.cache.push(CachedPage {
            page: p,
            used: self.clock,
            plain,
        });
        Ok(())
    }

    /// Applies `edits` (logical offset, bytes; sorted by offset, all of one length), reading,
    /// sealing and writing each page they touch once.
    fn edit(&mut self, file: &File, path: &Path, edits: &[(u64, &[u8])]) -> Result<()> {
        let page = PAGE as u64;
        let mut lo = 0;
        let mut next = 0u64;
        while lo < edits.len() {
            let (off, b) = edits[lo];
            let end = off + b.len() as u64;
            if b.is_empty() || end <= next {
                lo += 1;
                continue;
            }
            let p = (off / page).max(next / page);
            let (ps, pe) = (p * page, (p + 1) * page);
            let mut plain = self.take_page(file, path, p)?;
            for &(o, bytes) in &edits[lo..] {
                if o >= pe {
                    break;
                }
                let e = o + bytes.len() as u64;
                let (s, t) = (o.max(ps), e.min(pe));
                if s < t {
                    plain[(s - ps) as usize..(t - ps) as usize]
                        .copy_from_slice(&bytes[(s - o) as usize..(t - o) as usize]);
                }
            }
            self.pending.insert(p, plain);
            next = pe;
        }
        if self.pending.len() > MAX_PENDING_PAGES {
            // A burst touching more pages than a round should carry: write them now (each
            // still goes to a copy no round holds; the next round takes it).
            self.write_back(file, path)?;
        }
        Ok(())
    }

    /// Seals and writes every pending page (once each) to its next copy.
    fn write_back(&mut self, file: &File, path: &Path) -> Result<()> {
        while let Some((p, plain)) = self.pending.pop_first() {
            self.put_page(file, path, p, plain)?;
        }
        Ok(())
    }
}

/// The copy a page was recovered from and its sequence number; None if none authenticated.
type Won = Option<(usize, u64)>;

/// Reads and authenticates the copies of logical page `p` (their entries in `entries`,
/// `COPIES * ENTRY` bytes), newest first; returns the plaintext of the newest copy that
/// authenticates and (copy, seq), or zeros and None if no copy was written or none
/// authenticates (logged as an error: the page's slots are lost).
fn recover_page(
    cipher: &FileCipher,
    file: &File,
    path: &Path,
    p: u64,
    entries: &[u8],
    logger: &slog::Logger,
) -> Result<(Box<[u8]>, Won)> {
    let mut cands: Vec<(u64, usize)> = (0..COPIES)
        .filter_map(|c| {
            let e = &entries[c * ENTRY..(c + 1) * ENTRY];
            e.iter().any(|&b| b != 0).then(|| {
                (
                    u64::from_le_bytes(e[28..36].try_into().unwrap_or_default()),
                    c,
                )
            })
        })
        .collect();
    cands.sort_unstable_by(|a, b| b.cmp(a));
    let mut plain = vec![0u8; PAGE].into_boxed_slice();
    let mut failed = Vec::new();
    for &(_, c) in &cands {
        let phys = COPIES as u64 * p + c as u64;
        let read = match file.read_exact_at(&mut plain, phys * PAGE as u64) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
            Err(e) => return Err(Error::io(path, e)),
        };
        let e = &entries[c * ENTRY..(c + 1) * ENTRY];
        if read && let Ok(info) = cipher.open_page(p, Role::Data, &mut plain, e) {
            if !failed.is_empty() {
                slog::warn!(logger, "encrypted page copy failed authentication; an older copy of the page is used (a write torn by a crash, or damage: then the page's writes after that copy are lost)";
                    "file" => %path.display(), "page" => p, "failed_copies" => ?failed,
                    "used_copy" => c, "used_seq" => info.seq);
            }
            return Ok((plain, Some((c, info.seq))));
        }
        failed.push(c);
    }
    if !cands.is_empty() {
        slog::error!(logger, "{}", format!("encrypted page {p} of {} failed authentication (damaged or tampered): its slots are lost", path.display());
            "file" => %path.display(), "page" => p, "copies" => cands.len());
        plain.fill(0);
    }
    Ok((plain, None))
}

/// Slot files written since the last sync round (each taken once: a write after this sets
/// its flag again, for the next round). The round calls this after reading the GSN it will
/// publish: taking each slot file's lock waits out a slot write in progress, whose GSN may
/// be at or below that one.
pub(crate) fn dirty_files(inner: &Inner) -> Result<Vec<(PathBuf, Arc<File>)>> {
    let mut out = Vec::new();
    each_slot_file(inner, |f| f.take_dirty(&mut out))?;
    Ok(out)
}

/// A round without fdatasync (`appendfsync no`): every encrypted slot file writes its edited
/// pages to the OS (to copies no round has taken; the next fdatasync round takes them), so a
/// process crash loses no more than with plain slot files written at once. (Pending pages
/// came from edits, which marked the file dirty already.)
pub(crate) fn write_back_all(inner: &Inner) -> Result<()> {
    each_slot_file(inner, |f| match &mut f.enc {
        Some(enc) => enc.write_back(&f.file, &f.path),
        None => Ok(()),
    })
}

/// Called by the sync round after it published `durable`.
pub(crate) fn after_sync(inner: &Inner, durable: u64) {
    let round = inner.syncs.load(Ordering::Relaxed);
    if let Err(e) = each_slot_file(inner, |f| f.after_sync(durable, round)) {
        let _ = inner.fail(format!("freeing slots failed: {e}"));
    }
}

/// Takes the next growth step of every slot file that is three quarters full, extending and
/// fsyncing the files without holding the slot file's lock (so no writer waits for that
/// fsync), then makes the new slots usable under the lock. Called by the maintenance thread.
pub(crate) fn grow_ahead(inner: &Inner) -> Result<()> {
    for t in inner.consts.iter().flatten() {
        for shard in t.fixed().iter().flatten() {
            grow_one_ahead(shard)?;
        }
    }
    Ok(())
}

/// `grow_ahead` of one slot file.
fn grow_one_ahead(shard: &parking_lot::Mutex<FixedShard>) -> Result<()> {
    let plan = {
        let f = shard.lock();
        if !f.wants_growth() {
            return Ok(());
        }
        f.grow_plan()
    };
    plan.extend()?;
    shard.lock().publish(plan.nslots);
    Ok(())
}

impl GrowPlan {
    fn extend(&self) -> Result<()> {
        let tag = self.tag.as_ref().map(|(f, p)| (&**f, p.as_path()));
        extend_durably(&self.growth, &self.file, &self.path, tag, self.want)
    }
}

/// The lengths of a slot file of `nslots` slots (and of its tag file, when encrypted).
fn lengths_of(nslots: u64, slot_size: usize, encrypted: bool) -> Lengths {
    if !encrypted {
        return Lengths {
            file: SLOT_FILE_HEADER as u64 + nslots * slot_size as u64,
            tag: 0,
        };
    }
    let pages = logical_pages(nslots, slot_size);
    Lengths {
        file: pages * (COPIES * PAGE) as u64,
        tag: TAG_HEADER as u64 + pages * (COPIES * ENTRY) as u64,
    }
}

/// Runs `f` on every slot file of every FixedStore ConstTree, each under its own lock, in
/// order; stops at the first error.
fn each_slot_file(inner: &Inner, mut f: impl FnMut(&mut FixedShard) -> Result<()>) -> Result<()> {
    for t in inner.consts.iter().flatten() {
        for shard in t.fixed().iter().flatten() {
            f(&mut shard.lock())?;
        }
    }
    Ok(())
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

/// The integration tests' log capture, shared.
#[cfg(test)]
#[path = "../tests/common/capture.rs"]
mod test_capture;

/// Encrypted slot files, driven directly (the engine's round is simulated: `take` is its
/// `dirty_files` and fdatasync, `complete` its `after_sync`).
#[cfg(test)]
mod enc_tests {
    /// Under valgrind (ci/valgrind sets RESPITE_TEST_SCALE=small) the loops shrink.
    fn small_scale() -> bool {
        std::env::var("RESPITE_TEST_SCALE").as_deref() == Ok("small")
    }

    use super::*;

    use super::test_capture as capture;

    const DB: usize = 1;
    const VSIZE: usize = 8;
    const MAXKEY: usize = 64;
    /// slot_size(64, 8).
    const SS: u64 = 104;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes([b; 32])
    }

    fn quiet() -> slog::Logger {
        slog::Logger::root(slog::Discard, slog::o!())
    }

    /// A FixedShard with the bookkeeping the ConstTree and the sync round do around it.
    struct H {
        fs: FixedShard,
        gsn: AtomicU64,
        slots: HashMap<Vec<u8>, u64>,
        round: u64,
        target: u64,
    }

    impl H {
        fn open(dir: &Path, k: Option<&MasterKey>, logger: &slog::Logger) -> Result<H> {
            let (fs, live, max_gsn) = FixedShard::open(dir, DB, 0, VSIZE, MAXKEY, k, logger)?;
            Ok(H {
                fs,
                gsn: AtomicU64::new(max_gsn),
                slots: live.into_iter().map(|r| (r.key.to_vec(), r.slot)).collect(),
                round: 0,
                target: 0,
            })
        }

        fn set(&mut self, k: &[u8], v: &[u8]) {
            let (slot, gsn) = self.fs.write(&self.gsn, 0, 0, k, v).unwrap();
            if let Some(old) = self.slots.insert(k.to_vec(), slot) {
                self.fs.free_after(gsn, old);
            }
        }

        fn del(&mut self, k: &[u8]) {
            let old = self.slots.remove(k).unwrap();
            let (tomb, gsn) = self.fs.write(&self.gsn, 0, FLAG_TOMBSTONE, k, &[]).unwrap();
            self.fs.free_after(gsn, old);
            self.fs.tomb_after(gsn, tomb);
        }

        /// The round's first half: read the target, take the dirty files, fdatasync them.
        fn take(&mut self) -> usize {
            self.target = self.gsn.load(Ordering::SeqCst);
            let mut out = Vec::new();
            self.fs.take_dirty(&mut out).unwrap();
            for (_, f) in &out {
                f.sync_data().unwrap();
            }
            out.len()
        }

        fn complete(&mut self) {
            self.round += 1;
            self.fs.after_sync(self.target, self.round).unwrap();
        }

        fn sync(&mut self) {
            self.take();
            self.complete();
        }
    }

    /// What a reopened file holds: key -> value.
    fn contents(
        dir: &Path,
        k: Option<&MasterKey>,
        logger: &slog::Logger,
    ) -> HashMap<Vec<u8>, Vec<u8>> {
        let (_, live, _) = FixedShard::open(dir, DB, 0, VSIZE, MAXKEY, k, logger).unwrap();
        live.into_iter()
            .map(|r| (r.key.to_vec(), r.value.to_vec()))
            .collect()
    }

    fn val(i: u64, g: u64) -> Vec<u8> {
        format!("Q{g:02}{i:05}").into_bytes()
    }

    fn data_path(dir: &Path) -> PathBuf {
        slot_path(dir, DB, 0)
    }

    /// Sequence number of copy `c` of logical page `p` in a tag file's bytes (0: unwritten).
    fn seq_of(tag: &[u8], p: u64, c: usize) -> u64 {
        let at = TAG_HEADER + (COPIES * p as usize + c) * ENTRY;
        let e = &tag[at..at + ENTRY];
        if e.iter().all(|&b| b == 0) {
            0
        } else {
            u64::from_le_bytes(e[28..36].try_into().unwrap())
        }
    }

    fn flip(path: &Path, at: u64) {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 0x10;
        f.write_all_at(&b, at).unwrap();
    }

    /// The copy-choice rule over random (write, take, complete) events, against a model that
    /// keeps the history of writes: a write never lands on the copy holding the newest durable
    /// version, nor on a copy whose write a round has taken but not completed.
    #[test]
    fn copy_choice_never_hits_the_durable_or_in_flight_copy() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut copies = [CopyState::default(); COPIES];
        // (copy, takes when written), in write order.
        let mut history: Vec<(usize, u64)> = vec![(0, 0)];
        copies[0] = CopyState { seq: 1, round: 0 };
        let (mut takes, mut completed, mut seq) = (1u64, 1u64, 1u64);
        let (mut in_place, mut checked) = (0, 0);
        // A tenth under valgrind (ci/valgrind sets RESPITE_TEST_SCALE=small).
        let events = if small_scale() { 10_000 } else { 100_000 };
        for _ in 0..events {
            match next() % 6 {
                0 if takes == completed => takes += 1,
                1 if takes > completed => completed += 1,
                _ => {
                    let c = choose_copy(&copies, takes, completed);
                    // The model: the newest write a completed round covers, and the writes a
                    // round has taken but not completed.
                    let durable = history.iter().rev().find(|&&(_, t)| t < completed);
                    if let Some(&(d, _)) = durable {
                        assert_ne!(c, d, "wrote over the durable newest copy");
                    }
                    for &(f, t) in history.iter().rev().take_while(|&&(_, t)| t >= completed) {
                        if t < takes {
                            assert_ne!(c, f, "wrote over a copy in flight");
                        }
                    }
                    if history.last().is_some_and(|&(l, t)| l == c && t == takes) {
                        in_place += 1;
                    }
                    seq += 1;
                    copies[c] = CopyState {
                        seq,
                        round: takes + 1,
                    };
                    history.push((c, takes));
                    checked += 1;
                }
            }
        }
        assert!(checked > events / 2);
        assert!(
            in_place > events / 100,
            "an untaken newest copy is overwritten in place"
        );
    }

    #[test]
    fn growth_sequence_inverts_from_the_page_count() {
        for ss in [40usize, 104, 200, 5000] {
            let mut s = 0;
            for _ in 0..40 {
                let pages = logical_pages(s, ss);
                assert_eq!(slots_for_pages(pages, ss), (s, true), "slot size {ss}");
                let n = next_growth(s);
                assert!(logical_pages(n, ss) >= pages + 2);
                // A page count between two steps is not on the sequence.
                assert_eq!(slots_for_pages(pages + 1, ss), (n, false));
                s = n;
            }
        }
    }

    /// The maintenance thread's step ahead of need: once a file is three quarters full it
    /// grows without the writer, which then writes past the old end without a step of its
    /// own; the new length is on the growth sequence, so a restart keeps every slot.
    #[test]
    fn growth_ahead_of_need_spares_the_writer() {
        for k in [None, Some(key(9))] {
            let dir = tempfile::tempdir().unwrap();
            let (fs, _, _) =
                FixedShard::open(dir.path(), DB, 0, VSIZE, MAXKEY, k.as_ref(), &quiet()).unwrap();
            let shard = parking_lot::Mutex::new(fs);
            let gsn = AtomicU64::new(0);
            let set = |i: u64| {
                let key = format!("key{i}");
                shard
                    .lock()
                    .write(&gsn, 0, 0, key.as_bytes(), &val(i, 0))
                    .unwrap();
            };
            set(0); // a file with no slots grows on its first write
            assert_eq!(shard.lock().usage(), (1, GROW_MIN_SLOTS));
            grow_one_ahead(&shard).unwrap();
            assert_eq!(
                shard.lock().usage().1,
                GROW_MIN_SLOTS,
                "grew while mostly empty"
            );
            let mut i = 1;
            while !shard.lock().wants_growth() && i < GROW_MIN_SLOTS {
                set(i);
                i += 1;
            }
            assert_eq!(i, GROW_MIN_SLOTS * 3 / 4);
            grow_one_ahead(&shard).unwrap();
            let n = next_growth(GROW_MIN_SLOTS);
            assert_eq!(shard.lock().usage(), (i, n));
            while i < GROW_MIN_SLOTS + 10 {
                set(i);
                i += 1;
            }
            let mut fs = shard.into_inner();
            let mut taken = Vec::new();
            fs.take_dirty(&mut taken).unwrap(); // an encrypted file writes its pages back
            assert_eq!(fs.usage(), (i, n));
            assert_eq!(fs.steps_in_write, 1, "a writer waited for a growth step");
            let want = lengths_of(n, SS as usize, k.is_some());
            assert_eq!(
                std::fs::metadata(data_path(dir.path())).unwrap().len(),
                want.file
            );
            drop(fs);
            let got = contents(dir.path(), k.as_ref(), &quiet());
            assert_eq!(got.len() as u64, i);
            for j in 0..i {
                assert_eq!(got[format!("key{j}").as_bytes()], val(j, 0));
            }
        }
    }

    /// A step planned ahead of need, overtaken by writers that grew the file twice
    /// themselves, neither shortens the file nor moves its slot count back.
    #[test]
    fn an_overtaken_step_ahead_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut fs, _, _) =
            FixedShard::open(dir.path(), DB, 0, VSIZE, MAXKEY, None, &quiet()).unwrap();
        let gsn = AtomicU64::new(0);
        let mut i = 0;
        let mut fill = |fs: &mut FixedShard, to: u64| {
            while fs.usage().0 < to {
                let key = format!("key{i}");
                fs.write(&gsn, 0, 0, key.as_bytes(), &val(i, 0)).unwrap();
                i += 1;
            }
        };
        fill(&mut fs, 200);
        let stale = fs.grow_plan();
        let n2 = next_growth(next_growth(GROW_MIN_SLOTS));
        fill(&mut fs, next_growth(GROW_MIN_SLOTS) + 1);
        assert_eq!((fs.usage().1, fs.steps_in_write), (n2, 3));
        stale.extend().unwrap();
        fs.publish(stale.nslots);
        assert_eq!(fs.usage().1, n2);
        assert_eq!(
            std::fs::metadata(data_path(dir.path())).unwrap().len(),
            lengths_of(n2, SS as usize, false).file
        );
    }

    #[test]
    fn round_trip_with_restarts_and_growth() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(1);
        let mut want = HashMap::new();
        // Half under valgrind (RESPITE_TEST_SCALE=small): still past a growth step each time.
        let n = if small_scale() { 150 } else { 300 };
        for g in 0..4u64 {
            let mut h = H::open(dir.path(), Some(&k), &quiet()).unwrap();
            assert_eq!(h.slots.len(), want.len(), "generation {g}");
            for i in 0..n * (g + 1) {
                h.set(format!("key{i}").as_bytes(), &val(i, g));
                want.insert(format!("key{i}").into_bytes(), val(i, g));
                if i % 97 == 0 {
                    h.sync();
                }
            }
            if g == 2 {
                for i in (0..n).step_by(3) {
                    h.del(format!("key{i}").as_bytes());
                    want.remove(format!("key{i}").as_bytes());
                }
            }
            h.sync();
            let (_, nslots) = h.fs.usage();
            let pages = logical_pages(nslots, SS as usize);
            assert_eq!(
                std::fs::metadata(data_path(dir.path())).unwrap().len(),
                pages * 3 * PAGE as u64,
                "physical length: three copies per logical page"
            );
            drop(h);
            assert_eq!(contents(dir.path(), Some(&k), &quiet()), want);
        }
        assert!(want.len() as u64 > 3 * n);
    }

    #[test]
    fn many_updates_with_rounds_and_restarts_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(2);
        let mut want = HashMap::new();
        let (restarts, rounds) = if small_scale() { (2, 6) } else { (4, 12) };
        for restart in 0..restarts {
            let mut h = H::open(dir.path(), Some(&k), &quiet()).unwrap();
            for round in 0..rounds {
                for i in 0..64 {
                    let v = val(i, restart * 12 + round);
                    h.set(format!("k{i}").as_bytes(), &v);
                    want.insert(format!("k{i}").into_bytes(), v);
                }
                h.sync();
            }
            drop(h);
            let log = capture::Capture::default();
            assert_eq!(contents(dir.path(), Some(&k), &log.logger()), want);
            assert!(log.loud().is_empty(), "{:?}", log.loud());
        }
    }

    #[test]
    fn no_plaintext_value_reaches_the_disk() {
        let values: Vec<Vec<u8>> = (0..300u64)
            .map(|i| format!("ZQ{i:04}XY").into_bytes())
            .collect();
        let found = |dir: &Path| -> usize {
            let mut all = std::fs::read(data_path(dir)).unwrap();
            if let Ok(t) = std::fs::read(tag_path(&data_path(dir))) {
                all.extend_from_slice(&t);
            }
            values
                .iter()
                .filter(|v| all.windows(8).any(|w| w == &v[..]))
                .count()
        };
        for k in [None, Some(key(3))] {
            let dir = tempfile::tempdir().unwrap();
            let mut h = H::open(dir.path(), k.as_ref(), &quiet()).unwrap();
            for (i, v) in values.iter().enumerate() {
                h.set(format!("key{}", i % 200).as_bytes(), v);
                if i % 50 == 0 {
                    h.sync();
                }
            }
            h.sync();
            drop(h);
            match k {
                // The search works: plain files hold the (live and old) values.
                None => assert!(found(dir.path()) >= 200),
                Some(_) => assert_eq!(found(dir.path()), 0, "a plaintext value on disk"),
            }
        }
    }

    /// Two versions of page 0 (one key, then two), each made durable. A flipped bit in the
    /// older copy costs nothing (the newest authenticates). A flipped bit in the newest copy
    /// (a torn write, or damage) falls back to the older authentic version, said in the log:
    /// the key written after it is gone, the other is intact.
    #[test]
    fn flipped_bit_in_one_copy() {
        for newest in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let k = key(4);
            let mut h = H::open(dir.path(), Some(&k), &quiet()).unwrap();
            h.set(b"k0", b"value-00");
            h.sync();
            h.set(b"k1", b"value-01");
            h.sync();
            assert_eq!((h.slots[&b"k0"[..]], h.slots[&b"k1"[..]]), (0, 1));
            drop(h);
            let tag = std::fs::read(tag_path(&data_path(dir.path()))).unwrap();
            let mut by_seq: Vec<(u64, usize)> =
                (0..COPIES).map(|c| (seq_of(&tag, 0, c), c)).collect();
            by_seq.sort_unstable();
            // Newest and the one before it (the first is the header page written at creation).
            let c = if newest { by_seq[2].1 } else { by_seq[1].1 };
            flip(&data_path(dir.path()), c as u64 * PAGE as u64 + 200);
            let log = capture::Capture::default();
            let got = contents(dir.path(), Some(&k), &log.logger());
            if newest {
                assert_eq!(got.len(), 1, "the older copy holds k0 only");
                assert_eq!(got[&b"k0"[..]], b"value-00");
                let loud = log.loud();
                assert_eq!(loud.len(), 1, "{loud:?}");
                assert!(loud[0].contains("failed authentication") && loud[0].contains("page=0"));
                assert!(loud[0].contains(&data_path(dir.path()).display().to_string()));
            } else {
                assert_eq!(got.len(), 2);
                assert_eq!(got[&b"k1"[..]], b"value-01");
                assert!(log.loud().is_empty(), "{:?}", log.loud());
            }
        }
    }

    /// Every copy of page 1 damaged: the error names the page and the file, its slots are
    /// lost (freed), every other page's keys are intact, and the file goes on working.
    #[test]
    fn a_page_with_no_authentic_copy_is_reported_and_its_slots_lost() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(5);
        let mut h = H::open(dir.path(), Some(&k), &quiet()).unwrap();
        for i in 0..120u64 {
            h.set(format!("key{i}").as_bytes(), &val(i, 1));
        }
        h.sync();
        let slots = h.slots.clone();
        drop(h);
        for c in 0..COPIES as u64 {
            flip(&data_path(dir.path()), (3 + c) * PAGE as u64 + 7);
        }
        let log = capture::Capture::default();
        let got = contents(dir.path(), Some(&k), &log.logger());
        let in_page_1 = |slot: u64| {
            let (s, e) = (32 + slot * SS, 32 + (slot + 1) * SS);
            s < 2 * PAGE as u64 && e > PAGE as u64
        };
        let lost: Vec<_> = slots.iter().filter(|&(_, &s)| in_page_1(s)).collect();
        assert_eq!(lost.len(), 40, "slots 39..=78 touch page 1");
        for (key, &slot) in &slots {
            assert_eq!(got.contains_key(key), !in_page_1(slot), "slot {slot}");
        }
        let want = format!(
            "encrypted page 1 of {} failed authentication",
            data_path(dir.path()).display()
        );
        assert!(
            log.loud()
                .iter()
                .any(|l| l.starts_with("ERRO") && l.contains(&want)),
            "{:?}",
            log.loud()
        );
        // The lost slots are free again; a write to the page and a restart work.
        let mut h = H::open(dir.path(), Some(&k), &quiet()).unwrap();
        h.set(b"again", b"12345678");
        h.sync();
        drop(h);
        let log = capture::Capture::default();
        let got2 = contents(dir.path(), Some(&k), &log.logger());
        assert_eq!(got2.len(), got.len() + 1);
        assert!(log.loud().is_empty(), "{:?}", log.loud());
    }

    /// FLUSHDB on an encrypted file: every used slot's header zeroed (each page sealed once),
    /// durable after the next round; a restart finds nothing, and new keys work.
    #[test]
    fn zero_all_then_restart_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(10);
        let mut h = H::open(dir.path(), Some(&k), &quiet()).unwrap();
        for i in 0..500u64 {
            h.set(format!("key{i}").as_bytes(), &val(i, 1));
        }
        h.sync();
        h.fs.zero_all().unwrap();
        h.slots.clear();
        h.sync();
        h.set(b"after", b"12345678");
        h.sync();
        drop(h);
        let got = contents(dir.path(), Some(&k), &quiet());
        assert_eq!(got.len(), 1, "only the key written after the flush");
        assert_eq!(got[&b"after"[..]], b"12345678");
    }

    /// A data file cut to a length off the growth sequence (a torn copy of the folder): a
    /// warning, the length put back, the keys in the pages before the cut intact.
    #[test]
    fn a_cut_file_is_put_back_on_the_growth_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(9);
        let mut h = H::open(dir.path(), Some(&k), &quiet()).unwrap();
        for i in 0..200u64 {
            h.set(format!("key{i}").as_bytes(), &val(i, 1));
        }
        h.sync();
        let slots = h.slots.clone();
        drop(h);
        let path = data_path(dir.path());
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, logical_pages(256, SS as usize) * 3 * PAGE as u64);
        // Cut into the first copy of the second-last logical page: the last two are lost.
        let cut = len - 6 * PAGE as u64 + 100;
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let log = capture::Capture::default();
        let got = contents(dir.path(), Some(&k), &log.logger());
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            len,
            "length put back"
        );
        assert!(
            log.loud().iter().any(|l| l.contains("slot file truncated")),
            "{:?}",
            log.loud()
        );
        let first_lost_page = len / (3 * PAGE as u64) - 2;
        for (key, &slot) in &slots {
            let end = 32 + (slot + 1) * SS;
            if end <= first_lost_page * PAGE as u64 {
                assert!(got.contains_key(key), "slot {slot} was before the cut");
            }
        }
        assert!(got.len() >= 150, "{}", got.len());
    }

    #[test]
    fn wrong_key_names_the_tag_file_and_plain_and_encrypted_never_mix() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = H::open(dir.path(), Some(&key(6)), &quiet()).unwrap();
        h.set(b"k", b"12345678");
        h.sync();
        drop(h);
        let err = H::open(dir.path(), Some(&key(7)), &quiet()).err().unwrap();
        assert!(
            matches!(&err, Error::WrongKey { file } if *file == tag_path(&data_path(dir.path()))),
            "{err}"
        );
        let err = H::open(dir.path(), None, &quiet()).err().unwrap();
        assert!(err.to_string().contains("no encryption key"), "{err}");

        let plain = tempfile::tempdir().unwrap();
        let mut h = H::open(plain.path(), None, &quiet()).unwrap();
        h.set(b"k", b"12345678");
        h.sync();
        drop(h);
        let before = std::fs::read(data_path(plain.path())).unwrap();
        let err = H::open(plain.path(), Some(&key(6)), &quiet())
            .err()
            .unwrap();
        assert!(err.to_string().contains("not encrypted"), "{err}");
        assert_eq!(
            std::fs::read(data_path(plain.path())).unwrap(),
            before,
            "never wiped"
        );
        assert_eq!(contents(plain.path(), None, &quiet()).len(), 1);
    }

    /// Slot writes between two rounds edit pages in memory; the round seals and writes each
    /// page it touched once, however many writes touched it.
    #[test]
    fn a_round_seals_each_touched_page_once() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(9);
        let mut h = H::open(dir.path(), Some(&k), &quiet()).unwrap();
        h.sync();
        let seq = |h: &H| h.fs.enc.as_ref().unwrap().seq;
        let before = seq(&h);
        // 60 new keys: consecutive free slots, a handful of pages.
        for i in 0..60u64 {
            h.set(format!("key{i}").as_bytes(), &val(i, 1));
        }
        assert_eq!(seq(&h), before, "nothing sealed before the round");
        h.sync();
        let sealed = seq(&h) - before;
        let pages = (60 * SS).div_ceil(PAGE as u64) + 1;
        assert!(
            (1..=pages).contains(&sealed),
            "60 slot writes sealed {sealed} pages (at most {pages} touched)"
        );
        drop(h);
        assert_eq!(contents(dir.path(), Some(&k), &quiet()).len(), 60);
    }

    /// Crash images. The files are copied while writes are in the page cache; in the copy,
    /// every page copy written since a point is torn (its data garbage, or its entry put
    /// back as it was: a write cut between page and entry). What was durable at that point
    /// must all be there:
    /// - the point is a completed round: the image holds exactly what that round made
    ///   durable;
    /// - the point is a round's take (its fdatasync done, a crash before it completed): the
    ///   image holds what that round took, though later writes went on meanwhile.
    #[test]
    fn crash_images_keep_every_durable_value() {
        for at_take in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let k = key(8);
            let mut h = H::open(dir.path(), Some(&k), &quiet()).unwrap();
            let mut want = HashMap::new();
            let put = |h: &mut H, want: &mut HashMap<Vec<u8>, Vec<u8>>, i: u64, g: u64| {
                h.set(format!("key{i}").as_bytes(), &val(i, g));
                want.insert(format!("key{i}").into_bytes(), val(i, g));
            };
            for i in 0..150 {
                put(&mut h, &mut want, i, 1);
            }
            h.sync();
            for i in (0..150).step_by(2) {
                put(&mut h, &mut want, i, 2);
            }
            h.sync();
            if at_take {
                // More writes, then a round takes them (in flight).
                for i in (0..150).step_by(3) {
                    put(&mut h, &mut want, i, 3);
                }
                h.take();
            }
            let durable = want.clone();
            let tpath = tag_path(&data_path(dir.path()));
            let tag0 = std::fs::read(&tpath).unwrap();
            // Writes after the point: the round's after_sync zeroing included, if in flight
            // not yet; updates of every key, new keys.
            for i in 0..200 {
                put(&mut h, &mut want, i, 4);
            }
            for i in (0..200).step_by(5) {
                put(&mut h, &mut want, i, 5);
            }
            // Those writes wait in memory for the next round; write them out now, as a burst
            // past MAX_PENDING_PAGES does, possibly while a round is in flight.
            let fs = &mut h.fs;
            let enc = fs.enc.as_mut().unwrap();
            enc.write_back(&fs.file, &fs.path).unwrap();
            let img = tempfile::tempdir().unwrap();
            let dpath = data_path(dir.path());
            std::fs::copy(&dpath, data_path(img.path())).unwrap();
            std::fs::copy(&tpath, tag_path(&data_path(img.path()))).unwrap();
            drop(h);
            let mut tag = std::fs::read(tag_path(&data_path(img.path()))).unwrap();
            let data = OpenOptions::new()
                .write(true)
                .open(data_path(img.path()))
                .unwrap();
            let n = (tag.len() - TAG_HEADER) / ENTRY;
            let mut torn = 0;
            for i in 0..n {
                let at = TAG_HEADER + i * ENTRY;
                let old = tag0
                    .get(at..at + ENTRY)
                    .unwrap_or(&[0u8; ENTRY][..])
                    .to_vec();
                if tag[at..at + ENTRY] == old[..] {
                    continue;
                }
                torn += 1;
                if torn % 2 == 0 {
                    data.write_all_at(&[0xA5u8; PAGE / 2], (i * PAGE + PAGE / 4) as u64)
                        .unwrap();
                } else {
                    tag[at..at + ENTRY].copy_from_slice(&old);
                }
            }
            std::fs::write(tag_path(&data_path(img.path())), &tag).unwrap();
            assert!(
                torn >= 4,
                "the later writes touched several page copies ({torn})"
            );
            let got = contents(img.path(), Some(&k), &quiet());
            let wrong: Vec<_> = durable
                .iter()
                .filter(|&(key, v)| got.get(key) != Some(v))
                .map(|(key, _)| String::from_utf8_lossy(key).into_owned())
                .collect();
            assert!(
                wrong.is_empty() && got.len() == durable.len(),
                "at_take {at_take}: {} durable keys lost or rolled back, e.g. {:?}",
                wrong.len(),
                &wrong[..wrong.len().min(5)]
            );
            // And the live files hold everything.
            assert_eq!(contents(dir.path(), Some(&k), &quiet()), want);
        }
    }
}
