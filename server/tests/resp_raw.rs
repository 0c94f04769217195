#![allow(clippy::unwrap_used)]
//! Raw RESP over a TcpStream with exact reply bytes, RESP2 and RESP3, pipelining, inline
//! commands and protocol errors.

mod common;

use common::{Server, frame};

#[test]
fn resp2_and_resp3_exact_bytes() {
    let server = Server::start(&[]);
    let mut c = server.connect();

    // Connection basics.
    c.call(&["PING"], "+PONG\r\n");
    c.call(&["ping", "hi"], "$2\r\nhi\r\n");
    c.call(&["ECHO", "x y"], "$3\r\nx y\r\n");
    c.call(
        &["PING", "a", "b"],
        "-ERR wrong number of arguments for 'ping' command\r\n",
    );

    // Strings and nulls in RESP2.
    c.call(&["GET", "k"], "$-1\r\n");
    c.call(&["SET", "k", "v"], "+OK\r\n");
    c.call(&["GET", "k"], "$1\r\nv\r\n");
    c.call(&["SET", "k", "w", "NX"], "$-1\r\n");
    c.call(&["SET", "k", "w", "XX", "GET"], "$1\r\nv\r\n");
    c.call(&["MGET", "k", "nope"], "*2\r\n$1\r\nw\r\n$-1\r\n");
    c.call(
        &["INCR", "k"],
        "-ERR value is not an integer or out of range\r\n",
    );
    c.call(&["INCR", "n"], ":1\r\n");
    c.call(&["INCRBY", "n", "-3"], ":-2\r\n");
    c.call(&["INCRBYFLOAT", "f", "1.5"], "$3\r\n1.5\r\n");

    // Exact error texts.
    c.call(
        &["GET"],
        "-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.call(
        &["foo", "a", "b"],
        "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n",
    );
    c.call(
        &["SET", "k", "v", "EX", "0"],
        "-ERR invalid expire time in 'set' command\r\n",
    );
    c.call(&["SET", "k", "v", "BOGUS"], "-ERR syntax error\r\n");
    c.call(&["SELECT", "99"], "-ERR DB index is out of range\r\n");
    c.call(
        &["CONFIG", "NOPE"],
        "-ERR unknown subcommand 'NOPE'. Try CONFIG HELP.\r\n",
    );
    c.call(
        &["CONFIG", "GET"],
        "-ERR wrong number of arguments for 'config|get' command\r\n",
    );

    // HELLO 3 switches to RESP3: a map reply, `_` nulls, `%` maps.
    c.send(&["HELLO", "3"]);
    let header = c.line();
    assert_eq!(header, "%7\r\n");
    c.expect("$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n");
    let _id = c.line();
    c.expect(
        "$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
    );
    c.call(&["GET", "missing"], "_\r\n");
    c.call(
        &["CONFIG", "GET", "appendonly"],
        "%1\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n",
    );
    c.call(&["HELLO", "4"], "-NOPROTO unsupported protocol version\r\n");
    c.call(&["HELLO", "2"], "*14\r\n$6\r\nserver\r\n");
}

#[test]
fn pipelined_requests_in_one_write_answer_in_order() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let mut batch = String::new();
    let mut expected = String::new();
    for i in 0..500 {
        batch.push_str(&format!(
            "*3\r\n$3\r\nSET\r\n${}\r\nk{i}\r\n${}\r\nv{i}\r\n",
            format!("k{i}").len(),
            format!("v{i}").len()
        ));
        expected.push_str("+OK\r\n");
    }
    for i in 0..500 {
        batch.push_str(&format!(
            "*2\r\n$3\r\nGET\r\n${}\r\nk{i}\r\n",
            format!("k{i}").len()
        ));
        expected.push_str(&format!("${}\r\nv{i}\r\n", format!("v{i}").len()));
    }
    c.write(batch.as_bytes());
    c.expect(&expected);
    c.call(&["DBSIZE"], ":500\r\n");
}

#[test]
fn inline_commands_and_split_frames() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.write(b"SET greeting \"hello world\"\r\nGET greeting\r\n");
    c.expect("+OK\r\n$11\r\nhello world\r\n");
    // A frame split across writes waits for its tail.
    c.write(b"*2\r\n$3\r\nGE");
    c.write(b"T\r\n$8\r\ngreeting\r\n");
    c.expect("$11\r\nhello world\r\n");
}

