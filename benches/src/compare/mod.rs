//! `compare`: redis-server and respite-server side by side on this machine, in one run.
//!
//! Both servers run on 127.0.0.1 on free ports in fresh temporary data folders with
//! matching persistence. Every cell is run on both, alternating which goes first on
//! each repeat, so drift of a shared, noisy machine hits both; results lead with the
//! ratio Respite/Redis and its spread over repeats.

mod load;
mod report;
mod server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use load::{Cell, Figures};
use server::{CpuOf, Server, System, stat_cpu_seconds};

/// The command-line options of `compare`.
#[derive(Clone, Debug)]
pub struct Options {
    pub quick: bool,
    pub repeats: usize,
    pub requests: u64,
    pub modes: Vec<String>,
    pub memory_keys: u64,
    pub memory_large_keys: u64,
    pub out: Option<PathBuf>,
    pub respite_bin: Option<PathBuf>,
    pub skip_memory: bool,
    pub skip_restart: bool,
    pub encryption: bool,
}

const USAGE: &str = "respite-benches compare [--quick] [--repeats N] [--requests N] \
[--modes everysec,always] [--memory-keys N] [--out DIR] [--respite-bin PATH] \
[--skip-memory] [--skip-restart] [--encryption]

  --quick        a smoke run that finishes in a few minutes (fewer requests, one repeat,
                 100k keys for memory and restart)
  --repeats N    repeats per cell, alternating which server goes first (default 3)
  --requests N   requests per redis-benchmark run (default 1000000)
  --modes LIST   appendfsync modes to compare (default everysec,always)
  --memory-keys N  keys of 100 bytes for the RSS and restart figures (default 1000000)
  --out DIR      where results go (default bench-results/<date>)
  --respite-bin  a prebuilt respite-server (default: cargo build --release -p respite-server)
  --encryption   also run respite with encryption at rest (a random key file) on every
                 cell, and report its ops/s against plain respite (target: 0.85x or better)";

impl Options {
    /// Parses the arguments after `compare`.
    ///
    /// # Errors
    /// An unknown option or a malformed number, with the usage text.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            quick: false,
            repeats: 3,
            requests: 1_000_000,
            modes: vec!["everysec".into(), "always".into()],
            memory_keys: 1_000_000,
            memory_large_keys: 100_000,
            out: None,
            respite_bin: None,
            skip_memory: false,
            skip_restart: false,
            encryption: false,
        };
        let mut explicit = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                explicit.push(name.to_string());
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"))
            };
            match arg.as_str() {
                "--quick" => o.quick = true,
                "--repeats" => o.repeats = number(&value("--repeats")?)?,
                "--requests" => o.requests = number(&value("--requests")?)?,
                "--modes" => {
                    o.modes = value("--modes")?.split(',').map(str::to_string).collect();
                }
                "--memory-keys" => o.memory_keys = number(&value("--memory-keys")?)?,
                "--out" => o.out = Some(PathBuf::from(value("--out")?)),
                "--respite-bin" => o.respite_bin = Some(PathBuf::from(value("--respite-bin")?)),
                "--skip-memory" => o.skip_memory = true,
                "--skip-restart" => o.skip_restart = true,
                "--encryption" => o.encryption = true,
                "-h" | "--help" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown option {other}\n\n{USAGE}")),
            }
        }
        if o.quick {
            // Quick: one repeat, a small request count, 100k keys; explicit flags still win.
            let given = |name: &str| explicit.iter().any(|e| e == name);
            if !given("--repeats") {
                o.repeats = 1;
            }
            if !given("--requests") {
                o.requests = 50_000;
            }
            if !given("--memory-keys") {
                o.memory_keys = 100_000;
            }
            o.memory_large_keys = 10_000;
        }
        for mode in &o.modes {
            if !["always", "everysec", "no"].contains(&mode.as_str()) {
                return Err(format!("unknown appendfsync mode {mode:?}"));
            }
        }
        if o.repeats == 0 || o.requests == 0 {
            return Err("--repeats and --requests must be at least 1".into());
        }
        Ok(o)
    }
}

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.replace('_', "")
        .parse()
        .map_err(|_| format!("not a number: {s:?}"))
}

