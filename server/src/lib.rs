//! The `respite-server` library: config, reactors, connections and the command table.
//!
//! `main.rs` only parses the config and calls [`run`]; tests start a server in-process with
//! [`Server::start`]. This crate talks RESP through `respite-protocol` and keeps data through
//! `respite-storage`; it knows nothing of their internals.
//!
//! Modules: `config` (file + flags), `logging`, `shared` (state all reactors share),
//! `reactor` (one mio loop per thread), `conn` (buffers, pipelining, durability holds),
//! `cmd` (command table and one file per family), `reply` (error texts), `info` (INFO).

pub mod config;
mod conn;
mod info;
pub mod logging;
mod reactor;
mod reply;
pub mod rotate;
mod shared;

mod cmd;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use mio::{Poll, Waker};
use parking_lot::{Mutex, RwLock};
use respite_storage::Engine;
use slog::{Logger, info, o, warn};

pub use cmd::REDIS_VERSION;
use cmd::Watches;
pub use config::{Config, ConfigError};
use reactor::{Reactor, WAKER};
use shared::{Gate, ReactorStats, Remote, Shared, ShutdownSignal, now_ms};

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket, thread or directory operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The storage engine failed to open or close.
    #[error("storage engine: {0}")]
    Engine(#[from] respite_storage::Error),
    /// The `encryption-key-file` could not be read or does not hold a key.
    #[error("can't load encryption-key-file: {0}")]
    EncryptionKey(respite_storage::Error),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Builds a logger from the config and runs the server until SIGTERM, SIGINT or SHUTDOWN.
///
/// # Errors
///
/// When the server cannot start (port in use, data directory unusable, engine error) or the
/// engine fails to close.
pub fn run(config: Config) -> Result<(), Error> {
    let (log, _guard) = logging::build(config.loglevel, &config.logfile)
        .map_err(io_err(format!("can't open log file '{}'", config.logfile)))?;
    raise_fd_limit(config.maxclients, &log);
    // The handlers are in place before start-up, so a SIGTERM is never the default action's
    // kill once a client can connect. The server hands over its trigger before its reactors
    // run; a signal before that (during recovery, say) ends start-up at once, as Redis stops
    // loading: no client has been served, so nothing acknowledged is lost.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(io_err("can't install signal handlers"))?;
    let trigger: Arc<Mutex<Option<ShutdownTrigger>>> = Arc::default();
    let signal_handle = signals.handle();
    let signal_log = log.clone();
    let signal_trigger = trigger.clone();
    let signal_thread = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let name = if sig == signal_hook::consts::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                // Held while deciding, so start-up cannot hand the trigger over meanwhile.
                let trigger = signal_trigger.lock();
                match &*trigger {
                    Some(t) => {
                        warn!(signal_log, "Received {} scheduling shutdown...", name);
                        t.trigger();
                    }
                    None => {
                        // The async log would not be flushed by exit: stderr, as start-up
                        // errors are.
                        eprintln!("Received {name} during start-up, exiting");
                        std::process::exit(0);
                    }
                }
            }
        })
        .map_err(io_err("can't start the signal thread"))?;
    let started = Server::start_inner(config, log.clone(), &|t| *trigger.lock() = Some(t));
    let server = match started {
        Ok(s) => s,
        Err(e) => {
            // One line in the log (the caller prints the same to stderr), then exit.
            slog::crit!(log, "Can't start: {}", e);
            signal_handle.close();
            let _ = signal_thread.join();
            return Err(e);
        }
    };
    let result = server.wait();
    signal_handle.close();
    let _ = signal_thread.join();
    result
}

/// A running server.
pub struct Server {
    port: u16,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    _log_guard: Option<slog_async::AsyncGuard>,
}

/// Stops a server from another thread (signal handlers, tests).
#[derive(Clone)]
pub struct ShutdownTrigger(Arc<ShutdownSignal>);

impl ShutdownTrigger {
    /// Asks the server to stop: stop accepting, finish in-flight replies, close the engine.
    pub fn trigger(&self) {
        self.0.trigger();
    }
}

impl Server {
    /// Starts a server with a logger built from the config.
    ///
    /// # Errors
    ///
    /// See [`run`].
    pub fn start(config: Config) -> Result<Server, Error> {
        let (log, guard) = logging::build(config.loglevel, &config.logfile)
            .map_err(io_err(format!("can't open log file '{}'", config.logfile)))?;
        let mut server = Server::start_with_logger(config, log)?;
        server._log_guard = Some(guard);
        Ok(server)
    }

    /// Starts a server logging to `log`: opens the engine, binds, spawns the reactors.
    ///
    /// # Errors
    ///
    /// See [`run`].
    pub fn start_with_logger(config: Config, log: Logger) -> Result<Server, Error> {
        Server::start_inner(config, log, &|_| {})
    }

