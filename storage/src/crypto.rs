//! Encryption at rest: AES-256-GCM over 4096-byte pages. The only module that sees keys.
//!
//! Every encrypted file (a log, a hint file, a slot file) has a tag file beside it
//! (`<name>.tag`): a header naming the file's random salt and a key check, then one entry per
//! page (or page copy) holding the nonce, the GCM tag, a write sequence number and the page's
//! meaningful length. The scheme, and why no nonce is ever used twice under one key, is in
//! docs/encryption.md; in short:
//!
//! - Per-file keys: `K_file = AES_M(salt ‖ 1) ‖ AES_M(salt ‖ 2)` where `M` is the master key
//!   and `salt` is 15 random bytes drawn when the file is created (a counter-mode KDF with AES
//!   as the PRF). A key check `AES_M(salt ‖ 3)` in the header tells a wrong master key apart
//!   from a damaged page at once.
//! - Nonces: 8 random bytes drawn each time a file is opened for writing in a process (and
//!   again every 2^32 pages), then a 32-bit counter. Within one opening, the counter never
//!   repeats; two openings (a restart, or two copies of a data folder that diverge) draw
//!   independent prefixes.
//! - The associated data binds each ciphertext to its page number, sequence number, length
//!   and role (a data page or a journal copy of a log's tail page), so a page cannot be moved
//!   to another place in its file, and a file's pages cannot be read under another file's key.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::AeadInOut;
use aes_gcm::aes::Aes256;
use aes_gcm::aes::cipher::BlockCipherEncrypt;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};

use crate::error::{Error, Result};

/// Bytes in a page: the unit of encryption.
pub const PAGE: usize = 4096;
/// Bytes in one tag-file entry: nonce (12), GCM tag (16), sequence number (8), length (4).
pub const ENTRY: usize = 40;
/// Bytes in a tag file's header.
pub const TAG_HEADER: usize = 64;
/// Tag file magic.
pub const TAG_MAGIC: [u8; 8] = *b"RSPTTAG1";
/// Tag file format version.
pub const TAG_VERSION: u32 = 1;
/// Suffix of a tag file: `0000000001.log` has `0000000001.log.tag`.
pub const TAG_SUFFIX: &str = ".tag";

/// What a page is, bound into its associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// A page at its place in the data file.
    Data = 0,
    /// A copy of a log's partly filled tail page, kept in the tag file's journal.
    Journal = 1,
}

/// The master key (32 bytes). Its `Debug` never shows the key.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 32],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(key: [u8; 32]) -> MasterKey {
        MasterKey { key }
    }

    /// Reads a key file: exactly 32 raw bytes, or 64 hex digits (surrounding whitespace,
    /// such as a trailing newline, is ignored). Anything else is an error naming the file.
    pub fn from_file(path: &Path) -> Result<MasterKey> {
        let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&raw).ok_or_else(|| {
            Error::Config(format!(
                "encryption key file {} must hold exactly 32 bytes or 64 hex digits (it holds {} bytes)",
                path.display(),
                raw.len()
            ))
        })
    }

    fn parse(raw: &[u8]) -> Option<MasterKey> {
        if raw.len() == 32 {
            let mut key = [0u8; 32];
            key.copy_from_slice(raw);
            return Some(MasterKey { key });
        }
        let text = std::str::from_utf8(raw).ok()?.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(MasterKey { key })
    }

    /// `AES_M(salt ‖ i)`: the KDF's PRF.
    fn prf(&self, salt: &[u8; 15], i: u8) -> [u8; 16] {
        let aes = Aes256::new(&self.key.into());
        let mut block = [0u8; 16];
        block[..15].copy_from_slice(salt);
        block[15] = i;
        let mut b = block.into();
        aes.encrypt_block(&mut b);
        b.into()
    }

    fn file_key(&self, salt: &[u8; 15]) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..16].copy_from_slice(&self.prf(salt, 1));
        k[16..].copy_from_slice(&self.prf(salt, 2));
        k
    }

    fn check(&self, salt: &[u8; 15]) -> [u8; 16] {
        self.prf(salt, 3)
    }
}

