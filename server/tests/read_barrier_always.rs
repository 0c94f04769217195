#![allow(clippy::unwrap_used)]
//! Under `appendfsync always` no reply shows a write that is not durable yet, a read on
//! another connection included: Redis sends every reply of a loop turn only after that
//! turn's fsync, so a client can never read a value that a crash then takes back.
//! In-process, with the engine's sync seam holding fsyncs to freeze durability.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use respite_server::{Config, Server};

fn connect(server: &Server) -> TcpStream {
    let c = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

fn read_exact_str(c: &mut TcpStream, n: usize) -> String {
    let mut buf = vec![0u8; n];
    c.read_exact(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn a_read_never_shows_a_write_before_it_is_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let config = Config::from_args([
        "--port",
        "0",
        "--dir",
        dir.to_str().unwrap(),
        "--appendfsync",
        "always",
        "--loglevel",
        "warning",
    ])
    .unwrap();
    let server = Server::start(config).unwrap();
    let mut writer = connect(&server);
    let mut reader = connect(&server);
    writer
        .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nold\r\n")
        .unwrap();
    assert_eq!(read_exact_str(&mut writer, 5), "+OK\r\n");

    // Durability frozen: the next write executes but cannot become durable.
    server.hold_syncs(true);
    writer
        .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nnew\r\n")
        .unwrap();
    // Wait until the index shows the write (its GSN is handed out at the log append, just
    // before the index publishes it, so a GSN alone does not say the value is visible).
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.engine_get(0, b"k").as_deref() != Some(&b"new"[..]) {
        assert!(Instant::now() < deadline, "the SET never became visible");
        std::thread::yield_now();
    }

    // The reader's GET ran after the SET, so it saw "new": that reply must wait.
    reader.write_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap();
    reader
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    match reader.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a read showed a write that is not durable yet: {other:?} {byte:?}"),
    }

    // Durable again: both replies go out, the read showing the new value.
    server.hold_syncs(false);
    reader
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(read_exact_str(&mut writer, 5), "+OK\r\n");
    assert_eq!(read_exact_str(&mut reader, 9), "$3\r\nnew\r\n");

    // With nothing unsynced a read is not held at all.
    reader.write_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap();
    assert_eq!(read_exact_str(&mut reader, 9), "$3\r\nnew\r\n");
    drop((writer, reader));
    server.shutdown().unwrap();
}
