#![allow(clippy::unwrap_used)]
//! redis-cli scripted against the real binary: arguments, stdin scripts, --pipe, --scan,
//! -n (SELECT), -3 (HELLO 3) and error rendering.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Server;

fn cli_stdin(server: &Server, args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn redis_cli_scripted() {
    let server = Server::start(&[]);
    assert_eq!(server.cli(&["PING"]), "PONG\n");
    assert_eq!(server.cli(&["SET", "k", "v"]), "OK\n");
    assert_eq!(server.cli(&["GET", "k"]), "v\n");
    assert_eq!(server.cli(&["GET", "missing"]), "\n");
    assert_eq!(server.cli(&["--no-raw", "GET", "missing"]), "(nil)\n");
    assert_eq!(server.cli(&["INCR", "n"]), "1\n");
    assert_eq!(
        server.cli(&["--no-raw", "INCR", "k"]),
        "(error) ERR value is not an integer or out of range\n"
    );
    assert_eq!(
        server.cli(&["--no-raw", "foo", "bar"]),
        "(error) ERR unknown command 'foo', with args beginning with: 'bar' \n"
    );
    assert_eq!(server.cli(&["-n", "2", "SET", "indb2", "x"]), "OK\n");
    assert_eq!(server.cli(&["-n", "2", "DBSIZE"]), "1\n");
    assert_eq!(server.cli(&["EXISTS", "indb2"]), "0\n");
    assert_eq!(server.cli(&["MSET", "user:1", "a", "user:2", "b"]), "OK\n");
    let mut scanned: Vec<String> = server
        .cli(&["--scan", "--pattern", "user:*"])
        .lines()
        .map(str::to_owned)
        .collect();
    scanned.sort();
    assert_eq!(scanned, ["user:1", "user:2"]);
    let info = server.cli(&["INFO", "server"]);
    assert!(info.contains("redis_version:7.2.0"), "{info}");
    assert!(
        info.contains(&format!("tcp_port:{}", server.port)),
        "{info}"
    );
    assert!(server.cli(&["-3", "HELLO", "3"]).contains("proto"));
    assert_eq!(server.cli(&["-3", "--no-raw", "GET", "missing"]), "(nil)\n");
    assert_eq!(server.cli(&["EXPIRE", "k", "100"]), "1\n");
    assert_eq!(server.cli(&["OBJECT", "ENCODING", "n"]), "int\n");
    assert_eq!(server.cli(&["TYPE", "k"]), "string\n");
    assert_eq!(
        server.cli(&["CONFIG", "GET", "maxclients"]),
        "maxclients\n10000\n"
    );
}

#[test]
fn redis_cli_stdin_and_pipe() {
    let server = Server::start(&[]);
    // Commands read from stdin, one per line.
    let out = cli_stdin(&server, &[], b"SET x 1\nINCRBY x 41\nGET x\n");
    assert_eq!(out, "OK\n42\n42\n");

    // --pipe mass insertion of RESP.
    let mut input = Vec::new();
    for i in 0..10_000 {
        let (k, v) = (format!("key:{i}"), format!("val:{i}"));
        input.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
                k.len(),
                v.len()
            )
            .as_bytes(),
        );
    }
    let out = cli_stdin(&server, &["--pipe"], &input);
    assert!(out.contains("errors: 0, replies: 10000"), "{out}");
    assert_eq!(server.cli(&["DBSIZE"]), "10001\n");
    assert_eq!(server.cli(&["GET", "key:9999"]), "val:9999\n");
}
