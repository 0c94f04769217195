//! Driving load: `redis-benchmark` (parsed from its own summary), `memtier_benchmark`
//! when it is on the PATH, and a pipelined loader for the memory and restart figures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One load run's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Server CPU time (user and system, all threads) per request, in microseconds; 0 when
    /// not measured.
    pub server_cpu_us_per_op: f64,
    /// The load tool's own CPU time (user and system) per request, in microseconds; 0 when
    /// not measured.
    pub tool_cpu_us_per_op: f64,
}

/// The shape of one cell of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    pub test: &'static str,
    pub pipeline: u32,
    pub value_bytes: u32,
}

impl Cell {
    pub fn label(&self) -> String {
        format!(
            "{} P{} {}B",
            self.test.to_uppercase(),
            self.pipeline,
            self.value_bytes
        )
    }
}

pub const CLIENTS: u32 = 50;
pub const KEYSPACE: u64 = 1_000_000;

/// The exact redis-benchmark command line for a cell (also printed in the report).
pub fn benchmark_args(port: u16, cell: Cell, requests: u64) -> Vec<String> {
    let mut args = vec![
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ];
    for (flag, value) in [
        ("-c", CLIENTS.to_string()),
        ("-n", requests.to_string()),
        ("-r", KEYSPACE.to_string()),
        ("-t", cell.test.to_string()),
        ("-P", cell.pipeline.to_string()),
        ("-d", cell.value_bytes.to_string()),
    ] {
        args.push(flag.into());
        args.push(value);
    }
    args
}

/// Runs redis-benchmark for one cell against `port` and parses its summary.
pub fn run_redis_benchmark(port: u16, cell: Cell, requests: u64) -> Result<Figures, String> {
    let out = run_bounded(
        Command::new("redis-benchmark").args(benchmark_args(port, cell, requests)),
        Duration::from_secs(1800),
    )?;
    parse_redis_benchmark(&out).ok_or_else(|| {
        let tail: String = out
            .chars()
            .rev()
            .take(400)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!(
            "could not parse redis-benchmark output for {}: ...{tail}",
            cell.label()
        )
    })
}

