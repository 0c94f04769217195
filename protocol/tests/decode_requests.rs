//! What the decoder makes of well-formed requests, multibulk and inline, as Redis 7 does.
#![allow(clippy::unwrap_used)]

use respite_protocol::{Bytes, BytesMut, Decoder, Limits};

/// Every command in `input`, asserting the stream ends on a command boundary.
fn commands(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(args) = d.decode(&mut buf).unwrap() {
        assert!(!args.is_empty());
        out.push(args.iter().map(|a| a.to_vec()).collect());
    }
    out
}

fn one(input: &[u8]) -> Vec<Vec<u8>> {
    let mut all = commands(input);
    assert_eq!(all.len(), 1, "{:?}", String::from_utf8_lossy(input));
    all.pop().unwrap()
}

fn v(args: &[&[u8]]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.to_vec()).collect()
}

#[test]
fn multibulk() {
    assert_eq!(one(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), v(&[b"GET", b"k"]));
    assert_eq!(one(b"*1\r\n$0\r\n\r\n"), v(&[b""]));
    assert_eq!(
        one(b"*2\r\n$3\r\nSET\r\n$4\r\n\r\n\0\n\r\n"),
        v(&[b"SET", b"\r\n\0\n"])
    );
}

#[test]
fn empty_and_null_multibulk_are_skipped() {
    assert_eq!(
        commands(b"*0\r\n*-1\r\n*-100\r\n*1\r\n$4\r\nPING\r\n"),
        vec![v(&[b"PING"])]
    );
}

#[test]
fn redis_does_not_check_the_bytes_after_cr() {
    // processMultibulkBuffer skips two bytes after a length line's CR and after a bulk's data
    // without looking at them; so do we.
    assert_eq!(one(b"*1\rX$4\rYPINGZZ"), v(&[b"PING"]));
}

#[test]
fn inline() {
    assert_eq!(one(b"PING\r\n"), v(&[b"PING"]));
    assert_eq!(one(b"PING\n"), v(&[b"PING"]));
    assert_eq!(one(b"  SET  k  v  \r\n"), v(&[b"SET", b"k", b"v"]));
    assert_eq!(one(b"SET k \"a b\"\r\n"), v(&[b"SET", b"k", b"a b"]));
    assert_eq!(one(b"SET k \"\"\r\n"), v(&[b"SET", b"k", b""]));
    assert_eq!(
        one(b"SET k \"\\x00\\r\\n\"\r\n"),
        v(&[b"SET", b"k", b"\0\r\n"])
    );
    assert_eq!(one(b"SET k 'it\\'s'\n"), v(&[b"SET", b"k", b"it's"]));
    // Only one CR before the LF belongs to the line end; another is a separator.
    assert_eq!(one(b"GET k\r\r\n"), v(&[b"GET", b"k"]));
}

#[test]
fn empty_inline_lines_are_skipped() {
    assert_eq!(commands(b"\r\n\n   \r\n\t\nPING\r\n"), vec![v(&[b"PING"])]);
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&b"\r\n\r\n"[..]);
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    assert!(buf.is_empty(), "skipped lines are consumed");
}

#[test]
fn pipeline_mixes_both_forms() {
    let input = b"PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\nGET k\n*1\r\n$4\r\nQUIT\r\n";
    assert_eq!(
        commands(input),
        vec![
            v(&[b"PING"]),
            v(&[b"SET", b"k", b"v"]),
            v(&[b"GET", b"k"]),
            v(&[b"QUIT"])
        ]
    );
}

#[test]
fn partial_input_waits_and_leaves_the_rest() {
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r"[..]);
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    assert!(d.in_progress());
    buf.extend_from_slice(b"\nk\r\n*1\r\n$4\r\nPI");
    let args = d.decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        args,
        vec![Bytes::from_static(b"GET"), Bytes::from_static(b"k")]
    );
    assert!(!d.in_progress());
    assert_eq!(&buf[..], b"*1\r\n$4\r\nPI");
    assert_eq!(d.decode(&mut buf).unwrap(), None);
}

#[test]
fn args_are_slices_of_the_input_buffer() {
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\nSET a b\r\n");
    let base = buf.as_ptr() as usize;
    let range = base..base + buf.len();
    let mut d = Decoder::default();
    for _ in 0..2 {
        let args = d.decode(&mut buf).unwrap().unwrap();
        for a in &args {
            assert!(range.contains(&(a.as_ptr() as usize)), "{a:?} was copied");
        }
    }
}

#[test]
fn huge_declared_length_reserves_nothing() {
    let mut d = Decoder::new(Limits {
        max_bulk_len: usize::MAX,
        ..Limits::default()
    });
    let mut buf = BytesMut::from(&b"*1\r\n$9223372036854775807\r\nabc"[..]);
    let cap = buf.capacity();
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    assert_eq!(buf.capacity(), cap, "the decoder grew the buffer");

    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&b"*1048576\r\n$2147483647\r\nabc"[..]);
    assert_eq!(
        d.decode(&mut buf),
        Err(respite_protocol::ProtocolError::InvalidBulkLength)
    );
    let mut buf = BytesMut::from(&b"*1048576\r\n$536870912\r\nabc"[..]);
    let mut d = Decoder::default();
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    assert_eq!(buf.len(), 25, "nothing consumed, nothing added");
}

#[test]
fn limits_can_change() {
    let mut d = Decoder::default();
    assert_eq!(d.limits(), Limits::default());
    assert_eq!(
        Limits::default(),
        Limits {
            max_bulk_len: 512 << 20,
            max_multibulk_len: 1 << 20,
            max_inline_len: 64 << 10
        }
    );
    let small = Limits {
        max_bulk_len: 1,
        ..Limits::default()
    };
    d.set_limits(small);
    assert_eq!(d.limits(), small);
    let mut buf = BytesMut::from(&b"*1\r\n$2\r\nab\r\n"[..]);
    assert!(d.decode(&mut buf).is_err());
}