    /// `start_with_logger`, handing the shutdown trigger to `on_trigger` before any reactor
    /// runs (so before a client can connect).
    fn start_inner(
        config: Config,
        log: Logger,
        on_trigger: &dyn Fn(ShutdownTrigger),
    ) -> Result<Server, Error> {
        let threads = if config.threads == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            config.threads
        };
        info!(log, "Respite {} (Redis {} compatible) starting", env!("CARGO_PKG_VERSION"), cmd::REDIS_VERSION;
            "pid" => std::process::id(), "mode" => "standalone", "threads" => threads,
            "cache_mb" => config.cache_size_bytes >> 20);
        for w in &config.warnings {
            warn!(log, "{}", w);
        }
        // The key, then the data, then the sockets: a server that cannot read its data
        // (a wrong or missing key, a damaged folder) fails before it listens at all.
        let key = config.load_encryption_key().map_err(Error::EncryptionKey)?;
        std::fs::create_dir_all(&config.dir).map_err(io_err(format!(
            "can't create data directory '{}'",
            config.dir.display()
        )))?;
        let engine_log = log.new(o!("module" => "storage"));
        info!(log, "Opening data directory"; "dir" => %config.dir.display(), "appendfsync" => %config.appendfsync,
            "encryption" => if key.is_some() { "on" } else { "off" });
        let mut engine_config = config.engine_config(engine_log);
        engine_config.encryption_key = key;
        let engine = Engine::open(&config.dir, engine_config)?;
        let stats = engine.stats();
        let keys: u64 = stats.dbs.iter().map(|d| d.keys).sum();
        info!(log, "DB loaded from disk"; "keys" => keys, "files" => stats.files, "disk_bytes" => stats.disk_bytes);

        let listeners = match bind(&config) {
            Ok(l) => l,
            Err(e) => {
                // Nothing was served: close the engine cleanly (releases the folder's lock).
                let _ = engine.close();
                return Err(e);
            }
        };
        let port = listeners
            .first()
            .and_then(|l| l.local_addr().ok())
            .map_or(config.port, |a| a.port());

        let mut polls = Vec::with_capacity(threads);
        let mut remotes = Vec::with_capacity(threads);
        let mut inboxes = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = Poll::new().map_err(io_err("can't create an event loop"))?;
            let waker = Arc::new(
                Waker::new(poll.registry(), WAKER).map_err(io_err("can't create a waker"))?,
            );
            let (tx, rx) = mpsc::channel();
            remotes.push(Remote {
                waker,
                wants_durable: Arc::new(AtomicBool::new(false)),
                inbox: tx,
                clients: Mutex::new(Default::default()),
                kill_pending: AtomicBool::new(false),
                stats: ReactorStats::default(),
            });
            polls.push(poll);
            inboxes.push(rx);
        }
        // Durability completions wake only the reactors that hold replies.
        let hooks: Vec<(Arc<Waker>, Arc<AtomicBool>)> = remotes
            .iter()
            .map(|r| (r.waker.clone(), r.wants_durable.clone()))
            .collect();
        engine.on_durable(Arc::new(move || {
            for (waker, wants) in &hooks {
                if wants.load(Ordering::SeqCst) {
                    let _ = waker.wake();
                }
            }
        }));
        let signal = Arc::new(ShutdownSignal::new(
            remotes.iter().map(|r| r.waker.clone()).collect(),
        ));
        let shared = Arc::new(Shared {
            engine,
            log: log.clone(),
            config: RwLock::new(config.clone()),
            config_epoch: AtomicU64::new(0),
            port,
            started: std::time::Instant::now(),
            run_id: run_id(),
            reactors: remotes,
            clients: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
            shutdown: signal,
            last_save_unix: AtomicU64::new(now_ms() / 1000),
            rejected_connections: AtomicU64::new(0),
            gate: Gate::new(threads),
            watches: Watches::default(),
        });
        on_trigger(ShutdownTrigger(shared.shutdown.clone()));

        let mut listeners = Some(listeners);
        let mut handles = Vec::with_capacity(threads);
        for (id, (poll, inbox)) in polls.into_iter().zip(inboxes).enumerate() {
            let mine = if id == 0 {
                listeners.take().unwrap_or_default()
            } else {
                Vec::new()
            };
            let reactor = Reactor::new(id, poll, shared.clone(), mine, inbox)
                .map_err(io_err("can't register the listening socket"))?;
            let handle = std::thread::Builder::new()
                .name(format!("reactor-{id}"))
                .spawn(move || reactor.run())
                .map_err(io_err("can't start a reactor thread"))?;
            handles.push(handle);
        }
        slog::log!(log, slog::Level::Info, "always", "Ready to accept connections tcp"; "port" => port, "bind" => config.bind.join(" "), "dir" => %config.dir.display());
        Ok(Server {
            port,
            shared,
            threads: handles,
            _log_guard: None,
        })
    }

    /// The TCP port actually bound (useful with `--port 0`).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Test seam: the engine's next fsync fails with EIO, as a failing disk would.
    #[doc(hidden)]
    pub fn fail_next_sync(&self) {
        self.shared.engine.fail_next_sync();
    }

    /// Test seam: while `full` is true the engine's log writes fail with ENOSPC, as on a
    /// full disk.
    #[doc(hidden)]
    pub fn set_disk_full(&self, full: bool) {
        self.shared.engine.set_disk_full(full);
    }

    /// Test seam: while `hold` is true the engine's fsyncs wait, freezing durability.
    #[doc(hidden)]
    pub fn hold_syncs(&self, hold: bool) {
        self.shared.engine.hold_syncs(hold);
    }

    /// Test seam: reads a key straight from the engine, bypassing the reply hold (to know
    /// a write is visible in the index, not only that its GSN was handed out).
    #[doc(hidden)]
    #[must_use]
    pub fn engine_get(&self, db: usize, key: &[u8]) -> Option<Vec<u8>> {
        self.shared
            .engine
            .get(db, key)
            .ok()
            .flatten()
            .map(|v| v.to_vec())
    }

    /// A handle that stops the server from another thread.
    #[must_use]
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(self.shared.shutdown.clone())
    }

    /// Stops the server and waits until the engine is closed.
    ///
    /// # Errors
    ///
    /// When the engine fails to flush and sync on close.
    pub fn shutdown(self) -> Result<(), Error> {
        self.shared.shutdown.trigger();
        self.wait()
    }

    /// Waits until the server stops (SHUTDOWN, a signal, or a trigger), then closes the
    /// engine: flush, sync, release files.
    ///
    /// # Errors
    ///
    /// When the engine fails to flush and sync on close.
    pub fn wait(self) -> Result<(), Error> {
        for t in self.threads {
            let _ = t.join();
        }
        let log = self.shared.log.clone();
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => {
                info!(log, "Closing the storage engine: flushing and syncing");
                shared.engine.close()?;
            }
            Err(shared) => {
                // Someone still holds the state (cannot happen once reactors are joined);
                // make everything durable anyway.
                warn!(
                    log,
                    "Shared state still referenced at exit; syncing instead of closing"
                );
                shared.engine.sync_all()?;
            }
        }
        info!(log, "Respite is now ready to exit, bye bye...");
        Ok(())
    }
}

