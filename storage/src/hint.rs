//! Hint files: the index of a sealed log, so start-up reads hints instead of whole logs.
//!
//! Layout (docs/format-bitcask.md): a 16-byte header, entries, then an 8-byte trailer
//! (entry count, CRC32 over every byte before the CRC). A hint whose CRC fails is ignored and
//! its log is scanned instead.

use crate::record::{Header, le_u32, le_u64};

/// Hint file magic.
pub(crate) const HINT_MAGIC: [u8; 8] = *b"RSPTHNT\0";
/// Hint format version.
pub(crate) const HINT_VERSION: u32 = 1;
/// Header bytes: magic, version, file id.
pub(crate) const HINT_HEADER: usize = 16;
/// Bytes of an entry before its key.
pub(crate) const HINT_ENTRY_HEADER: usize = 32;
/// Entry flag (bit 7, beside the record flags): the value follows the key.
pub(crate) const HINT_HAS_VALUE: u8 = 0x80;

/// One hint entry: a record of the log, without its value unless the value is small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HintEntry<'a> {
    pub gsn: u64,
    pub expire_at_ms: u64,
    pub offset: u32,
    pub value_len: u32,
    pub db: u16,
    pub flags: u8,
    pub vtype: u8,
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

impl HintEntry<'_> {
    /// The header of the log record this entry describes.
    pub(crate) fn header(&self) -> Header {
        Header {
            gsn: self.gsn,
            expire_at_ms: self.expire_at_ms,
            flags: self.flags,
            vtype: self.vtype,
            db: self.db,
            key_len: self.key.len() as u32,
            value_len: self.value_len,
        }
    }
}

/// Builds hint file contents.
pub(crate) struct HintWriter {
    buf: Vec<u8>,
    count: u32,
    /// CRC of the bytes already handed out by `take`.
    crc: crc32fast::Hasher,
}

