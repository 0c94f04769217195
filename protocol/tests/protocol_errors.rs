//! Every protocol error: the input that causes it (as in Redis 7's networking.c) and the exact
//! reply line Redis sends for it.
#![allow(clippy::unwrap_used)]

use respite_protocol::{BytesMut, Decoder, Limits, ProtocolError};

/// Decodes `input` to the end; the first error, or None if there was none.
fn error_of(input: &[u8], limits: Limits) -> Option<ProtocolError> {
    let mut d = Decoder::new(limits);
    let mut buf = BytesMut::from(input);
    loop {
        match d.decode(&mut buf) {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
}

fn err(input: &[u8]) -> Option<ProtocolError> {
    error_of(input, Limits::default())
}

fn reply(e: ProtocolError) -> Vec<u8> {
    let mut out = BytesMut::new();
    e.write_reply(&mut out);
    out.to_vec()
}

#[test]
fn texts_are_redis_texts() {
    use ProtocolError::*;
    let cases: &[(ProtocolError, &str)] = &[
        (InvalidBulkLength, "ERR Protocol error: invalid bulk length"),
        (
            InvalidMultibulkLength,
            "ERR Protocol error: invalid multibulk length",
        ),
        (
            ExpectedDollar(b'x'),
            "ERR Protocol error: expected '$', got 'x'",
        ),
        (
            TooBigInlineRequest,
            "ERR Protocol error: too big inline request",
        ),
        (
            TooBigMultibulkRequest,
            "ERR Protocol error: too big mbulk count string",
        ),
        (
            TooBigBulkCountString,
            "ERR Protocol error: too big bulk count string",
        ),
        (
            UnbalancedQuotes,
            "ERR Protocol error: unbalanced quotes in request",
        ),
        (
            UnauthenticatedMultibulkLength,
            "ERR Protocol error: unauthenticated multibulk length",
        ),
        (
            UnauthenticatedBulkLength,
            "ERR Protocol error: unauthenticated bulk length",
        ),
    ];
    for &(e, text) in cases {
        assert_eq!(e.to_string(), text);
        assert_eq!(reply(e), format!("-{text}\r\n").into_bytes());
    }
    // addReplyErrorFormat turns CR/LF into spaces; other bytes go out raw.
    assert_eq!(
        ExpectedDollar(b'\r').to_string(),
        "ERR Protocol error: expected '$', got ' '"
    );
    assert_eq!(
        reply(ExpectedDollar(0xff)),
        b"-ERR Protocol error: expected '$', got '\xff'\r\n"
    );
}

#[test]
fn invalid_multibulk_length() {
    use ProtocolError::InvalidMultibulkLength as E;
    for input in [
        &b"*\r\n"[..],
        b"*x\r\n",
        b"*1x\r\n",
        b"*01\r\n",
        b"*+1\r\n",
        b"* 1\r\n",
        b"*-0\r\n",
        b"*1048577\r\n",
        b"*9223372036854775808\r\n",
    ] {
        assert_eq!(err(input), Some(E), "{:?}", String::from_utf8_lossy(input));
    }
    assert_eq!(err(b"*1048576\r\n"), None, "the limit itself is allowed");
    let small = Limits {
        max_multibulk_len: 2,
        ..Limits::default()
    };
    assert_eq!(error_of(b"*3\r\n", small), Some(E));
    assert_eq!(error_of(b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", small), None);
}

#[test]
fn expected_dollar() {
    assert_eq!(
        err(b"*1\r\n:1\r\n"),
        Some(ProtocolError::ExpectedDollar(b':'))
    );
    assert_eq!(
        err(b"*2\r\n$1\r\na\r\nxyz\r\n"),
        Some(ProtocolError::ExpectedDollar(b'x'))
    );
    // An empty line: the byte Redis reports is the '\r' itself.
    assert_eq!(
        err(b"*1\r\n\r\n"),
        Some(ProtocolError::ExpectedDollar(b'\r'))
    );
    // Redis looks at the first byte only once the line's CR has arrived.
    assert_eq!(err(b"*1\r\nxyz"), None);
}

#[test]
fn invalid_bulk_length() {
    use ProtocolError::InvalidBulkLength as E;
    for input in [
        &b"*1\r\n$-1\r\n"[..],
        b"*1\r\n$\r\n",
        b"*1\r\n$abc\r\n",
        b"*1\r\n$01\r\n",
        b"*1\r\n$1 \r\n",
        b"*1\r\n$536870913\r\n",
        b"*1\r\n$99999999999999999999\r\n",
    ] {
        assert_eq!(err(input), Some(E), "{:?}", String::from_utf8_lossy(input));
    }
    assert_eq!(
        err(b"*1\r\n$536870912\r\n"),
        None,
        "proto-max-bulk-len itself is allowed"
    );
    let small = Limits {
        max_bulk_len: 3,
        ..Limits::default()
    };
    assert_eq!(error_of(b"*1\r\n$4\r\n", small), Some(E));
    assert_eq!(error_of(b"*1\r\n$3\r\nabc\r\n", small), None);
}

#[test]
fn too_big_count_strings() {
    let limit = Limits::default().max_inline_len;
    // A count line with no CR may take up to 64 KiB; one byte more is refused.
    let mut line = vec![b'*'];
    line.resize(limit, b'1');
    assert_eq!(err(&line), None);
    line.push(b'1');
    assert_eq!(err(&line), Some(ProtocolError::TooBigMultibulkRequest));

    let mut line = b"*1\r\n$".to_vec();
    line.resize(4 + limit, b'1');
    assert_eq!(err(&line), None);
    line.push(b'1');
    assert_eq!(err(&line), Some(ProtocolError::TooBigBulkCountString));

    // A long line that does end in CR is judged by its number instead.
    let mut line = vec![b'*'];
    line.resize(limit + 10, b'1');
    line.extend_from_slice(b"\r\n");
    assert_eq!(err(&line), Some(ProtocolError::InvalidMultibulkLength));
}

#[test]
fn too_big_inline_request() {
    let limit = Limits::default().max_inline_len;
    let line = vec![b'a'; limit];
    assert_eq!(err(&line), None);
    let line = vec![b'a'; limit + 1];
    assert_eq!(err(&line), Some(ProtocolError::TooBigInlineRequest));
    let small = Limits {
        max_inline_len: 8,
        ..Limits::default()
    };
    assert_eq!(
        error_of(b"GET abcdef", small),
        Some(ProtocolError::TooBigInlineRequest)
    );
    // Complete lines are fine at any length; the limit is on what waits for a newline.
    assert_eq!(error_of(b"GET abcdefghijk\r\n", small), None);
}

#[test]
fn unbalanced_quotes() {
    for input in [
        &b"SET k \"v\r\n"[..],
        b"SET k 'v\n",
        b"SET k \"a\"b\r\n",
        b"GET 'a'b\r\n",
    ] {
        assert_eq!(
            err(input),
            Some(ProtocolError::UnbalancedQuotes),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn unauthenticated_lengths() {
    let mut d = Decoder::default();
    d.set_auth_required(true);
    let mut buf = BytesMut::from(&b"*11\r\n"[..]);
    assert_eq!(
        d.decode(&mut buf),
        Err(ProtocolError::UnauthenticatedMultibulkLength)
    );

    let mut d = Decoder::default();
    d.set_auth_required(true);
    let mut buf = BytesMut::from(&b"*2\r\n$4\r\nAUTH\r\n$16385\r\n"[..]);
    assert_eq!(
        d.decode(&mut buf),
        Err(ProtocolError::UnauthenticatedBulkLength)
    );

    // At the limits, and after authenticating, the same requests pass.
    let mut d = Decoder::default();
    d.set_auth_required(true);
    let mut buf = BytesMut::from(&b"*10\r\n$16384\r\n"[..]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&b"*11\r\n$16385\r\n"[..]);
    assert_eq!(d.decode(&mut buf), Ok(None));
}

#[test]
fn errors_are_sticky() {
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&b"*1\r\n$x\r\n"[..]);
    assert_eq!(d.decode(&mut buf), Err(ProtocolError::InvalidBulkLength));
    buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(d.decode(&mut buf), Err(ProtocolError::InvalidBulkLength));
}
