#![allow(clippy::unwrap_used)]
//! The library API: `Server::start` in-process on an ephemeral port, then `shutdown()`
//! closes the engine so a second start on the same directory sees the data.

use std::io::{Read, Write};
use std::net::TcpStream;

use respite_server::{Config, Server};

fn roundtrip(port: u16, request: &[u8], expected: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    s.write_all(request).unwrap();
    let mut got = vec![0u8; expected.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

#[test]
fn start_serve_shutdown_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config::from_args([
        "--port",
        "0",
        "--dir",
        tmp.path().join("data").to_str().unwrap(),
        "--threads",
        "2",
        "--loglevel",
        "warning",
    ])
    .unwrap();
    let server = Server::start(config.clone()).unwrap();
    assert_ne!(server.port(), 0);
    roundtrip(
        server.port(),
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"+OK\r\n$2\r\nv1\r\n",
    );
    server.shutdown().unwrap();

    let server = Server::start(config).unwrap();
    roundtrip(server.port(), b"GET k\r\n", b"$2\r\nv1\r\n");
    server.shutdown().unwrap();
}
