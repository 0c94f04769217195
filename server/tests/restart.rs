#![allow(clippy::unwrap_used)]
//! Data, TTLs and database placement survive a graceful restart (SIGTERM, exit code 0).

mod common;

use common::Server;

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
