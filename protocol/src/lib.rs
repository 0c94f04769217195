//! RESP2/RESP3 for Respite: an incremental request decoder and a reply encoder.
//!
//! This crate knows nothing of sockets or storage and contains no `unsafe`:
//! every byte it reads comes from an untrusted client.
//!
//! - [`Decoder`] turns the bytes a client sent into commands (arrays of bulk strings or
//!   inline lines), handing out zero-copy [`Bytes`] slices of the input buffer.
//! - [`encode`] and the `encode_*` hot-path helpers write replies in RESP3, or in the RESP2
//!   form Redis downgrades them to.
//!
//! It depends on nothing but `bytes`, `memchr` and `itoa`, and must never depend on the
//! storage engine or the server: it is the network facade's vocabulary, nothing more.
//!
//! A connection's read loop:
//!
//! ```
//! use respite_protocol::{BytesMut, Decoder, encode_bulk, encode_simple};
//!
//! let mut decoder = Decoder::default();
//! let mut input = BytesMut::from(&b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nPING\r\n*1\r\n$4\r\nPI"[..]);
//! let mut output = BytesMut::new();
//! loop {
//!     match decoder.decode(&mut input) {
//!         Ok(Some(args)) if args[0].eq_ignore_ascii_case(b"ECHO") => encode_bulk(&args[1], &mut output),
//!         Ok(Some(_)) => encode_simple(b"PONG", &mut output),
//!         Ok(None) => break, // read more bytes into `input`, then decode again
//!         Err(e) => {
//!             e.write_reply(&mut output); // then close the connection
//!             break;
//!         }
//!     }
//! }
//! assert_eq!(&output[..], b"$2\r\nhi\r\n+PONG\r\n");
//! assert_eq!(&input[..], b"*1\r\n$4\r\nPI"); // the partial command waits
//! ```
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
