//! State every reactor shares: the engine, the settings, the client registry, statistics,
//! and the handles to wake each reactor (new sockets, durability, kills, shutdown).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mio::Waker;
use parking_lot::{Mutex, RwLock};
use respite_storage::Engine;

use crate::config::Config;

/// Milliseconds since the UNIX epoch, the engine's clock.
#[must_use]
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the whole server shares.
pub struct Shared {
    /// The storage engine (closed by whoever joins the reactors).
    pub engine: Engine,
    /// The root logger.
    pub log: slog::Logger,
    /// Settings; CONFIG SET writes them and bumps `config_epoch` so reactors refresh copies.
    pub config: RwLock<Config>,
    /// Bumped on every CONFIG SET.
    pub config_epoch: AtomicU64,
    /// The port actually bound.
    pub port: u16,
    /// When the server started.
    pub started: Instant,
    /// A random 40-hex-digit id, as Redis's run_id.
    pub run_id: String,
    /// One entry per reactor.
    pub reactors: Vec<Remote>,
    /// Connected clients (for maxclients and INFO).
    pub clients: AtomicUsize,
    /// Next client id (CLIENT ID), starting at 1.
    pub next_client_id: AtomicU64,
    /// Asks every reactor to stop.
    pub shutdown: Arc<ShutdownSignal>,
    /// UNIX seconds of the last SAVE/BGSAVE (or start-up).
    pub last_save_unix: AtomicU64,
    /// Connections refused by maxclients.
    pub rejected_connections: AtomicU64,
    /// Keeps other clients' commands out of a running EXEC.
    pub gate: Gate,
    /// Keys clients WATCH.
    pub watches: crate::cmd::Watches,
}

/// A reactor as seen from other threads.
pub struct Remote {
    /// Wakes the reactor's poll.
    pub waker: Arc<Waker>,
    /// Set while the reactor holds replies waiting for durability.
    pub wants_durable: Arc<AtomicBool>,
    /// New sockets handed over by the acceptor (an mpsc channel: no lock per accept).
    pub inbox: Sender<mio::net::TcpStream>,
    /// The reactor's clients, for CLIENT LIST / KILL.
    pub clients: Mutex<HashMap<u64, Arc<ClientMeta>>>,
    /// Set when some client of this reactor was marked killed.
    pub kill_pending: AtomicBool,
    /// Counters the reactor updates (only its own thread writes them).
    pub stats: ReactorStats,
}

/// Per-reactor counters; INFO sums them.
#[derive(Default)]
pub struct ReactorStats {
    /// Commands executed.
    pub commands: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Key lookups that found a key.
    pub keyspace_hits: AtomicU64,
    /// Key lookups that found nothing.
    pub keyspace_misses: AtomicU64,
    /// Bytes read from clients.
    pub net_input_bytes: AtomicU64,
    /// Bytes written to clients.
    pub net_output_bytes: AtomicU64,
    /// Commands per second over the last sample.
    pub ops_per_sec: AtomicU64,
    /// Commands that returned an error.
    pub error_replies: AtomicU64,
}

impl ReactorStats {
    /// Adds `n` to a counter only this reactor's thread writes.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Zeroes the counters (CONFIG RESETSTAT).
    pub fn reset(&self) {
        for c in [
            &self.commands,
            &self.connections,
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.error_replies,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// What other threads may see of a client.
pub struct ClientMeta {
    /// CLIENT ID.
    pub id: u64,
    /// Peer address.
    pub addr: String,
    /// Local address.
    pub laddr: String,
    /// Socket fd.
    pub fd: i32,
    /// When the connection was accepted.
    pub created: Instant,
    /// CLIENT SETNAME.
    pub name: Mutex<Bytes>,
    /// CLIENT SETINFO lib-name / lib-ver.
    pub lib: Mutex<(Bytes, Bytes)>,
    /// Selected database.
    pub db: AtomicUsize,
    /// Milliseconds since server start of the last command.
    pub last_active_ms: AtomicU64,
    /// Index in the command table of the last command (usize::MAX before any).
    pub last_cmd: AtomicUsize,
    /// 2 or 3.
    pub resp: AtomicU8,
    /// Pending output bytes, refreshed after each batch.
    pub omem: AtomicUsize,
    /// Pending input bytes, refreshed after each batch.
    pub qbuf: AtomicUsize,
    /// Set by CLIENT KILL: the owning reactor closes the connection.
    pub killed: AtomicBool,
    /// Which reactor owns it.
    pub reactor: usize,
    /// Commands queued since MULTI, or -1 outside MULTI (CLIENT LIST's `multi=`).
    pub multi: AtomicI64,
    /// A key it WATCHes was written: its next EXEC fails (CLIENT LIST's flag `d`).
    pub dirty_cas: AtomicBool,
}

/// Keeps commands out of a running transaction: a lock that readers take on their own cache
/// line, so two reactors running ordinary commands never write to a shared word.
///
/// Every command runs inside `enter`, EXEC inside `exclusive`. A reactor announces itself in
/// its slot and then looks at `exclusive`; EXEC raises `exclusive` and then waits until every
/// slot is empty. Both sides use SeqCst for the store-then-load (Dekker's pattern), so at
/// least one of them sees the other. Nobody blocks while holding either side: a command runs
/// to completion without waiting for another thread, so the waits are short spins.
pub struct Gate {
    exclusive: AtomicBool,
    slots: Box<[Slot]>,
    writers: Mutex<()>,
}

/// One reactor's count of commands in flight, alone on its cache line.
#[repr(align(128))]
#[derive(Default)]
struct Slot(AtomicUsize);

/// A command in flight (see `Gate::enter`).
pub struct Entered<'a>(&'a AtomicUsize);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// A running transaction (see `Gate::exclusive`).
pub struct Exclusive<'a> {
    gate: &'a Gate,
    _writers: parking_lot::MutexGuard<'a, ()>,
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        self.gate.exclusive.store(false, Ordering::Release);
    }
}

