//! RESP2/RESP3 for Respite: an incremental request decoder and a reply encoder.
//!
//! This crate knows nothing of sockets or storage and contains no `unsafe`:
//! every byte it reads comes from an untrusted client.
#![forbid(unsafe_code)]
