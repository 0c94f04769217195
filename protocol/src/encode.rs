//! Reply values and their RESP2/RESP3 encodings.

use std::io::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

/// The protocol version a connection speaks (`HELLO 3` switches to [`Version::Resp3`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Version {
    /// RESP2, what every connection starts with.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// A reply value, RESP3-complete. [`encode`] downgrades it for RESP2 the way Redis does.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`
    Simple(Bytes),
    /// `-ERR ...`: the full text including the code prefix, without CRLF.
    Error(Bytes),
    /// `:1`
    Integer(i64),
    /// `$3\r\nfoo`
    Bulk(Bytes),
    /// RESP3 `_`; RESP2 `$-1`.
    Null,
    /// RESP3 `_`; RESP2 `*-1`.
    NullArray,
    /// `*`
    Array(Vec<Reply>),
    /// `%`; RESP2: a flat array of 2n elements.
    Map(Vec<(Reply, Reply)>),
    /// `~`; RESP2: an array.
    Set(Vec<Reply>),
    /// `,`; RESP2: a bulk string with the same text.
    Double(f64),
    /// `#`; RESP2: integer 1 or 0.
    Boolean(bool),
    /// `(`; RESP2: a bulk string.
    BigNumber(Bytes),
    /// `=`; RESP2: a bulk string of the text alone.
    Verbatim {
        /// Three-byte format, e.g. `txt`.
        format: [u8; 3],
        /// The text without the format prefix.
        text: Bytes,
    },
    /// `>`; RESP2: an array.
    Push(Vec<Reply>),
    /// `|`; RESP2: the attributes are dropped and only `reply` is sent.
    Attribute {
        /// The attribute map.
        attrs: Vec<(Reply, Reply)>,
        /// The reply the attributes describe.
        reply: Box<Reply>,
    },
}

impl Reply {
    /// `+OK`
    #[must_use]
    pub fn ok() -> Reply {
        Reply::Simple(Bytes::from_static(b"OK"))
    }

    /// An error reply; `text` includes the code prefix (`ERR ...`).
    pub fn error(text: impl Into<Bytes>) -> Reply {
        Reply::Error(text.into())
    }

    /// A bulk string reply.
    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    /// A simple string reply from a static text.
    #[must_use]
    pub fn simple(s: &'static str) -> Reply {
        Reply::Simple(Bytes::from_static(s.as_bytes()))
    }
}

/// Appends the encoding of `reply` in `version` to `out`.
///
/// In RESP2 every RESP3-only type is downgraded as Redis 7 does it: map to a flat array of
/// 2n elements, set and push to arrays, double, big number and verbatim string to bulk
/// strings, boolean to integer 1/0, null to `$-1` (and [`Reply::NullArray`] to `*-1`), and
/// an attribute is dropped, leaving only the reply it describes.
pub fn encode(reply: &Reply, version: Version, out: &mut BytesMut) {
    let resp3 = version == Version::Resp3;
    match reply {
        Reply::Simple(s) => encode_simple(s, out),
        Reply::Error(s) => encode_error(s, out),
        Reply::Integer(n) => encode_integer(*n, out),
        Reply::Bulk(b) => encode_bulk(b, out),
        Reply::Null => encode_null(version, out),
        Reply::NullArray => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
        Reply::Array(items) => {
            encode_array_header(items.len(), out);
            items.iter().for_each(|r| encode(r, version, out));
        }
        Reply::Map(pairs) => {
            encode_map_header(pairs.len(), version, out);
            encode_pairs(pairs, version, out);
        }
        Reply::Set(items) => {
            encode_header(if resp3 { b'~' } else { b'*' }, items.len(), out);
            items.iter().for_each(|r| encode(r, version, out));
        }
        Reply::Double(d) => {
            let mut buf = DoubleText::new();
            let text = buf.format(*d);
            if resp3 {
                encode_line(b',', text, out);
            } else {
                encode_bulk(text, out);
            }
        }
        Reply::Boolean(b) => {
            if resp3 {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
            } else {
                out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" });
            }
        }
        Reply::BigNumber(n) => {
            if resp3 {
                encode_line(b'(', n, out);
            } else {
                encode_bulk(n, out);
            }
        }
        Reply::Verbatim { format, text } => {
            if resp3 {
                encode_header(b'=', text.len() + 4, out);
                out.reserve(text.len() + 6);
                out.extend_from_slice(format);
                out.put_u8(b':');
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            } else {
                encode_bulk(text, out);
            }
        }
        Reply::Push(items) => {
            encode_header(if resp3 { b'>' } else { b'*' }, items.len(), out);
            items.iter().for_each(|r| encode(r, version, out));
        }
        Reply::Attribute { attrs, reply } => {
            if resp3 {
                encode_header(b'|', attrs.len(), out);
                encode_pairs(attrs, version, out);
            }
            encode(reply, version, out);
        }
    }
}

