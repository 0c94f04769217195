//! A reactor: one mio event loop on its own thread, owning its connections.
//!
//! Reactor 0 also owns the listening sockets: it accepts until WouldBlock and hands each
//! socket round-robin to a reactor (itself included) through that reactor's channel and
//! Waker, so no lock is taken per accept. The Waker also carries durability completions
//! (the engine's on_durable hook), CLIENT KILL and shutdown.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use parking_lot::Mutex;
use respite_protocol::{Decoder, Version};
use respite_storage::SyncMode;

use crate::cmd::Client;
use crate::config::Config;
use crate::conn::{ConnSettings, Connection, Drive};
use crate::shared::{ClientMeta, ReactorStats, Shared};

/// Redis 7.2's answer to a client from outside loopback when protected mode is on and no
/// password is set (networking.c, clientAcceptHandler), byte for byte.
const PROTECTED_MODE_DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected \
mode is enabled and no password is set for the default user. In this mode connections are only \
accepted from the loopback interface. If you want to connect from external computers to Redis you \
may adopt one of the following solutions: 1) Just disable protected mode sending the command \
'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same \
host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you \
do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the \
protected mode by editing the Redis configuration file, and setting the protected mode option to \
'no', and then restarting the server. 3) If you started the server manually just for testing, \
restart it with the '--protected-mode no' option. 4) Set up an authentication password for the \
default user. NOTE: You only need to do one of the above things in order for the server to start \
accepting connections from the outside.\r\n";

/// The Waker's token.
pub const WAKER: Token = Token(usize::MAX);
const LISTENER_BASE: usize = usize::MAX - 1;
/// Housekeeping period (idle timeouts, soft output limits, ops/sec sample).
const TICK: Duration = Duration::from_millis(100);
/// A connection quiet for this long gives its buffers back.
const IDLE_BUFFERS: Duration = Duration::from_secs(2);
/// How long shutdown waits for in-flight replies before closing anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn listener_token(i: usize) -> Token {
    Token(LISTENER_BASE - i)
}

/// Settings a reactor caches, refreshed when `Shared::config_epoch` moves.
struct Cached {
    epoch: u64,
    config: Config,
}

/// A reactor and everything it owns.
pub struct Reactor {
    id: usize,
    poll: Poll,
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
    inbox: Receiver<TcpStream>,
    conns: Vec<Option<Connection>>,
    free: Vec<usize>,
    /// Connections to drive again without waiting for an event (fairness yield).
    again: Vec<usize>,
    /// Indices of the connections holding replies for durability (each once).
    holders: Vec<usize>,
    next_target: usize,
    cached: Cached,
    next_tick: Instant,
    last_ops: (Instant, u64),
    shutdown_deadline: Option<Instant>,
}

