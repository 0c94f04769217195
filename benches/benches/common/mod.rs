//! What the engine and ConstTree benches share: the key set, the value, RSS readings and
//! the two-thread runner.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// RESPITE_BENCH_KEYS keys (default 1,000,000).
pub fn nkeys() -> u64 {
    std::env::var("RESPITE_BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

/// A 16-byte key: prefix byte, "ey:", 12 decimal digits.
pub fn key(prefix: u8, i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[0] = prefix;
    k[1..4].copy_from_slice(b"ey:");
    let mut n = i;
    for d in k[4..].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

/// The 100-byte value every benchmark writes.
pub const VALUE: [u8; 100] = [0x61; 100];

/// The process's resident set, in bytes.
pub fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // statm counts pages; 4 KiB on the x86-64 / aarch64 Linux machines we bench on.
    pages * 4096
}

/// Runs `op(thread, i)` for `iters` operations split across `threads` threads; wall time.
pub fn parallel<F: Fn(u64, u64) + Send + Sync + 'static>(
    iters: u64,
    threads: u64,
    op: Arc<F>,
) -> Duration {
    let start = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let op = op.clone();
            std::thread::spawn(move || {
                for i in 0..iters / threads {
                    op(t, i);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    start.elapsed()
}
