#![allow(clippy::unwrap_used)]
//! The `redis` crate against the real binary: typed replies, pipelines, SCAN iteration,
//! expiry and errors as a Rust client sees them.

mod common;

use common::Server;
use redis::{Commands, RedisResult};

#[test]
fn redis_crate_round_trips() {
    let server = Server::start(&[]);
    let mut con = server.redis();
    let _: () = con.set("k", "v").unwrap();
    let v: String = con.get("k").unwrap();
    assert_eq!(v, "v");
    let missing: Option<String> = con.get("nope").unwrap();
    assert_eq!(missing, None);
    let n: i64 = con.incr("n", 5).unwrap();
    assert_eq!(n, 5);
    let _: () = con.mset(&[("a", "1"), ("b", "2")]).unwrap();
    let vals: Vec<Option<String>> = con.mget(&["a", "b", "c"]).unwrap();
    assert_eq!(vals, [Some("1".into()), Some("2".into()), None]);
    let set: bool = con.expire("a", 100).unwrap();
    assert!(set);
    let ttl: i64 = con.ttl("a").unwrap();
    assert!(ttl > 0 && ttl <= 100);
    let len: usize = con.append("k", "xyz").unwrap();
    assert_eq!(len, 4);
    let r: RedisResult<i64> = con.incr("k", 1);
    let e = r.unwrap_err();
    assert_eq!(e.code(), Some("ERR"));
    assert!(
        e.to_string()
            .contains("value is not an integer or out of range"),
        "{e}"
    );

    let mut keys: Vec<String> = con
        .scan_match::<_, String>("*")
        .unwrap()
        .collect::<RedisResult<_>>()
        .unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "b", "k", "n"]);

    let (x, y): (String, i64) = redis::pipe()
        .cmd("SET")
        .arg("p")
        .arg("1")
        .ignore()
        .cmd("GET")
        .arg("p")
        .cmd("INCR")
        .arg("p")
        .query(&mut con)
        .unwrap();
    assert_eq!((x.as_str(), y), ("1", 2));

    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 5);
    let renamed: RedisResult<()> = con.rename("nope", "x");
    assert!(renamed.unwrap_err().to_string().contains("no such key"));
}