/// Fills `buf` from the OS's random source.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| {
        Error::io(
            "<random source>",
            std::io::Error::other(format!("getrandom failed: {e}")),
        )
    })
}

/// The nonce source of one opened file: a random 8-byte prefix and a 32-bit counter; a new
/// prefix is drawn when the counter runs out.
struct Nonces {
    prefix: [u8; 8],
    counter: u32,
}

impl Nonces {
    fn new() -> Result<Nonces> {
        let mut prefix = [0u8; 8];
        random_bytes(&mut prefix)?;
        Ok(Nonces { prefix, counter: 0 })
    }

    fn next(&mut self) -> Result<[u8; 12]> {
        if self.counter == u32::MAX {
            *self = Nonces::new()?;
        }
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&self.prefix);
        n[8..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter += 1;
        Ok(n)
    }
}

/// The nonce recorder, a test seam: while on, every `seal` records (file key id, nonce), the
/// key id being the tag header's salt and key check (which name the master key and salt that
/// derive the file key). Off it costs one relaxed load per page sealed.
static RECORDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static RECORDED: parking_lot::Mutex<Vec<([u8; 31], [u8; 12])>> =
    parking_lot::Mutex::new(Vec::new());

/// Test seam: starts (clearing what was recorded) or stops recording every nonce used.
#[doc(hidden)]
pub fn record_nonces(on: bool) {
    let mut r = RECORDED.lock();
    if on {
        r.clear();
    }
    RECORDING.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// Test seam: every (file key id, nonce) sealed while recording, in order.
#[doc(hidden)]
pub fn recorded_nonces() -> Vec<([u8; 31], [u8; 12])> {
    RECORDED.lock().clone()
}

/// What opening a page found wrong.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PageFault {
    /// The entry is all zeros: the page was never written.
    Unwritten,
    /// The entry's length is out of range, or the tag does not match the page: a torn write,
    /// damage or tampering.
    Bad,
}

/// A page's entry, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryInfo {
    /// The write's sequence number (newest copy wins).
    pub seq: u64,
    /// Meaningful bytes at the start of the page (the rest is zeros).
    pub len: u32,
}

/// The cipher of one file, under its per-file key. Shared by readers; sealing takes `&self`
/// too (the nonce source is behind a lock).
pub(crate) struct FileCipher {
    gcm: Aes256Gcm,
    /// Salt and key check: names the file key (for the nonce recorder).
    id: [u8; 31],
    nonces: parking_lot::Mutex<Nonces>,
}

impl fmt::Debug for FileCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileCipher(<redacted>)")
    }
}

fn aad(page: u64, seq: u64, len: u32, role: Role) -> [u8; 21] {
    let mut a = [0u8; 21];
    a[..8].copy_from_slice(&page.to_le_bytes());
    a[8..16].copy_from_slice(&seq.to_le_bytes());
    a[16..20].copy_from_slice(&len.to_le_bytes());
    a[20] = role as u8;
    a
}

