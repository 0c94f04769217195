#![allow(clippy::unwrap_used)]
//! An fsync failure under `appendfsync always`: the held reply of the write it covered
//! becomes a MISCONF error (never +OK), later writes are refused with MISCONF, reads go on,
//! and INFO reports the failed write status. In-process, through the engine's fault seam.

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

#[test]
fn a_failed_fsync_turns_held_replies_into_misconf() {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config::from_args([
        "--port",
        "0",
        "--dir",
        tmp.path().join("data").to_str().unwrap(),
        "--appendfsync",
        "always",
        "--loglevel",
        "warning",
    ])
    .unwrap();
    let server = Server::start(config).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
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
