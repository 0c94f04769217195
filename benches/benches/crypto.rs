#![allow(clippy::unwrap_used)]
//! Encryption at rest, one 4 KiB page (docs/encryption.md): AES-256-GCM seal and open of a
//! page under a file key, and the same with the tag I/O the engine does around it (a pwrite
//! of the page and of its 40-byte entry into page-cached files; a pread of both on open).
//! The design notes' figures to compare with: about 120 ns each without I/O, 160 ns with it.

use std::hint::black_box;
use std::os::unix::fs::FileExt;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use respite_storage::{MasterKey, PageBench};

const PAGE: usize = 4096;

fn page(c: &mut Criterion) {
    let p = PageBench::new(&MasterKey::from_bytes([7; 32])).unwrap();
    let plain: Vec<u8> = (0..PAGE).map(|i| (i * 31) as u8).collect();
    let mut g = c.benchmark_group("page_4k");
    g.throughput(Throughput::Bytes(PAGE as u64));

    let mut buf = plain.clone();
    g.bench_function("seal", |b| {
        b.iter(|| {
            buf.copy_from_slice(&plain);
            black_box(p.seal(3, &mut buf).unwrap())
        })
    });

    let mut sealed = plain.clone();
    let entry = p.seal(3, &mut sealed).unwrap();
    let mut buf = sealed.clone();
    g.bench_function("open", |b| {
        b.iter(|| {
            buf.copy_from_slice(&sealed);
            assert!(p.open(3, &mut buf, &entry));
            black_box(buf[0])
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.path().join("d"))
        .unwrap();
    let tags = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.path().join("d.tag"))
        .unwrap();
    let mut buf = plain.clone();
    let mut n = 0u64;
    g.bench_function("seal_with_tag_io", |b| {
        b.iter(|| {
            buf.copy_from_slice(&plain);
            let no = n % 256;
            n += 1;
            let e = p.seal(no, &mut buf).unwrap();
            data.write_all_at(&buf, no * PAGE as u64).unwrap();
            tags.write_all_at(&e, 64 + no * 40).unwrap();
        })
    });

    // Page 0 as the bench above last left it on disk, with its entry.
    let mut on_disk = plain.clone();
    let e = p.seal(0, &mut on_disk).unwrap();
    data.write_all_at(&on_disk, 0).unwrap();
    tags.write_all_at(&e, 64).unwrap();
    let mut buf = vec![0u8; PAGE];
    let mut ebuf = [0u8; 40];
    g.bench_function("open_with_tag_io", |b| {
        b.iter(|| {
            data.read_exact_at(&mut buf, 0).unwrap();
            tags.read_exact_at(&mut ebuf, 64).unwrap();
            assert!(p.open(0, &mut buf, &ebuf));
            black_box(buf[1])
        })
    });
    g.finish();
}

criterion_group!(benches, page);
criterion_main!(benches);
