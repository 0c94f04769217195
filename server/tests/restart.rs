#![allow(clippy::unwrap_used)]
//! Data, TTLs and database placement survive a graceful restart (SIGTERM, exit code 0).

mod common;

use common::{Server, config_get, info_field};

#[test]
fn data_survives_sigterm_restart() {
    let server = Server::start(&["--appendfsync", "everysec"]);
    let mut c = server.connect();
    c.call(&["SET", "plain", "value"], "+OK\r\n");
    c.call(&["SET", "ttl", "v", "EX", "10000"], "+OK\r\n");
    c.call(&["INCRBY", "counter", "41"], ":41\r\n");
    c.call(&["SELECT", "3"], "+OK\r\n");
    c.call(&["SET", "indb3", "x"], "+OK\r\n");
    c.call(&["SELECT", "0"], "+OK\r\n");
    c.call(&["SET", "gone", "x"], "+OK\r\n");
    c.call(&["DEL", "gone"], ":1\r\n");
    drop(c);

    let server = server.restart(&["--appendfsync", "everysec"]);
    let mut c = server.connect();
    c.call(&["GET", "plain"], "$5\r\nvalue\r\n");
    c.call(&["INCR", "counter"], ":42\r\n");
    c.call(&["GET", "gone"], "$-1\r\n");
    c.send(&["TTL", "ttl"]);
    let ttl = c.line();
    let secs: i64 = ttl.trim_start_matches(':').trim().parse().unwrap();
    assert!(secs > 0 && secs <= 10000, "{ttl}");
    c.call(&["EXISTS", "indb3"], ":0\r\n");
    c.call(&["SELECT", "3"], "+OK\r\n");
    c.call(&["GET", "indb3"], "$1\r\nx\r\n");
}

#[test]
fn shutdown_command_exits_zero_and_keeps_data() {
    let mut server = Server::start(&[]);
    let mut c = server.connect();
    c.call(&["SET", "k", "v"], "+OK\r\n");
    c.send(&["SHUTDOWN", "NOSAVE"]);
    assert!(c.closed());
    let status = server.wait_exit();
    assert!(status.success(), "{status:?}");
    let dir = server.dir.clone();
    let server2 = Server::start_in(&dir, &[]);
    let mut c = server2.connect();
    c.call(&["GET", "k"], "$1\r\nv\r\n");
}

/// INFO stats' block-cache hits plus misses: how many reads went through the block cache.
fn block_cache_reads(c: &mut redis::Connection) -> u64 {
    ["cache_hits", "cache_misses"]
        .iter()
        .map(|f| info_field(c, "stats", f).unwrap().parse::<u64>().unwrap())
        .sum()
}

/// `inline-value-max` changes where a read comes from, never what it returns: values up to it
/// are served from memory without touching the block cache, and a folder written under one
/// setting reads back whole under another (start-up fills or drops the in-memory copies).
#[test]
fn inline_value_max_moves_small_values_into_memory_across_restarts() {
    let value = |i: usize| format!("{i:0>100}"); // 100 bytes: above the default of 64
    let set_all = |c: &mut redis::Connection, keys: std::ops::Range<usize>| {
        for i in keys {
            let _: () = redis::cmd("SET")
                .arg(format!("k{i}"))
                .arg(value(i))
                .query(c)
                .unwrap();
        }
    };
    let get_all = |c: &mut redis::Connection, n: usize| {
        for i in 0..n {
            let got: String = redis::cmd("GET").arg(format!("k{i}")).query(c).unwrap();
            assert_eq!(got, value(i), "k{i}");
        }
    };
    let server = Server::start(&[]);
    let mut c = server.redis();
    set_all(&mut c, 0..200);
    drop(c);

    let server = server.restart(&["--inline-value-max", "128"]);
    let mut c = server.redis();
    let got = config_get(&mut c, "inline-value-max");
    assert_eq!(got, ["inline-value-max", "128"]);
    let refused: redis::RedisResult<()> = redis::cmd("CONFIG")
        .arg("SET")
        .arg("inline-value-max")
        .arg("0")
        .query(&mut c);
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("can't set immutable config"),
        "set only at start-up"
    );
    let before = block_cache_reads(&mut c);
    get_all(&mut c, 200);
    assert_eq!(
        block_cache_reads(&mut c),
        before,
        "100-byte values served from memory"
    );
    set_all(&mut c, 200..300);
    drop(c);

    // With nothing inline, the same reads (written under both settings) go to the log.
    let server = server.restart(&["--inline-value-max", "0"]);
    let mut c = server.redis();
    let before = block_cache_reads(&mut c);
    get_all(&mut c, 300);
    assert!(block_cache_reads(&mut c) >= before + 300);
}

/// SIGTERM and SIGINT are caught by the time the server says it is ready (its handlers are
/// installed before start-up, not after it): a SIGTERM right after the "Ready" line is a
/// clean shutdown, exit code 0, never the default action's kill. CI once saw that kill when
/// the handlers came after the line.
#[test]
fn a_sigterm_right_after_ready_is_a_clean_shutdown() {
    // Twenty starts: with the handlers installed after the line, about one start in fifteen
    // was caught before them here.
    for _ in 0..20 {
        let mut server = Server::start(&[]);
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
            .unwrap();
        for sig in [libc::SIGTERM, libc::SIGINT] {
            assert_ne!(
                caught & (1 << (sig - 1)),
                0,
                "signal {sig} not caught at Ready"
            );
        }
        let exit = server.sigterm();
        assert!(exit.success(), "{exit:?}");
    }
}
