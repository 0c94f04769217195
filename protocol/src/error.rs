//! Protocol errors, with Redis's exact texts.

use std::fmt;

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
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())?;
        if let ProtocolError::ExpectedDollar(c) = self {
            write!(f, "{}'", char::from(*c))?;
        }
        Ok(())
    }
}

impl std::error::Error for ProtocolError {}
