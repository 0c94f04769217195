#![allow(clippy::unwrap_used)]
//! Encryption at rest through the real binary: `--encryption-key-file` in both key forms,
//! restarts, start-up refusals (wrong key, missing key, plain folder with a key, bad key
//! file), `rotate-key`, and a tampered page read back as an error naming its file and page.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::{BIN, PATIENCE, Server, config_get, info_field};

/// A fresh temp folder with a hex key file `hex.key`, a raw key file `raw.key` (different
/// keys) and the data folder path `data` (not created).
struct Keys {
    tmp: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        let tmp = tempfile::tempdir().unwrap();
        let hex: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        std::fs::write(tmp.path().join("hex.key"), format!("{hex}\n")).unwrap();
        let raw: [u8; 32] = rand::random();
        std::fs::write(tmp.path().join("raw.key"), raw).unwrap();
        Keys { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn data(&self) -> PathBuf {
        self.path("data")
    }
}

/// Starts the binary on `dir` with `extra` flags, expecting start-up to fail (exit code 1);
/// returns everything it printed. Panics if it becomes ready instead (the listener must
/// never come up), does not exit within PATIENCE, or exits any other way.
fn start_fails(dir: &Path, extra: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--bind", "127.0.0.1", "--dir"])
        .arg(dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let mut out = Vec::new();
    // Both pipes close when the process exits: the channel then disconnects.
    loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(line) => {
                if line.contains("Ready to accept connections") {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the server started where it must refuse; output:\n{}\n{line}",
                        out.join("\n")
                    );
                }
                out.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server neither started nor exited; output:\n{}",
                    out.join("\n")
                );
            }
        }
    }
    let status = child.wait().unwrap();
    let text = out.join("\n");
    assert!(
        !text.contains("panicked"),
        "a refusal is a message, not a panic:\n{text}"
    );
    assert_eq!(status.code(), Some(1), "{text}");
    text
}

/// `respite-server rotate-key` with `args`; returns (success, stdout + stderr).
fn rotate(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("rotate-key")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Starts the server on `dir` with `flags`, sets `k` to `v`, and stops it cleanly.
fn set_k_and_stop(dir: &Path, flags: &[&str]) {
    let mut server = Server::start_in(dir, flags);
    let mut c = server.redis();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    drop(c);
    assert!(server.sigterm().success());
}

/// INFO persistence's `respite_encryption` field is `want`.
fn assert_encryption(server: &Server, want: &str) {
    assert_eq!(
        info_field(&mut server.redis(), "persistence", "respite_encryption").as_deref(),
        Some(want)
    );
}

/// Every byte of every regular file under `dir`.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            out.push((e.path(), std::fs::read(e.path()).unwrap()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn round_trip_with(key_file: &str) {
    let keys = Keys::new();
    let key = keys.arg(key_file);
    let flags = ["--encryption-key-file", key.as_str()];
    let server = Server::start_in(&keys.data(), &flags);
    let big = fill(&server);
    assert_encryption(&server, "1");
    let server = server.restart(&flags);
    check_filled(&server, &big);
}

#[test]
fn hex_key_file_round_trip_across_restart() {
    round_trip_with("hex.key");
}

#[test]
fn raw_key_file_round_trip_across_restart() {
    round_trip_with("raw.key");
}

#[test]
fn the_key_file_is_fixed_at_start_and_config_get_shows_only_its_path() {
    let keys = Keys::new();
    let key = keys.arg("hex.key");
    let key_text = std::fs::read_to_string(keys.path("hex.key")).unwrap();
    let server = Server::start_in(&keys.data(), &["--encryption-key-file", &key]);
    let mut c = server.redis();
    let got = config_get(&mut c, "encryption-key-file");
    assert_eq!(got, vec!["encryption-key-file".to_owned(), key.clone()]);
    let everything = config_get(&mut c, "*");
    assert!(
        everything.iter().all(|v| !v.contains(key_text.trim())),
        "the key itself never leaves the server"
    );
    let mut raw = server.connect();
    raw.call(
        &["CONFIG", "SET", "encryption-key-file", &keys.arg("raw.key")],
        "-ERR CONFIG SET failed (possibly related to argument 'encryption-key-file') - can't set immutable config\r\n",
    );
    let got = config_get(&mut c, "encryption-key-file");
    assert_eq!(got[1], key, "unchanged after the refused CONFIG SET");
}