impl HintWriter {
    pub(crate) fn new(file_id: u32) -> HintWriter {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(&HINT_MAGIC);
        buf.extend_from_slice(&HINT_VERSION.to_le_bytes());
        buf.extend_from_slice(&file_id.to_le_bytes());
        HintWriter {
            buf,
            count: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    pub(crate) fn push(&mut self, e: &HintEntry<'_>) {
        let b = &mut self.buf;
        b.extend_from_slice(&e.gsn.to_le_bytes());
        b.extend_from_slice(&e.expire_at_ms.to_le_bytes());
        b.extend_from_slice(&e.offset.to_le_bytes());
        b.extend_from_slice(&(e.key.len() as u32).to_le_bytes());
        b.extend_from_slice(&e.value_len.to_le_bytes());
        b.extend_from_slice(&e.db.to_le_bytes());
        let flags = e.flags | if e.value.is_some() { HINT_HAS_VALUE } else { 0 };
        b.push(flags);
        b.push(e.vtype);
        b.extend_from_slice(e.key);
        if let Some(v) = e.value {
            b.extend_from_slice(v);
        }
        self.count += 1;
    }

    /// Bytes made and not yet handed out.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Hands out the bytes made so far in whole multiples of `unit` (the rest stays), so a
    /// hint can be written out as it is made instead of held whole.
    pub(crate) fn take(&mut self, unit: usize) -> Vec<u8> {
        let n = self.buf.len() / unit * unit;
        let mut rest = Vec::with_capacity(self.buf.capacity().max(unit));
        rest.extend_from_slice(&self.buf[n..]);
        let mut out = std::mem::replace(&mut self.buf, rest);
        out.truncate(n);
        self.crc.update(&out);
        out
    }

    /// The rest of the file: what `take` has not handed out, then the trailer.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&self.count.to_le_bytes());
        self.crc.update(&self.buf);
        let crc = self.crc.finalize();
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf
    }
}

/// Checks a whole hint file and returns its entries' bytes (after the header, before the
/// trailer) and entry count. None if anything is off: the caller scans the log instead.
pub(crate) fn verify(b: &[u8], file_id: u32) -> Option<(&[u8], u32)> {
    if b.len() < HINT_HEADER + 8
        || b[0..8] != HINT_MAGIC
        || le_u32(b, 8) != HINT_VERSION
        || le_u32(b, 12) != file_id
    {
        return None;
    }
    let crc_at = b.len() - 4;
    if crc32fast::hash(&b[..crc_at]) != le_u32(b, crc_at) {
        return None;
    }
    Some((&b[HINT_HEADER..crc_at - 4], le_u32(b, crc_at - 4)))
}

/// Iterates the entries of a verified hint body.
pub(crate) fn entries(mut body: &[u8]) -> impl Iterator<Item = Option<HintEntry<'_>>> {
    std::iter::from_fn(move || {
        if body.is_empty() {
            return None;
        }
        if body.len() < HINT_ENTRY_HEADER {
            body = &[];
            return Some(None);
        }
        let key_len = le_u32(body, 20) as usize;
        let value_len = le_u32(body, 24);
        let flags = body[30];
        let has_value = flags & HINT_HAS_VALUE != 0;
        let total = HINT_ENTRY_HEADER + key_len + if has_value { value_len as usize } else { 0 };
        if body.len() < total {
            body = &[];
            return Some(None);
        }
        let key_end = HINT_ENTRY_HEADER + key_len;
        let e = HintEntry {
            gsn: le_u64(body, 0),
            expire_at_ms: le_u64(body, 8),
            offset: le_u32(body, 16),
            value_len,
            db: u16::from_le_bytes([body[28], body[29]]),
            flags: flags & !HINT_HAS_VALUE,
            vtype: body[31],
            key: &body[HINT_ENTRY_HEADER..key_end],
            value: has_value.then(|| &body[key_end..total]),
        };
        body = &body[total..];
        Some(Some(e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_constants() {
        assert_eq!(&HINT_MAGIC, b"RSPTHNT\0");
        assert_eq!(HINT_VERSION, 1);
        assert_eq!(HINT_HEADER, 16);
        assert_eq!(HINT_ENTRY_HEADER, 32);
        assert_eq!(HINT_HAS_VALUE, 0x80);
    }

    #[test]
    fn golden_bytes_and_roundtrip() {
        let mut w = HintWriter::new(7);
        let e = HintEntry {
            gsn: 1,
            expire_at_ms: 2,
            offset: 24,
            value_len: 3,
            db: 1,
            flags: 0,
            vtype: 0,
            key: b"k",
            value: Some(b"abc"),
        };
        w.push(&e);
        let b = w.finish();
        let mut want = Vec::new();
        want.extend_from_slice(b"RSPTHNT\0");
        want.extend_from_slice(&[1, 0, 0, 0, 7, 0, 0, 0]);
        want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[24, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0x80, 0]);
        want.extend_from_slice(b"kabc");
        want.extend_from_slice(&[1, 0, 0, 0]);
        let crc = crc32fast::hash(&want);
        want.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(b, want);
        let (body, n) = verify(&b, 7).unwrap();
        assert_eq!(n, 1);
        let got: Vec<_> = entries(body).collect();
        assert_eq!(got, vec![Some(e)]);
        assert!(verify(&b, 8).is_none());
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(verify(&bad, 7).is_none(), "flip at {i} undetected");
        }
    }

    proptest::proptest! {
        /// Fuzz: verifying and walking an arbitrary hint never panics.
        #[test]
        fn arbitrary_hint_bytes(b in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = verify(&b, 7);
            for e in entries(&b) {
                if e.is_none() {
                    break;
                }
            }
        }
    }

    /// A hint handed out a piece at a time is byte for byte the hint made whole.
    #[test]
    fn taken_in_pieces_equals_made_whole() {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..3000u32)
            .map(|i| {
                (
                    format!("key{i}").into_bytes(),
                    vec![i as u8; (i % 50) as usize],
                )
            })
            .collect();
        let make = |w: &mut HintWriter, i: usize| {
            let (k, v) = &entries[i];
            w.push(&HintEntry {
                gsn: i as u64,
                expire_at_ms: 0,
                offset: i as u32 * 100,
                value_len: v.len() as u32,
                db: 0,
                flags: 0,
                vtype: 0,
                key: k,
                value: i.is_multiple_of(3).then_some(&v[..]),
            });
        };
        let mut whole = HintWriter::new(3);
        for i in 0..entries.len() {
            make(&mut whole, i);
        }
        let whole = whole.finish();
        for unit in [1, 7, 4096] {
            let mut w = HintWriter::new(3);
            let mut pieces = Vec::new();
            for i in 0..entries.len() {
                make(&mut w, i);
                if w.pending() >= 3 * unit {
                    let p = w.take(unit);
                    assert_eq!(p.len() % unit, 0);
                    pieces.extend_from_slice(&p);
                }
            }
            pieces.extend_from_slice(&w.finish());
            assert_eq!(pieces, whole, "pieces of {unit} bytes");
        }
        assert!(verify(&whole, 3).is_some());
    }
}
