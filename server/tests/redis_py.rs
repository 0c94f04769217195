#![allow(clippy::unwrap_used)]
//! redis-py drives every command family against the real binary (tests/py/commands.py).

mod common;

use std::process::Command;

use common::Server;

#[test]
fn redis_py_command_suite() {
    let server = Server::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/commands.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(server.port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