#[test]
fn info_says_encryption_is_off_without_a_key() {
    assert_encryption(&Server::start(&[]), "0");
}

#[test]
fn the_key_file_can_come_from_the_config_file() {
    let keys = Keys::new();
    let conf = keys.path("respite.conf");
    std::fs::write(
        &conf,
        format!("encryption-key-file \"{}\"\n", keys.arg("raw.key")),
    )
    .unwrap();
    assert_encryption(&Server::start_with_config(&conf, &keys.data(), &[]), "1");
}

#[test]
fn an_unusable_key_file_stops_startup_naming_it() {
    let keys = Keys::new();
    let missing = keys.arg("missing.key");
    let out = start_fails(&keys.data(), &["--encryption-key-file", &missing]);
    assert!(
        out.contains(&missing) && out.contains("encryption-key-file"),
        "{out}"
    );
    let short = keys.path("short.key");
    std::fs::write(&short, "0123456789abcdef\n").unwrap();
    let short = short.display().to_string();
    let out = start_fails(&keys.data(), &["--encryption-key-file", &short]);
    assert!(
        out.contains(&short) && out.contains("32 bytes or 64 hex"),
        "{out}"
    );
    assert!(
        !keys.data().exists(),
        "a bad key file is refused before the data folder is touched"
    );
}

/// The engine checks the folder's key marker.
#[test]
fn a_wrong_key_stops_startup_naming_the_marker() {
    let keys = Keys::new();
    let hex = keys.arg("hex.key");
    set_k_and_stop(&keys.data(), &["--encryption-key-file", &hex]);
    let raw = keys.arg("raw.key");
    let out = start_fails(&keys.data(), &["--encryption-key-file", &raw]);
    assert!(
        out.contains("wrong encryption key") && out.contains("ENCRYPTION"),
        "{out}"
    );
    // The data is still there for the right key.
    let server = Server::start_in(&keys.data(), &["--encryption-key-file", &hex]);
    let mut c = server.redis();
    let got: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(got, "v");
}

/// The engine refuses a folder opened the other way than it was created.
#[test]
fn encrypted_folder_without_key_and_plain_folder_with_key_are_refused() {
    let keys = Keys::new();
    let hex = keys.arg("hex.key");
    let encrypted = keys.path("encrypted");
    set_k_and_stop(&encrypted, &["--encryption-key-file", &hex]);
    let out = start_fails(&encrypted, &[]);
    assert!(
        out.contains("encrypted")
            && out.contains("ENCRYPTION")
            && out.contains("encryption-key-file"),
        "{out}"
    );

    let plain = keys.path("plain");
    set_k_and_stop(&plain, &[]);
    let out = start_fails(&plain, &["--encryption-key-file", &hex]);
    assert!(
        out.contains("not encrypted") && out.contains(&plain.display().to_string()),
        "{out}"
    );
}

/// The engine writes ciphertext.
#[test]
fn no_plaintext_reaches_the_disk() {
    let keys = Keys::new();
    let hex = keys.arg("hex.key");
    let mut server = Server::start_in(&keys.data(), &["--encryption-key-file", &hex]);
    let mut c = server.redis();
    let key = "secret-key-4f1c2a";
    let value = "secret-value-9d8e7b-".repeat(500);
    let small = "tiny-secret-77";
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(&value)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("small")
        .arg(small)
        .query(&mut c)
        .unwrap();
    drop(c);
    assert!(server.sigterm().success());
    let files = all_files(&keys.data());
    assert!(!files.is_empty());
    for (path, bytes) in files {
        for needle in [key, "secret-value-9d8e7b-", small] {
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "{needle:?} in plaintext in {}",
                path.display()
            );
        }
    }
}

/// Writes keys a restart or `rotate-key` must keep: several databases, a TTL, a big value.
fn fill(server: &Server) -> String {
    let mut c = server.redis();
    let big = "R".repeat(20_000);
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(format!("v{i}"))
            .query(&mut c)
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("ttl")
        .arg("t")
        .arg("EX")
        .arg(10_000)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SELECT").arg(3).query(&mut c).unwrap();
    let _: () = redis::cmd("SET")
        .arg("in3")
        .arg("three")
        .query(&mut c)
        .unwrap();
    big
}

