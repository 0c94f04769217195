//! The Bitcask record and log-file header formats (drawn in docs/format-bitcask.md).
//!
//! Every integer is little-endian and fixed-width. The constants here are persisted: changing
//! one makes old data unreadable, so each has a golden test below.

/// Bytes in a record header.
pub(crate) const RECORD_HEADER: usize = 32;
/// Record flag: a tombstone (the key was deleted at this GSN).
pub(crate) const FLAG_TOMBSTONE: u8 = 0x01;
/// Record flag: a flush marker; every record of `db` (or of every db when db is `DB_ALL`)
/// with a lower GSN is dead.
pub(crate) const FLAG_FLUSH: u8 = 0x02;
/// Flags a record may carry; anything else is corruption.
pub(crate) const FLAGS_KNOWN: u8 = FLAG_TOMBSTONE | FLAG_FLUSH;
/// The db field of a FLUSHALL marker.
pub(crate) const DB_ALL: u16 = 0xFFFF;
/// Value type byte: a string. Reserved for hashes, sets, ... later.
pub(crate) const VTYPE_STRING: u8 = 0;

/// Log file magic.
pub(crate) const LOG_MAGIC: [u8; 8] = *b"RSPTLOG\0";
/// Log file format version: 2 = one log shared by every shard (the shard field is
/// `LOG_SHARED`). Version 1 logs (one log set per shard) are still read.
pub(crate) const LOG_VERSION: u32 = 2;
/// The first log format version: every shard had its own logs.
pub(crate) const LOG_VERSION_PER_SHARD: u32 = 1;
/// The shard field of a version 2 log header: the log holds records of every shard.
pub(crate) const LOG_SHARED: u32 = 0xFFFF_FFFF;
/// Bytes in a log file header (magic, version, shard, shards, crc32).
pub(crate) const LOG_HEADER: usize = 24;

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub gsn: u64,
    pub expire_at_ms: u64,
    pub flags: u8,
    pub vtype: u8,
    pub db: u16,
    pub key_len: u32,
    pub value_len: u32,
}

impl Header {
    /// Total bytes of the record this header starts.
    pub(crate) fn record_len(&self) -> usize {
        RECORD_HEADER + self.key_len as usize + self.value_len as usize
    }
}

/// Appends one record to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, h: &Header, key: &[u8], value: &[u8]) {
    debug_assert_eq!(h.key_len as usize, key.len());
    debug_assert_eq!(h.value_len as usize, value.len());
    let start = out.len();
    out.reserve(RECORD_HEADER + key.len() + value.len());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&h.gsn.to_le_bytes());
    out.extend_from_slice(&h.expire_at_ms.to_le_bytes());
    out.push(h.flags);
    out.push(h.vtype);
    out.extend_from_slice(&h.db.to_le_bytes());
    out.extend_from_slice(&h.key_len.to_le_bytes());
    out.extend_from_slice(&h.value_len.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses a header without checking the CRC (the caller needs its lengths to read the rest).
/// `b` must hold at least `RECORD_HEADER` bytes. None if a field is impossible.
pub(crate) fn parse_header(b: &[u8]) -> Option<Header> {
    if b.len() < RECORD_HEADER {
        return None;
    }
    let h = Header {
        gsn: u64_at(b, 4),
        expire_at_ms: u64_at(b, 12),
        flags: b[20],
        vtype: b[21],
        db: u16::from_le_bytes([b[22], b[23]]),
        key_len: u32_at(b, 24),
        value_len: u32_at(b, 28),
    };
    if h.flags & !FLAGS_KNOWN != 0 || h.vtype != VTYPE_STRING || h.gsn == 0 {
        return None;
    }
    Some(h)
}

/// Why a record could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    /// Fewer bytes than the record claims: a torn tail if at the end of a file.
    Short,
    /// Impossible header fields or a CRC mismatch.
    Corrupt(&'static str),
}

/// Decodes the record at the start of `b`, checking its CRC.
pub(crate) fn decode(b: &[u8]) -> Result<Header, Bad> {
    if b.len() < RECORD_HEADER {
        return Err(Bad::Short);
    }
    let h = parse_header(b).ok_or(Bad::Corrupt("impossible header fields"))?;
    let len = h.record_len();
    if b.len() < len {
        return Err(Bad::Short);
    }
    if crc32fast::hash(&b[4..len]) != u32_at(b, 0) {
        return Err(Bad::Corrupt("record checksum mismatch"));
    }
    Ok(h)
}

/// The header of a (shared, version 2) log file.
pub(crate) fn encode_log_header(shards: u32) -> [u8; LOG_HEADER] {
    encode_log_header_version(LOG_VERSION, LOG_SHARED, shards)
}

pub(crate) fn encode_log_header_version(version: u32, shard: u32, shards: u32) -> [u8; LOG_HEADER] {
    let mut b = [0u8; LOG_HEADER];
    b[0..8].copy_from_slice(&LOG_MAGIC);
    b[8..12].copy_from_slice(&version.to_le_bytes());
    b[12..16].copy_from_slice(&shard.to_le_bytes());
    b[16..20].copy_from_slice(&shards.to_le_bytes());
    let crc = crc32fast::hash(&b[0..20]);
    b[20..24].copy_from_slice(&crc.to_le_bytes());
    b
}

/// What a log file header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogKind {
    /// Version 2: one log shared by every shard.
    Shared {
        /// Shard count of the directory.
        shards: u32,
    },
    /// Version 1: the log of one shard.
    PerShard {
        /// The shard that owns it.
        shard: u32,
        /// Shard count of the directory.
        shards: u32,
    },
}