/// Raises the open-files soft limit so `maxclients` connections fit (as Redis does), and
/// warns when the hard limit does not allow it.
fn raise_fd_limit(maxclients: usize, log: &Logger) {
    let want = libc::rlim_t::try_from(maxclients)
        .unwrap_or(libc::rlim_t::MAX)
        .saturating_add(64);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the rlimit struct we pass, which lives on our stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= want {
        return;
    }
    let target = want.min(limit.rlim_max);
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the rlimit struct we pass, which lives on our stack.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        info!(log, "Increased maximum number of open files"; "from" => limit.rlim_cur, "to" => target);
    }
    if target < want {
        warn!(log, "maxclients needs more open files than the hard limit allows; connections beyond it will be refused by the OS";
            "maxclients" => maxclients, "needed" => want, "hard_limit" => limit.rlim_max);
    }
}

fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut s = String::with_capacity(40);
    while s.len() < 40 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(now_ms());
        s.push_str(&format!("{:016x}", h.finish()));
    }
    s.truncate(40);
    s
}

/// Binds every configured address on one port (the first bind picks it when port is 0).
fn bind(config: &Config) -> Result<Vec<mio::net::TcpListener>, Error> {
    let mut port = config.port;
    let mut out = Vec::new();
    for addr in &config.bind {
        // Redis: a leading '-' marks an address that may be unavailable.
        let (optional, host) = match addr.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, addr.as_str()),
        };
        let resolved: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) if optional => {
                let _ = e;
                continue;
            }
            Err(e) => return Err(io_err(format!("can't resolve bind address '{host}'"))(e)),
        };
        for sa in resolved {
            match listen(sa) {
                Ok(l) => {
                    if port == 0 {
                        port = l.local_addr().map_or(0, |a| a.port());
                    }
                    out.push(l);
                }
                Err(_) if optional => {}
                Err(e) => {
                    return Err(io_err(format!(
                        "Could not create server TCP listening socket {sa}"
                    ))(e));
                }
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Io {
            what: "no address to listen on".into(),
            source: std::io::ErrorKind::AddrNotAvailable.into(),
        });
    }
    Ok(out)
}

fn listen(addr: SocketAddr) -> std::io::Result<mio::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(511)?;
    socket.set_nonblocking(true)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}
