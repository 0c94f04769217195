//! `bounds`: the floors this machine puts under Respite's figures, each measured with the
//! plainest code that does the operation, so an engine or server figure can be set beside
//! what the hardware allows before any of our code runs:
//!
//! - a dependent memory access: a random pointer chase over 256 MiB, one cache line per
//!   step (an index lookup over a million keys is at least one or two of these);
//! - a small write and its fdatasync in a preallocated file, as a log append under
//!   `appendfsync always`, from one thread and from two at once (does the device overlap
//!   them?);
//! - AES-256-GCM of one 4 KiB page: the aes-gcm crate in this process, and OpenSSL's own
//!   figure (`openssl speed`) when openssl is installed.
//!
//! `cargo run -p respite-benches --release -- bounds [--dir DIR] [--out FILE]`

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};

const USAGE: &str = "respite-benches bounds [--dir DIR] [--out FILE]
  --dir DIR   where the fdatasync probe's scratch file goes: put it on the file system of
              the data folder (default: the system's temporary folder)
  --out FILE  also write the markdown table there";

/// Bytes the pointer chase walks: far beyond any cache, as a million-key index is.
const CHASE_BYTES: usize = 256 << 20;
const CHASE_STEPS: usize = 4_000_000;
/// A record the size of `SET key:000000123456 <100 bytes>` in the log.
const RECORD: usize = 148;
const SYNCS_PER_THREAD: u64 = 2000;
const PAGE: usize = 4096;
const PAGES: usize = 20_000;

/// Runs every probe and prints the table.
///
/// # Errors
/// A bad option, or the scratch file could not be made or written.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut dir = std::env::temp_dir();
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--dir" => dir = PathBuf::from(value()?),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }

    let mut rows = Vec::new();
    eprintln!("bounds: pointer chase over {} MiB", CHASE_BYTES >> 20);
    let chase = pointer_chase_ns(CHASE_BYTES, CHASE_STEPS);
    rows.push(format!(
        "| dependent memory access (random pointer chase, {} MiB) | {chase:.0} ns |",
        CHASE_BYTES >> 20
    ));

    eprintln!("bounds: write + fdatasync in {}", dir.display());
    let one = fdatasync_probe(&dir, 1, SYNCS_PER_THREAD)?;
    let two = fdatasync_probe(&dir, 2, SYNCS_PER_THREAD)?;
    rows.push(format!(
        "| {RECORD}-byte write + fdatasync, preallocated file, 1 thread | {:.0} µs each, {:.0}/s |",
        one.us_each, one.per_sec
    ));
    rows.push(format!(
        "| the same from 2 threads at once | {:.0} µs each, {:.0}/s ({:.2}x one thread) |",
        two.us_each,
        two.per_sec,
        two.per_sec / one.per_sec
    ));

    eprintln!("bounds: AES-256-GCM of a 4 KiB page");
    rows.push(format!(
        "| AES-256-GCM seal of a 4 KiB page, aes-gcm crate | {:.2} µs |",
        aes_gcm_page_us(PAGES)
    ));
    rows.push(format!(
        "| AES-256-GCM of a 4 KiB page, `openssl speed -evp aes-256-gcm` | {} |",
        openssl_page_us().map_or("openssl not installed".into(), |us| format!("{us:.2} µs"))
    ));

    let mut table = String::from("| floor | this machine |\n|---|---|\n");
    for r in rows {
        table.push_str(&r);
        table.push('\n');
    }
    print!("{table}");
    if let Some(path) = out {
        std::fs::write(&path, &table).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Nanoseconds per step of a chase through one random cycle over every 64-byte line of
/// `bytes`: each load's address comes from the one before, so no two overlap.
fn pointer_chase_ns(bytes: usize, steps: usize) -> f64 {
    const WORDS_PER_LINE: usize = 16;
    let lines = bytes / 64;
    let succ = single_cycle(lines);
    let mut mem = vec![0u32; lines * WORDS_PER_LINE];
    for (line, &next) in succ.iter().enumerate() {
        mem[line * WORDS_PER_LINE] = next;
    }
    drop(succ);
    let mut at = 0usize;
    // Warm up the page tables and the branch, not the caches (the cycle is far larger).
    for _ in 0..steps / 10 {
        at = mem[at * WORDS_PER_LINE] as usize;
    }
    let start = Instant::now();
    for _ in 0..steps {
        at = mem[at * WORDS_PER_LINE] as usize;
    }
    let ns = start.elapsed().as_nanos() as f64 / steps as f64;
    std::hint::black_box(at);
    ns
}

/// A random permutation of `0..n` that is one cycle through all of them (Sattolo's
/// shuffle): `succ[i]` is the element after `i`.
fn single_cycle(n: usize) -> Vec<u32> {
    let mut succ: Vec<u32> = (0..n as u32).collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..n).rev() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        succ.swap(i, (rng % i as u64) as usize);
    }
    succ
}