impl Reactor {
    /// A reactor over `poll`; `listeners` only for the accepting reactor.
    pub fn new(
        id: usize,
        poll: Poll,
        shared: Arc<Shared>,
        mut listeners: Vec<TcpListener>,
        inbox: Receiver<TcpStream>,
    ) -> io::Result<Self> {
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(l, listener_token(i), Interest::READABLE)?;
        }
        let config = shared.config.read().clone();
        let epoch = shared.config_epoch.load(Ordering::SeqCst);
        Ok(Reactor {
            id,
            poll,
            shared,
            listeners,
            inbox,
            conns: Vec::new(),
            free: Vec::new(),
            again: Vec::new(),
            holders: Vec::new(),
            next_target: 0,
            cached: Cached { epoch, config },
            next_tick: Instant::now() + TICK,
            last_ops: (Instant::now(), 0),
            shutdown_deadline: None,
        })
    }

    fn settings(&self) -> ConnSettings {
        ConnSettings {
            hold_writes: self.shared.engine.sync_mode() == SyncMode::Always,
            hard_limit: usize::try_from(self.cached.config.client_output_buffer_limit.hard_bytes)
                .unwrap_or(usize::MAX),
        }
    }

    /// Runs until shutdown; then flushes in-flight replies (bounded) and returns.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                slog::error!(self.shared.log, "poll failed, reactor stops"; "reactor" => self.id, "error" => %e);
                break;
            }
            let mut woke = false;
            for event in &events {
                match event.token() {
                    WAKER => woke = true,
                    Token(t) if t > LISTENER_BASE - self.listeners.len() && t <= LISTENER_BASE => {
                        self.accept(LISTENER_BASE - t);
                    }
                    Token(i) => {
                        if let Some(Some(c)) = self.conns.get_mut(i) {
                            c.readiness(
                                event.is_readable() || event.is_error(),
                                event.is_read_closed(),
                            );
                        }
                        self.drive(i);
                    }
                }
            }
            self.refresh_config();
            if woke {
                self.on_wake();
            }
            if !self.holders.is_empty() {
                self.release_held();
            }
            for i in std::mem::take(&mut self.again) {
                self.drive(i);
            }
            let now = Instant::now();
            if now >= self.next_tick {
                self.tick(now);
            }
            if self.shutdown_deadline.is_some() && self.shutdown_step(now) {
                break;
            }
        }
        for i in 0..self.conns.len() {
            self.close(i, None);
        }
    }

    fn poll_timeout(&self) -> Duration {
        if !self.again.is_empty() {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut until = self.next_tick;
        for &i in &self.holders {
            if let Some(Some(c)) = self.conns.get(i)
                && let Some(d) = c.next_deadline()
            {
                until = until.min(d);
            }
        }
        until.saturating_duration_since(now)
    }

    fn on_wake(&mut self) {
        while let Ok(stream) = self.inbox.try_recv() {
            self.register(stream);
        }
        let remote = &self.shared.reactors[self.id];
        if remote.kill_pending.swap(false, Ordering::SeqCst) {
            for i in 0..self.conns.len() {
                let killed = self.conns[i]
                    .as_ref()
                    .is_some_and(|c| c.client.meta.killed.load(Ordering::SeqCst));
                if killed {
                    self.close(i, Some("killed by CLIENT KILL"));
                }
            }
        }
        if self.shared.shutdown.is_set() && self.shutdown_deadline.is_none() {
            self.begin_shutdown();
        }
    }

    fn accept(&mut self, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    if self.cached.config.refuses_peer(addr.ip()) {
                        // Best effort, as Redis: the socket is fresh so the text fits.
                        let _ = stream.write(PROTECTED_MODE_DENIED);
                        slog::warn!(self.shared.log, "Refused a client in protected mode";
                            "addr" => %addr);
                        continue;
                    }
                    self.hand_out(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: log, and try again on the next event.
                    slog::warn!(self.shared.log, "Error accepting a client connection"; "error" => %e);
                    return;
                }
            }
        }
    }

    /// Refuses the socket over maxclients, or sends it to the next reactor in turn.
    fn hand_out(&mut self, mut stream: TcpStream) {
        let maxclients = self.cached.config.maxclients;
        if self.shared.clients.fetch_add(1, Ordering::SeqCst) >= maxclients {
            self.shared.clients.fetch_sub(1, Ordering::SeqCst);
            self.shared
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            // Best effort, as Redis: the socket is fresh so the line fits its buffer.
            let _ = stream.write(b"-ERR max number of clients reached\r\n");
            slog::debug!(
                self.shared.log,
                "Refused a client: max number of clients reached"
            );
            return;
        }
        let _ = stream.set_nodelay(true);
        ReactorStats::add(&self.shared.reactors[self.id].stats.connections, 1);
        let n = self.shared.reactors.len();
        let target = self.next_target % n;
        self.next_target = self.next_target.wrapping_add(1);
        if target == self.id {
            self.register(stream);
            return;
        }
        let remote = &self.shared.reactors[target];
        if remote.inbox.send(stream).is_ok() {
            let _ = remote.waker.wake();
        } else {
            self.shared.clients.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn register(&mut self, mut stream: TcpStream) {
        if self.shutdown_deadline.is_some() {
            self.shared.clients.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let index = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(index), Interest::READABLE)
        {
            slog::warn!(self.shared.log, "Error registering a client socket"; "error" => %e);
            self.free.push(index);
            self.shared.clients.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let id = self.shared.next_client_id.fetch_add(1, Ordering::SeqCst);
        let addr = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let laddr = stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let fd = {
            use std::os::fd::AsRawFd;
            stream.as_raw_fd()
        };
        let meta = Arc::new(ClientMeta {
            id,
            addr,
            laddr,
            fd,
            created: Instant::now(),
            name: Mutex::new(Bytes::new()),
            lib: Mutex::new((Bytes::new(), Bytes::new())),
            db: 0.into(),
            last_active_ms: self.shared.uptime_ms().into(),
            last_cmd: usize::MAX.into(),
            resp: 2.into(),
            omem: 0.into(),
            qbuf: 0.into(),
            killed: false.into(),
            reactor: self.id,
            multi: (-1).into(),
            dirty_cas: false.into(),
        });
        slog::debug!(self.shared.log, "Accepted"; "addr" => &meta.addr, "id" => id, "reactor" => self.id);
        self.shared.reactors[self.id]
            .clients
            .lock()
            .insert(id, meta.clone());
        let client = Client {
            meta,
            db: 0,
            version: Version::Resp2,
            authed: self.cached.config.requirepass.is_none(),
            last_write_gsn: 0,
            multi: None,
            watched: Vec::new(),
        };
        let decoder = Decoder::new(self.cached.config.limits());
        self.conns[index] = Some(Connection::new(stream, client, decoder, self.cached.epoch));
    }

    /// Keeps `holders` listing exactly the connections with held replies.
    fn track_holding(holders: &mut Vec<usize>, i: usize, c: &mut Connection) {
        let now = c.is_holding();
        if now != c.counted_holding {
            if now {
                holders.push(i);
            } else if let Some(at) = holders.iter().position(|&h| h == i) {
                holders.swap_remove(at);
            }
            c.counted_holding = now;
        }
    }

    /// Reads, executes, writes for connection `i`, then fixes its interest or closes it.
    fn drive(&mut self, i: usize) {
        let settings = self.settings();
        let shared = self.shared.clone();
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        let stats = &shared.reactors[self.id].stats;
        let outcome = c.drive(&shared, stats, settings);
        Self::track_holding(&mut self.holders, i, c);
        if c.shutdown_requested {
            shared.shutdown.trigger();
        }
        match outcome {
            Ok(Drive::Close) => self.close(i, None),
            Err(e) => {
                let why = if e.kind() == io::ErrorKind::Other {
                    e.to_string()
                } else {
                    format!("socket error: {e}")
                };
                self.close(i, Some(&why));
            }
            Ok(state) => {
                if state == Drive::Again {
                    self.again.push(i);
                }
                let want = c.wants_writable();
                if want != c.writable_registered {
                    let interest = if want {
                        Interest::READABLE | Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    if let Err(e) =
                        self.poll
                            .registry()
                            .reregister(&mut c.stream, Token(i), interest)
                    {
                        self.close(i, Some(&format!("reregister failed: {e}")));
                        return;
                    }
                    c.writable_registered = want;
                }
            }
        }
    }

    fn close(&mut self, i: usize, why: Option<&str>) {
        let Some(slot) = self.conns.get_mut(i) else {
            return;
        };
        let Some(mut c) = slot.take() else {
            return;
        };
        if c.counted_holding
            && let Some(at) = self.holders.iter().position(|&h| h == i)
        {
            self.holders.swap_remove(at);
        }
        let _ = self.poll.registry().deregister(&mut c.stream);
        crate::cmd::forget_watches(&self.shared.watches, &mut c.client);
        let id = c.client.meta.id;
        self.shared.reactors[self.id].clients.lock().remove(&id);
        self.shared.clients.fetch_sub(1, Ordering::SeqCst);
        self.free.push(i);
        match why {
            Some(why) => {
                slog::info!(self.shared.log, "Client closed"; "id" => id, "addr" => &c.client.meta.addr, "reason" => why)
            }
            None => {
                slog::debug!(self.shared.log, "Client closed connection"; "id" => id, "addr" => &c.client.meta.addr)
            }
        }
    }

    /// Releases replies whose writes became durable, then drives those connections.
    fn release_held(&mut self) {
        let wants = self.shared.reactors[self.id].wants_durable.clone();
        loop {
            let durable = self.shared.engine.durable_gsn();
            let failure = self.shared.engine.sync_failure();
            let now = Instant::now();
            let mut released = Vec::new();
            for &i in &self.holders {
                if let Some(Some(c)) = self.conns.get_mut(i)
                    && c.release(durable, failure.as_deref(), now)
                {
                    released.push(i);
                }
            }
            for i in released {
                self.drive(i);
            }
            if self.holders.is_empty() {
                wants.store(false, Ordering::SeqCst);
                return;
            }
            // Announce interest, then look again: a sync that completed between the read of
            // durable_gsn above and this store would otherwise never wake us.
            wants.store(true, Ordering::SeqCst);
            if self.shared.engine.durable_gsn() == durable && failure.is_none() {
                return;
            }
            if failure.is_some() {
                return;
            }
        }
    }

    /// Picks up CONFIG SET changes (one atomic load when nothing changed).
    fn refresh_config(&mut self) {
        let epoch = self.shared.config_epoch.load(Ordering::SeqCst);
        if epoch != self.cached.epoch {
            self.cached = Cached {
                epoch,
                config: self.shared.config.read().clone(),
            };
        }
    }

    fn tick(&mut self, now: Instant) {
        self.next_tick = now + TICK;
        // instantaneous_ops_per_sec over roughly the last second.
        let stats = &self.shared.reactors[self.id].stats;
        let elapsed = now.duration_since(self.last_ops.0);
        if elapsed >= Duration::from_secs(1) {
            let total = stats.commands.load(Ordering::Relaxed);
            let ops = total.saturating_sub(self.last_ops.1) as f64 / elapsed.as_secs_f64();
            stats.ops_per_sec.store(ops as u64, Ordering::Relaxed);
            self.last_ops = (now, total);
        }
        let timeout = Duration::from_secs(self.cached.config.timeout_secs);
        let limit = self.cached.config.client_output_buffer_limit;
        let soft = usize::try_from(limit.soft_bytes).unwrap_or(usize::MAX);
        let mut doomed = Vec::new();
        for (i, c) in self.conns.iter_mut().enumerate() {
            let Some(c) = c else { continue };
            if !timeout.is_zero() && !c.is_holding() && now.duration_since(c.last_active) > timeout
            {
                doomed.push((i, "idle timeout"));
                continue;
            }
            if soft > 0 && c.pending_output() > soft {
                let since = *c.soft_over_since.get_or_insert(now);
                if now.duration_since(since) >= Duration::from_secs(limit.soft_seconds) {
                    doomed.push((i, "output buffer over the soft limit for too long"));
                }
            } else {
                c.soft_over_since = None;
            }
            if now.duration_since(c.last_active) >= IDLE_BUFFERS {
                c.release_buffers();
            }
        }
        for (i, why) in doomed {
            self.close(i, Some(why));
        }
    }

    fn begin_shutdown(&mut self) {
        self.shutdown_deadline = Some(Instant::now() + SHUTDOWN_GRACE);
        for mut l in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut l);
        }
        for i in 0..self.conns.len() {
            if let Some(c) = self.conns[i].as_mut() {
                c.stop_reading();
                // Held replies wait for a durability that shutdown will bring.
                self.shared.engine.request_sync(c.client.last_write_gsn);
            }
            self.drive(i);
        }
        // Stragglers still in the inbox are closed by dropping them.
        while let Ok(_stream) = self.inbox.try_recv() {
            self.shared.clients.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// True when this reactor may stop: every reply written, or the grace period is over.
    fn shutdown_step(&mut self, now: Instant) -> bool {
        let done = self.conns.iter().flatten().all(|c| c.pending_output() == 0);
        done || self.shutdown_deadline.is_some_and(|d| now >= d)
    }
}
