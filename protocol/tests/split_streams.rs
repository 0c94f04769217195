//! A valid stream gives the same commands however it is cut into reads: at every byte
//! boundary, at every pair of boundaries, one byte at a time, and in random chunks.
#![allow(clippy::unwrap_used)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use respite_protocol::{BytesMut, Decoder, encode_command};

type Commands = Vec<Vec<Vec<u8>>>;

/// A pipeline mixing multibulk and inline requests, binary arguments with CR, LF and NUL,
/// quoted inline arguments, empty lines and empty multibulks.
fn stream() -> (Vec<u8>, Commands) {
    let mut wire = BytesMut::new();
    let mut want: Commands = Vec::new();
    let mut multibulk = |args: &[&[u8]]| {
        encode_command(args, &mut wire);
        want.push(args.iter().map(|a| a.to_vec()).collect());
    };
    multibulk(&[b"SET", b"key:1", b"v\r\n\0\r\nx"]);
    multibulk(&[b"GET", b"key:1"]);
    multibulk(&[b""]);
    multibulk(&[b"MSET", b"\r", b"\n", b"*1\r\n$1\r\nx\r\n", b"$3\r\n"]);
    let mut wire = wire.to_vec();
    wire.extend_from_slice(b"PING\r\n\r\n\n*0\r\n*-1\r\n");
    want.push(vec![b"PING".to_vec()]);
    wire.extend_from_slice(b"SET k \"a b\\r\\n\\x00\" 'it\\'s'\n");
    want.push(vec![
        b"SET".to_vec(),
        b"k".to_vec(),
        b"a b\r\n\0".to_vec(),
        b"it's".to_vec(),
    ]);
    wire.extend_from_slice(b"  ECHO   \"\"  \r\n");
    want.push(vec![b"ECHO".to_vec(), b"".to_vec()]);
    let big = vec![b'z'; 300];
    let mut tail = BytesMut::new();
    encode_command(&[&b"SET"[..], b"big", &big], &mut tail);
    wire.extend_from_slice(&tail);
    want.push(vec![b"SET".to_vec(), b"big".to_vec(), big]);
    wire.extend_from_slice(b"QUIT\r\n");
    want.push(vec![b"QUIT".to_vec()]);
    (wire, want)
}

/// Feeds `wire` in the given chunks, decoding after each, as a server read loop does.
fn feed<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Commands {
    let mut d = Decoder::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(args) = d.decode(&mut buf).unwrap() {
            got.push(args.iter().map(|a| a.to_vec()).collect());
        }
    }
    assert!(buf.is_empty() && !d.in_progress());
    got
}

#[test]
fn whole_stream() {
    let (wire, want) = stream();
    assert_eq!(feed([&wire[..]]), want);
}

#[test]
fn every_single_cut() {
    let (wire, want) = stream();
    for i in 0..=wire.len() {
        assert_eq!(feed([&wire[..i], &wire[i..]]), want, "cut at {i}");
    }
}

#[test]
fn every_pair_of_cuts() {
    let (wire, want) = stream();
    // Quadratic in the stream: under valgrind (RESPITE_TEST_SCALE=small) the first cut takes
    // every 7th offset; the second still takes every offset after it.
    let step = if std::env::var("RESPITE_TEST_SCALE").as_deref() == Ok("small") {
        7
    } else {
        1
    };
    for i in (0..=wire.len()).step_by(step) {
        for j in i..=wire.len() {
            assert_eq!(
                feed([&wire[..i], &wire[i..j], &wire[j..]]),
                want,
                "cuts at {i}, {j}"
            );
        }
    }
}

#[test]
fn one_byte_at_a_time() {
    let (wire, want) = stream();
    assert_eq!(feed(wire.chunks(1)), want);
}

#[test]
fn random_chunks() {
    let (wire, want) = stream();
    let mut rng = StdRng::seed_from_u64(0x5e_5917e);
    for _ in 0..2000 {
        let max = rng.random_range(1..=64);
        let mut chunks = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let n = rng.random_range(1..=max).min(wire.len() - at);
            chunks.push(&wire[at..at + n]);
            at += n;
        }
        assert_eq!(feed(chunks), want);
    }
}
