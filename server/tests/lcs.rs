#![allow(clippy::unwrap_used)]
//! LCS against the real binary: Redis's exact reply bytes (recorded from redis-server 7.0 for
//! the same commands), its errors, and for random strings the properties any correct answer
//! has (a common subsequence, as long as LEN says, whose IDX runs spell it out).

mod common;

use common::Server;
use rand::{Rng, SeedableRng};
use redis::Value;

#[test]
fn replies_match_redis_byte_for_byte() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.call(
        &["MSET", "key1", "ohmytext", "key2", "mynewtext"],
        "+OK\r\n",
    );
    c.call(&["LCS", "key1", "key2"], "$6\r\nmytext\r\n");
    c.call(&["lcs", "key1", "key2", "len"], ":6\r\n");
    c.call(
        &["LCS", "key1", "key2", "IDX"],
        "*4\r\n$7\r\nmatches\r\n*2\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n\
         *2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n$3\r\nlen\r\n:6\r\n",
    );
    c.call(
        &[
            "LCS",
            "key1",
            "key2",
            "IDX",
            "MINMATCHLEN",
            "4",
            "WITHMATCHLEN",
        ],
        "*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n\
         $3\r\nlen\r\n:6\r\n",
    );
    // Missing keys are empty strings.
    c.call(&["LCS", "key1", "nokey"], "$0\r\n\r\n");
    c.call(&["LCS", "nokey", "nokey2", "LEN"], ":0\r\n");

    // Errors.
    c.call(
        &["LCS", "key1", "key2", "IDX", "LEN"],
        "-ERR If you want both the length and indexes, please just use IDX.\r\n",
    );
    c.call(&["LCS", "key1", "key2", "BOGUS"], "-ERR syntax error\r\n");
    c.call(
        &["LCS", "key1", "key2", "MINMATCHLEN"],
        "-ERR syntax error\r\n",
    );
    c.call(
        &["LCS", "key1", "key2", "IDX", "MINMATCHLEN", "x"],
        "-ERR value is not an integer or out of range\r\n",
    );
    c.call(
        &["LCS", "key1"],
        "-ERR wrong number of arguments for 'lcs' command\r\n",
    );
    // The table would exceed proto-max-bulk-len: (1000 + 1) * (600 + 1) * 4 bytes > 1 MiB.
    c.call(&["CONFIG", "SET", "proto-max-bulk-len", "1mb"], "+OK\r\n");
    c.call(&["SET", "long1", &"a".repeat(1000)], "+OK\r\n");
    c.call(&["SET", "long2", &"a".repeat(600)], "+OK\r\n");
    c.call(
        &["LCS", "long1", "long2", "LEN"],
        "-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n",
    );
    c.call(&["SET", "long2", &"a".repeat(200)], "+OK\r\n");
    c.call(&["LCS", "long1", "long2", "LEN"], ":200\r\n");
    c.call(&["PING"], "+PONG\r\n");

    // RESP3: IDX is a map.
    c.send(&["HELLO", "3"]);
    c.read_reply();
    c.call(
        &["LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4"],
        "%2\r\n$7\r\nmatches\r\n*1\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n$3\r\nlen\r\n:6\r\n",
    );
}

fn int(v: &Value) -> usize {
    match v {
        Value::Int(n) => usize::try_from(*n).unwrap(),
        other => panic!("not an integer: {other:?}"),
    }
}

fn range(v: &Value) -> (usize, usize) {
    match v {
        Value::Array(p) if p.len() == 2 => (int(&p[0]), int(&p[1])),
        other => panic!("not a range: {other:?}"),
    }
}

/// Whether `sub` can be taken from `s` by dropping bytes.
fn is_subsequence(sub: &[u8], s: &[u8]) -> bool {
    let mut it = s.iter();
    sub.iter().all(|c| it.any(|x| x == c))
}

#[test]
fn random_strings_get_a_common_subsequence_with_consistent_len_and_runs() {
    let server = Server::start(&[]);
    let mut con = server.redis();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1c5);
    for _ in 0..300 {
        let alphabet = [&b"ab"[..], b"acgt", b"abcdefgh"][rng.random_range(0..3)];
        let mut word = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect()
        };
        let (a, b) = (word(40), word(35));
        let _: () = redis::cmd("MSET")
            .arg("a")
            .arg(&a)
            .arg("b")
            .arg(&b)
            .query(&mut con)
            .unwrap();
        let s: Vec<u8> = redis::cmd("LCS").arg("a").arg("b").query(&mut con).unwrap();
        let len: usize = redis::cmd("LCS")
            .arg("a")
            .arg("b")
            .arg("LEN")
            .query(&mut con)
            .unwrap();
        assert_eq!(s.len(), len);
        assert!(is_subsequence(&s, &a) && is_subsequence(&s, &b), "{s:?}");
        // Any shared byte makes the LCS at least 1.
        assert_eq!(len == 0, !a.iter().any(|c| b.contains(c)));

        let idx: Value = redis::cmd("LCS")
            .arg("a")
            .arg("b")
            .arg("IDX")
            .arg("WITHMATCHLEN")
            .query(&mut con)
            .unwrap();
        let Value::Array(top) = idx else {
            panic!("RESP2 IDX is a flat array: {idx:?}")
        };
        assert_eq!(top[0], Value::BulkString(b"matches".to_vec()));
        assert_eq!(int(&top[3]), len);
        let Value::Array(runs) = &top[1] else {
            panic!("{top:?}")
        };
        // Runs come last first; together, in order, they spell the LCS.
        let mut spelled = Vec::new();
        let mut prev: Option<((usize, usize), (usize, usize))> = None;
        for run in runs.iter().rev() {
            let Value::Array(r) = run else {
                panic!("{run:?}")
            };
            let (ra, rb, n) = (range(&r[0]), range(&r[1]), int(&r[2]));
            assert_eq!(ra.1 - ra.0 + 1, n);
            assert_eq!(rb.1 - rb.0 + 1, n);
            assert_eq!(a[ra.0..=ra.1], b[rb.0..=rb.1]);
            if let Some((pa, pb)) = prev {
                assert!(ra.0 > pa.1 && rb.0 > pb.1, "runs overlap or go back");
            }
            prev = Some((ra, rb));
            spelled.extend_from_slice(&a[ra.0..=ra.1]);
        }
        assert_eq!(spelled, s);

        // MINMATCHLEN keeps exactly the runs at least that long.
        let min = rng.random_range(1..4);
        let kept: Value = redis::cmd("LCS")
            .arg("a")
            .arg("b")
            .arg("IDX")
            .arg("MINMATCHLEN")
            .arg(min)
            .query(&mut con)
            .unwrap();
        let Value::Array(kept) = kept else {
            panic!("{kept:?}")
        };
        let Value::Array(kept) = &kept[1] else {
            panic!("{kept:?}")
        };
        let expected = runs
            .iter()
            .filter(|r| matches!(r, Value::Array(x) if int(&x[2]) >= min))
            .count();
        assert_eq!(kept.len(), expected);
    }
}
