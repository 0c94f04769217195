//! Property tests: what we encode, the other side decodes to the same value.
//!
//! - commands: `encode_command` then our decoder gives back the same arguments, also when the
//!   arguments are sent inline, quoted the way redis-cli quotes them;
//! - replies: our RESP2 and RESP3 encodings, decoded by the independent `redis-protocol` crate,
//!   give the value (or its RESP2 downgrade) we encoded.
#![allow(clippy::unwrap_used)]

use proptest::collection::vec;
use proptest::prelude::*;
use redis_protocol::resp2::types::OwnedFrame as Frame2;
use redis_protocol::resp3::types::{OwnedFrame as Frame3, Resp3Frame as _, VerbatimStringFormat};
use respite_protocol::{Bytes, BytesMut, Decoder, Reply, Version, encode, encode_command};

fn decode_all(input: &[u8]) -> Vec<Vec<Bytes>> {
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(args) = d.decode(&mut buf).unwrap() {
        out.push(args);
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    out
}

/// Quotes an argument as `sdscatrepr` does (redis-cli prints and accepts this form).
fn repr(arg: &[u8]) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &c in arg {
        match c {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', c]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(c),
            c => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
    out
}

fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(vec(any::<u8>(), 0..48), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn multibulk_commands_round_trip(cmds in vec(command(), 1..6)) {
        let mut wire = BytesMut::new();
        for c in &cmds {
            encode_command(c, &mut wire);
        }
        let got = decode_all(&wire);
        let got: Vec<Vec<Vec<u8>>> =
            got.iter().map(|c| c.iter().map(|a| a.to_vec()).collect()).collect();
        prop_assert_eq!(got, cmds);
    }

    #[test]
    fn inline_commands_round_trip(cmds in vec(command(), 1..6)) {
        let mut wire = Vec::new();
        for c in &cmds {
            for (i, a) in c.iter().enumerate() {
                if i > 0 {
                    wire.push(b' ');
                }
                wire.extend_from_slice(&repr(a));
            }
            wire.extend_from_slice(b"\r\n");
        }
        let got = decode_all(&wire);
        let got: Vec<Vec<Vec<u8>>> =
            got.iter().map(|c| c.iter().map(|a| a.to_vec()).collect()).collect();
        prop_assert_eq!(got, cmds);
    }

    #[test]
    fn resp2_replies_decode_with_redis_protocol(reply in top_reply()) {
        let mut out = BytesMut::new();
        encode(&reply, Version::Resp2, &mut out);
        let (frame, used) = redis_protocol::resp2::decode::decode(&out).unwrap().unwrap();
        prop_assert_eq!(used, out.len());
        check2(&reply, &frame);
    }

    #[test]
    fn resp3_replies_decode_with_redis_protocol(reply in top_reply()) {
        let mut out = BytesMut::new();
        encode(&reply, Version::Resp3, &mut out);
        let (frame, used) =
            redis_protocol::resp3::decode::complete::decode(&out).unwrap().unwrap();
        prop_assert_eq!(used, out.len());
        prop_assert_eq!(frame, frame3(&reply));
    }
}

/// Values usable as map keys and set members (redis-protocol hashes them).
fn key() -> impl Strategy<Value = Reply> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,12}".prop_map(|s| Reply::Simple(s.into())),
        any::<i64>().prop_map(Reply::Integer),
        vec(any::<u8>(), 0..24).prop_map(|v| Reply::Bulk(v.into())),
        any::<bool>().prop_map(Reply::Boolean),
    ]
}

fn scalar() -> impl Strategy<Value = Reply> {
    prop_oneof![
        key(),
        "ERR [a-z ]{0,16}".prop_map(|s| Reply::Error(s.into())),
        Just(Reply::Null),
        Just(Reply::NullArray),
        any::<f64>()
            .prop_filter("NaN never equals itself", |d| !d.is_nan())
            .prop_map(Reply::Double),
        prop_oneof![Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-0.0)]
            .prop_map(Reply::Double),
        "-?[1-9][0-9]{0,40}".prop_map(|s| Reply::BigNumber(s.into())),
        (
            prop_oneof![Just(*b"txt"), Just(*b"mkd")],
            vec(any::<u8>(), 0..24)
        )
            .prop_map(|(format, t)| Reply::Verbatim {
                format,
                text: t.into()
            }),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    scalar().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Reply::Array),
            vec((key(), inner), 0..4).prop_map(|pairs| Reply::Map(unique_keys(pairs))),
            vec(key(), 0..6).prop_map(Reply::Set),
        ]
    })
}

