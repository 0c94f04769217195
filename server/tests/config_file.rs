#![allow(clippy::unwrap_used)]
//! Start-up configuration: a redis.conf-style file, flags overriding it, ignored Redis
//! directives, and bad settings stopping start-up with exit code 1 and the setting named.

mod common;

use std::process::Command;

use common::{BIN, Server};

#[test]
fn file_then_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("respite.conf");
    std::fs::write(
        &conf,
        "# a comment\nport 6399\nappendfsync always\ndatabases 4\n\
         requirepass \"p w\"\nsave \"\"\nappendonly yes\ndaemonize no\ntree 1 var bitcask\n\
         loglevel verbose\ncache-size 16mb\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    // The harness adds --port 0 --bind 127.0.0.1 --dir after the file: flags win.
    let server = Server::start_with_config(&conf, &data, &["--databases", "8"]);
    let mut c = server.connect();
    c.call(&["PING"], "-NOAUTH Authentication required.\r\n");
    c.call(&["AUTH", "p w"], "+OK\r\n");
    c.call(
        &["CONFIG", "GET", "databases"],
        "*2\r\n$9\r\ndatabases\r\n$1\r\n8\r\n",
    );
    c.call(
        &["CONFIG", "GET", "appendfsync"],
        "*2\r\n$11\r\nappendfsync\r\n$6\r\nalways\r\n",
    );
    c.call(
        &["CONFIG", "GET", "loglevel"],
        "*2\r\n$8\r\nloglevel\r\n$7\r\nverbose\r\n",
    );
    c.call(&["SELECT", "7"], "+OK\r\n");
    c.call(&["SELECT", "8"], "-ERR DB index is out of range\r\n");
    assert_ne!(server.port, 6399);
}

fn fails(args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(args)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn bad_settings_stop_startup_naming_them() {
    assert!(fails(&["--port", "notaport"]).contains("'port'"));
    assert!(fails(&["--appendfsync", "sometimes"]).contains("'appendfsync'"));
    assert!(fails(&["--no-such-thing", "1"]).contains("'no-such-thing'"));
    assert!(fails(&["--cache-size", "lots"]).contains("'cache-size'"));
    assert!(fails(&["/nonexistent/respite.conf"]).contains("/nonexistent/respite.conf"));
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("bad.conf");
    std::fs::write(&conf, "port 0\nmaxclients zero\n").unwrap();
    let msg = fails(&[conf.to_str().unwrap()]);
    assert!(
        msg.contains("bad.conf:2") && msg.contains("'maxclients'"),
        "{msg}"
    );
}

#[test]
fn a_config_file_as_first_argument() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let conf = tmp.path().join("r.conf");
    std::fs::write(
        &conf,
        format!(
            "port 0\nbind 127.0.0.1\ndir \"{}\"\nmaxclients 77\nsave \"\"\n",
            data.display()
        ),
    )
    .unwrap();
    let server = Server::start_with_config(&conf, &data, &["--timeout", "5"]);
    let mut c = server.connect();
    c.call(
        &["CONFIG", "GET", "maxclients"],
        "*2\r\n$10\r\nmaxclients\r\n$2\r\n77\r\n",
    );
    c.call(
        &["CONFIG", "GET", "timeout"],
        "*2\r\n$7\r\ntimeout\r\n$1\r\n5\r\n",
    );
    assert!(data.exists());
}

#[test]
fn redis_directives_tools_pass_are_accepted() {
    let server = Server::start(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--protected-mode",
        "no",
    ]);
    let mut c = server.connect();
    c.call(&["PING"], "+PONG\r\n");
}
