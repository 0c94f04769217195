#![allow(clippy::unwrap_used)]
//! Under `appendfsync always` every acknowledged write survives `kill -9`, and a reply is
//! only sent once its write is durable (INFO shows durable_gsn caught up when it arrives).

mod common;

use common::Server;

fn info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let server = Server::start(&["--appendfsync", "always"]);
    let mut con = server.redis();
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(format!("value:{i}"))
            .query(&mut con)
            .unwrap();
        // The reply arrived, so the write is durable: nothing is waiting for a sync.
        if i % 50 == 0 {
            let info: String = redis::cmd("INFO")
                .arg("persistence")
                .query(&mut con)
                .unwrap();
            assert!(
                info_field(&info, "durable_gsn") >= info_field(&info, "last_gsn"),
                "{info}"
            );
        }
    }
    let _: i64 = redis::cmd("INCRBY")
        .arg("n")
        .arg(7)
        .query(&mut con)
        .unwrap();
    // Pipelined writes too: all acknowledged in one batch.
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("SET").arg(format!("p:{i}")).arg(i).ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    drop(con);

    let server = server.crash_and_restart(&["--appendfsync", "always"]);
    let mut con = server.redis();
    for i in 0..300 {
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query(&mut con)
            .unwrap();
        assert_eq!(v.as_deref(), Some(format!("value:{i}").as_str()));
    }
    for i in 0..200 {
        let v: Option<i64> = redis::cmd("GET")
            .arg(format!("p:{i}"))
            .query(&mut con)
            .unwrap();
        assert_eq!(v, Some(i));
    }
    let n: i64 = redis::cmd("GET").arg("n").query(&mut con).unwrap();
    assert_eq!(n, 7);
}

#[test]
fn waitaof_is_a_durability_barrier_under_everysec() {
    let server = Server::start(&["--appendfsync", "everysec"]);
    let mut c = server.connect();
    c.call(&["WAITAOF", "0", "0", "0"], "*2\r\n:1\r\n:0\r\n");
    c.call(&["SET", "k", "v"], "+OK\r\n");
    // Blocks until the write is durable, then answers [1, 0].
    c.call(&["WAITAOF", "1", "0", "0"], "*2\r\n:1\r\n:0\r\n");
    c.call(
        &["WAITAOF", "2", "0", "0"],
        "-ERR value is out of range, value must between 0 and 1\r\n",
    );
    c.call(&["WAITAOF", "1", "0", "-1"], "-ERR timeout is negative\r\n");
    c.call(
        &["WAITAOF", "x", "0", "0"],
        "-ERR value is not an integer or out of range\r\n",
    );
    // Pipelined: a write, a barrier, a read; replies come in order.
    c.write(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*4\r\n$7\r\nWAITAOF\r\n$1\r\n1\r\n$1\r\n0\r\n$1\r\n0\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n");
    c.expect("+OK\r\n*2\r\n:1\r\n:0\r\n$1\r\n1\r\n");
}

#[test]
fn other_clients_are_served_while_writes_wait_for_fsync() {
    // One reactor, so the writer and the pinger share an event loop.
    let server = Server::start(&["--appendfsync", "always", "--threads", "1"]);
    let mut writer = server.connect();
    let mut pinger = server.connect();
    let mut batch = Vec::new();
    for i in 0..2000 {
        let k = format!("w{i}");
        batch.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$1\r\nx\r\n", k.len()).as_bytes(),
        );
    }
    for _ in 0..5 {
        writer.write(&batch);
        for _ in 0..20 {
            pinger.call(&["PING"], "+PONG\r\n");
        }
    }
    writer.expect(&"+OK\r\n".repeat(10_000));
    writer.call(&["DBSIZE"], ":2000\r\n");
}