impl FileCipher {
    /// A new file: draws its salt; returns the cipher and the tag file's header.
    pub(crate) fn create(master: &MasterKey) -> Result<(FileCipher, [u8; TAG_HEADER])> {
        let mut salt = [0u8; 15];
        random_bytes(&mut salt)?;
        let mut h = [0u8; TAG_HEADER];
        h[0..8].copy_from_slice(&TAG_MAGIC);
        h[8..12].copy_from_slice(&TAG_VERSION.to_le_bytes());
        h[12..27].copy_from_slice(&salt);
        h[28..44].copy_from_slice(&master.check(&salt));
        let crc = crc32fast::hash(&h[..60]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        Ok((Self::with_salt(master, &salt)?, h))
    }

    /// An existing file from its tag file's header. A wrong master key, or a header that is
    /// not a tag file header, is an error naming `path` (the tag file).
    pub(crate) fn open(master: &MasterKey, header: &[u8], path: &Path) -> Result<FileCipher> {
        let salt = Self::check_header(master, header, path)?;
        Self::with_salt(master, &salt)
    }

    /// Checks a tag file header against `master`; returns its salt.
    fn check_header(master: &MasterKey, header: &[u8], path: &Path) -> Result<[u8; 15]> {
        if header.len() < TAG_HEADER
            || header[0..8] != TAG_MAGIC
            || u32::from_le_bytes([header[8], header[9], header[10], header[11]]) != TAG_VERSION
            || crc32fast::hash(&header[..60]).to_le_bytes() != header[60..64]
        {
            return Err(Error::Corrupt {
                file: path.to_path_buf(),
                offset: 0,
                reason: "not a tag file header (bad magic, version or checksum)",
            });
        }
        let mut salt = [0u8; 15];
        salt.copy_from_slice(&header[12..27]);
        if master.check(&salt)[..] != header[28..44] {
            return Err(Error::WrongKey {
                file: path.to_path_buf(),
            });
        }
        Ok(salt)
    }

    fn with_salt(master: &MasterKey, salt: &[u8; 15]) -> Result<FileCipher> {
        let key = master.file_key(salt);
        let mut id = [0u8; 31];
        id[..15].copy_from_slice(salt);
        id[15..].copy_from_slice(&master.check(salt));
        Ok(FileCipher {
            gcm: Aes256Gcm::new(&key.into()),
            id,
            nonces: parking_lot::Mutex::new(Nonces::new()?),
        })
    }

    /// Encrypts `page` (exactly `PAGE` bytes, the first `len` meaningful) in place as page
    /// number `page_no` of this file; returns its tag-file entry.
    pub(crate) fn seal(
        &self,
        page_no: u64,
        seq: u64,
        len: u32,
        role: Role,
        page: &mut [u8],
    ) -> Result<[u8; ENTRY]> {
        debug_assert_eq!(page.len(), PAGE);
        debug_assert!(len as usize <= PAGE);
        let nonce = self.nonces.lock().next()?;
        if RECORDING.load(std::sync::atomic::Ordering::Relaxed) {
            RECORDED.lock().push((self.id, nonce));
        }
        let tag = self
            .gcm
            .encrypt_inout_detached(
                &Nonce::from(nonce),
                &aad(page_no, seq, len, role),
                page.into(),
            )
            .map_err(|_| Error::Config("AES-GCM refused to encrypt a page".into()))?;
        let mut e = [0u8; ENTRY];
        e[0..12].copy_from_slice(&nonce);
        e[12..28].copy_from_slice(&tag);
        e[28..36].copy_from_slice(&seq.to_le_bytes());
        e[36..40].copy_from_slice(&len.to_le_bytes());
        Ok(e)
    }

    /// Decrypts `page` (exactly `PAGE` bytes read from the file) in place, checking it
    /// against its entry. On a fault the page's bytes are unspecified.
    pub(crate) fn open_page(
        &self,
        page_no: u64,
        role: Role,
        page: &mut [u8],
        entry: &[u8],
    ) -> std::result::Result<EntryInfo, PageFault> {
        if entry.len() < ENTRY || page.len() != PAGE {
            return Err(PageFault::Bad);
        }
        if entry[..ENTRY].iter().all(|&b| b == 0) {
            return Err(PageFault::Unwritten);
        }
        let seq = u64::from_le_bytes(entry[28..36].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(entry[36..40].try_into().unwrap_or_default());
        if len as usize > PAGE {
            return Err(PageFault::Bad);
        }
        let (Ok(nonce), Ok(tag)) = (
            Nonce::try_from(&entry[0..12]),
            Tag::try_from(&entry[12..28]),
        ) else {
            return Err(PageFault::Bad);
        };
        self.gcm
            .decrypt_inout_detached(&nonce, &aad(page_no, seq, len, role), page.into(), &tag)
            .map_err(|_| PageFault::Bad)?;
        Ok(EntryInfo { seq, len })
    }
}

/// Path of the tag file of `data`.
pub(crate) fn tag_path(data: &Path) -> std::path::PathBuf {
    let mut s = data.as_os_str().to_owned();
    s.push(TAG_SUFFIX);
    s.into()
}

/// Encrypts a file written once (a hint file) as its plaintext comes, a piece at a time
/// (a hint as it is made), so the whole plaintext is never held at once: whole pages, the
/// tag file beside them, the last page's entry saying how much of it is meaningful. Every
/// piece but the last must be whole pages.
pub(crate) struct Sealer {
    c: FileCipher,
    /// The tag file: header, then one entry per page sealed so far.
    tags: Vec<u8>,
    /// The next page's number.
    page: u64,
}

impl Sealer {
    pub(crate) fn new(master: &MasterKey) -> Result<Sealer> {
        let (c, header) = FileCipher::create(master)?;
        Ok(Sealer {
            c,
            tags: header.to_vec(),
            page: 0,
        })
    }

    /// Seals the next piece of plaintext (whole pages unless it is the last piece) and
    /// returns its pages, the last one padded with zeros.
    pub(crate) fn seal(&mut self, mut data: Vec<u8>) -> Result<Vec<u8>> {
        let plain_len = data.len();
        data.resize(plain_len.div_ceil(PAGE) * PAGE, 0);
        for (i, page) in data.chunks_mut(PAGE).enumerate() {
            let len = (plain_len - i * PAGE).min(PAGE) as u32;
            let entry = self.c.seal(self.page, 0, len, Role::Data, page)?;
            self.tags.extend_from_slice(&entry);
            self.page += 1;
        }
        Ok(data)
    }

    /// The tag file's bytes.
    pub(crate) fn into_tags(self) -> Vec<u8> {
        self.tags
    }
}

/// Decrypts a file written by a `Sealer`. A wrong key, a missing or damaged page, or a
/// length that does not add up is an error naming the file (and page).
pub(crate) fn open_whole(
    master: &MasterKey,
    mut data: Vec<u8>,
    tags: &[u8],
    path: &Path,
) -> Result<Vec<u8>> {
    let c = FileCipher::open(master, tags, &tag_path(path))?;
    if !data.len().is_multiple_of(PAGE) || (tags.len() - TAG_HEADER) != (data.len() / PAGE) * ENTRY
    {
        return Err(Error::Corrupt {
            file: path.to_path_buf(),
            offset: data.len() as u64,
            reason: "encrypted file and its tag file disagree on the page count",
        });
    }
    let mut end = 0;
    for (i, page) in data.chunks_mut(PAGE).enumerate() {
        let e = &tags[TAG_HEADER + i * ENTRY..TAG_HEADER + (i + 1) * ENTRY];
        match c.open_page(i as u64, Role::Data, page, e) {
            Ok(info) => end = i * PAGE + info.len as usize,
            Err(_) => {
                return Err(Error::Tampered {
                    file: path.to_path_buf(),
                    page: i as u64,
                });
            }
        }
    }
    data.truncate(end);
    Ok(data)
}

/// The data folder's key marker (`ENCRYPTION`): a tag file header with no pages. Its presence
/// says the folder is encrypted; its key check says whether a key is the folder's.
pub(crate) const MARKER: &str = "ENCRYPTION";

/// Checks the folder's marker against `key` (either may be absent) and writes the marker for a
/// new encrypted folder. `has_data` says whether the folder already holds data files (a plain
/// folder with data must not be opened with a key). Errors name the file.
pub(crate) fn check_folder(dir: &Path, key: Option<&MasterKey>, has_data: bool) -> Result<()> {
    let path = dir.join(MARKER);
    let marker = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&path, e)),
    };
    match (marker, key) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(Error::Config(format!(
            "data folder {} is encrypted ({} exists) but no encryption key was given \
             (set encryption-key-file)",
            dir.display(),
            path.display()
        ))),
        (None, Some(_)) if has_data => Err(Error::Config(format!(
            "data folder {} is not encrypted, but an encryption key was given; start without \
             encryption-key-file, or use a new folder",
            dir.display()
        ))),
        (None, Some(k)) => write_marker(dir, k),
        (Some(b), Some(k)) => FileCipher::check_header(k, &b, &path).map(|_| ()),
    }
}

