#![allow(clippy::unwrap_used)]
//! Server commands in exact bytes: COMMAND (COUNT, LIST, INFO, DOCS), INFO fields and its
//! RESP3 verbatim form, CONFIG GET globs and SET, TIME, OBJECT, MEMORY, FUNCTION, SIGINT.

mod common;

use common::{Raw, Server};

/// Reads one bulk/verbatim reply body after its header line.
fn bulk_body(c: &mut Raw) -> String {
    let header = c.line();
    let len: usize = header[1..header.len() - 2].parse().unwrap();
    let mut body = vec![0u8; len + 2];
    std::io::Read::read_exact(&mut c.0, &mut body).unwrap();
    String::from_utf8(body[..len].to_vec()).unwrap()
}

/// Switches to RESP3 and skips the HELLO map (it ends with the empty modules array).
fn hello3(c: &mut Raw) {
    c.send(&["HELLO", "3"]);
    assert_eq!(c.line(), "%7\r\n");
    for _ in 0..40 {
        if c.line() == "*0\r\n" {
            return;
        }
    }
    panic!("HELLO reply without its modules array");
}

#[test]
fn command_introspection() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.send(&["COMMAND", "COUNT"]);
    let count: usize = c.line()[1..].trim().parse().unwrap();
    assert!(count > 60);
    c.send(&["COMMAND", "LIST"]);
    assert_eq!(c.line(), format!("*{count}\r\n"));
    let mut names = Vec::new();
    for _ in 0..count {
        names.push(bulk_body(&mut c));
    }
    for name in [
        "get", "set", "waitaof", "client", "config", "scan", "flushall",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing");
    }
    c.call(
        &["COMMAND", "INFO", "get", "nosuch"],
        "*2\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n$-1\r\n",
    );
    c.call(
        &["COMMAND", "INFO", "mset"],
        "*1\r\n*10\r\n$4\r\nmset\r\n:-3\r\n*2\r\n+write\r\n+denyoom\r\n:1\r\n:-1\r\n:2\r\n*3\r\n+@write\r\n+@string\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n",
    );
    hello3(&mut c);
    // RESP3: flags are sets, DOCS is a map.
    c.call(
        &["COMMAND", "INFO", "get"],
        "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n~3\r\n+@read\r\n+@string\r\n+@fast\r\n~0\r\n*0\r\n*0\r\n",
    );
    c.call(
        &["COMMAND", "DOCS", "echo"],
        "%1\r\n$4\r\necho\r\n%3\r\n$7\r\nsummary\r\n$25\r\nReturns the given string.\r\n$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$10\r\nconnection\r\n",
    );
    c.call(
        &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"],
        "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    );
}

#[test]
fn info_fields_and_verbatim() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.call(&["SET", "a", "1"], "+OK\r\n");
    c.call(&["SET", "b", "2", "EX", "100"], "+OK\r\n");
    c.call(&["GET", "a"], "$1\r\n1\r\n");
    c.call(&["GET", "zz"], "$-1\r\n");
    c.send(&["INFO"]);
    let info = bulk_body(&mut c);
    for field in [
        "# Server\r\n",
        "redis_version:7.2.0\r\n",
        "redis_mode:standalone\r\n",
        &format!("tcp_port:{}\r\n", server.port),
        "# Clients\r\n",
        "connected_clients:1\r\n",
        "# Memory\r\n",
        "used_memory:",
        "# Persistence\r\n",
        "aof_enabled:1\r\n",
        "# Stats\r\n",
        "total_commands_processed:",
        "instantaneous_ops_per_sec:",
        "keyspace_hits:1\r\n",
        "keyspace_misses:1\r\n",
        "# Keyspace\r\n",
        "db0:keys=2,expires=1,avg_ttl=0\r\n",
    ] {
        assert!(info.contains(field), "{field:?} not in\n{info}");
    }
    c.send(&["INFO", "keyspace"]);
    assert_eq!(
        bulk_body(&mut c),
        "# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n"
    );
    c.send(&["INFO", "nosuchsection"]);
    assert_eq!(bulk_body(&mut c), "");
    // RESP3: a verbatim string of format txt.
    hello3(&mut c);
    c.send(&["INFO", "keyspace"]);
    let header = c.line();
    assert!(header.starts_with('='), "{header}");
    c.expect("txt:# Keyspace\r\n");
}