impl Gate {
    /// A gate for `reactors` event loops (at least one slot).
    #[must_use]
    pub fn new(reactors: usize) -> Self {
        Gate {
            exclusive: AtomicBool::new(false),
            slots: (0..reactors.max(1)).map(|_| Slot::default()).collect(),
            writers: Mutex::new(()),
        }
    }

    /// Enters as an ordinary command of reactor `reactor`, waiting while a transaction runs.
    pub fn enter(&self, reactor: usize) -> Entered<'_> {
        let slot = &self.slots[reactor % self.slots.len()].0;
        loop {
            slot.fetch_add(1, Ordering::SeqCst);
            if !self.exclusive.load(Ordering::SeqCst) {
                return Entered(slot);
            }
            slot.fetch_sub(1, Ordering::SeqCst);
            wait_while(|| self.exclusive.load(Ordering::Acquire));
        }
    }

    /// Waits until no command runs and keeps new ones out until the guard is dropped. The
    /// caller must not hold an `Entered` of its own.
    pub fn exclusive(&self) -> Exclusive<'_> {
        let writers = self.writers.lock();
        self.exclusive.store(true, Ordering::SeqCst);
        for slot in &*self.slots {
            wait_while(|| slot.0.load(Ordering::SeqCst) != 0);
        }
        Exclusive {
            gate: self,
            _writers: writers,
        }
    }
}

/// Spins briefly, then yields, while `busy` holds: the other side finishes a command or a
/// transaction, which never waits for us.
fn wait_while(busy: impl Fn() -> bool) {
    let mut spins = 0u32;
    while busy() {
        if spins < 64 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// Shutdown request shared with signal handlers and handles.
pub struct ShutdownSignal {
    flag: AtomicBool,
    wakers: Vec<Arc<Waker>>,
}

impl ShutdownSignal {
    /// A signal that wakes these reactors.
    #[must_use]
    pub fn new(wakers: Vec<Arc<Waker>>) -> Self {
        ShutdownSignal {
            flag: AtomicBool::new(false),
            wakers,
        }
    }

    /// Asks every reactor to stop (idempotent).
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        for w in &self.wakers {
            // A failed wake means the reactor is already gone.
            let _ = w.wake();
        }
    }

    /// True once shutdown was requested.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl Shared {
    /// Milliseconds since start (the clock of `ClientMeta::last_active_ms`).
    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Sum of one counter over all reactors.
    pub fn sum(&self, f: impl Fn(&ReactorStats) -> &AtomicU64) -> u64 {
        self.reactors
            .iter()
            .map(|r| f(&r.stats).load(Ordering::Relaxed))
            .sum()
    }

    /// Every connected client, sorted by id.
    pub fn all_clients(&self) -> Vec<Arc<ClientMeta>> {
        let mut v: Vec<Arc<ClientMeta>> = self
            .reactors
            .iter()
            .flat_map(|r| r.clients.lock().values().cloned().collect::<Vec<_>>())
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Marks a client killed and wakes its reactor.
    pub fn kill(&self, client: &ClientMeta) {
        client.killed.store(true, Ordering::SeqCst);
        if let Some(r) = self.reactors.get(client.reactor) {
            r.kill_pending.store(true, Ordering::SeqCst);
            let _ = r.waker.wake();
        }
    }
}
