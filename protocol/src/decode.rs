//! The incremental request decoder.

use bytes::{Bytes, BytesMut};

use crate::ProtocolError;

/// Request size limits, with Redis's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `proto-max-bulk-len`: the largest bulk string a client may send. Default 512 MiB.
    pub max_bulk_len: usize,
    /// The largest multibulk count. Default 1024 * 1024.
    pub max_multibulk_len: usize,
    /// `PROTO_INLINE_MAX_SIZE`: the longest inline line (and the longest `*`/`$` count line).
    /// Default 64 KiB.
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// Incremental request decoder. Holds only small parse state, never a copy of the input.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
}

impl Decoder {
    /// A decoder with the given limits.
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Decoder { limits }
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Changes the limits (CONFIG SET); they apply from the next call.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Takes the next complete command off the front of `buf`.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] when the input is malformed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let _ = buf;
        todo!()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}