fn check_filled(server: &Server, big: &str) {
    let mut c = server.redis();
    for i in 0..200 {
        let got: String = redis::cmd("GET")
            .arg(format!("k{i}"))
            .query(&mut c)
            .unwrap();
        assert_eq!(got, format!("v{i}"));
    }
    let got: String = redis::cmd("GET").arg("big").query(&mut c).unwrap();
    assert_eq!(got, big);
    let ttl: i64 = redis::cmd("TTL").arg("ttl").query(&mut c).unwrap();
    assert!(ttl > 0 && ttl <= 10_000, "the TTL is carried over: {ttl}");
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 202);
    let _: () = redis::cmd("SELECT").arg(3).query(&mut c).unwrap();
    let got: String = redis::cmd("GET").arg("in3").query(&mut c).unwrap();
    assert_eq!(got, "three");
}

#[test]
fn rotate_key_copies_every_key_with_its_ttl_and_swaps_the_folders() {
    let keys = Keys::new();
    let hex = keys.arg("hex.key");
    let raw = keys.arg("raw.key");
    let data = keys.data();
    let mut server = Server::start_in(&data, &["--encryption-key-file", &hex]);
    let big = fill(&server);
    assert!(server.sigterm().success());
    // A leftover of an interrupted run is replaced, not merged.
    let leftover = keys.path("data.rotating");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("junk"), "x").unwrap();
    // A file of the user's in the folder goes along.
    std::fs::write(data.join("notes.txt"), "mine").unwrap();

    let d = data.display().to_string();
    let (ok, out) = rotate(&[
        "--dir",
        &d,
        "--encryption-key-file",
        &hex,
        "--new-encryption-key-file",
        &raw,
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("203 keys copied")
            && out.contains("db0: 202 keys")
            && out.contains("db3: 1 keys"),
        "{out}"
    );
    assert!(!keys.path("data.rotating").exists());
    assert!(!keys.path("data.old-key").exists());
    assert!(!data.join("junk").exists());
    assert_eq!(
        std::fs::read_to_string(data.join("notes.txt")).unwrap(),
        "mine"
    );

    let server = Server::start_in(&data, &["--encryption-key-file", &raw]);
    check_filled(&server, &big);
}

#[test]
fn rotate_key_encrypts_a_plain_folder_and_decrypts_an_encrypted_one() {
    let keys = Keys::new();
    let hex = keys.arg("hex.key");
    let data = keys.data();
    let d = data.display().to_string();
    let mut server = Server::start_in(&data, &[]);
    let big = fill(&server);
    assert!(server.sigterm().success());

    let (ok, out) = rotate(&["--dir", &d, "--new-encryption-key-file", &hex]);
    assert!(ok, "{out}");
    assert!(out.contains("plain -> encrypted"), "{out}");
    let mut server = Server::start_in(&data, &["--encryption-key-file", &hex]);
    check_filled(&server, &big);
    assert!(server.sigterm().success());

    let (ok, out) = rotate(&["--dir", &d, "--encryption-key-file", &hex]);
    assert!(ok, "{out}");
    assert!(out.contains("encrypted -> plain"), "{out}");
    let server = Server::start_in(&data, &[]);
    check_filled(&server, &big);
}

#[test]
fn rotate_key_refuses_without_any_key_and_on_a_missing_folder() {
    let keys = Keys::new();
    let d = keys.data().display().to_string();
    let (ok, out) = rotate(&["--dir", &d]);
    assert!(!ok && out.contains("--new-encryption-key-file"), "{out}");
    let (ok, out) = rotate(&[
        "--dir",
        &d,
        "--new-encryption-key-file",
        &keys.arg("hex.key"),
    ]);
    assert!(!ok && out.contains("does not exist"), "{out}");
    assert!(!keys.data().exists());
}

#[test]
fn rotate_key_refuses_a_folder_a_running_server_holds() {
    let keys = Keys::new();
    let hex = keys.arg("hex.key");
    let server = Server::start_in(&keys.data(), &["--encryption-key-file", &hex]);
    let _big = fill(&server);
    let d = keys.data().display().to_string();
    let (ok, out) = rotate(&[
        "--dir",
        &d,
        "--encryption-key-file",
        &hex,
        "--new-encryption-key-file",
        &keys.arg("raw.key"),
    ]);
    assert!(!ok && out.contains("in use"), "{out}");
    assert!(!keys.path("data.rotating").exists());
    let mut c = server.redis();
    let got: String = redis::cmd("GET").arg("k7").query(&mut c).unwrap();
    assert_eq!(got, "v7", "the running server is undisturbed");
}

