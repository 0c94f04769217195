//! RESP2/RESP3 for Respite: an incremental request decoder and a reply encoder.
//!
//! This crate knows nothing of sockets or storage and contains no `unsafe`:
//! every byte it reads comes from an untrusted client.
//!
//! - [`Decoder`] turns the bytes a client sent into commands (arrays of bulk strings or
//!   inline lines), handing out zero-copy [`Bytes`] slices of the input buffer.
//! - [`encode`] and the `encode_*` hot-path helpers write replies in RESP3, or in the RESP2
//!   form Redis downgrades them to.
#![forbid(unsafe_code)]

mod decode;
mod encode;
mod error;

pub use bytes::{Bytes, BytesMut};
pub use decode::{Decoder, Limits};
pub use encode::{
    Reply, Version, encode, encode_array_header, encode_bulk, encode_command, encode_error,
    encode_integer, encode_map_header, encode_null, encode_simple,
};
pub use error::ProtocolError;