/// Parses a log file header. None if it is not a valid header of a known version.
pub(crate) fn parse_log_header(b: &[u8]) -> Option<LogKind> {
    if b.len() < LOG_HEADER || b[0..8] != LOG_MAGIC || crc32fast::hash(&b[0..20]) != u32_at(b, 20) {
        return None;
    }
    let (shard, shards) = (u32_at(b, 12), u32_at(b, 16));
    match u32_at(b, 8) {
        LOG_VERSION if shard == LOG_SHARED => Some(LogKind::Shared { shards }),
        LOG_VERSION_PER_SHARD if shard != LOG_SHARED => Some(LogKind::PerShard { shard, shards }),
        _ => None,
    }
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    u32_at(b, at)
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    u64_at(b, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden test: the persisted constants never change.
    #[test]
    fn golden_constants() {
        assert_eq!(RECORD_HEADER, 32);
        assert_eq!(FLAG_TOMBSTONE, 1);
        assert_eq!(FLAG_FLUSH, 2);
        assert_eq!(DB_ALL, 0xFFFF);
        assert_eq!(VTYPE_STRING, 0);
        assert_eq!(&LOG_MAGIC, b"RSPTLOG\0");
        assert_eq!(LOG_VERSION, 2);
        assert_eq!(LOG_VERSION_PER_SHARD, 1);
        assert_eq!(LOG_SHARED, 0xFFFF_FFFF);
        assert_eq!(LOG_HEADER, 24);
    }

    /// Golden test: a record's exact bytes.
    #[test]
    fn golden_record_bytes() {
        let h = Header {
            gsn: 0x0102_0304_0506_0708,
            expire_at_ms: 0x1122,
            flags: 0,
            vtype: VTYPE_STRING,
            db: 3,
            key_len: 2,
            value_len: 3,
        };
        let mut out = Vec::new();
        encode(&mut out, &h, b"ab", b"xyz");
        let mut want = vec![0u8; 4];
        want.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]);
        want.extend_from_slice(&[0x22, 0x11, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[0, 0, 3, 0]);
        want.extend_from_slice(&[2, 0, 0, 0, 3, 0, 0, 0]);
        want.extend_from_slice(b"abxyz");
        let crc = crc32fast::hash(&want[4..]);
        want[0..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(out, want);
        assert_eq!(decode(&out), Ok(h));
        let hdr = encode_log_header(16);
        assert_eq!(&hdr[0..8], b"RSPTLOG\0");
        assert_eq!(
            &hdr[8..20],
            &[2, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 16, 0, 0, 0]
        );
        assert_eq!(parse_log_header(&hdr), Some(LogKind::Shared { shards: 16 }));
        // A version 1 (per-shard) header is still understood.
        let v1 = encode_log_header_version(1, 5, 16);
        assert_eq!(&v1[8..20], &[1, 0, 0, 0, 5, 0, 0, 0, 16, 0, 0, 0]);
        assert_eq!(
            parse_log_header(&v1),
            Some(LogKind::PerShard {
                shard: 5,
                shards: 16
            })
        );
        // A version that disagrees with its shard field is not.
        assert_eq!(parse_log_header(&encode_log_header_version(2, 5, 16)), None);
        assert_eq!(
            parse_log_header(&encode_log_header_version(1, LOG_SHARED, 16)),
            None
        );
    }

    #[test]
    fn torn_and_corrupt() {
        let h = Header {
            gsn: 9,
            expire_at_ms: 0,
            flags: FLAG_TOMBSTONE,
            vtype: 0,
            db: 0,
            key_len: 1,
            value_len: 0,
        };
        let mut out = Vec::new();
        encode(&mut out, &h, b"k", b"");
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut]).err(), Some(Bad::Short));
        }
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "flip at {i} undetected");
        }
    }

    proptest::proptest! {
        /// Fuzz: decoding arbitrary bytes never panics, and anything it accepts re-encodes to
        /// the same bytes.
        #[test]
        fn decode_arbitrary_bytes(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Ok(h) = decode(&b) {
                let len = h.record_len();
                let mut out = Vec::new();
                encode(&mut out, &h, &b[RECORD_HEADER..RECORD_HEADER + h.key_len as usize],
                    &b[RECORD_HEADER + h.key_len as usize..len]);
                proptest::prop_assert_eq!(&out[..], &b[..len]);
            }
            let _ = parse_log_header(&b);
        }

        #[test]
        fn roundtrip(gsn in 1u64.., exp in proptest::num::u64::ANY, db in 0u16..16,
                     key in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
                     value in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
                     tomb in proptest::bool::ANY) {
            let h = Header {
                gsn,
                expire_at_ms: exp,
                flags: if tomb { FLAG_TOMBSTONE } else { 0 },
                vtype: VTYPE_STRING,
                db,
                key_len: key.len() as u32,
                value_len: value.len() as u32,
            };
            let mut out = Vec::new();
            encode(&mut out, &h, &key, &value);
            proptest::prop_assert_eq!(decode(&out), Ok(h));
        }
    }
}
