#![allow(clippy::unwrap_used)]
//! MULTI / EXEC / DISCARD / WATCH with exact reply bytes (RESP2 and RESP3), isolation of a
//! running EXEC from other clients, WATCH's optimistic locking, and durability under
//! `appendfsync always`. The replies were checked against Redis 7.0.15.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use common::{PATIENCE, Server};

#[test]
fn queued_commands_run_at_exec_and_errors_follow_redis() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.call(&["MULTI"], "+OK\r\n");
    c.call(&["SET", "a", "x"], "+QUEUED\r\n");
    c.call(&["INCR", "a"], "+QUEUED\r\n");
    c.call(&["GET", "a"], "+QUEUED\r\n");
    // Nothing ran yet: another client sees no key.
    let mut other = server.connect();
    other.call(&["EXISTS", "a"], ":0\r\n");
    // A runtime error takes its slot; the rest ran.
    c.call(
        &["EXEC"],
        "*3\r\n+OK\r\n-ERR value is not an integer or out of range\r\n$1\r\nx\r\n",
    );
    c.call(&["EXEC"], "-ERR EXEC without MULTI\r\n");
    c.call(&["DISCARD"], "-ERR DISCARD without MULTI\r\n");

    // Errors while queueing doom the transaction; nested MULTI and WATCH do not.
    c.call(&["MULTI"], "+OK\r\n");
    c.call(&["MULTI"], "-ERR MULTI calls can not be nested\r\n");
    c.call(
        &["WATCH", "a"],
        "-ERR WATCH inside MULTI is not allowed\r\n",
    );
    c.call(&["SET", "b", "1"], "+QUEUED\r\n");
    c.call(&["EXEC"], "*1\r\n+OK\r\n");
    c.call(&["MULTI"], "+OK\r\n");
    c.call(&["SET", "c", "1"], "+QUEUED\r\n");
    c.call(
        &["INCR", "a", "b"],
        "-ERR wrong number of arguments for 'incr' command\r\n",
    );
    c.call(
        &["NOSUCH"],
        "-ERR unknown command 'NOSUCH', with args beginning with: \r\n",
    );
    c.call(
        &["SAVE"],
        "-ERR Command not allowed inside a transaction\r\n",
    );
    c.call(
        &["EXEC"],
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    c.call(&["EXISTS", "c"], ":0\r\n");

    // A subcommand's name and arity are checked while queueing.
    c.call(&["MULTI"], "+OK\r\n");
    c.call(&["SET", "c", "1"], "+QUEUED\r\n");
    c.call(
        &["CONFIG", "GET"],
        "-ERR wrong number of arguments for 'config|get' command\r\n",
    );
    c.call(
        &["CLIENT", "nosuch"],
        "-ERR unknown subcommand 'nosuch'. Try CLIENT HELP.\r\n",
    );
    c.call(&["CLIENT", "ID"], "+QUEUED\r\n");
    c.call(
        &["EXEC"],
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    c.call(&["EXISTS", "c"], ":0\r\n");
    // A refused EXEC ends the transaction with EXECABORT, inside MULTI or not.
    c.call(&["MULTI"], "+OK\r\n");
    c.call(&["SET", "c", "1"], "+QUEUED\r\n");
    let abort = "-EXECABORT Transaction discarded because of: wrong number of arguments for \
                 'exec' command\r\n";
    c.call(&["EXEC", "x"], abort);
    c.call(&["DISCARD"], "-ERR DISCARD without MULTI\r\n");
    c.call(&["EXEC", "x"], abort);
    c.call(&["EXISTS", "c"], ":0\r\n");

    // DISCARD and RESET drop the queue.
    c.call(&["MULTI"], "+OK\r\n");
    c.call(&["SET", "d", "1"], "+QUEUED\r\n");
    c.call(&["DISCARD"], "+OK\r\n");
    c.call(&["MULTI"], "+OK\r\n");
    c.call(&["SET", "d", "1"], "+QUEUED\r\n");
    c.call(&["RESET"], "+RESET\r\n");
    c.call(&["EXEC"], "-ERR EXEC without MULTI\r\n");
    c.call(&["EXISTS", "d"], ":0\r\n");

    // SELECT inside the transaction applies to the commands after it, and stays.
    c.call(&["MULTI"], "+OK\r\n");
    c.call(&["SELECT", "3"], "+QUEUED\r\n");
    c.call(&["SET", "z", "in3"], "+QUEUED\r\n");
    c.call(&["EXEC"], "*2\r\n+OK\r\n+OK\r\n");
    c.call(&["GET", "z"], "$3\r\nin3\r\n");
    other.call(&["GET", "z"], "$-1\r\n");

    // CLIENT LIST shows the open transaction: flag x and the queue length.
    c.call(&["MULTI"], "+OK\r\n");
    c.call(&["PING"], "+QUEUED\r\n");
    other.send(&["CLIENT", "LIST"]);
    let list = other.read_reply();
    assert!(
        list.contains("flags=x ") && list.contains(" multi=1 "),
        "{list}"
    );
    c.call(&["EXEC"], "*1\r\n+PONG\r\n");
    other.send(&["CLIENT", "LIST"]);
    let list = other.read_reply();
    assert!(
        !list.contains("flags=x") && list.contains(" multi=-1 "),
        "{list}"
    );

    // QUIT inside MULTI is not queued: it closes the connection.
    c.call(&["MULTI"], "+OK\r\n");
    c.call(&["QUIT"], "+OK\r\n");
    assert!(c.closed());
}

#[test]
fn watch_aborts_exec_only_when_a_watched_key_really_changed() {
    let server = Server::start(&[]);
    let mut a = server.connect();
    let mut b = server.connect();
    b.call(&["SET", "k", "1"], "+OK\r\n");

    // Another client's write to a watched key: EXEC answers a null array, runs nothing.
    a.call(&["WATCH", "k", "other"], "+OK\r\n");
    b.call(&["SET", "k", "2"], "+OK\r\n");
    a.call(&["MULTI"], "+OK\r\n");
    a.call(&["SET", "k", "mine"], "+QUEUED\r\n");
    a.call(&["EXEC"], "*-1\r\n");
    b.call(&["GET", "k"], "$1\r\n2\r\n");

    // EXEC ended the watch: the next transaction runs whatever happened before.
    b.call(&["SET", "k", "3"], "+OK\r\n");
    a.call(&["MULTI"], "+OK\r\n");
    a.call(&["GET", "k"], "+QUEUED\r\n");
    a.call(&["EXEC"], "*1\r\n$1\r\n3\r\n");

    // Reads, failed conditional writes and deletes of missing keys change nothing.
    a.call(&["WATCH", "k", "missing"], "+OK\r\n");
    b.call(&["GET", "k"], "$1\r\n3\r\n");
    b.call(&["SET", "k", "x", "NX"], "$-1\r\n");
    b.call(&["DEL", "missing"], ":0\r\n");
    b.call(&["SET", "unrelated", "x"], "+OK\r\n");
    // A DEL that deletes another key but not the watched one, and a COPY from it.
    b.call(&["DEL", "unrelated", "missing"], ":1\r\n");
    b.call(&["COPY", "k", "copied"], ":1\r\n");
    a.call(&["MULTI"], "+OK\r\n");
    a.call(&["INCR", "k"], "+QUEUED\r\n");
    a.call(&["EXEC"], "*1\r\n:4\r\n");

    // A flush changes only the watched keys that existed.
    a.call(&["WATCH", "missing"], "+OK\r\n");
    b.call(&["FLUSHALL"], "+OK\r\n");
    a.call(&["MULTI"], "+OK\r\n");
    a.call(&["SET", "k", "4"], "+QUEUED\r\n");
    a.call(&["EXEC"], "*1\r\n+OK\r\n");

    // Each kind of write marks the watcher: DEL, EXPIRE, RENAME's destination, MSET's second
    // key, FLUSHDB, MOVE into the watched database, COPY's destination.
    let writes: &[&[&str]] = &[
        &["DEL", "k"],
        &["EXPIRE", "k", "100"],
        &["RENAME", "unrelated", "k"],
        &["MSET", "x", "1", "k", "2"],
        &["FLUSHDB"],
        &["COPY", "x", "k", "REPLACE"],
        &["APPEND", "k", ""],
    ];
    for write in writes {
        b.call(&["SET", "k", "v"], "+OK\r\n");
        b.call(&["SET", "x", "v"], "+OK\r\n");
        b.call(&["SET", "unrelated", "v"], "+OK\r\n");
        a.call(&["WATCH", "k"], "+OK\r\n");
        b.send(write);
        let reply = b.read_reply();
        assert!(!reply.starts_with('-'), "{write:?}: {reply}");
        a.call(&["MULTI"], "+OK\r\n");
        a.call(&["PING"], "+QUEUED\r\n");
        a.call(&["EXEC"], "*-1\r\n");
    }
    b.call(&["DEL", "k"], ":1\r\n");
    b.call(&["SELECT", "1"], "+OK\r\n");
    b.call(&["SET", "k", "in1"], "+OK\r\n");
    a.call(&["WATCH", "k"], "+OK\r\n");
    b.call(&["MOVE", "k", "0"], ":1\r\n");
    a.call(&["MULTI"], "+OK\r\n");
    a.call(&["PING"], "+QUEUED\r\n");
    a.call(&["EXEC"], "*-1\r\n");

    // A client's own write to a key it watches counts too; UNWATCH forgets.
    a.call(&["WATCH", "k"], "+OK\r\n");
    a.call(&["SET", "k", "self"], "+OK\r\n");
    a.call(&["MULTI"], "+OK\r\n");
    a.call(&["PING"], "+QUEUED\r\n");
    a.call(&["EXEC"], "*-1\r\n");
    a.call(&["WATCH", "k"], "+OK\r\n");
    b.call(&["SELECT", "0"], "+OK\r\n");
    b.call(&["SET", "k", "again"], "+OK\r\n");
    a.call(&["UNWATCH"], "+OK\r\n");
    a.call(&["MULTI"], "+OK\r\n");
    a.call(&["GET", "k"], "+QUEUED\r\n");
    a.call(&["EXEC"], "*1\r\n$5\r\nagain\r\n");

    // RESP3: the aborted EXEC is a null.
    a.call(&["HELLO", "3"], "");
    a.read_reply();
    a.call(&["WATCH", "k"], "+OK\r\n");
    b.call(&["SET", "k", "resp3"], "+OK\r\n");
    a.call(&["MULTI"], "+OK\r\n");
    a.call(&["GET", "k"], "+QUEUED\r\n");
    a.call(&["EXEC"], "_\r\n");
}

#[test]
fn a_watched_key_that_expires_before_exec_aborts_it() {
    let server = Server::start(&[]);
    let mut a = server.connect();
    let mut b = server.connect();
    a.call(&["SET", "k", "v", "PX", "200"], "+OK\r\n");
    a.call(&["WATCH", "k"], "+OK\r\n");
    // Wait for the expiry itself, the thing under test, by asking until the key is gone.
    let deadline = Instant::now() + PATIENCE;
    loop {
        b.send(&["EXISTS", "k"]);
        if b.read_reply() == ":0\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "k never expired");
        std::thread::yield_now();
    }
    a.call(&["MULTI"], "+OK\r\n");
    a.call(&["SET", "k", "late"], "+QUEUED\r\n");
    a.call(&["EXEC"], "*-1\r\n");
    // A key that did not exist at WATCH and still does not: nothing changed.
    a.call(&["WATCH", "k"], "+OK\r\n");
    a.call(&["MULTI"], "+OK\r\n");
    a.call(&["SET", "k", "now"], "+QUEUED\r\n");
    a.call(&["EXEC"], "*1\r\n+OK\r\n");
}

/// One client runs transactions that keep `a` and `b` equal; others read both in one MGET
/// on other reactors. A reader must never see one increment without the other.
#[test]
fn no_command_of_another_client_runs_inside_an_exec() {
    let server = Server::start(&["--threads", "2"]);
    let mut setup = server.connect();
    setup.call(&["MSET", "a", "0", "b", "0"], "+OK\r\n");
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut r = server.connect();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut reads = 0u32;
                while !done.load(Ordering::Acquire) && reads < 200_000 {
                    r.send(&["MGET", "a", "b"]);
                    let reply = r.read_reply();
                    let values: Vec<&str> = reply.split("\r\n").collect();
                    // *2 $n a $n b
                    assert_eq!(values[2], values[4], "saw half a transaction: {reply:?}");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut w = server.connect();
    for _ in 0..1500 {
        w.call(&["MULTI"], "+OK\r\n");
        w.call(&["INCR", "a"], "+QUEUED\r\n");
        w.call(&["SET", "pad", &"p".repeat(512)], "+QUEUED\r\n");
        w.call(&["INCR", "b"], "+QUEUED\r\n");
        w.send(&["EXEC"]);
        let reply = w.read_reply();
        assert!(reply.starts_with("*3\r\n:"), "{reply}");
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    setup.call(&["MGET", "a", "b"], "*2\r\n$4\r\n1500\r\n$4\r\n1500\r\n");
}

#[test]
fn an_acknowledged_exec_survives_kill_9_under_always() {
    let server = Server::start(&["--appendfsync", "always"]);
    let mut c = server.connect();
    for i in 0..50 {
        c.call(&["MULTI"], "+OK\r\n");
        c.call(&["SET", &format!("k{i}"), &format!("v{i}")], "+QUEUED\r\n");
        c.call(&["INCR", "n"], "+QUEUED\r\n");
        c.send(&["EXEC"]);
        assert_eq!(c.read_reply(), format!("*2\r\n+OK\r\n:{}\r\n", i + 1));
    }
    let server = server.crash_and_restart(&["--appendfsync", "always"]);
    let mut c = server.connect();
    c.call(&["GET", "n"], "$2\r\n50\r\n");
    for i in 0..50 {
        let v = format!("v{i}");
        c.call(
            &["GET", &format!("k{i}")],
            &format!("${}\r\n{v}\r\n", v.len()),
        );
    }
}