/// After rotation the old key no longer opens the folder.
#[test]
fn after_rotate_key_the_old_key_is_refused_and_the_new_one_works() {
    let keys = Keys::new();
    let hex = keys.arg("hex.key");
    let raw = keys.arg("raw.key");
    let data = keys.data();
    let mut server = Server::start_in(&data, &["--encryption-key-file", &hex]);
    let big = fill(&server);
    assert!(server.sigterm().success());
    let d = data.display().to_string();
    let (ok, out) = rotate(&[
        "--dir",
        &d,
        "--encryption-key-file",
        &hex,
        "--new-encryption-key-file",
        &raw,
    ]);
    assert!(ok, "{out}");
    let out = start_fails(&data, &["--encryption-key-file", &hex]);
    assert!(out.contains("wrong encryption key"), "{out}");
    let server = Server::start_in(&data, &["--encryption-key-file", &raw]);
    check_filled(&server, &big);
}

/// A flipped bit in an encrypted page is an error on read, naming the file
/// and the page, and nothing else is affected.
///
/// Where the bit goes: the folder is new, so `big` (10 KB, far above the inline limit of 64
/// bytes) is the first record of the first log, `0000000001.log`, and covers its bytes from
/// just after the log header to beyond 8192. With encryption on, a log's byte offsets are
/// its plaintext offsets, so page 1 (bytes 4096..8192) holds nothing but `big`'s value. The
/// log is sealed (a small `log-file-size` and filler written after `big`), so start-up
/// loads it from its hint file and never reads page 1: only the GET of `big` does.
#[test]
fn a_tampered_page_is_an_error_naming_file_and_page_and_the_server_serves_on() {
    let keys = Keys::new();
    let hex = keys.arg("hex.key");
    let flags = [
        "--encryption-key-file",
        hex.as_str(),
        "--log-file-size",
        "256kb",
    ];
    let server = Server::start_in(&keys.data(), &flags);
    let mut c = server.redis();
    let big = "T".repeat(10_000);
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("small")
        .arg("fine")
        .query(&mut c)
        .unwrap();
    let filler = "f".repeat(4000);
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("filler{i}"))
            .arg(&filler)
            .query(&mut c)
            .unwrap();
    }
    let other = "O".repeat(10_000);
    let _: () = redis::cmd("SET")
        .arg("other")
        .arg(&other)
        .query(&mut c)
        .unwrap();
    let mut raw = server.connect();
    raw.send(&["SHUTDOWN"]);
    assert!(raw.closed());
    let mut server = server;
    assert!(server.wait_exit().success());

    let log = keys.data().join("0000000001.log");
    assert!(
        keys.data().join("0000000002.log").exists(),
        "the first log was sealed"
    );
    let mut bytes = std::fs::read(&log).unwrap();
    assert!(bytes.len() > 3 * 4096);
    bytes[4096 + 2048] ^= 0x10;
    std::fs::write(&log, &bytes).unwrap();

    let server = Server::start_in(&keys.data(), &flags);
    let mut raw = server.connect();
    raw.send(&["GET", "big"]);
    let reply = raw.line();
    assert!(
        reply.starts_with('-')
            && reply.contains("0000000001.log")
            && reply.contains("page 1")
            && reply.contains("authentication"),
        "{reply}"
    );
    let logged = server.wait_log("Damaged data on disk");
    assert!(
        logged
            .as_deref()
            .is_some_and(|l| l.contains("0000000001.log") && l.contains("page 1")),
        "the server logs the damage: {logged:?}"
    );
    raw.call(&["GET", "small"], "$4\r\nfine\r\n");
    let mut c = server.redis();
    let got: String = redis::cmd("GET").arg("other").query(&mut c).unwrap();
    assert_eq!(got, other);
    let got: String = redis::cmd("GET").arg("filler7").query(&mut c).unwrap();
    assert_eq!(got, filler);
    raw.call(&["SET", "after", "works"], "+OK\r\n");
    raw.call(&["GET", "after"], "$5\r\nworks\r\n");
    raw.call(&["PING"], "+PONG\r\n");
}

