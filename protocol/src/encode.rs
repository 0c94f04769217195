//! Reply values and their RESP2/RESP3 encodings.

use bytes::{Bytes, BytesMut};

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
pub fn encode(reply: &Reply, version: Version, out: &mut BytesMut) {
    let _ = (reply, version, out);
    todo!()
}

/// Appends `+s\r\n`.
pub fn encode_simple(s: &[u8], out: &mut BytesMut) {
    let _ = (s, out);
    todo!()
}

/// Appends `-s\r\n`.
pub fn encode_error(s: &[u8], out: &mut BytesMut) {
    let _ = (s, out);
    todo!()
}

/// Appends `:n\r\n`.
pub fn encode_integer(n: i64, out: &mut BytesMut) {
    let _ = (n, out);
    todo!()
}

/// Appends `$len\r\nb\r\n`.
pub fn encode_bulk(b: &[u8], out: &mut BytesMut) {
    let _ = (b, out);
    todo!()
}

/// Appends a null: `$-1\r\n` in RESP2, `_\r\n` in RESP3.
pub fn encode_null(version: Version, out: &mut BytesMut) {
    let _ = (version, out);
    todo!()
}

/// Appends `*len\r\n`.
pub fn encode_array_header(len: usize, out: &mut BytesMut) {
    let _ = (len, out);
    todo!()
}

/// Appends `%len\r\n` in RESP3, `*2len\r\n` in RESP2 (the map's pairs flattened).
pub fn encode_map_header(len: usize, version: Version, out: &mut BytesMut) {
    let _ = (len, version, out);
    todo!()
}

/// Appends `args` as a RESP array of bulk strings, the form clients send commands in.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    let _ = (args, out);
    todo!()
}
