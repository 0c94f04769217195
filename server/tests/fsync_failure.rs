#![allow(clippy::unwrap_used)]
//! An fsync failure under `appendfsync always`: the held reply of the write it covered
//! becomes a MISCONF error (never +OK), later writes are refused with MISCONF, reads go on,
//! and INFO reports the failed write status. A full disk: the same MISCONF and INFO until
//! space returns, then writes are accepted again without a restart. In-process, through the
//! engine's fault seam (ci/reliability/enospc.py fills a real disk).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use respite_server::{Config, Server};

fn line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        s.read_exact(&mut b).unwrap();
        out.push(b[0]);
    }
    String::from_utf8(out).unwrap()
}

fn send(s: &mut TcpStream, args: &[&str]) {
    let mut buf = format!("*{}\r\n", args.len());
    for a in args {
        buf.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(buf.as_bytes()).unwrap();
}

/// A client connection to `server`, reads bounded by 30 s.
fn connect_to(server: &Server) -> TcpStream {
    let c = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

/// SETs `key` until the server takes it (MISCONF meanwhile): the engine retries a write the
/// full disk refused once a second. Panics after 20 s.
fn set_once_writes_resume(c: &mut TcpStream, key: &str, value: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        send(c, &["SET", key, value]);
        let reply = line(c);
        if reply == "+OK\r\n" {
            return;
        }
        assert!(reply.starts_with("-MISCONF "), "{reply}");
        assert!(std::time::Instant::now() < deadline, "writes still refused");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server config with its data in `tmp` and `appendfsync` `mode`.
fn config(tmp: &tempfile::TempDir, mode: &str) -> Config {
    let dir = tmp.path().join("data");
    Config::from_args([
        "--port",
        "0",
        "--dir",
        dir.to_str().unwrap(),
        "--appendfsync",
        mode,
        "--loglevel",
        "warning",
    ])
    .unwrap()
}

#[test]
fn a_failed_fsync_turns_held_replies_into_misconf() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(&tmp, "always");
    let server = Server::start(config).unwrap();
    let mut c = connect_to(&server);
    send(&mut c, &["SET", "before", "1"]);
    assert_eq!(line(&mut c), "+OK\r\n");

    server.fail_next_sync();
    send(&mut c, &["SET", "doomed", "1"]);
    let reply = line(&mut c);
    assert!(
        reply.starts_with("-MISCONF Errors writing to the AOF file: "),
        "{reply}"
    );
    // Writes are refused from now on, with the same clear prefix; reads go on.
    send(&mut c, &["SET", "after", "1"]);
    assert!(line(&mut c).starts_with("-MISCONF "));
    send(&mut c, &["GET", "before"]);
    assert_eq!(line(&mut c), "$1\r\n");
    assert_eq!(line(&mut c), "1\r\n");
    send(&mut c, &["INFO", "persistence"]);
    let header = line(&mut c);
    let len: usize = header[1..header.len() - 2].parse().unwrap();
    let mut body = vec![0u8; len + 2];
    c.read_exact(&mut body).unwrap();
    let info = String::from_utf8_lossy(&body);
    assert!(info.contains("aof_last_write_status:err"), "{info}");
    drop(c);
    // Closing reports the failure instead of pretending the data is safe.
    assert!(server.shutdown().is_err());
}

fn info_field(s: &mut TcpStream, section: &str, field: &str) -> String {
    send(s, &["INFO", section]);
    let header = line(s);
    let len: usize = header[1..header.len() - 2].parse().unwrap();
    let mut body = vec![0u8; len + 2];
    s.read_exact(&mut body).unwrap();
    let info = String::from_utf8(body).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .to_string()
}

/// A full disk is not a failed fsync: writes are refused with a MISCONF that says a retry is
/// coming, reads go on, and once space returns writes are accepted again without a restart.
#[test]
fn a_full_disk_refuses_writes_until_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(&tmp, "everysec");
    let server = Server::start(config.clone()).unwrap();
    let mut c = connect_to(&server);
    send(&mut c, &["SET", "before", "1"]);
    assert_eq!(line(&mut c), "+OK\r\n");
    send(&mut c, &["SAVE"]);
    assert_eq!(line(&mut c), "+OK\r\n");

    server.set_disk_full(true);
    // SAVE has to write the buffer out: it meets the full disk.
    send(&mut c, &["SET", "pending", "2"]);
    assert_eq!(line(&mut c), "+OK\r\n");
    send(&mut c, &["SAVE"]);
    let reply = line(&mut c);
    assert!(
        reply.starts_with("-MISCONF Errors writing to the AOF file: "),
        "{reply}"
    );
    assert!(reply.contains("No space left on device"), "{reply}");
    assert!(reply.contains("until a retry succeeds"), "{reply}");
    send(&mut c, &["SET", "refused", "3"]);
    assert!(line(&mut c).starts_with("-MISCONF "));
    send(&mut c, &["GET", "pending"]);
    assert_eq!(line(&mut c), "$1\r\n");
    assert_eq!(line(&mut c), "2\r\n");
    assert_eq!(
        info_field(&mut c, "persistence", "aof_last_write_status"),
        "err"
    );

    // Space returns: the engine's retry (once a second) lets writes in again.
    server.set_disk_full(false);
    set_once_writes_resume(&mut c, "after", "4");
    assert_eq!(
        info_field(&mut c, "persistence", "aof_last_write_status"),
        "ok"
    );
    drop(c);
    server.shutdown().unwrap();

    // The write acknowledged while the disk was full was kept; the refused one was not.
    let server = Server::start(config).unwrap();
    let mut c = connect_to(&server);
    send(&mut c, &["MGET", "before", "pending", "refused", "after"]);
    let got: Vec<String> = (0..8).map(|_| line(&mut c)).collect();
    assert_eq!(
        got.concat(),
        "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n$1\r\n4\r\n"
    );
    drop(c);
    server.shutdown().unwrap();
}

/// Under `always`, the reply of a write whose sync round met the full disk is a MISCONF
/// that says what happened: the write is applied, and durable only once a retry succeeds.
/// New writes are refused before they run, reads go on, and once space returns the applied
/// write is written and survives a restart; the refused one does not exist.
#[test]
fn under_always_a_write_that_met_the_full_disk_is_kept_for_the_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(&tmp, "always");
    let server = Server::start(config.clone()).unwrap();
    let (mut c1, mut c2) = (connect_to(&server), connect_to(&server));
    server.set_disk_full(true);
    send(&mut c1, &["SET", "applied", "1"]);
    let reply = line(&mut c1);
    assert!(reply.starts_with("-MISCONF "), "{reply}");
    assert!(reply.contains("No space left on device"), "{reply}");
    assert!(
        reply.contains("a write already applied is durable only then"),
        "{reply}"
    );
    send(&mut c2, &["SET", "refused", "2"]);
    assert!(line(&mut c2).starts_with("-MISCONF "));
    send(&mut c2, &["GET", "applied"]);
    assert_eq!(line(&mut c2), "$1\r\n");
    assert_eq!(line(&mut c2), "1\r\n");

    server.set_disk_full(false);
    set_once_writes_resume(&mut c2, "after", "3");
    drop((c1, c2));
    server.shutdown().unwrap();

    let server = Server::start(config).unwrap();
    let mut c = connect_to(&server);
    send(&mut c, &["MGET", "applied", "refused", "after"]);
    let got: Vec<String> = (0..6).map(|_| line(&mut c)).collect();
    assert_eq!(got.concat(), "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n3\r\n");
    drop(c);
    server.shutdown().unwrap();
}