fn encode_pairs(pairs: &[(Reply, Reply)], version: Version, out: &mut BytesMut) {
    for (k, v) in pairs {
        encode(k, version, out);
        encode(v, version, out);
    }
}

/// `<prefix><len>\r\n`, the header of every aggregate and bulk type.
#[inline]
fn encode_header(prefix: u8, len: usize, out: &mut BytesMut) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(len).as_bytes();
    out.reserve(digits.len() + 3);
    out.put_u8(prefix);
    out.extend_from_slice(digits);
    out.extend_from_slice(b"\r\n");
}

/// `<prefix><text>\r\n` for the line types. A CR or LF inside `text` would end the line early
/// and desynchronise the client, so they are replaced by spaces, as Redis does for errors.
#[inline]
fn encode_line(prefix: u8, text: &[u8], out: &mut BytesMut) {
    out.reserve(text.len() + 3);
    out.put_u8(prefix);
    // Most line replies are a few bytes ("OK", "QUEUED"), where a plain loop beats memchr.
    let clean = if text.len() <= 16 {
        !text.iter().any(|&c| c == b'\r' || c == b'\n')
    } else {
        memchr::memchr2(b'\r', b'\n', text).is_none()
    };
    if clean {
        out.extend_from_slice(text);
    } else {
        out.extend(
            text.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `+s\r\n`. CR and LF in `s` become spaces so the reply stays one line.
pub fn encode_simple(s: &[u8], out: &mut BytesMut) {
    encode_line(b'+', s, out);
}

/// Appends `-s\r\n`; `s` includes the error code (`ERR ...`). CR and LF in `s` become spaces.
pub fn encode_error(s: &[u8], out: &mut BytesMut) {
    encode_line(b'-', s, out);
}

/// Appends `:n\r\n`.
pub fn encode_integer(n: i64, out: &mut BytesMut) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    out.reserve(digits.len() + 3);
    out.put_u8(b':');
    out.extend_from_slice(digits);
    out.extend_from_slice(b"\r\n");
}

/// Appends `$len\r\nb\r\n`.
pub fn encode_bulk(b: &[u8], out: &mut BytesMut) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(b.len()).as_bytes();
    // One reserve for the whole reply: the pushes below never reallocate.
    out.reserve(digits.len() + b.len() + 5);
    out.put_u8(b'$');
    out.extend_from_slice(digits);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Appends a null: `$-1\r\n` in RESP2, `_\r\n` in RESP3.
pub fn encode_null(version: Version, out: &mut BytesMut) {
    out.extend_from_slice(match version {
        Version::Resp2 => b"$-1\r\n",
        Version::Resp3 => b"_\r\n",
    });
}

/// Appends `*len\r\n`.
pub fn encode_array_header(len: usize, out: &mut BytesMut) {
    encode_header(b'*', len, out);
}

/// Appends `%len\r\n` in RESP3, `*<2 len>\r\n` in RESP2, where the caller then writes the
/// map's keys and values alternately as a flat array.
pub fn encode_map_header(len: usize, version: Version, out: &mut BytesMut) {
    match version {
        Version::Resp2 => encode_header(b'*', len.saturating_mul(2), out),
        Version::Resp3 => encode_header(b'%', len, out),
    }
}

/// Appends `args` as a RESP array of bulk strings, the form clients send commands in.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    // Upper bound of the encoding: 20 digits is the longest usize.
    let total: usize = args.iter().map(|a| a.as_ref().len() + 25).sum::<usize>() + 23;
    out.reserve(total);
    encode_header(b'*', args.len(), out);
    for a in args {
        encode_bulk(a.as_ref(), out);
    }
}

/// A double formatted the way Redis 7 does it: `inf`, `-inf`, `nan` (glibc prints `-nan`
/// when the sign bit is set) and otherwise C's `%.17g`.
pub(crate) struct DoubleText {
    buf: [u8; 40],
}

impl DoubleText {
    pub(crate) fn new() -> Self {
        DoubleText { buf: [0; 40] }
    }

    pub(crate) fn format(&mut self, d: f64) -> &[u8] {
        if d.is_nan() {
            return if d.is_sign_negative() {
                b"-nan"
            } else {
                b"nan"
            };
        }
        if d.is_infinite() {
            return if d > 0.0 { b"inf" } else { b"-inf" };
        }
        // `{:.16e}` rounds to 17 significant digits exactly as %.17g does; what is left is
        // %g's choice between fixed and scientific notation and its zero stripping.
        let mut sci = [0u8; 40];
        let mut cursor = std::io::Cursor::new(&mut sci[..]);
        // 40 bytes hold the longest `{:.16e}` text ("-d.16digitse-324"), so this cannot fail.
        let _ = write!(cursor, "{d:.16e}");
        let n = usize::try_from(cursor.position()).unwrap_or(0);
        let sci = &sci[..n];
        let negative = sci.first() == Some(&b'-');
        let body = if negative { &sci[1..] } else { sci };
        let e_at = body.iter().position(|&c| c == b'e').unwrap_or(body.len());
        let mut digits = [0u8; 17];
        let mut nd = 0;
        for &c in &body[..e_at] {
            if c.is_ascii_digit() && nd < digits.len() {
                digits[nd] = c;
                nd += 1;
            }
        }
        let exp: i32 = std::str::from_utf8(body.get(e_at + 1..).unwrap_or_default())
            .ok()
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        // %g drops trailing zeros of the fraction (no '#' flag).
        while nd > 1 && digits[nd - 1] == b'0' {
            nd -= 1;
        }
        let digits = &digits[..nd];
        let mut len = 0;
        let mut put = |c: u8| {
            self.buf[len] = c;
            len += 1;
        };
        if negative {
            put(b'-');
        }
        if (-4..17).contains(&exp) {
            if exp >= 0 {
                let int_len = usize::try_from(exp).unwrap_or(0) + 1;
                for i in 0..int_len {
                    put(digits.get(i).copied().unwrap_or(b'0'));
                }
                if digits.len() > int_len {
                    put(b'.');
                    digits[int_len..].iter().for_each(|&c| put(c));
                }
            } else {
                put(b'0');
                put(b'.');
                for _ in 0..(-exp - 1) {
                    put(b'0');
                }
                digits.iter().for_each(|&c| put(c));
            }
        } else {
            put(digits[0]);
            if digits.len() > 1 {
                put(b'.');
                digits[1..].iter().for_each(|&c| put(c));
            }
            put(b'e');
            put(if exp < 0 { b'-' } else { b'+' });
            let e = exp.unsigned_abs();
            if e >= 100 {
                put(b'0' + u8::try_from(e / 100).unwrap_or(0));
            }
            put(b'0' + u8::try_from(e / 10 % 10).unwrap_or(0));
            put(b'0' + u8::try_from(e % 10).unwrap_or(0));
        }
        &self.buf[..len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(d: f64) -> String {
        String::from_utf8(DoubleText::new().format(d).to_vec()).unwrap()
    }

    #[test]
    fn doubles_match_printf_17g() {
        // Expected texts are what C printf("%.17g") prints (checked with Python's % operator).
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.10000000000000001"),
            (2.675, "2.6749999999999998"),
            (100.0, "100"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (1.5e17, "1.5e+17"),
            (1e20, "1e+20"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (1.0e-300, "1e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "4.9406564584124654e-324"),
            (123456789.125, "123456789.125"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (-f64::NAN, "-nan"),
        ];
        for &(d, want) in cases {
            assert_eq!(g(d), want, "{d:e}");
        }
    }
}
