#![allow(clippy::unwrap_used)]
//! Read-modify-write commands on values too big to live inline in the index (> 64 bytes),
//! right after they were written (still in the engine's write buffer).
//! A regression test: an engine that re-locks the shard writer to read the old value from
//! its buffer deadlocks the reactor here (seen with storage 524ca6f, fixed since).

mod common;

use common::Server;

#[test]
fn rmw_commands_on_buffered_big_values() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let value = "x".repeat(100);
    let reply = format!("$100\r\n{value}\r\n");
    c.call(&["SET", "a", &value], "+OK\r\n");
    c.call(&["APPEND", "a", "y"], ":101\r\n");
    c.call(&["SET", "b", &value], "+OK\r\n");
    c.call(&["SET", "b", "new", "GET"], &reply);
    c.call(&["SET", "c", &value], "+OK\r\n");
    c.call(&["GETSET", "c", "new"], &reply);
    c.call(&["SET", "d", &value], "+OK\r\n");
    c.call(&["GETDEL", "d"], &reply);
    c.call(&["SET", "e", &value], "+OK\r\n");
    c.call(&["EXPIRE", "e", "100"], ":1\r\n");
    c.call(&["PERSIST", "e"], ":1\r\n");
    c.call(&["GETEX", "e", "EX", "100"], &reply);
    c.call(&["SETRANGE", "e", "0", "z"], ":100\r\n");
    c.call(&["RENAME", "e", "f"], "+OK\r\n");
    c.call(&["COPY", "f", "g"], ":1\r\n");
    c.call(&["MOVE", "g", "1"], ":1\r\n");
    c.call(&["SET", "h", "1.5"], "+OK\r\n");
    // The long double nearest 1e100, printed exactly, as redis-server 7.0.15 prints it.
    let big = "$100\r\n9999999999999999999669353532207342619498699019828496079271391541752018669482644324418977840117055488\r\n";
    c.call(&["INCRBYFLOAT", "h", "1e100"], big);
    c.call(&["INCRBYFLOAT", "h", "1"], big);
}