/// Push and attributes are what a server sends at the top level.
fn top_reply() -> impl Strategy<Value = Reply> {
    let attributed = prop_oneof![key(), vec(reply(), 0..4).prop_map(Reply::Array)];
    prop_oneof![
        4 => reply(),
        1 => vec(reply(), 0..4).prop_map(Reply::Push),
        1 => (vec((key(), scalar()), 0..3), attributed).prop_map(|(attrs, r)| Reply::Attribute {
            attrs: unique_keys(attrs),
            reply: Box::new(r),
        }),
    ]
}

/// A map's keys are distinct; redis-protocol would keep one of two equal keys.
fn unique_keys(mut pairs: Vec<(Reply, Reply)>) -> Vec<(Reply, Reply)> {
    let mut i = 0;
    while i < pairs.len() {
        if pairs[..i].iter().any(|(k, _)| *k == pairs[i].0) {
            pairs.remove(i);
        } else {
            i += 1;
        }
    }
    pairs
}

/// Checks a RESP2 frame against the RESP2 downgrade Redis makes of `reply`.
fn check2(reply: &Reply, frame: &Frame2) {
    let bulk = |b: &[u8]| assert_eq!(frame, &Frame2::BulkString(b.to_vec()), "{reply:?}");
    let array = |items: &[&Reply]| match frame {
        Frame2::Array(frames) => {
            assert_eq!(frames.len(), items.len(), "{reply:?}");
            items.iter().zip(frames).for_each(|(r, f)| check2(r, f));
        }
        other => panic!("{reply:?} came back as {other:?}"),
    };
    match reply {
        Reply::Simple(s) => assert_eq!(frame, &Frame2::SimpleString(s.to_vec())),
        Reply::Error(s) => assert_eq!(
            frame,
            &Frame2::Error(String::from_utf8(s.to_vec()).unwrap())
        ),
        Reply::Integer(n) => assert_eq!(frame, &Frame2::Integer(*n)),
        Reply::Boolean(b) => assert_eq!(frame, &Frame2::Integer(i64::from(*b))),
        Reply::Bulk(b) | Reply::BigNumber(b) | Reply::Verbatim { text: b, .. } => bulk(b),
        Reply::Null | Reply::NullArray => assert_eq!(frame, &Frame2::Null),
        Reply::Double(d) => match frame {
            Frame2::BulkString(text) => {
                let back: f64 = std::str::from_utf8(text).unwrap().parse().unwrap();
                assert_eq!(back.to_bits(), d.to_bits(), "{text:?}");
            }
            other => panic!("{reply:?} came back as {other:?}"),
        },
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
            array(&items.iter().collect::<Vec<_>>());
        }
        Reply::Map(pairs) => array(&pairs.iter().flat_map(|(k, v)| [k, v]).collect::<Vec<_>>()),
        Reply::Attribute { reply, .. } => check2(reply, frame),
    }
}

/// The frame redis-protocol builds for the RESP3 encoding of `reply`.
fn frame3(reply: &Reply) -> Frame3 {
    let attributes = None;
    match reply {
        Reply::Simple(s) => Frame3::SimpleString {
            data: s.to_vec(),
            attributes,
        },
        Reply::Error(s) => Frame3::SimpleError {
            data: String::from_utf8(s.to_vec()).unwrap(),
            attributes,
        },
        Reply::Integer(n) => Frame3::Number {
            data: *n,
            attributes,
        },
        Reply::Bulk(b) => Frame3::BlobString {
            data: b.to_vec(),
            attributes,
        },
        Reply::Null | Reply::NullArray => Frame3::Null,
        Reply::Array(items) => Frame3::Array {
            data: items.iter().map(frame3).collect(),
            attributes,
        },
        Reply::Map(pairs) => Frame3::Map {
            data: pairs.iter().map(|(k, v)| (frame3(k), frame3(v))).collect(),
            attributes,
        },
        Reply::Set(items) => Frame3::Set {
            data: items.iter().map(frame3).collect(),
            attributes,
        },
        Reply::Double(d) => Frame3::Double {
            data: *d,
            attributes,
        },
        Reply::Boolean(b) => Frame3::Boolean {
            data: *b,
            attributes,
        },
        Reply::BigNumber(n) => Frame3::BigNumber {
            data: n.to_vec(),
            attributes,
        },
        Reply::Verbatim { format, text } => Frame3::VerbatimString {
            data: text.to_vec(),
            format: if format == b"txt" {
                VerbatimStringFormat::Text
            } else {
                VerbatimStringFormat::Markdown
            },
            attributes,
        },
        Reply::Push(items) => Frame3::Push {
            data: items.iter().map(frame3).collect(),
            attributes,
        },
        Reply::Attribute { attrs, reply } => {
            let mut frame = frame3(reply);
            let map = attrs.iter().map(|(k, v)| (frame3(k), frame3(v))).collect();
            frame.add_attributes(map).unwrap();
            frame
        }
    }
}