#[test]
fn rotate_key_keeps_const_trees_and_refuses_a_config_without_them() {
    let keys = Keys::new();
    let hex = keys.arg("hex.key");
    let raw = keys.arg("raw.key");
    let data = keys.data();
    let d = data.display().to_string();
    let trees = ["--tree", "1 const 8 fixed", "--tree", "2 const 8 bitcask"];
    let mut flags = vec!["--encryption-key-file", hex.as_str()];
    flags.extend(trees);
    let mut server = Server::start_in(&data, &flags);
    let mut c = server.redis();
    for db in [1, 2] {
        let _: () = redis::cmd("SELECT").arg(db).query(&mut c).unwrap();
        for i in 0..50 {
            let _: () = redis::cmd("SET")
                .arg(format!("k{i}"))
                .arg(format!("{db}-{i:06}"))
                .query(&mut c)
                .unwrap();
        }
    }
    drop(c);
    assert!(server.sigterm().success());

    // Without the tree settings the FixedStore's keys would not be seen: refused, unchanged.
    let before: Vec<_> = all_files(&data)
        .into_iter()
        .map(|(p, b)| (p, b.len()))
        .collect();
    let (ok, out) = rotate(&[
        "--dir",
        &d,
        "--encryption-key-file",
        &hex,
        "--new-encryption-key-file",
        &raw,
    ]);
    assert!(!ok && out.contains("tree 1 const <size> fixed"), "{out}");
    let after: Vec<_> = all_files(&data)
        .into_iter()
        .map(|(p, b)| (p, b.len()))
        .collect();
    assert_eq!(before, after);

    let mut args = vec![
        "--dir",
        d.as_str(),
        "--encryption-key-file",
        hex.as_str(),
        "--new-encryption-key-file",
        raw.as_str(),
    ];
    args.extend(trees);
    let (ok, out) = rotate(&args);
    assert!(ok, "{out}");
    assert!(
        out.contains("db1: 50 keys") && out.contains("db2: 50 keys"),
        "{out}"
    );
    let mut flags = vec!["--encryption-key-file", raw.as_str()];
    flags.extend(trees);
    let server = Server::start_in(&data, &flags);
    let mut c = server.redis();
    for db in [1, 2] {
        let _: () = redis::cmd("SELECT").arg(db).query(&mut c).unwrap();
        for i in 0..50 {
            let got: String = redis::cmd("GET")
                .arg(format!("k{i}"))
                .query(&mut c)
                .unwrap();
            assert_eq!(got, format!("{db}-{i:06}"));
        }
    }
}

#[test]
fn rotate_key_refuses_a_config_with_fewer_databases_than_the_folder_uses() {
    let keys = Keys::new();
    let hex = keys.arg("hex.key");
    let data = keys.data();
    let d = data.display().to_string();
    let mut server = Server::start_in(&data, &["--databases", "32"]);
    let mut c = server.redis();
    let _: () = redis::cmd("SELECT").arg(20).query(&mut c).unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("in20")
        .query(&mut c)
        .unwrap();
    drop(c);
    assert!(server.sigterm().success());
    let (ok, out) = rotate(&["--dir", &d, "--new-encryption-key-file", &hex]);
    assert!(!ok && out.contains("beyond `databases 16`"), "{out}");
    assert!(!keys.path("data.rotating").exists());
    let (ok, out) = rotate(&[
        "--dir",
        &d,
        "--databases",
        "32",
        "--new-encryption-key-file",
        &hex,
    ]);
    assert!(ok && out.contains("db20: 1 keys"), "{out}");
    let server = Server::start_in(&data, &["--databases", "32", "--encryption-key-file", &hex]);
    let mut c = server.redis();
    let _: () = redis::cmd("SELECT").arg(20).query(&mut c).unwrap();
    let got: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(got, "in20");
}

#[test]
fn rotate_key_keeps_the_folders_shard_count() {
    let keys = Keys::new();
    let hex = keys.arg("hex.key");
    let data = keys.data();
    let d = data.display().to_string();
    set_k_and_stop(&data, &["--shards", "4"]);
    // The config names the default (16); the folder was made with 4.
    let (ok, out) = rotate(&["--dir", &d, "--new-encryption-key-file", &hex]);
    assert!(ok && out.contains("stored: 4"), "{out}");
    // The rotated folder was made with 4 too: the engine says so again when opening it.
    let (ok, out) = rotate(&["--dir", &d, "--encryption-key-file", &hex]);
    assert!(ok && out.contains("stored: 4"), "{out}");
    let (ok, out) = rotate(&[
        "--dir",
        &d,
        "--shards",
        "4",
        "--new-encryption-key-file",
        &hex,
    ]);
    assert!(ok && !out.contains("shard count stored"), "{out}");
}