/// Parses the `Summary:` block and the percentile distribution of redis-benchmark 7's
/// default output. p99.9 is the first percentile line at or above 99.9%.
pub fn parse_redis_benchmark(out: &str) -> Option<Figures> {
    let mut figures = Figures::default();
    let mut p999 = None;
    let mut in_percentiles = false;
    let mut lines = out
        .lines()
        .map(|l| l.rsplit('\r').next().unwrap_or(l).trim());
    while let Some(line) = lines.next() {
        if line.starts_with("Latency by percentile distribution") {
            in_percentiles = true;
            continue;
        }
        if in_percentiles {
            if line.is_empty() {
                in_percentiles = false;
                continue;
            }
            // "99.902% <= 1.247 milliseconds (cumulative count 19984)"
            let mut parts = line.split_whitespace();
            let pct = parts.next()?.trim_end_matches('%').parse::<f64>().ok()?;
            let ms = parts.nth(1)?.parse::<f64>().ok()?;
            if p999.is_none() && pct >= 99.9 {
                p999 = Some(ms);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("throughput summary:") {
            figures.ops_per_sec = rest.split_whitespace().next()?.parse().ok()?;
        }
        if line.starts_with("avg") && line.contains("p50") {
            let names: Vec<&str> = line.split_whitespace().collect();
            let values: Vec<f64> = lines
                .next()?
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let get = |name: &str| {
                names
                    .iter()
                    .position(|n| *n == name)
                    .and_then(|i| values.get(i).copied())
            };
            figures.p50_ms = get("p50")?;
            figures.p99_ms = get("p99")?;
        }
    }
    figures.p999_ms = p999?;
    (figures.ops_per_sec > 0.0).then_some(figures)
}

/// Whether memtier_benchmark is installed (it is not in Debian's archive).
pub fn memtier_available() -> bool {
    Command::new("memtier_benchmark")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs memtier_benchmark with the same shape as a redis-benchmark cell.
pub fn run_memtier(port: u16, cell: Cell, requests: u64) -> Result<Figures, String> {
    let ratio = if cell.test == "set" { "1:0" } else { "0:1" };
    // memtier counts requests per client per thread; 2 threads x 25 clients = 50 connections.
    let per_client = (requests / u64::from(CLIENTS)).max(1);
    let out = run_bounded(
        Command::new("memtier_benchmark").args([
            "-s",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--protocol=redis",
            "-t",
            "2",
            "-c",
            "25",
            "-n",
            &per_client.to_string(),
            "--ratio",
            ratio,
            "--pipeline",
            &cell.pipeline.to_string(),
            "-d",
            &cell.value_bytes.to_string(),
            "--key-maximum",
            &KEYSPACE.to_string(),
            "--hide-histogram",
            "--print-percentiles",
            "50,99,99.9",
        ]),
        Duration::from_secs(1800),
    )?;
    parse_memtier(&out)
        .ok_or_else(|| format!("could not parse memtier output for {}", cell.label()))
}

/// Parses memtier's `Totals` line: Ops/sec, Hits/sec, Misses/sec, Avg, p50, p99, p99.9, KB/sec.
pub fn parse_memtier(out: &str) -> Option<Figures> {
    let line = out.lines().find(|l| l.trim_start().starts_with("Totals"))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    Some(Figures {
        ops_per_sec: *v.first()?,
        p50_ms: *v.get(4)?,
        p99_ms: *v.get(5)?,
        p999_ms: *v.get(6)?,
        ..Figures::default()
    })
}

/// Runs a command to completion with a time bound, returning its stdout.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {:?}: {e}", cmd.get_program()))?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    // Drain stdout on its own thread so a chatty child never blocks on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = { stdout }.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{:?} ran past {limit:?}; killed",
                cmd.get_program()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().map_err(|_| "stdout reader panicked")?;
    if !status.success() {
        return Err(format!("{:?} exited with {status}", cmd.get_program()));
    }
    Ok(out)
}

/// Loads `keys` distinct keys (`key:<n>`) with `value_bytes`-byte values through one
/// pipelined connection, checking every reply is +OK.
pub fn load_keys(port: u16, keys: u64, value_bytes: usize) -> Result<(), String> {
    const BATCH: u64 = 1000;
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let value = vec![b'x'; value_bytes];
    let mut buf = Vec::with_capacity(256 * 1024);
    let mut line = String::new();
    let mut next = 0u64;
    while next < keys {
        let end = (next + BATCH).min(keys);
        buf.clear();
        for n in next..end {
            let key = format!("key:{n:012}");
            write!(
                buf,
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
                key.len(),
                value.len()
            )
            .map_err(|e| e.to_string())?;
            buf.extend_from_slice(&value);
            buf.extend_from_slice(b"\r\n");
        }
        writer.write_all(&buf).map_err(|e| format!("write: {e}"))?;
        for _ in next..end {
            line.clear();
            reader
                .read_line(&mut line)
                .map_err(|e| format!("read: {e}"))?;
            if line != "+OK\r\n" {
                return Err(format!("SET got {line:?} instead of +OK"));
            }
        }
        next = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "====== SET ======\n  20000 requests completed in 0.02 seconds\n\n\
Latency by percentile distribution:\n0.000% <= 0.383 milliseconds (cumulative count 16)\n\
50.000% <= 0.591 milliseconds (cumulative count 10112)\n99.805% <= 1.231 milliseconds (cumulative count 19968)\n\
99.902% <= 1.247 milliseconds (cumulative count 19984)\n100.000% <= 1.359 milliseconds (cumulative count 20000)\n\n\
Cumulative distribution of latencies:\n0.000% <= 0.103 milliseconds (cumulative count 0)\n\n\
Summary:\n  throughput summary: 833333.31 requests per second\n  latency summary (msec):\n\
          avg       min       p50       p95       p99       max\n        0.758     0.200     0.719     1.255     1.671     1.807\n";

    #[test]
    fn parses_redis_benchmark_summary_and_p999() {
        let f = parse_redis_benchmark(SAMPLE).unwrap();
        assert_eq!(f.ops_per_sec, 833333.31);
        assert_eq!(f.p50_ms, 0.719);
        assert_eq!(f.p99_ms, 1.671);
        assert_eq!(f.p999_ms, 1.247);
    }

    #[test]
    fn refuses_output_without_summary() {
        assert_eq!(parse_redis_benchmark("Could not connect to Redis\n"), None);
    }

    #[test]
    fn parses_memtier_totals() {
        let out = "Type Ops/sec Hits/sec Misses/sec Avg. p50 p99 p99.9 KB/sec\n\
Totals 123456.78 0.00 0.00 0.40 0.38 0.90 1.50 12345.00\n";
        let f = parse_memtier(out).unwrap();
        assert_eq!(f.ops_per_sec, 123456.78);
        assert_eq!((f.p50_ms, f.p99_ms, f.p999_ms), (0.38, 0.90, 1.50));
    }
}
