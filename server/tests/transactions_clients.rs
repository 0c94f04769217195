#![allow(clippy::unwrap_used)]
//! MULTI / EXEC / DISCARD / WATCH as client libraries use them, against the real binary:
//! redis-py (tests/py/transactions.py) and the `redis` crate's atomic pipelines and WATCH
//! helper, in RESP2 and RESP3.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::Server;
use redis::{Commands, RedisResult, Value};

/// A `redis` crate connection speaking RESP2 or RESP3.
fn connect(server: &Server, resp3: bool) -> redis::Connection {
    if !resp3 {
        return server.redis();
    }
    let url = format!("redis://127.0.0.1:{}/?protocol=resp3", server.port);
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// The protocol the server thinks `con` speaks, from CLIENT INFO.
fn resp_of(con: &mut redis::Connection) -> String {
    let info: String = redis::cmd("CLIENT").arg("INFO").query(con).unwrap();
    let field = info.split_whitespace().find(|f| f.starts_with("resp="));
    field.unwrap().to_string()
}

#[test]
fn redis_py_transaction_suite() {
    let server = Server::start(&[]);
    let out = common::run_python("transactions.py", &server);
    assert_eq!(out.trim_end(), "ok");
}

#[test]
fn atomic_pipeline_results_and_effects() {
    let server = Server::start(&[]);
    for resp3 in [false, true] {
        let mut con = connect(&server, resp3);
        assert_eq!(resp_of(&mut con), if resp3 { "resp=3" } else { "resp=2" });
        let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
        let _: () = con.set("n", 10).unwrap();

        let (set, n1, n2, a, missing, len, all): (
            String,
            i64,
            i64,
            String,
            Option<String>,
            i64,
            Vec<Option<String>>,
        ) = redis::pipe()
            .atomic()
            .set("a", "1")
            .incr("n", 1)
            .incr("n", 5)
            .get("a")
            .get("missing")
            .append("a", "23")
            .mget(&["a", "n", "missing"])
            .query(&mut con)
            .unwrap();
        assert_eq!(set, "OK");
        assert_eq!((n1, n2), (11, 16));
        assert_eq!(a, "1");
        assert_eq!(missing, None);
        assert_eq!(len, 3);
        assert_eq!(all, [Some("123".into()), Some("16".into()), None]);
        let a: String = con.get("a").unwrap();
        let n: i64 = con.get("n").unwrap();
        assert_eq!((a.as_str(), n), ("123", 16), "resp3={resp3}");

        // ignore() drops replies from the result, not commands from the transaction.
        let (got,): (i64,) = redis::pipe()
            .atomic()
            .set("x", 1)
            .ignore()
            .incr("x", 41)
            .ignore()
            .get("x")
            .query(&mut con)
            .unwrap();
        assert_eq!(got, 42);

        // A runtime error fails its own slot; the other commands run.
        let _: () = con.set("text", "abc").unwrap();
        let results: Vec<RedisResult<Value>> = redis::pipe()
            .atomic()
            .set("rt", "x")
            .incr("text", 1)
            .incr("n", 1)
            .ignore_errors()
            .query(&mut con)
            .unwrap();
        assert_eq!(results.len(), 3, "{results:?}");
        assert_eq!(results[0].as_ref().unwrap(), &Value::Okay, "{results:?}");
        let e = results[1].as_ref().unwrap_err();
        assert!(
            e.to_string()
                .contains("value is not an integer or out of range"),
            "{e}"
        );
        assert_eq!(results[2].as_ref().unwrap(), &Value::Int(17), "{results:?}");
        let rt: String = con.get("rt").unwrap();
        let text: String = con.get("text").unwrap();
        assert_eq!((rt.as_str(), text.as_str()), ("x", "abc"));

        // Without ignore_errors() the runtime error is the pipeline's error, yet the rest ran.
        let r: RedisResult<Value> = redis::pipe()
            .atomic()
            .incr("n", 1)
            .incr("text", 1)
            .incr("n", 1)
            .query(&mut con);
        let e = r.unwrap_err();
        assert!(
            e.to_string()
                .contains("value is not an integer or out of range"),
            "{e}"
        );
        let n: i64 = con.get("n").unwrap();
        assert_eq!(n, 19);

        // A queueing error (unknown command) aborts the whole transaction: nothing runs.
        let r: RedisResult<Value> = redis::pipe()
            .atomic()
            .set("q", "1")
            .cmd("NOSUCHCMD")
            .arg("x")
            .incr("n", 1)
            .query(&mut con);
        let e = r.unwrap_err();
        assert_eq!(e.code(), Some("EXECABORT"), "{e}");
        assert!(e.to_string().contains("unknown command"), "{e}");
        let q: Option<String> = con.get("q").unwrap();
        let n: i64 = con.get("n").unwrap();
        assert_eq!((q, n), (None, 19));
        // ... and so does a wrong number of arguments.
        let r: RedisResult<Value> = redis::pipe()
            .atomic()
            .set("q", "1")
            .cmd("GET")
            .query(&mut con);
        let e = r.unwrap_err();
        assert_eq!(e.code(), Some("EXECABORT"), "{e}");
        assert!(e.to_string().contains("wrong number of arguments"), "{e}");
        let q: Option<String> = con.get("q").unwrap();
        assert_eq!(q, None);

        // The connection is back to normal after all of that.
        let pong: String = redis::cmd("PING").query(&mut con).unwrap();
        assert_eq!(pong, "PONG");
    }
}

#[test]
fn multi_exec_discard_by_hand() {
    let server = Server::start(&[]);
    for resp3 in [false, true] {
        let mut con = connect(&server, resp3);
        let mut other = connect(&server, !resp3);
        let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();

        let ok: String = redis::cmd("MULTI").query(&mut con).unwrap();
        assert_eq!(ok, "OK");
        let queued: String = con.set("m", "1").unwrap();
        assert_eq!(queued, "QUEUED");
        let queued: String = con.incr("m", 1).unwrap();
        assert_eq!(queued, "QUEUED");
        // Nothing ran yet, as another connection sees it.
        let seen: Option<String> = other.get("m").unwrap();
        assert_eq!(seen, None);
        let replies: Vec<Value> = redis::cmd("EXEC").query(&mut con).unwrap();
        assert_eq!(replies, [Value::Okay, Value::Int(2)]);
        let seen: i64 = other.get("m").unwrap();
        assert_eq!(seen, 2);

        let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
        let _: () = con.set("m", "discarded").unwrap();
        let ok: String = redis::cmd("DISCARD").query(&mut con).unwrap();
        assert_eq!(ok, "OK");
        let seen: i64 = other.get("m").unwrap();
        assert_eq!(seen, 2);
        let e = redis::cmd("EXEC").query::<Value>(&mut con).unwrap_err();
        assert!(e.to_string().contains("EXEC without MULTI"), "{e}");
    }
}

#[test]
fn watch_conflict_makes_exec_nil() {
    let server = Server::start(&[]);
    for resp3 in [false, true] {
        let mut con = connect(&server, resp3);
        let mut other = connect(&server, !resp3);
        let _: () = con.set("k", "orig").unwrap();

        // By hand: WATCH, a write by the second connection, MULTI ... EXEC answers nil.
        let _: () = redis::cmd("WATCH").arg("k").query(&mut con).unwrap();
        let _: () = other.set("k", "theirs").unwrap();
        let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
        let queued: String = con.set("k", "mine").unwrap();
        assert_eq!(queued, "QUEUED");
        let exec: Value = redis::cmd("EXEC").query(&mut con).unwrap();
        assert_eq!(exec, Value::Nil, "resp3={resp3}");
        let k: String = con.get("k").unwrap();
        assert_eq!(k, "theirs");

        // Through an atomic pipeline: the nil EXEC becomes None.
        let _: () = redis::cmd("WATCH").arg("k").query(&mut con).unwrap();
        let _: () = other.append("k", "+").unwrap();
        let r: Option<(String, i64)> = redis::pipe()
            .atomic()
            .set("k", "mine")
            .incr("side", 1)
            .query(&mut con)
            .unwrap();
        assert_eq!(r, None, "resp3={resp3}");
        let k: String = con.get("k").unwrap();
        let side: Option<i64> = con.get("side").unwrap();
        assert_eq!((k.as_str(), side), ("theirs+", None));

        // The aborted EXEC dropped the watch: the same pipeline now runs.
        let _: () = other.set("k", "again").unwrap();
        let r: Option<(String, i64)> = redis::pipe()
            .atomic()
            .set("k", "mine")
            .incr("side", 1)
            .query(&mut con)
            .unwrap();
        assert_eq!(r, Some(("OK".to_string(), 1)));

        // WATCH with only reads and a failed SET NX in between does not abort.
        let _: () = redis::cmd("WATCH").arg("k").query(&mut con).unwrap();
        let _: String = other.get("k").unwrap();
        let set: Option<String> = redis::cmd("SET")
            .arg("k")
            .arg("x")
            .arg("NX")
            .query(&mut other)
            .unwrap();
        assert_eq!(set, None);
        let exec: Option<Vec<Value>> = redis::pipe()
            .atomic()
            .set("k", "watched-ok")
            .query(&mut con)
            .unwrap();
        assert_eq!(exec, Some(vec![Value::Okay]), "resp3={resp3}");
        let k: String = other.get("k").unwrap();
        assert_eq!(k, "watched-ok");

        // UNWATCH forgets: a later write does not abort.
        let _: () = redis::cmd("WATCH").arg("k").query(&mut con).unwrap();
        let _: () = redis::cmd("UNWATCH").query(&mut con).unwrap();
        let _: () = other.set("k", "theirs").unwrap();
        let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
        let _: () = con.set("k", "after-unwatch").unwrap();
        let exec: Option<Vec<Value>> = redis::cmd("EXEC").query(&mut con).unwrap();
        assert_eq!(exec, Some(vec![Value::Okay]));
        let _: () = redis::cmd("DEL").arg("side").query(&mut con).unwrap();
    }
}

#[test]
fn transaction_helper_retries_after_a_conflict() {
    let server = Server::start(&[]);
    let mut con = server.redis();
    let mut other = server.redis();
    let _: () = con.set("counter", 10).unwrap();

    // The closure runs between WATCH and EXEC; on the first attempt a second connection
    // changes the key there, so that EXEC fails and redis::transaction tries again.
    let mut attempts = 0;
    let (value,): (i64,) = redis::transaction(&mut con, &["counter"], |con, pipe| {
        attempts += 1;
        assert!(attempts <= 2, "EXEC failed again without a conflict");
        let v: i64 = con.get("counter")?;
        if attempts == 1 {
            let _: () = other.incr("counter", 100)?;
        }
        pipe.set("counter", v + 1)
            .ignore()
            .get("counter")
            .query(con)
    })
    .unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(value, 111);
    let stored: i64 = other.get("counter").unwrap();
    assert_eq!(stored, 111);
}

#[test]
fn transaction_helper_counts_exactly_under_contention() {
    const THREADS: usize = 4;
    const INCREMENTS: usize = 50;
    const MAX_ATTEMPTS: usize = 100_000;
    let server = Server::start(&[]);
    let _: () = server.redis().set("counter", 0).unwrap();
    let attempts = AtomicUsize::new(0);
    let cons: Vec<_> = (0..THREADS).map(|t| connect(&server, t % 2 == 1)).collect();
    std::thread::scope(|s| {
        for mut con in cons {
            let attempts = &attempts;
            s.spawn(move || {
                for _ in 0..INCREMENTS {
                    let (): () = redis::transaction(&mut con, &["counter"], |con, pipe| {
                        let n = attempts.fetch_add(1, Ordering::Relaxed);
                        assert!(n < MAX_ATTEMPTS, "too many transaction attempts");
                        let v: i64 = con.get("counter")?;
                        pipe.set("counter", v + 1).ignore().query(con)
                    })
                    .unwrap();
                }
            });
        }
    });
    let total: i64 = server.redis().get("counter").unwrap();
    assert_eq!(total, (THREADS * INCREMENTS) as i64);
    assert!(attempts.load(Ordering::Relaxed) >= THREADS * INCREMENTS);
}
