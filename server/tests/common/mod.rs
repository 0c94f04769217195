//! Shared helpers for the integration tests: start the real binary on 127.0.0.1 with an
//! ephemeral port and a fresh data directory, wait for its ready line, kill it on drop.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a test waits for anything before failing (a bound, never a measurement).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running `respite-server` child process.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    log: Option<mpsc::Receiver<String>>,
}

pub const BIN: &str = env!("CARGO_BIN_EXE_respite-server");

impl Server {
    /// Starts a server with a fresh data directory and `extra` flags.
    pub fn start(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut s = Server::start_in(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on the data directory `dir`.
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        Server::spawn(None, dir, extra)
    }

    /// Starts a server with a config file as first argument (flags follow it).
    pub fn start_with_config(conf: &Path, dir: &Path, extra: &[&str]) -> Server {
        Server::spawn(Some(conf), dir, extra)
    }

    fn spawn(conf: Option<&Path>, dir: &Path, extra: &[&str]) -> Server {
        let mut cmd = Command::new(BIN);
        if let Some(conf) = conf {
            cmd.arg(conf);
        }
        cmd.args(["--port", "0", "--bind", "127.0.0.1", "--dir"])
            .arg(dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        // Drain both pipes for the whole life of the child so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx2.send(line);
            }
        });
        let mut seen = Vec::new();
        let port = loop {
            let line = match rx.recv_timeout(PATIENCE) {
                Ok(l) => l,
                Err(_) => panic!("server never got ready; output:\n{}", seen.join("\n")),
            };
            if line.contains("Ready to accept connections tcp") {
                let at = line.find("port: ").unwrap() + 6;
                let digits: String = line[at..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                break digits.parse().unwrap();
            }
            seen.push(line);
        };
        Server {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
            _tmp: None,
            log: Some(rx),
        }
    }

    /// Stops this server with SIGTERM and starts a new one on the same data directory.
    pub fn restart(mut self, extra: &[&str]) -> Server {
        let status = self.sigterm();
        assert!(status.success(), "{status:?}");
        let mut next = Server::start_in(&self.dir, extra);
        next._tmp = self._tmp.take();
        next
    }

    /// Kills with SIGKILL (a crash) and starts again on the same directory.
    pub fn crash_and_restart(mut self, extra: &[&str]) -> Server {
        self.kill9();
        let mut next = Server::start_in(&self.dir, extra);
        next._tmp = self._tmp.take();
        next
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn sigterm(&mut self) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        self.wait_exit()
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(PATIENCE) {
            Ok(status) => status.unwrap(),
            Err(_) => {
                // SAFETY: kill(2) on the child we spawned; its waiter thread still holds it.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                panic!("server did not exit");
            }
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().unwrap().id()).unwrap()
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The lines the server logged so far (after the ready line).
    pub fn log_lines(&self) -> Vec<String> {
        self.log
            .as_ref()
            .map(|rx| rx.try_iter().collect())
            .unwrap_or_default()
    }

    /// Waits (bounded by PATIENCE) for a logged line containing `needle`; returns it.
    pub fn wait_log(&self, needle: &str) -> Option<String> {
        let rx = self.log.as_ref()?;
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// A raw connection with a read timeout.
    pub fn connect(&self) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.set_nodelay(true).unwrap();
        Raw(s)
    }

    /// A redis-rs connection.
    pub fn redis(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).unwrap();
        client.get_connection().unwrap()
    }

    /// Runs redis-cli against this server and returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The value of `field` in INFO `section`, if the section has it.
pub fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg(section).query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(str::to_owned)
}

/// CONFIG GET `pattern`: the flat (name, value, ...) list of the settings it matches.
pub fn config_get(c: &mut redis::Connection, pattern: &str) -> Vec<String> {
    redis::cmd("CONFIG")
        .arg("GET")
        .arg(pattern)
        .query(c)
        .unwrap()
}

/// Runs a script of `tests/py/` with the server's port as its argument, fails the test
/// with its output unless it exits 0, and returns its stdout.
pub fn run_python(script: &str, server: &Server) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let out = Command::new("python3")
        .arg(path)
        .arg(server.port.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A command as a RESP array of bulk strings.
pub fn frame(args: &[&str]) -> String {
    let mut f = format!("*{}\r\n", args.len());
    for a in args {
        f.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    f
}

/// A raw RESP connection.
pub struct Raw(pub TcpStream);

impl Raw {
    /// Sends a command as a RESP array.
    pub fn send(&mut self, args: &[&str]) {
        self.0.write_all(frame(args).as_bytes()).unwrap();
    }

    /// Sends raw bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).unwrap();
    }

    /// Reads exactly `expected.len()` bytes and compares them.
    pub fn expect(&mut self, expected: &str) {
        let mut got = vec![0u8; expected.len()];
        self.0.read_exact(&mut got).unwrap_or_else(|e| {
            panic!("reading {expected:?}: {e}");
        });
        assert_eq!(String::from_utf8_lossy(&got), expected);
    }

    /// Sends a command and expects exactly `reply`.
    pub fn call(&mut self, args: &[&str], reply: &str) {
        self.send(args);
        self.expect(reply);
    }

    /// Reads one line (through CRLF).
    pub fn line(&mut self) -> String {
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        while !out.ends_with(b"\r\n") {
            self.0.read_exact(&mut b).unwrap();
            out.push(b[0]);
        }
        String::from_utf8(out).unwrap()
    }

    /// Reads one whole reply of any type, RESP2 or RESP3 (its nested elements included), and
    /// returns its raw bytes.
    pub fn read_reply(&mut self) -> String {
        let head = self.line();
        let n = |h: &str| h[1..h.len() - 2].parse::<i64>().unwrap();
        let mut out = head.clone();
        match head.as_bytes()[0] {
            b'$' | b'=' | b'!' if n(&head) >= 0 => {
                let mut body = vec![0u8; usize::try_from(n(&head)).unwrap() + 2];
                self.0.read_exact(&mut body).unwrap();
                out.push_str(&String::from_utf8_lossy(&body));
            }
            b'*' | b'~' | b'>' if n(&head) > 0 => {
                for _ in 0..n(&head) {
                    out.push_str(&self.read_reply());
                }
            }
            b'%' | b'|' => {
                for _ in 0..2 * n(&head) {
                    out.push_str(&self.read_reply());
                }
            }
            _ => {}
        }
        out
    }

    /// True when the server closed the connection (reads EOF, bounded by the timeout).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 4096];
        loop {
            match self.0.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}
