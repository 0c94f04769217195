//! Request decoding and reply encoding, ours against `redis-protocol` as a baseline.
//!
//! Decoding benches copy the pipelined stream into a fresh `BytesMut` per iteration, as a
//! socket read would; `decode/copy_only` measures that copy alone so it can be subtracted.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use redis_protocol::resp2::types::BytesFrame;
use respite_protocol::{
    Decoder, Reply, Version, encode, encode_bulk, encode_command, encode_integer, encode_simple,
};

const PIPELINE: usize = 16;

fn set_stream() -> Vec<u8> {
    let value = vec![b'v'; 100];
    let mut out = BytesMut::new();
    for n in 0..PIPELINE {
        encode_command(
            &[&b"SET"[..], format!("key:{n}").as_bytes(), &value],
            &mut out,
        );
    }
    out.to_vec()
}

fn get_stream() -> Vec<u8> {
    let mut out = BytesMut::new();
    for n in 0..PIPELINE {
        encode_command(&[&b"GET"[..], format!("key:{n}").as_bytes()], &mut out);
    }
    out.to_vec()
}

fn ours(stream: &[u8], decoder: &mut Decoder) -> usize {
    let mut buf = BytesMut::from(stream);
    let mut n = 0;
    while let Some(args) = decoder.decode(&mut buf).unwrap() {
        n += args.len();
        black_box(args);
    }
    n
}

fn theirs(stream: &[u8]) -> usize {
    let mut buf = BytesMut::from(stream);
    let mut n = 0;
    while let Some((frame, _, _)) =
        redis_protocol::resp2::decode::decode_bytes_mut(&mut buf).unwrap()
    {
        if let BytesFrame::Array(args) = &frame {
            n += args.len();
        }
        black_box(frame);
    }
    n
}

fn decode_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(PIPELINE as u64));
    for (name, stream) in [("set", set_stream()), ("get", get_stream())] {
        let mut decoder = Decoder::default();
        assert_eq!(ours(&stream, &mut decoder), theirs(&stream));
        group.bench_with_input(BenchmarkId::new("respite", name), &stream, |b, s| {
            b.iter(|| ours(s, &mut decoder));
        });
        group.bench_with_input(BenchmarkId::new("redis-protocol", name), &stream, |b, s| {
            b.iter(|| theirs(s));
        });
        group.bench_with_input(BenchmarkId::new("copy_only", name), &stream, |b, s| {
            b.iter(|| black_box(BytesMut::from(&s[..])));
        });
    }
    group.finish();
}

fn encode_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(PIPELINE as u64));
    let value = vec![b'v'; 100];
    let mut out = BytesMut::with_capacity(1 << 16);
    group.bench_function("bulk_100B", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..PIPELINE {
                encode_bulk(black_box(&value), &mut out);
            }
        });
    });
    group.bench_function("ok", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..PIPELINE {
                encode_simple(black_box(b"OK"), &mut out);
            }
        });
    });
    group.bench_function("integer", |b| {
        b.iter(|| {
            out.clear();
            for n in 0..PIPELINE as i64 {
                encode_integer(black_box(n * 1_000_003), &mut out);
            }
        });
    });
    let reply = Reply::Bulk(Bytes::from(value.clone()));
    group.bench_function("reply_bulk_100B", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..PIPELINE {
                encode(black_box(&reply), Version::Resp2, &mut out);
            }
        });
    });
    let frame = BytesFrame::BulkString(Bytes::from(value.clone()));
    group.bench_function("redis-protocol_bulk_100B", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..PIPELINE {
                redis_protocol::resp2::encode::extend_encode(&mut out, black_box(&frame), false)
                    .unwrap();
            }
        });
    });
    group.finish();
}

criterion_group!(benches, decode_benches, encode_benches);
criterion_main!(benches);