struct SyncFigures {
    us_each: f64,
    per_sec: f64,
}

/// `threads` threads each append `each` records to one preallocated file, each
/// followed by fdatasync of the file, as the log under `appendfsync always` does.
fn fdatasync_probe(dir: &Path, threads: u64, each: u64) -> Result<SyncFigures, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let path = dir.join(format!("respite-bounds-{}.scratch", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| format!("create {}: {e}", path.display()))?;
    let result = (|| {
        let total = threads * each * RECORD as u64;
        preallocate(&file, total).map_err(|e| format!("fallocate {}: {e}", path.display()))?;
        file.sync_all()
            .map_err(|e| format!("fsync {}: {e}", path.display()))?;
        let next = AtomicU64::new(0);
        let start = Instant::now();
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| -> std::io::Result<()> {
                        let record = [b'x'; RECORD];
                        for _ in 0..each {
                            let off = next.fetch_add(RECORD as u64, Ordering::Relaxed);
                            file.write_all_at(&record, off)?;
                            file.sync_data()?;
                        }
                        Ok(())
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .map_err(|_| "an fdatasync thread panicked".to_string())?
                    .map_err(|e| format!("write or fdatasync {}: {e}", path.display()))
            })
        })?;
        let secs = start.elapsed().as_secs_f64();
        Ok(SyncFigures {
            us_each: secs * 1e6 / each as f64,
            per_sec: (threads * each) as f64 / secs,
        })
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// Allocates `len` bytes of `file` the way the engine preallocates its logs.
fn preallocate(file: &File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len =
        libc::off_t::try_from(len).map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: fallocate on a valid open descriptor owned by `file`; no memory is involved.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Microseconds to seal one 4 KiB page with the aes-gcm crate (the engine's cipher), the
/// median of five rounds of `pages` pages.
fn aes_gcm_page_us(pages: usize) -> f64 {
    let gcm = Aes256Gcm::new(&std::array::from_fn::<u8, 32, _>(|i| i as u8).into());
    let mut page = vec![0x5au8; PAGE];
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for i in 0..pages {
                let mut nonce = [0u8; 12];
                nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let tag = gcm
                    .encrypt_inout_detached(&Nonce::from(nonce), b"aad", page.as_mut_slice().into())
                    .unwrap_or_default();
                std::hint::black_box(tag);
            }
            start.elapsed().as_secs_f64() * 1e6 / pages as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
}

/// OpenSSL's AES-256-GCM time for a 4 KiB block on this machine, from `openssl speed`.
fn openssl_page_us() -> Option<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-elapsed", "-seconds", "2", "-bytes", "4096"])
        .args(["-evp", "aes-256-gcm"])
        .output()
        .ok()?;
    parse_openssl_speed(&String::from_utf8_lossy(&out.stdout))
}

/// µs per 4 KiB block from `openssl speed`'s result line ("AES-256-GCM  3549927.42k": 1000s
/// of bytes per second).
fn parse_openssl_speed(out: &str) -> Option<f64> {
    let line = out.lines().rev().find(|l| l.starts_with("AES-256-GCM"))?;
    let kbytes: f64 = line
        .split_whitespace()
        .last()?
        .strip_suffix('k')?
        .parse()
        .ok()?;
    (kbytes > 0.0).then(|| PAGE as f64 / (kbytes * 1000.0) * 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_openssl_speed_output() {
        let out = "The 'numbers' are in 1000s of bytes per second processed.\n\
                   type           4096 bytes\n\
                   AES-256-GCM    4096000.00k\n";
        assert_eq!(parse_openssl_speed(out), Some(1.0));
        assert_eq!(parse_openssl_speed("no figures"), None);
    }

    #[test]
    fn the_chase_is_one_cycle_through_every_line() {
        // Otherwise the chase could loop in a short cycle that stays in cache.
        for n in [2, 3, 1000, 4096] {
            let succ = single_cycle(n);
            let (mut at, mut steps) = (0usize, 0usize);
            loop {
                at = succ[at] as usize;
                steps += 1;
                if at == 0 {
                    break;
                }
                assert!(steps < n, "cycle of {n} longer than n");
            }
            assert_eq!(steps, n, "a cycle of {steps} in {n} elements");
        }
    }

    #[test]
    fn the_fdatasync_probe_writes_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let f = fdatasync_probe(dir.path(), 2, 50).unwrap();
        assert!(f.per_sec > 0.0 && f.us_each > 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
