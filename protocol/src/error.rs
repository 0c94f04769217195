//! Protocol errors, with Redis's exact texts.

use std::fmt;

use bytes::{BufMut, BytesMut};

/// A malformed request. `Display` prints the exact Redis error line without the leading
/// `-` and without CRLF, e.g. `ERR Protocol error: invalid bulk length`.
///
/// After any `ProtocolError` the server replies `-{e}\r\n` and closes the connection, as
/// Redis does: the stream cannot be resynchronised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A bulk length below 0, above `max_bulk_len`, or not a number.
    InvalidBulkLength,
    /// A multibulk count above `max_multibulk_len` or not a number.
    InvalidMultibulkLength,
    /// An array element did not start with `$`; carries the byte found instead.
    ExpectedDollar(u8),
    /// An inline line longer than `max_inline_len` without a newline.
    TooBigInlineRequest,
    /// A `*<count>` line longer than 64 KiB without CRLF.
    TooBigMultibulkRequest,
    /// A `$<len>` line longer than 64 KiB without CRLF.
    TooBigBulkCountString,
    /// An inline line whose quotes do not balance (sdssplitargs failed).
    UnbalancedQuotes,
    /// More than 10 arguments from a client that has not authenticated yet.
    UnauthenticatedMultibulkLength,
    /// A bulk longer than 16384 bytes from a client that has not authenticated yet.
    UnauthenticatedBulkLength,
}

impl ProtocolError {
    /// The fixed part of the error line (for `ExpectedDollar`, up to the offending byte).
    fn text(&self) -> &'static str {
        match self {
            ProtocolError::InvalidBulkLength => "ERR Protocol error: invalid bulk length",
            ProtocolError::InvalidMultibulkLength => "ERR Protocol error: invalid multibulk length",
            // The offending byte is part of the text; Display renders it.
            ProtocolError::ExpectedDollar(_) => "ERR Protocol error: expected '$', got '",
            ProtocolError::TooBigInlineRequest => "ERR Protocol error: too big inline request",
            ProtocolError::TooBigMultibulkRequest => {
                "ERR Protocol error: too big mbulk count string"
            }
            ProtocolError::TooBigBulkCountString => "ERR Protocol error: too big bulk count string",
            ProtocolError::UnbalancedQuotes => "ERR Protocol error: unbalanced quotes in request",
            ProtocolError::UnauthenticatedMultibulkLength => {
                "ERR Protocol error: unauthenticated multibulk length"
            }
            ProtocolError::UnauthenticatedBulkLength => {
                "ERR Protocol error: unauthenticated bulk length"
            }
        }
    }
}

impl ProtocolError {
    /// Appends the exact reply Redis sends for this error, `-ERR Protocol error: ...\r\n`.
    ///
    /// Prefer this to formatting with `Display` when the offending byte of
    /// [`ProtocolError::ExpectedDollar`] may be non-ASCII: Redis sends that byte raw, while
    /// `Display` has to produce UTF-8.
    pub fn write_reply(&self, out: &mut BytesMut) {
        out.put_u8(b'-');
        out.extend_from_slice(self.text().as_bytes());
        if let ProtocolError::ExpectedDollar(c) = *self {
            out.put_u8(reply_safe(c));
            out.put_u8(b'\'');
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Redis formats this error with `addReplyErrorFormat`, which turns CR and LF into spaces so
/// the reply stays one line.
fn reply_safe(c: u8) -> u8 {
    if c == b'\r' || c == b'\n' { b' ' } else { c }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())?;
        if let ProtocolError::ExpectedDollar(c) = *self {
            // Non-ASCII bytes show as the Latin-1 character; see `write_reply` for raw bytes.
            write!(f, "{}'", char::from(reply_safe(c)))?;
        }
        Ok(())
    }
}

impl std::error::Error for ProtocolError {}
