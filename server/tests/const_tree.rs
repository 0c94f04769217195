#![allow(clippy::unwrap_used)]
//! A ConstTree database through the real binary: `--tree 1 const 8 fixed` makes database 1
//! hold 8-byte values on the FixedStore. Writes of another size (SET, INCR that grows the
//! number, COPY from a VarTree database) are refused with an error naming the sizes; values
//! survive a restart.

mod common;

use common::Server;

const ARGS: &[&str] = &[
    "--tree",
    "1",
    "const",
    "8",
    "fixed",
    "--fixed-max-key-size",
    "32",
];

#[test]
fn const_tree_database_through_a_client() {
    let server = Server::start(ARGS);
    let mut c = server.connect();
    c.call(&["SELECT", "1"], "+OK\r\n");
    c.call(&["SET", "k", "12345678"], "+OK\r\n");
    c.call(&["GET", "k"], "$8\r\n12345678\r\n");
    c.call(
        &["SET", "k", "short"],
        "-ERR value is 5 bytes; database 1 is a ConstTree of 8-byte values\r\n",
    );
    c.call(&["GET", "k"], "$8\r\n12345678\r\n");
    c.call(&["SETNX", "k", "87654321"], ":0\r\n");
    c.call(&["SET", "k", "87654321", "NX"], "$-1\r\n");
    c.call(&["INCR", "k"], ":12345679\r\n");
    c.call(&["SET", "n", "99999999"], "+OK\r\n");
    c.call(
        &["INCR", "n"],
        "-ERR value is 9 bytes; database 1 is a ConstTree of 8-byte values\r\n",
    );
    c.call(&["GET", "n"], "$8\r\n99999999\r\n");
    c.call(&["SET", "t", "abcdefgh", "EX", "1000"], "+OK\r\n");
    c.call(&["DEL", "n"], ":1\r\n");
    c.call(&["DBSIZE"], ":2\r\n");
    // A key longer than the slot's key room.
    let long = "x".repeat(33);
    c.send(&["SET", &long, "abcdefgh"]);
    assert!(c.line().starts_with("-ERR key of 33 bytes exceeds"));
    // Across databases: a VarTree value of the wrong size is refused.
    c.call(&["SELECT", "0"], "+OK\r\n");
    c.call(&["SET", "v", "too long for db 1"], "+OK\r\n");
    c.call(
        &["COPY", "v", "v", "DB", "1"],
        "-ERR value is 17 bytes; database 1 is a ConstTree of 8-byte values\r\n",
    );
    c.call(&["SET", "w", "8 bytes!"], "+OK\r\n");
    c.call(&["MOVE", "w", "1"], ":1\r\n");
    drop(c);

    let server = server.restart(ARGS);
    let mut c = server.connect();
    c.call(&["SELECT", "1"], "+OK\r\n");
    c.call(&["GET", "k"], "$8\r\n12345679\r\n");
    c.call(&["GET", "w"], "$8\r\n8 bytes!\r\n");
    c.call(&["GET", "n"], "$-1\r\n");
    c.send(&["TTL", "t"]);
    let ttl: i64 = c.line().trim_start_matches(':').trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= 1000);
    c.call(&["DBSIZE"], ":3\r\n");
}