#[test]
fn config_get_globs_and_set() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.call(
        &["CONFIG", "GET", "maxc*", "time?ut"],
        "*4\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n$7\r\ntimeout\r\n$1\r\n0\r\n",
    );
    c.call(&["CONFIG", "GET", "nomatch*"], "*0\r\n");
    c.call(
        &["CONFIG", "SET", "maxclients", "500", "timeout", "30"],
        "+OK\r\n",
    );
    c.call(
        &["CONFIG", "GET", "maxclients"],
        "*2\r\n$10\r\nmaxclients\r\n$3\r\n500\r\n",
    );
    c.call(
        &["CONFIG", "SET", "maxclients", "x"],
        "-ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument couldn't be parsed into an integer\r\n",
    );
    c.call(
        &["CONFIG", "SET", "port", "1"],
        "-ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config\r\n",
    );
    c.call(
        &["CONFIG", "SET", "foo", "1"],
        "-ERR Unknown option or number of arguments for CONFIG SET - 'foo'\r\n",
    );
    c.call(
        &["CONFIG", "SET", "timeout"],
        "-ERR wrong number of arguments for 'config|set' command\r\n",
    );
    c.call(
        &["CONFIG", "SET", "save", "", "appendonly", "yes"],
        "+OK\r\n",
    );
    c.call(&["CONFIG", "SET", "loglevel", "debug"], "+OK\r\n");
    c.call(&["CONFIG", "RESETSTAT"], "+OK\r\n");
}

#[test]
fn misc_server_commands() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.call(&["SET", "n", "123"], "+OK\r\n");
    c.call(&["SET", "s", "hello"], "+OK\r\n");
    c.call(&["OBJECT", "ENCODING", "n"], "$3\r\nint\r\n");
    c.call(&["OBJECT", "ENCODING", "s"], "$6\r\nembstr\r\n");
    c.call(&["OBJECT", "ENCODING", "none"], "$-1\r\n");
    c.call(&["OBJECT", "REFCOUNT", "n"], ":1\r\n");
    // OBJECT HELP names every subcommand OBJECT answers (Redis's text lists FREQ too).
    c.send(&["OBJECT", "HELP"]);
    let help = c.read_reply();
    for sub in [
        "ENCODING <key>",
        "FREQ <key>",
        "IDLETIME <key>",
        "REFCOUNT <key>",
    ] {
        assert!(help.contains(sub), "{sub} missing from {help}");
        let name = sub.split(' ').next().unwrap();
        c.send(&["OBJECT", name, "n"]);
        let reply = c.read_reply();
        assert!(!reply.contains("unknown subcommand"), "{name}: {reply}");
    }
    c.call(&["MEMORY", "USAGE", "none"], "$-1\r\n");
    c.call(&["FUNCTION", "LIST"], "*0\r\n");
    c.call(&["FUNCTION", "FLUSH"], "+OK\r\n");
    c.call(&["SAVE"], "+OK\r\n");
    c.call(&["BGSAVE"], "+Background saving started\r\n");
    c.call(&["SHUTDOWN", "ABORT"], "-ERR No shutdown in progress.\r\n");
    c.send(&["TIME"]);
    assert_eq!(c.line(), "*2\r\n");
    let secs: u64 = bulk_body(&mut c).parse().unwrap();
    let micros: u64 = bulk_body(&mut c).parse().unwrap();
    assert!(secs > 1_600_000_000 && micros < 1_000_000);
    c.send(&["LASTSAVE"]);
    let last: u64 = c.line()[1..].trim().parse().unwrap();
    assert!(last > 1_600_000_000);
}

#[test]
fn sigint_is_a_graceful_shutdown() {
    let mut server = Server::start(&[]);
    let mut c = server.connect();
    c.call(&["SET", "k", "v"], "+OK\r\n");
    drop(c);
    let pid = server.pid();
    // SAFETY: kill(2) on the child the harness spawned and still owns.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    assert!(server.wait_exit().success());
    let dir = server.dir.clone();
    let again = Server::start_in(&dir, &[]);
    again.connect().call(&["GET", "k"], "$1\r\nv\r\n");
}