#[test]
fn protocol_error_replies_and_closes() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.write(b"*1\r\n$x\r\n");
    c.expect("-ERR Protocol error: invalid bulk length\r\n");
    assert!(c.closed());
    // The server is fine.
    let mut d = server.connect();
    d.call(&["PING"], "+PONG\r\n");
}

/// One write with more requests than the server decodes ahead at once, a SELECT among
/// them, then a malformed frame: every request before the frame runs and answers in order
/// (in the database SELECT chose), and only then comes the protocol error.
#[test]
fn requests_before_a_malformed_frame_answer_first() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let mut batch = frame(&["SELECT", "1"]);
    let mut expected = String::from("+OK\r\n");
    for i in 0..20 {
        batch.push_str(&frame(&["SET", &format!("k{i}"), &format!("v{i}")]));
        batch.push_str(&frame(&["GET", &format!("k{i}")]));
        expected.push_str(&format!("+OK\r\n${}\r\nv{i}\r\n", format!("v{i}").len()));
    }
    batch.push_str("*1\r\n$x\r\n");
    batch.push_str(&frame(&["SET", "after", "x"]));
    c.write(batch.as_bytes());
    expected.push_str("-ERR Protocol error: invalid bulk length\r\n");
    c.expect(&expected);
    assert!(c.closed());
    let mut d = server.connect();
    d.call(&["GET", "k19"], "$-1\r\n");
    d.call(&["SELECT", "1"], "+OK\r\n");
    d.call(&["GET", "k19"], "$3\r\nv19\r\n");
    d.call(&["EXISTS", "after"], ":0\r\n");
}

/// A pipeline whose replies pass the output pause threshold part way through: the server
/// stops executing, and once the client reads it finishes the requests it had decoded,
/// in order.
#[test]
fn a_pipeline_paused_on_output_resumes_in_order() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let big = "b".repeat(200_000);
    c.call(&["SET", "big", &big], "+OK\r\n");
    let mut batch = String::new();
    let mut expected = String::new();
    for i in 0..8 {
        batch.push_str("*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
        expected.push_str(&format!("$200000\r\n{big}\r\n"));
        batch.push_str(&format!("*2\r\n$4\r\nECHO\r\n$2\r\ne{i}\r\n"));
        expected.push_str(&format!("$2\r\ne{i}\r\n"));
    }
    c.write(batch.as_bytes());
    c.expect(&expected);
    c.call(&["PING"], "+PONG\r\n");
}

/// Data and FIN in one go: the server must answer and then close. With edge-triggered
/// readiness the FIN raises no edge of its own after a short read, so a server that skips
/// the read returning 0 keeps such a connection open forever.
#[test]
fn half_close_after_requests_answers_then_closes() {
    let server = Server::start(&[]);
    for tail in [&b""[..], b"*2\r\n$3\r\nGET", b"PARTIAL-INLINE"] {
        let mut c = server.connect();
        let mut bytes = b"*1\r\n$4\r\nPING\r\n".to_vec();
        bytes.extend_from_slice(tail);
        c.write(&bytes);
        c.0.shutdown(std::net::Shutdown::Write).unwrap();
        c.expect("+PONG\r\n");
        assert!(c.closed(), "connection left open after EOF (tail {tail:?})");
    }
}

#[test]
fn quit_replies_then_closes() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.write(b"*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n");
    c.expect("+OK\r\n");
    assert!(c.closed());
}

