//! Starting, probing and stopping the servers under test: always on 127.0.0.1,
//! always on a free port, always in a fresh data folder.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server, and with which persistence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// redis-server with `--appendonly no --save ''`: the reference row.
    RedisNoPersist,
    /// redis-server with `--appendonly yes --appendfsync <mode> --save ''`.
    Redis,
    /// respite-server with `--appendfsync <mode>`.
    Respite,
    /// respite-server with `--appendfsync <mode>` and encryption at rest
    /// (`--encryption-key-file`, a fresh random key beside the data folder).
    RespiteEncrypted,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::RedisNoPersist => "redis-nopersist",
            System::Redis => "redis",
            System::Respite => "respite",
            System::RespiteEncrypted => "respite-encrypted",
        }
    }
}

/// A server process the harness started. Killed on drop if still running.
pub struct Server {
    pub system: System,
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    program: PathBuf,
    mode: String,
}

/// How long a server may take to answer its first PING (a large AOF load included).
const READY_TIMEOUT: Duration = Duration::from_secs(600);

impl Server {
    /// Starts `system` in `dir` (created if missing) with fsync mode `mode` and waits
    /// until it answers PING. Returns the server and the time from spawn to first PONG.
    pub fn start(
        system: System,
        program: &Path,
        dir: &Path,
        mode: &str,
    ) -> Result<(Server, Duration), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let port = free_port()?;
        let mut server = Server {
            system,
            port,
            dir: dir.to_path_buf(),
            child: None,
            program: program.to_path_buf(),
            mode: mode.to_string(),
        };
        let took = server.spawn()?;
        Ok((server, took))
    }

    fn spawn(&mut self) -> Result<Duration, String> {
        let mut cmd = Command::new(&self.program);
        let port = self.port.to_string();
        let dir = self.dir.display().to_string();
        match self.system {
            System::RedisNoPersist | System::Redis => {
                let aof = if self.system == System::Redis {
                    "yes"
                } else {
                    "no"
                };
                cmd.args(["--port", &port, "--bind", "127.0.0.1", "--dir", &dir])
                    .args([
                        "--save",
                        "",
                        "--appendonly",
                        aof,
                        "--appendfsync",
                        &self.mode,
                    ])
                    .args(["--daemonize", "no", "--protected-mode", "yes"]);
            }
            System::Respite => {
                cmd.args(["--port", &port, "--bind", "127.0.0.1", "--dir", &dir])
                    .args(["--appendfsync", &self.mode]);
            }
            System::RespiteEncrypted => {
                let key = key_file(&self.dir)?;
                cmd.args(["--port", &port, "--bind", "127.0.0.1", "--dir", &dir])
                    .args(["--appendfsync", &self.mode])
                    .arg("--encryption-key-file")
                    .arg(key);
            }
        }
        let log = std::fs::File::create(self.dir.join(format!("{}.log", self.system.name())))
            .map_err(|e| format!("create log in {}: {e}", self.dir.display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("clone log handle: {e}"))?;
        let started = Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("start {}: {e}", self.program.display()))?;
        self.child = Some(child);
        self.wait_ready(started)?;
        Ok(started.elapsed())
    }

    /// Polls with PING until the server answers +PONG. Polling is the measurement here
    /// (time to first successful PING), bounded by READY_TIMEOUT.
    fn wait_ready(&mut self, started: Instant) -> Result<(), String> {
        loop {
            if ping(self.port) {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!(
                    "{} exited with {status} before answering PING (log in {})",
                    self.system.name(),
                    self.dir.display()
                ));
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "{} did not answer PING in time",
                    self.system.name()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU time (user and system, all threads) the server process has used so far, in
    /// seconds: read before and after a run, it gives what the run cost the server, a
    /// figure a noisy shared machine disturbs far less than ops/s.
    pub fn cpu_seconds(&self) -> Result<f64, String> {
        let pid = self.pid().ok_or("server not running")?;
        stat_cpu_seconds(&pid.to_string(), CpuOf::Process)
    }

    /// Resident set size of the server process, in bytes.
    pub fn rss_bytes(&self) -> Result<u64, String> {
        let pid = self.pid().ok_or("server not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
    }

    /// Graceful stop (SIGTERM: both servers flush and sync on it), waiting for exit.
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("{} did not stop on SIGTERM", self.system.name()));
                }
            }
        }
    }

    /// Stops gracefully, starts again on the same data and port, and returns the time
    /// from spawn to the first PONG.
    pub fn restart(&mut self) -> Result<Duration, String> {
        self.stop()?;
        self.spawn()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The key file of an encrypted server in `dir`: `<dir>.key` beside the data folder, 32
/// random bytes, made on first use and kept for restarts.
fn key_file(dir: &Path) -> Result<PathBuf, String> {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".key");
    let path = dir.with_file_name(name);
    if !path.exists() {
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut key))
            .map_err(|e| format!("read /dev/urandom: {e}"))?;
        std::fs::write(&path, key).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    Ok(path)
}

fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; the pid is
    // our own child's, which we have not yet reaped, so it cannot name another process.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

/// True if the server on `port` answers PING with +PONG (not -LOADING).
pub fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 7 {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
        if buf[0] != b'+' {
            return false;
        }
    }
    &buf[..7] == b"+PONG\r\n"
}

/// Whose CPU time a `/proc/<pid>/stat` read gives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CpuOf {
    /// The process itself (utime, stime: fields 14 and 15).
    Process,
    /// Its children that have exited and been waited for (cutime, cstime: fields 16 and
    /// 17). Read before and after a load tool runs as the harness's child, it gives the
    /// load tool's own CPU time, servers being children that are not waited for until they
    /// stop.
    WaitedChildren,
}

/// User plus system CPU seconds of `pid` (a number or `self`), per `of`.
pub fn stat_cpu_seconds(pid: &str, of: CpuOf) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("read /proc/{pid}/stat: {e}"))?;
    let (user, system) =
        stat_cpu_ticks(&stat, of).ok_or_else(|| format!("malformed /proc/{pid}/stat"))?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return Err("sysconf(_SC_CLK_TCK) failed".into());
    }
    Ok((user + system) as f64 / hz as f64)
}

/// The (user, system) clock ticks of a `/proc/<pid>/stat` line, per `of`. The command
/// name, field 2, is in parentheses and may hold spaces and parentheses itself, so fields
/// are counted from the last ')': state is field 3, utime and stime are fields 14 and 15,
/// cutime and cstime 16 and 17.
fn stat_cpu_ticks(stat: &str, of: CpuOf) -> Option<(u64, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i - 3)?.parse::<u64>().ok();
    let first = match of {
        CpuOf::Process => 14,
        CpuOf::WaitedChildren => 16,
    };
    Some((field(first)?, field(first + 1)?))
}

#[cfg(test)]
mod tests {
    use super::{CpuOf, stat_cpu_seconds, stat_cpu_ticks};

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let stat = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 731 52 9 4 20 0 3 0 9";
        assert_eq!(stat_cpu_ticks(stat, CpuOf::Process), Some((731, 52)));
        assert_eq!(stat_cpu_ticks(stat, CpuOf::WaitedChildren), Some((9, 4)));
        assert_eq!(stat_cpu_ticks("4242 (x) S 1 2", CpuOf::Process), None);
    }

    #[test]
    fn this_process_has_a_readable_cpu_time() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(stat_cpu_ticks(&stat, CpuOf::Process).is_some(), "{stat}");
    }

    /// A child that burns CPU and is waited for shows up in the waited-children figure,
    /// which is how the harness measures the load tool's own CPU.
    #[test]
    fn a_waited_for_child_counts_in_the_children_cpu() {
        let before = stat_cpu_seconds("self", CpuOf::WaitedChildren).unwrap();
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        let after = stat_cpu_seconds("self", CpuOf::WaitedChildren).unwrap();
        assert!(after > before, "children CPU {before} -> {after}");
    }
}