/// One measured run.
#[derive(Clone, Debug)]
pub struct Sample {
    pub mode: String,
    pub system: System,
    pub tool: &'static str,
    pub cell: Cell,
    pub repeat: usize,
    pub figures: Figures,
}

/// Memory and restart figures for one server.
#[derive(Clone, Debug, Default)]
pub struct Footprint {
    pub rss_small_bytes: u64,
    pub rss_large_bytes: u64,
    pub restart: Option<Duration>,
}

/// Everything one run produced.
pub struct Results {
    pub options: Options,
    pub samples: Vec<Sample>,
    pub footprint: BTreeMap<&'static str, Footprint>,
    pub machine: String,
    /// CPUs this process may run on (the servers and the load tool share them).
    pub cores: usize,
    pub commands: Vec<String>,
    pub notes: Vec<String>,
}

const CELLS: [(u32, u32); 4] = [(1, 100), (16, 100), (1, 4096), (16, 4096)];

/// Runs the comparison and writes the report; returns the results folder.
///
/// # Errors
/// A missing tool that could not be installed, a server that would not start, a load
/// tool that failed, or a results file that could not be written.
pub fn run(options: Options) -> Result<Option<PathBuf>, String> {
    ensure_tools()?;
    let respite = match &options.respite_bin {
        Some(p) => p.clone(),
        None => build_respite()?,
    };
    let redis = which("redis-server").ok_or("redis-server is not on the PATH")?;
    let scratch = std::env::temp_dir().join(format!("respite-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let programs = |s: System| {
        if matches!(s, System::Respite | System::RespiteEncrypted) {
            respite.clone()
        } else {
            redis.clone()
        }
    };

    let mut results = Results {
        options: options.clone(),
        samples: Vec::new(),
        footprint: BTreeMap::new(),
        machine: machine_description(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        commands: Vec::new(),
        notes: Vec::new(),
    };
    let memtier = load::memtier_available();
    if !memtier {
        results
            .notes
            .push("memtier_benchmark is not on the PATH (not in Debian's archive): skipped".into());
    }
    results.commands.push(
        "redis-server --port P --bind 127.0.0.1 --dir D --save '' --appendonly yes|no --appendfsync M"
            .into(),
    );
    results
        .commands
        .push("respite-server --port P --bind 127.0.0.1 --dir D --appendfsync M".into());
    if options.encryption {
        results.commands.push(
            "respite-server --port P --bind 127.0.0.1 --dir D --appendfsync M --encryption-key-file D.key (32 random bytes)"
                .into(),
        );
    }
    results.commands.push(format!(
        "redis-benchmark {}",
        load::benchmark_args(
            0,
            Cell {
                test: "set|get",
                pipeline: 1,
                value_bytes: 100
            },
            options.requests
        )
        .join(" ")
        .replace("-p 0", "-p P")
        .replace("-P 1", "-P 1|16")
        .replace("-d 100", "-d 100|4096")
    ));

    let mut run_id = 0usize;
    for mode in &options.modes {
        // The reference row (Redis without persistence) runs with the first mode only.
        let mut systems = vec![System::Redis, System::Respite];
        if options.encryption {
            systems.push(System::RespiteEncrypted);
        }
        if mode == &options.modes[0] {
            systems.push(System::RedisNoPersist);
        }
        for repeat in 0..options.repeats {
            let mut servers = Vec::new();
            for &system in &systems {
                run_id += 1;
                let dir = scratch.join(format!("{}-{mode}-{run_id}", system.name()));
                let (server, _) = Server::start(system, &programs(system), &dir, mode)?;
                servers.push(server);
            }
            // Alternate which server goes first on each repeat (A B, then B A).
            // With encryption, plain and encrypted respite alternate the same way.
            if repeat % 2 == 1 {
                servers.swap(0, 1);
                if options.encryption {
                    servers.swap(0, 2);
                }
            }
            for &(pipeline, value_bytes) in &CELLS {
                for test in ["set", "get"] {
                    let cell = Cell {
                        test,
                        pipeline,
                        value_bytes,
                    };
                    for server in &servers {
                        eprintln!(
                            "compare: {mode} repeat {} {} on {}",
                            repeat + 1,
                            cell.label(),
                            server.system.name()
                        );
                        let figures = with_cpu(server, options.requests, || {
                            load::run_redis_benchmark(server.port, cell, options.requests)
                        })?;
                        results.samples.push(Sample {
                            mode: mode.clone(),
                            system: server.system,
                            tool: "redis-benchmark",
                            cell,
                            repeat,
                            figures,
                        });
                        if memtier {
                            let figures = with_cpu(server, options.requests, || {
                                load::run_memtier(server.port, cell, options.requests)
                            })?;
                            results.samples.push(Sample {
                                mode: mode.clone(),
                                system: server.system,
                                tool: "memtier",
                                cell,
                                repeat,
                                figures,
                            });
                        }
                    }
                }
            }
            for mut server in servers {
                server.stop()?;
                let _ = std::fs::remove_dir_all(&server.dir);
            }
        }
    }

    if !options.skip_memory || !options.skip_restart {
        let mode = "everysec";
        for system in [System::Redis, System::Respite] {
            eprintln!("compare: memory and restart on {}", system.name());
            let fp = footprint(system, &programs(system), &scratch, mode, &options)?;
            results.footprint.insert(system.name(), fp);
        }
        results.commands.push(format!(
            "memory: RSS after SET of {} keys x 100 B and of {} keys x 4 KiB (appendfsync {mode}); \
             restart: SIGTERM, start again, time to first PONG",
            options.memory_keys, options.memory_large_keys
        ));
    }
    let _ = std::fs::remove_dir_all(&scratch);

    let out = options
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("bench-results").join(report::today()));
    report::write(&results, &out)?;
    Ok(Some(out))
}

/// Runs one load (`run`, whose load tool is a child process it waits for) and adds what
/// it cost in CPU per request: the server's, and the load tool's own.
fn with_cpu(
    server: &Server,
    requests: u64,
    run: impl FnOnce() -> Result<Figures, String>,
) -> Result<Figures, String> {
    let tool_before = stat_cpu_seconds("self", CpuOf::WaitedChildren)?;
    let before = server.cpu_seconds()?;
    let mut figures = run()?;
    let per_request = |seconds: f64| seconds * 1e6 / requests as f64;
    figures.server_cpu_us_per_op = per_request(server.cpu_seconds()? - before);
    figures.tool_cpu_us_per_op =
        per_request(stat_cpu_seconds("self", CpuOf::WaitedChildren)? - tool_before);
    Ok(figures)
}

fn footprint(
    system: System,
    program: &Path,
    scratch: &Path,
    mode: &str,
    options: &Options,
) -> Result<Footprint, String> {
    let mut fp = Footprint::default();
    let dir = scratch.join(format!("{}-footprint", system.name()));
    let (mut server, _) = Server::start(system, program, &dir, mode)?;
    load::load_keys(server.port, options.memory_keys, 100)?;
    fp.rss_small_bytes = server.rss_bytes()?;
    if !options.skip_restart {
        fp.restart = Some(server.restart()?);
    }
    server.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    if !options.skip_memory {
        let dir = scratch.join(format!("{}-footprint-large", system.name()));
        let (mut server, _) = Server::start(system, program, &dir, mode)?;
        load::load_keys(server.port, options.memory_large_keys, 4096)?;
        fp.rss_large_bytes = server.rss_bytes()?;
        server.stop()?;
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(fp)
}

/// Installs redis-server, redis-tools and a font for the plot from Debian's packages
/// when they are missing (the harness must work on a bare machine).
fn ensure_tools() -> Result<(), String> {
    let mut missing = Vec::new();
    if which("redis-server").is_none() {
        missing.push("redis-server");
    }
    if which("redis-benchmark").is_none() {
        missing.push("redis-tools");
    }
    if report::font_path().is_none() {
        missing.push("fonts-dejavu-core");
    }
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("compare: installing {}", missing.join(" "));
    let ok = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "could not install {} with apt-get (run as root?)",
            missing.join(" ")
        ))
    }
}

fn build_respite() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("compare: cargo build --release -p respite-server");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "respite-server",
            "--bin",
            "respite-server",
        ])
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --release -p respite-server failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    Ok(target.join("release").join("respite-server"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

fn machine_description() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let redis = Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cores} cores, {model}; {redis}")
}
