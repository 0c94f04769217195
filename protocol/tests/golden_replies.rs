//! Exact bytes of every reply type in RESP2 and RESP3, the way Redis 7 writes them.
#![allow(clippy::unwrap_used)]

use respite_protocol::{
    Bytes, BytesMut, Reply, Version, encode, encode_array_header, encode_bulk, encode_command,
    encode_error, encode_integer, encode_map_header, encode_null, encode_simple,
};

fn enc(reply: &Reply, version: Version) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(reply, version, &mut out);
    out.to_vec()
}

/// Checks `reply` encodes to `resp2` and `resp3`.
fn golden(reply: Reply, resp2: &[u8], resp3: &[u8]) {
    assert_eq!(enc(&reply, Version::Resp2), resp2, "RESP2 of {reply:?}");
    assert_eq!(enc(&reply, Version::Resp3), resp3, "RESP3 of {reply:?}");
}

fn b(s: &'static str) -> Reply {
    Reply::bulk(Bytes::from_static(s.as_bytes()))
}

#[test]
fn scalars() {
    golden(Reply::ok(), b"+OK\r\n", b"+OK\r\n");
    golden(Reply::simple("PONG"), b"+PONG\r\n", b"+PONG\r\n");
    golden(Reply::error("ERR no"), b"-ERR no\r\n", b"-ERR no\r\n");
    golden(
        Reply::error("WRONGTYPE x"),
        b"-WRONGTYPE x\r\n",
        b"-WRONGTYPE x\r\n",
    );
    golden(Reply::Integer(0), b":0\r\n", b":0\r\n");
    golden(Reply::Integer(-42), b":-42\r\n", b":-42\r\n");
    golden(
        Reply::Integer(i64::MIN),
        b":-9223372036854775808\r\n",
        b":-9223372036854775808\r\n",
    );
    golden(b("foo"), b"$3\r\nfoo\r\n", b"$3\r\nfoo\r\n");
    golden(b(""), b"$0\r\n\r\n", b"$0\r\n\r\n");
    golden(
        Reply::bulk(&b"a\r\n\0b"[..]),
        b"$5\r\na\r\n\0b\r\n",
        b"$5\r\na\r\n\0b\r\n",
    );
    golden(Reply::Null, b"$-1\r\n", b"_\r\n");
    golden(Reply::NullArray, b"*-1\r\n", b"_\r\n");
    golden(Reply::Boolean(true), b":1\r\n", b"#t\r\n");
    golden(Reply::Boolean(false), b":0\r\n", b"#f\r\n");
    golden(
        Reply::BigNumber(Bytes::from_static(
            b"3492890328409238509324850943850943825024385",
        )),
        b"$43\r\n3492890328409238509324850943850943825024385\r\n",
        b"(3492890328409238509324850943850943825024385\r\n",
    );
    golden(
        Reply::Verbatim {
            format: *b"txt",
            text: Bytes::from_static(b"Some string"),
        },
        b"$11\r\nSome string\r\n",
        b"=15\r\ntxt:Some string\r\n",
    );
}

#[test]
fn doubles() {
    golden(Reply::Double(1.0), b"$1\r\n1\r\n", b",1\r\n");
    golden(Reply::Double(-1.5), b"$4\r\n-1.5\r\n", b",-1.5\r\n");
    golden(
        Reply::Double(0.1),
        b"$19\r\n0.10000000000000001\r\n",
        b",0.10000000000000001\r\n",
    );
    golden(Reply::Double(1e20), b"$5\r\n1e+20\r\n", b",1e+20\r\n");
    golden(Reply::Double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n");
    golden(
        Reply::Double(f64::NEG_INFINITY),
        b"$4\r\n-inf\r\n",
        b",-inf\r\n",
    );
    golden(Reply::Double(f64::NAN), b"$3\r\nnan\r\n", b",nan\r\n");
    golden(Reply::Double(-0.0), b"$2\r\n-0\r\n", b",-0\r\n");
}

#[test]
fn aggregates() {
    golden(Reply::Array(vec![]), b"*0\r\n", b"*0\r\n");
    golden(
        Reply::Array(vec![b("a"), Reply::Integer(1), Reply::Null]),
        b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n",
        b"*3\r\n$1\r\na\r\n:1\r\n_\r\n",
    );
    golden(
        Reply::Map(vec![
            (b("k1"), Reply::Integer(1)),
            (b("k2"), Reply::Boolean(true)),
        ]),
        b"*4\r\n$2\r\nk1\r\n:1\r\n$2\r\nk2\r\n:1\r\n",
        b"%2\r\n$2\r\nk1\r\n:1\r\n$2\r\nk2\r\n#t\r\n",
    );
    golden(Reply::Map(vec![]), b"*0\r\n", b"%0\r\n");
    golden(
        Reply::Set(vec![b("x"), b("y")]),
        b"*2\r\n$1\r\nx\r\n$1\r\ny\r\n",
        b"~2\r\n$1\r\nx\r\n$1\r\ny\r\n",
    );
    golden(
        Reply::Push(vec![b("message"), b("ch"), b("hi")]),
        b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
    );
    golden(
        Reply::Attribute {
            attrs: vec![(b("ttl"), Reply::Integer(3))],
            reply: Box::new(Reply::Array(vec![Reply::Double(2.5)])),
        },
        b"*1\r\n$3\r\n2.5\r\n",
        b"|1\r\n$3\r\nttl\r\n:3\r\n*1\r\n,2.5\r\n",
    );
    // Nested downgrades: a map inside an array inside a set.
    golden(
        Reply::Set(vec![Reply::Array(vec![Reply::Map(vec![(
            Reply::simple("a"),
            Reply::NullArray,
        )])])]),
        b"*1\r\n*1\r\n*2\r\n+a\r\n*-1\r\n",
        b"~1\r\n*1\r\n%1\r\n+a\r\n_\r\n",
    );
}

#[test]
fn line_replies_never_break_the_stream() {
    // A CR or LF inside a one-line reply would end it early; Redis turns them into spaces.
    golden(
        Reply::error("ERR a\r\nb"),
        b"-ERR a  b\r\n",
        b"-ERR a  b\r\n",
    );
    golden(Reply::simple("x\ny"), b"+x y\r\n", b"+x y\r\n");
}

#[test]
fn hot_path_helpers() {
    let mut out = BytesMut::new();
    encode_simple(b"OK", &mut out);
    encode_error(b"ERR x", &mut out);
    encode_integer(-7, &mut out);
    encode_bulk(b"hello", &mut out);
    encode_null(Version::Resp2, &mut out);
    encode_null(Version::Resp3, &mut out);
    encode_array_header(2, &mut out);
    encode_map_header(2, Version::Resp2, &mut out);
    encode_map_header(2, Version::Resp3, &mut out);
    assert_eq!(
        &out[..],
        b"+OK\r\n-ERR x\r\n:-7\r\n$5\r\nhello\r\n$-1\r\n_\r\n*2\r\n*4\r\n%2\r\n"
    );
}

#[test]
fn commands() {
    let mut out = BytesMut::new();
    encode_command(&["SET", "k", "v\r\n"], &mut out);
    assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n");
    let mut out = BytesMut::new();
    encode_command::<&[u8]>(&[], &mut out);
    assert_eq!(&out[..], b"*0\r\n");
}
