#![allow(clippy::unwrap_used)]
//! Limits: maxclients, idle timeout, output buffer hard limit, backpressure on a client
//! that never reads, proto-max-bulk-len.

mod common;

use std::io::Write;

use common::Server;

#[test]
fn maxclients_refuses_with_redis_error() {
    let server = Server::start(&["--maxclients", "2"]);
    let mut a = server.connect();
    let mut b = server.connect();
    a.call(&["PING"], "+PONG\r\n");
    b.call(&["PING"], "+PONG\r\n");
    let mut c = server.connect();
    c.expect("-ERR max number of clients reached\r\n");
    assert!(c.closed());
    drop(a);
    // A slot frees up once the server has noticed the close; b asks until it has.
    let mut d = None;
    let deadline = std::time::Instant::now() + common::PATIENCE;
    while std::time::Instant::now() < deadline {
        b.send(&["INFO", "clients"]);
        let header = b.line();
        let len: usize = header[1..header.len() - 2].parse().unwrap();
        let mut body = vec![0u8; len + 2];
        std::io::Read::read_exact(&mut b.0, &mut body).unwrap();
        if String::from_utf8_lossy(&body).contains("connected_clients:1\r\n") {
            d = Some(server.connect());
            break;
        }
    }
    d.unwrap().call(&["PING"], "+PONG\r\n");
}

#[test]
fn idle_clients_are_closed_after_timeout() {
    let server = Server::start(&["--timeout", "1"]);
    let mut c = server.connect();
    c.call(&["PING"], "+PONG\r\n");
    // No further traffic: the server closes the connection (the read is bounded).
    assert!(c.closed());
}

/// CLIENT LIST as seen from `c`.
fn client_list(c: &mut common::Raw) -> String {
    c.send(&["CLIENT", "LIST"]);
    let header = c.line();
    let len: usize = header[1..header.len() - 2].parse().unwrap();
    let mut body = vec![0u8; len + 2];
    std::io::Read::read_exact(&mut c.0, &mut body).unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

#[test]
fn output_hard_limit_closes_a_client_that_does_not_read() {
    let server = Server::start(&["--client-output-buffer-limit", "normal", "256kb", "0", "0"]);
    let mut c = server.connect();
    let value = "x".repeat(64 * 1024);
    c.call(&["SET", "big", &value], "+OK\r\n");
    c.call(&["CLIENT", "SETNAME", "hog"], "+OK\r\n");
    // Ask for 64 MB of replies (more than the kernel's socket buffers hold) and read none.
    let mut req = Vec::new();
    for _ in 0..1000 {
        req.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    }
    c.write(&req);
    // Watch from another connection (reading on `c` would drain the replies).
    let mut other = server.connect();
    let deadline = std::time::Instant::now() + common::PATIENCE;
    while client_list(&mut other).contains("name=hog ") {
        assert!(
            std::time::Instant::now() < deadline,
            "the hog was never closed"
        );
    }
    other.call(&["PING"], "+PONG\r\n");
}

#[test]
fn a_client_that_never_reads_costs_bounded_memory() {
    // One reactor: the stuck client and the others share an event loop.
    let server = Server::start(&["--threads", "1"]);
    let mut c = server.connect();
    let value = "y".repeat(64 * 1024);
    c.call(&["SET", "big", &value], "+OK\r\n");
    c.call(&["CLIENT", "SETNAME", "sleeper"], "+OK\r\n");
    let mut writer = c.0.try_clone().unwrap();
    // 20000 GETs would be 1.3 GB of replies: the server must stop reading instead.
    let pusher = std::thread::spawn(move || {
        let req = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(1000);
        for _ in 0..20 {
            if writer.write_all(&req).is_err() {
                break;
            }
        }
    });
    let mut other = server.connect();
    // The server keeps serving others, and the sleeper's pending output stays bounded.
    let mut bounded_seen = 0;
    for _ in 0..50 {
        let body = client_list(&mut other);
        let line = body.lines().find(|l| l.contains("name=sleeper")).unwrap();
        let omem: usize = line
            .split(' ')
            .find_map(|f| f.strip_prefix("omem="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(omem < 4 * 1024 * 1024, "pending output grew to {omem}");
        bounded_seen += 1;
    }
    assert_eq!(bounded_seen, 50);
    c.0.shutdown(std::net::Shutdown::Both).unwrap();
    pusher.join().unwrap();
}

#[test]
fn proto_max_bulk_len_is_enforced() {
    let server = Server::start(&["--proto-max-bulk-len", "1mb"]);
    let mut c = server.connect();
    c.write(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n");
    c.expect("-ERR Protocol error: invalid bulk length\r\n");
    assert!(c.closed());
    let mut d = server.connect();
    d.call(
        &["CONFIG", "GET", "proto-max-bulk-len"],
        "*2\r\n$18\r\nproto-max-bulk-len\r\n$7\r\n1048576\r\n",
    );
}

/// CONFIG SET proto-max-bulk-len applies from the very next request of the connection that
/// set it, even one sent in the same write, and from the next request of every other one.
#[test]
fn proto_max_bulk_len_set_at_run_time_applies_to_the_next_request() {
    let server = Server::start(&[]);
    let mut other = server.connect();
    other.call(&["PING"], "+PONG\r\n");
    let mut c = server.connect();
    let lower = common::frame(&["CONFIG", "SET", "proto-max-bulk-len", "1mb"]);
    c.write(format!("{lower}*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n").as_bytes());
    c.expect("+OK\r\n-ERR Protocol error: invalid bulk length\r\n");
    assert!(c.closed());
    other.write(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n");
    other.expect("-ERR Protocol error: invalid bulk length\r\n");
    assert!(other.closed());
    // Raised again, the same request goes through.
    let mut d = server.connect();
    d.call(&["CONFIG", "SET", "proto-max-bulk-len", "4mb"], "+OK\r\n");
    let value = "v".repeat(2_000_000);
    d.call(&["SET", "k", &value], "+OK\r\n");
    d.call(&["STRLEN", "k"], ":2000000\r\n");
}