/// Multi-key commands prefetch their keys 16 at a time: with 40 keys (three chunks, the
/// last one short), repeats and missing keys, in a database other than 0, every answer is
/// Redis's.
#[test]
fn multi_key_commands_across_prefetch_chunks() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.call(&["SELECT", "3"], "+OK\r\n");
    let names: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let mut mset = vec!["MSET"];
    for n in names.iter().step_by(2) {
        mset.extend([n.as_str(), n.as_str()]);
    }
    c.call(&mset, "+OK\r\n");
    let mut keys: Vec<&str> = names.iter().map(String::as_str).collect();
    keys.push("k2");
    let with = |cmd: &'static str| [vec![cmd], keys.clone()].concat();
    let mut want = String::from("*41\r\n");
    for (i, n) in names.iter().enumerate() {
        want.push_str(&if i % 2 == 0 {
            format!("${}\r\n{n}\r\n", n.len())
        } else {
            "$-1\r\n".to_owned()
        });
    }
    want.push_str("$2\r\nk2\r\n");
    c.call(&with("MGET"), &want);
    c.call(&with("EXISTS"), ":21\r\n");
    c.call(&with("TOUCH"), ":21\r\n");
    c.call(&["SELECT", "0"], "+OK\r\n");
    c.call(&with("EXISTS"), ":0\r\n");
    c.call(&["SELECT", "3"], "+OK\r\n");
    c.call(&with("DEL")[..20], ":10\r\n");
    c.call(&with("UNLINK"), ":10\r\n");
    c.call(&["DBSIZE"], ":0\r\n");
}

/// Redis's limits for a client that has not authenticated: more than 10 arguments or a bulk
/// over 16 KiB is a protocol error that closes the connection; AUTH lifts them for the very
/// next request, even in the same write, and RESET puts them back.
#[test]
fn unauthenticated_clients_get_small_request_limits() {
    let server = Server::start(&["--requirepass", "pw"]);
    let eleven: Vec<&str> = std::iter::once("MSET")
        .chain(["k", "v"].repeat(5))
        .collect();
    let ten = &eleven[..10];
    let big = "x".repeat(16 * 1024 + 1);

    // At the limits: refused for want of AUTH, the connection stays.
    let mut c = server.connect();
    c.call(ten, "-NOAUTH Authentication required.\r\n");
    c.call(
        &["ECHO", &big[..16 * 1024]],
        "-NOAUTH Authentication required.\r\n",
    );
    c.call(&["PING"], "-NOAUTH Authentication required.\r\n");
    // Past them: a protocol error, then the close.
    c.send(&eleven);
    c.expect("-ERR Protocol error: unauthenticated multibulk length\r\n");
    assert!(c.closed());
    let mut c = server.connect();
    c.send(&["ECHO", &big]);
    c.expect("-ERR Protocol error: unauthenticated bulk length\r\n");
    assert!(c.closed());

    // AUTH and the large requests in one write: each is decoded after the one before ran.
    let mut c = server.connect();
    let pipeline = [
        frame(&["AUTH", "pw"]),
        frame(&eleven),
        frame(&["ECHO", &big]),
    ]
    .concat();
    c.write(pipeline.as_bytes());
    c.expect("+OK\r\n+OK\r\n");
    c.expect(&format!("${}\r\n{big}\r\n", big.len()));
    // RESET logs the client out, and the limits are back.
    c.call(&["RESET"], "+RESET\r\n");
    c.send(&eleven);
    c.expect("-ERR Protocol error: unauthenticated multibulk length\r\n");
    assert!(c.closed());

    // HELLO's AUTH lifts them too; without requirepass there are none.
    let mut c = server.connect();
    c.send(&["HELLO", "2", "AUTH", "default", "pw"]);
    assert!(c.read_reply().starts_with("*14\r\n"));
    c.call(&eleven, "+OK\r\n");
    let open = Server::start(&[]);
    let mut c = open.connect();
    c.call(&eleven, "+OK\r\n");
    c.call(&["ECHO", &big], &format!("${}\r\n{big}\r\n", big.len()));
}

#[test]
fn requirepass_and_auth() {
    let server = Server::start(&["--requirepass", "s3cret"]);
    let mut c = server.connect();
    c.call(&["GET", "k"], "-NOAUTH Authentication required.\r\n");
    c.call(
        &["GET"],
        "-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.call(
        &["AUTH", "wrong"],
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    c.call(&["AUTH", "s3cret"], "+OK\r\n");
    c.call(&["GET", "k"], "$-1\r\n");
    let mut d = server.connect();
    d.send(&["HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "me"]);
    assert_eq!(d.line(), "%7\r\n");
    let mut e = server.connect();
    e.call(&["CLIENT", "ID"], "-NOAUTH Authentication required.\r\n");
    let server2 = Server::start(&[]);
    let mut f = server2.connect();
    f.call(
        &["AUTH", "x"],
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n",
    );
}
