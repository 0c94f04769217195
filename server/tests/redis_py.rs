#![allow(clippy::unwrap_used)]
//! redis-py drives every command family against the real binary (tests/py/commands.py).

mod common;

use common::Server;

#[test]
fn redis_py_command_suite() {
    let server = Server::start(&[]);
    common::run_python("commands.py", &server);
}
