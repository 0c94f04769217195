//! Hostile input: arbitrary bytes, a soup of protocol tokens, and mutated valid streams, fed
//! in random chunks. The decoder never panics, never grows the caller's buffer, never hands
//! out more bytes than it was given, and ends in a command, a wait or a protocol error. For
//! input below the 64 KiB line limit the outcome does not depend on how it was cut.
#![allow(clippy::unwrap_used)]

use proptest::collection::vec;
use proptest::prelude::*;
use respite_protocol::{BytesMut, Decoder, Limits, ProtocolError, encode_command};

#[derive(Debug, PartialEq)]
struct Outcome {
    commands: Vec<Vec<Vec<u8>>>,
    error: Option<ProtocolError>,
}

/// Feeds `input` cut after each offset in `cuts`, checking the invariants after every call.
fn run(input: &[u8], cuts: &[usize], limits: Limits) -> Outcome {
    let mut d = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut commands = Vec::new();
    let mut handed_out = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    bounds.push(input.len());
    bounds.sort_unstable();
    let mut at = 0;
    for end in bounds {
        buf.extend_from_slice(&input[at..end]);
        at = end;
        loop {
            let capacity = buf.capacity();
            let len = buf.len();
            let result = d.decode(&mut buf);
            assert!(
                buf.capacity() <= capacity,
                "the decoder grew the input buffer"
            );
            assert!(buf.len() <= len, "the decoder added input");
            match result {
                Ok(Some(args)) => {
                    assert!(!args.is_empty());
                    handed_out += args.iter().map(|a| a.len()).sum::<usize>();
                    assert!(handed_out <= input.len(), "more bytes out than in");
                    commands.push(args.iter().map(|a| a.to_vec()).collect());
                }
                Ok(None) => break,
                Err(error) => {
                    // The error is final: the same comes back, nothing else is decoded.
                    assert_eq!(d.decode(&mut buf), Err(error));
                    return Outcome {
                        commands,
                        error: Some(error),
                    };
                }
            }
        }
    }
    Outcome {
        commands,
        error: None,
    }
}

/// Small limits so the limit paths are reached by small inputs too.
fn small_limits() -> Limits {
    Limits {
        max_bulk_len: 64,
        max_multibulk_len: 8,
        max_inline_len: 48,
    }
}

fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"*".to_vec()),
        Just(b"$".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\\x4".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"0".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"9223372036854775807".to_vec()),
        Just(b"99999999999999999999".to_vec()),
        (0u8..20).prop_map(|n| n.to_string().into_bytes()),
        vec(any::<u8>(), 1..4),
        Just(b"*1\r\n$3\r\nGET\r\n".to_vec()),
        Just(b"SET k v\r\n".to_vec()),
    ]
}

fn soup() -> impl Strategy<Value = Vec<u8>> {
    vec(token(), 0..40).prop_map(|t| t.concat())
}

fn valid_stream() -> impl Strategy<Value = Vec<u8>> {
    vec(vec(vec(any::<u8>(), 0..20), 1..5), 1..5).prop_map(|cmds| {
        let mut out = BytesMut::new();
        for c in &cmds {
            encode_command(c, &mut out);
        }
        out.to_vec()
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutated_stream() -> impl Strategy<Value = Vec<u8>> {
    let mutation = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<usize>(),
            prop_oneof![
                Just(b'\r'),
                Just(b'\n'),
                Just(b'*'),
                Just(b'$'),
                any::<u8>()
            ]
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ];
    (valid_stream(), vec(mutation, 1..4)).prop_map(|(mut s, ms)| {
        for m in ms {
            if s.is_empty() {
                break;
            }
            match m {
                Mutation::Flip(i, b) => {
                    let i = i % s.len();
                    s[i] = b;
                }
                Mutation::Insert(i, b) => s.insert(i % (s.len() + 1), b),
                Mutation::Delete(i) => {
                    s.remove(i % s.len());
                }
                Mutation::Truncate(i) => s.truncate(i % s.len()),
            }
        }
        s
    })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..256), soup(), mutated_stream()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_and_cutting_does_not_matter(
        input in any_input(),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        // Every input here is shorter than the default 64 KiB line limit, so no "too big"
        // error can depend on where a read ended.
        let whole = run(&input, &[], Limits::default());
        let cut = run(&input, &cuts, Limits::default());
        prop_assert_eq!(&whole, &cut);
        let bytes: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(&whole, &run(&input, &bytes, Limits::default()));
    }

    #[test]
    fn never_panics_with_small_limits(input in any_input(), cuts in vec(any::<usize>(), 0..12)) {
        run(&input, &cuts, small_limits());
    }
}

#[test]
fn declared_sizes_cost_nothing() {
    // Huge counts and lengths, followed by almost nothing: no reservation, just a wait.
    for input in [
        &b"*1048576\r\n"[..],
        b"*1048576\r\n$536870912\r\n",
        b"*1\r\n$536870912\r\nabc",
        b"*2\r\n$1\r\nx\r\n$536870912\r\n\0\0\0",
    ] {
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(input);
        let capacity = buf.capacity();
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(d.in_progress());
        assert_eq!(buf.capacity(), capacity);
        assert_eq!(&buf[..], input);
    }
}