/// Writes (or replaces) the folder's marker for `key`, durably.
pub(crate) fn write_marker(dir: &Path, key: &MasterKey) -> Result<()> {
    let (_, header) = FileCipher::create(key)?;
    let path = dir.join(MARKER);
    let tmp = dir.join(format!("{MARKER}.tmp"));
    std::fs::write(&tmp, header).map_err(|e| Error::io(&tmp, e))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Bench seam: one file's cipher, for measuring a page's seal and open outside the engine
/// (benches/benches/crypto.rs).
#[doc(hidden)]
pub struct PageBench {
    c: FileCipher,
}

impl PageBench {
    /// A fresh file's cipher under `master`.
    pub fn new(master: &MasterKey) -> Result<PageBench> {
        Ok(PageBench {
            c: FileCipher::create(master)?.0,
        })
    }

    /// Seals `page` (PAGE bytes) in place as data page `page_no`; returns its entry.
    pub fn seal(&self, page_no: u64, page: &mut [u8]) -> Result<[u8; ENTRY]> {
        self.c.seal(page_no, 0, PAGE as u32, Role::Data, page)
    }

    /// Opens a sealed page in place; false if it does not authenticate.
    pub fn open(&self, page_no: u64, page: &mut [u8], entry: &[u8; ENTRY]) -> bool {
        self.c.open_page(page_no, Role::Data, page, entry).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes([b; 32])
    }

    /// A whole 4096-byte page against Python `cryptography`'s AES-256-GCM (OpenSSL), so the
    /// page format stays standard AES-GCM whatever backend the aes-gcm crate picks: the
    /// vectorised paths (AES-NI, CLMUL) run only on long inputs, which the short standard
    /// test vectors never reach. The first and last ciphertext blocks and the tag (over
    /// every ciphertext byte) must match.
    #[test]
    fn a_whole_page_matches_openssl() {
        let gcm = Aes256Gcm::new(&std::array::from_fn::<u8, 32, _>(|i| i as u8).into());
        let nonce: [u8; 12] = std::array::from_fn(|i| 100 + i as u8);
        let plain: Vec<u8> = (0..PAGE).map(|i| ((i * 7 + 3) % 256) as u8).collect();
        let mut page = plain.clone();
        let tag = gcm
            .encrypt_inout_detached(
                &Nonce::from(nonce),
                b"respite kat",
                page.as_mut_slice().into(),
            )
            .unwrap();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(&page[..16]), "4b11cf7e66cf7baa052016b88d3b0f91");
        assert_eq!(hex(&page[PAGE - 16..]), "f02c4ad8b2846a2962ef54fedf5b335e");
        assert_eq!(hex(&tag), "3a1736290601828f9c42a6f09d9976ae");
        gcm.decrypt_inout_detached(
            &Nonce::from(nonce),
            b"respite kat",
            page.as_mut_slice().into(),
            &tag,
        )
        .unwrap();
        assert_eq!(page, plain);
    }

    #[test]
    fn round_trip_and_faults() {
        let (c, header) = FileCipher::create(&key(1)).unwrap();
        let mut page = vec![0u8; PAGE];
        page[..5].copy_from_slice(b"hello");
        let e = c.seal(7, 3, 5, Role::Data, &mut page).unwrap();
        assert_ne!(
            &page[..5],
            b"hello",
            "ciphertext differs from the plaintext"
        );
        let c2 = FileCipher::open(&key(1), &header, Path::new("t")).unwrap();
        let mut p = page.clone();
        let info = c2.open_page(7, Role::Data, &mut p, &e).unwrap();
        assert_eq!(info, EntryInfo { seq: 3, len: 5 });
        assert_eq!(&p[..5], b"hello");
        // Another page number, role, or a flipped bit anywhere: refused.
        let mut p = page.clone();
        assert_eq!(c2.open_page(8, Role::Data, &mut p, &e), Err(PageFault::Bad));
        let mut p = page.clone();
        assert_eq!(
            c2.open_page(7, Role::Journal, &mut p, &e),
            Err(PageFault::Bad)
        );
        for bit in [0usize, 100 * 8 + 3, PAGE * 8 - 1] {
            let mut p = page.clone();
            p[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(c2.open_page(7, Role::Data, &mut p, &e), Err(PageFault::Bad));
        }
        for bit in 0..ENTRY * 8 {
            let mut bad = e;
            bad[bit / 8] ^= 1 << (bit % 8);
            let mut p = page.clone();
            assert_eq!(
                c2.open_page(7, Role::Data, &mut p, &bad),
                Err(PageFault::Bad),
                "entry bit {bit}"
            );
        }
        let mut p = page.clone();
        assert_eq!(
            c2.open_page(7, Role::Data, &mut p, &[0u8; ENTRY]),
            Err(PageFault::Unwritten)
        );
    }

    #[test]
    fn wrong_key_is_named() {
        let (_, header) = FileCipher::create(&key(1)).unwrap();
        let err = FileCipher::open(&key(2), &header, Path::new("/d/x.log.tag")).unwrap_err();
        assert!(
            matches!(&err, Error::WrongKey { file } if file == Path::new("/d/x.log.tag")),
            "{err}"
        );
        let mut bad = header;
        bad[20] ^= 1;
        assert!(matches!(
            FileCipher::open(&key(1), &bad, Path::new("x")),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn per_file_keys_differ() {
        // The same plaintext, page, nonce counter position: two files' ciphertexts differ
        // (different salts give different keys; different prefixes give different nonces).
        let (a, _) = FileCipher::create(&key(1)).unwrap();
        let (b, _) = FileCipher::create(&key(1)).unwrap();
        let mut pa = vec![0u8; PAGE];
        let mut pb = vec![0u8; PAGE];
        a.seal(0, 0, 0, Role::Data, &mut pa).unwrap();
        b.seal(0, 0, 0, Role::Data, &mut pb).unwrap();
        assert_ne!(pa, pb);
    }

    #[test]
    fn whole_files() {
        for n in [0usize, 1, PAGE - 1, PAGE, PAGE + 1, 3 * PAGE + 17] {
            let plain: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            // Sealed a page at a time, as a hint is written.
            let mut sealer = Sealer::new(&key(9)).unwrap();
            let mut data = Vec::new();
            let whole = n / PAGE * PAGE;
            for page in plain[..whole].chunks(PAGE) {
                data.extend_from_slice(&sealer.seal(page.to_vec()).unwrap());
            }
            data.extend_from_slice(&sealer.seal(plain[whole..].to_vec()).unwrap());
            let tags = sealer.into_tags();
            let back = open_whole(&key(9), data.clone(), &tags, Path::new("h")).unwrap();
            assert_eq!(back, plain, "{n} bytes");
            if !data.is_empty() {
                let mut bad = data.clone();
                let last = bad.len() - 1;
                bad[last] ^= 0x80;
                let err = open_whole(&key(9), bad, &tags, Path::new("h")).unwrap_err();
                assert!(
                    matches!(err, Error::Tampered { page, .. } if page == (n as u64 - 1) / PAGE as u64)
                );
            }
            assert!(matches!(
                open_whole(&key(8), data, &tags, Path::new("h")),
                Err(Error::WrongKey { .. })
            ));
        }
    }

    #[test]
    fn key_files() {
        assert!(MasterKey::parse(&[7u8; 32]).is_some());
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n";
        let k = MasterKey::parse(hex.as_bytes()).unwrap();
        assert_eq!(k.key[1], 0x11);
        assert_eq!(k.key[31], 0xff);
        assert!(MasterKey::parse(b"short").is_none());
        assert!(MasterKey::parse(&[b'z'; 64]).is_none());
        assert!(MasterKey::parse(&[7u8; 33]).is_none());
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn nonce_counter_rolls_to_a_new_prefix() {
        let mut n = Nonces::new().unwrap();
        let first = n.next().unwrap();
        n.counter = u32::MAX;
        let after = n.next().unwrap();
        assert_ne!(
            first[..8],
            after[..8],
            "a fresh prefix once the counter ran out"
        );
        assert_eq!(after[8..], [0, 0, 0, 0]);
    }
}
