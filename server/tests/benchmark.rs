#![allow(clippy::unwrap_used)]
//! redis-benchmark smoke test: pipelined SET/GET/INCR/MSET complete without errors.
//! (Never a timing: only that every request got a non-error reply.)

mod common;

use std::process::Command;

use common::Server;

fn bench(server: &Server, extra: &[&str]) -> String {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.port.to_string(),
            "-q",
            "-n",
            "20000",
        ])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        !stdout.contains("ERR") && !stderr.contains("ERR"),
        "{stdout}\n{stderr}"
    );
    stdout
}

#[test]
fn redis_benchmark_pipelined_completes() {
    let server = Server::start(&[]);
    let out = bench(&server, &["-t", "set,get,incr,mset", "-P", "16"]);
    for name in ["SET", "GET", "INCR", "MSET"] {
        assert!(out.contains(name), "{out}");
    }
    let mut c = server.connect();
    c.send(&["GET", "counter:__rand_int__"]);
    let line = c.line();
    assert!(line.starts_with('$'), "{line}");
}

#[test]
fn redis_benchmark_under_always_completes() {
    let server = Server::start(&["--appendfsync", "always"]);
    bench(&server, &["-t", "set,incr", "-P", "16", "-c", "20"]);
}
