//! One client connection: input and output buffers, the pipelined read loop, replies held
//! for durability, and non-blocking writes.
//!
//! The output buffer is split in two: `output[..sendable]` may go to the socket, and the rest
//! is a queue of replies held until the group commit covering their write completes (under
//! `appendfsync always`, or for WAITAOF). Replies are released strictly in order, so a reply
//! that follows a held write waits behind it, as Redis clients expect.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use mio::net::TcpStream;
use respite_protocol::{Decoder, ProtocolError, Reply, encode};
use respite_storage::Gsn;

use crate::cmd::{self, After, Changed, Client, Ctx};
use crate::reply::misconf_text;
use crate::shared::{ReactorStats, Shared};

/// Above this much pending output the connection stops reading and executing requests
/// until the client has read some: natural backpressure, bounded memory.
pub const OUTPUT_PAUSE_BYTES: usize = 1024 * 1024;
/// Bytes read per `read` call: starts small and grows while reads fill it, because the
/// spare room is zero-filled before each read (no unsafe on the socket path).
const READ_MIN: usize = 4 * 1024;
const READ_MAX: usize = 64 * 1024;
/// Reads per `drive` call before yielding to other connections (fairness).
const READS_PER_TURN: usize = 16;
/// Requests decoded (and their keys prefetched) ahead of execution.
const BATCH: usize = 16;

/// The WAITAOF reply `[1, 0]`; patched to `[0, 0]` on timeout (same length, so in place).
const WAITAOF_OK: &[u8] = b"*2\r\n:1\r\n:0\r\n";
const WAITAOF_FLAG_AT: usize = 5;

#[derive(Debug)]
enum HeldKind {
    /// A write's reply (or one behind it): sent once the write is durable; a MISCONF error
    /// if it never will be (a final failure).
    Reply,
    /// A read's reply that may show a write not durable yet: sent once that is durable, or
    /// as it is once writes are refused (reads go on then).
    Read,
    WaitAof {
        deadline: Option<Instant>,
    },
}

/// A reply in the held part of the output buffer.
#[derive(Debug)]
struct Held {
    /// The write GSN it waits for (0: a reply that only waits for those before it).
    gsn: Gsn,
    len: usize,
    kind: HeldKind,
}

/// Settings a connection needs while processing, refreshed from CONFIG SET by the reactor.
#[derive(Clone, Copy, Debug)]
pub struct ConnSettings {
    /// Under `always` write replies are held until durable.
    pub hold_writes: bool,
    /// Output hard limit (0 = none).
    pub hard_limit: usize,
}

/// What `drive` found out.
#[derive(Debug, PartialEq, Eq)]
pub enum Drive {
    /// Keep the connection.
    Open,
    /// Keep it, and drive it again soon: it has more to read (fairness yield).
    Again,
    /// Close it.
    Close,
}

/// One client connection.
pub struct Connection {
    /// The socket.
    pub stream: TcpStream,
    input: BytesMut,
    output: BytesMut,
    sendable: usize,
    held: VecDeque<Held>,
    decoder: Decoder,
    /// The `Shared::config_epoch` the decoder's limits were read at.
    limits_epoch: u64,
    /// Requests decoded from `input` and not yet executed (see `decode_batch`).
    ready: VecDeque<Vec<Bytes>>,
    /// Connection state commands see.
    pub client: Client,
    /// The socket may have unread bytes (edge-triggered: set on READABLE, cleared on
    /// WouldBlock).
    pub can_read: bool,
    /// Close once the output is flushed (QUIT, protocol error, shutdown, kill).
    pub closing: bool,
    /// The peer closed its side: answer what it sent, then close.
    eof: bool,
    /// The kernel said the peer's FIN is in: the read that returns 0 must happen even after
    /// a short read, because no further edge will announce it.
    read_closed: bool,
    /// The input holds no complete request.
    input_stalled: bool,
    /// WRITABLE interest is registered.
    pub writable_registered: bool,
    /// Last time the client sent something.
    pub last_active: Instant,
    /// Since when the output has been above the soft limit.
    pub soft_over_since: Option<Instant>,
    /// The client asked for SHUTDOWN.
    pub shutdown_requested: bool,
    /// The reactor counts this connection among those holding replies.
    pub counted_holding: bool,
    /// The next read's size (adaptive between READ_MIN and READ_MAX).
    read_size: usize,
}

impl Connection {
    /// A connection over `stream`, decoding under limits read at config epoch `limits_epoch`.
    pub fn new(stream: TcpStream, client: Client, decoder: Decoder, limits_epoch: u64) -> Self {
        Connection {
            stream,
            // No allocation until the client sends something: idle connections stay cheap.
            input: BytesMut::new(),
            output: BytesMut::new(),
            sendable: 0,
            held: VecDeque::new(),
            decoder,
            limits_epoch,
            ready: VecDeque::new(),
            client,
            can_read: true,
            closing: false,
            eof: false,
            read_closed: false,
            input_stalled: true,
            writable_registered: false,
            last_active: Instant::now(),
            soft_over_since: None,
            shutdown_requested: false,
            counted_holding: false,
            read_size: READ_MIN,
        }
    }

    /// Bytes waiting to be written (sendable or held).
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    /// True while some reply waits for durability.
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Earliest WAITAOF deadline of this connection.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held
            .iter()
            .filter_map(|h| match h.kind {
                HeldKind::WaitAof { deadline } => deadline,
                HeldKind::Reply | HeldKind::Read => None,
            })
            .min()
    }

    /// Gives back the buffers of a connection with nothing pending (called for idle ones),
    /// so ten thousand idle clients cost their sockets, not 10k buffers.
    pub fn release_buffers(&mut self) {
        if self.input.is_empty() && self.input.capacity() > 0 {
            self.input = BytesMut::new();
        }
        if self.output.is_empty() && self.output.capacity() > 0 {
            self.output = BytesMut::new();
        }
        if self.ready.is_empty() && self.ready.capacity() > 0 {
            self.ready = VecDeque::new();
        }
    }

    /// Reads, executes and writes as far as the socket and the output limit allow.
    ///
    /// # Errors
    ///
    /// A socket error: the connection must be closed.
    pub fn drive(
        &mut self,
        shared: &Arc<Shared>,
        stats: &ReactorStats,
        settings: ConnSettings,
    ) -> io::Result<Drive> {
        let mut reads = 0;
        loop {
            self.process(shared, stats, settings);
            let mut progressed = false;
            if self.can_read && !self.closing && self.output.len() <= OUTPUT_PAUSE_BYTES {
                if reads == READS_PER_TURN {
                    self.flush(stats)?;
                    return Ok(Drive::Again);
                }
                reads += 1;
                progressed = self.read_chunk(stats)?;
            }
            let before = self.output.len();
            self.flush(stats)?;
            let wrote = self.output.len() < before;
            // Keep going while there is something left to do that could now make progress.
            let pending = !self.input.is_empty() || !self.ready.is_empty();
            let more_input = pending && !self.closing;
            if !(progressed || (wrote && (self.can_read || more_input))) {
                break;
            }
        }
        if settings.hard_limit > 0 && self.output.len() > settings.hard_limit {
            return Err(io::Error::other("output buffer over the hard limit"));
        }
        if self.output.is_empty() && (self.closing || (self.eof && self.input_stalled)) {
            return Ok(Drive::Close);
        }
        Ok(Drive::Open)
    }

    /// Records what an event said about the socket: readable (or an error, which a read
    /// reports), and whether the peer's FIN has arrived.
    pub fn readiness(&mut self, readable: bool, read_closed: bool) {
        self.read_closed |= read_closed;
        if readable || read_closed {
            self.can_read = true;
        }
    }

    /// One `read` into the input buffer. Ok(true) when bytes arrived.
    fn read_chunk(&mut self, stats: &ReactorStats) -> io::Result<bool> {
        let len = self.input.len();
        let size = self.read_size;
        // Zero-filled rather than uninitialised: no unsafe on the socket path.
        self.input.resize(len + size, 0);
        let result = loop {
            match self.stream.read(&mut self.input[len..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        match result {
            Ok(0) => {
                self.input.truncate(len);
                self.can_read = false;
                // Half-closed: answer what was sent, then close.
                self.eof = true;
                Ok(false)
            }
            Ok(n) => {
                self.input.truncate(len + n);
                // A short read drained the socket: with edge-triggered readiness, bytes that
                // arrive later raise a new event, so skip the read that would say WouldBlock.
                if n < size && !self.read_closed {
                    self.can_read = false;
                }
                self.read_size = if n == size {
                    (size * 2).min(READ_MAX)
                } else if n < size / 4 {
                    (size / 2).max(READ_MIN)
                } else {
                    size
                };
                self.last_active = Instant::now();
                ReactorStats::add(&stats.net_input_bytes, n as u64);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.input.truncate(len);
                self.can_read = false;
                Ok(false)
            }
            Err(e) => {
                self.input.truncate(len);
                Err(e)
            }
        }
    }

    /// Decodes and executes every complete request in the input buffer, stopping early when
    /// the output is over the pause threshold.
    fn process(&mut self, shared: &Arc<Shared>, stats: &ReactorStats, settings: ConnSettings) {
        let mut executed = false;
        while !self.closing && self.output.len() <= OUTPUT_PAUSE_BYTES {
            if self.ready.is_empty()
                && let Err(e) = self.decode_batch(shared)
            {
                let reply = Reply::Error(e.to_string().into());
                self.push(&reply, 0, HeldKind::Reply);
                self.input.clear();
                self.closing = true;
                slog::debug!(shared.log, "Protocol error from client";
                    "id" => self.client.meta.id, "error" => %e);
                break;
            }
            let Some(args) = self.ready.pop_front() else {
                self.input_stalled = true;
                break;
            };
            executed = true;
            self.input_stalled = false;
            let mut ctx = Ctx {
                shared,
                client: &mut self.client,
                stats,
                gsn: 0,
                after: After::Nothing,
                changed: Changed::KeyArgs,
            };
            let reply = cmd::execute(&mut ctx, &args);
            let (gsn, after) = (ctx.gsn, ctx.after);
            if gsn > 0 {
                self.client.last_write_gsn = self.client.last_write_gsn.max(gsn);
            }
            // Under `always` no reply may show a write that is not durable yet, a read
            // included (Redis holds every reply of a loop turn behind its fsync). A read
            // waits for the newest GSN handed out when it ran, only while writes are unsynced.
            let (hold_gsn, kind) = match (settings.hold_writes, gsn) {
                (false, _) => (0, HeldKind::Reply),
                (true, 0) => (unsynced_gsn(shared), HeldKind::Read),
                (true, gsn) => (gsn, HeldKind::Reply),
            };
            match after {
                After::Nothing => {
                    self.push(&reply, hold_gsn, kind);
                }
                After::Close => {
                    self.push(&reply, hold_gsn, kind);
                    self.closing = true;
                }
                After::Shutdown => {
                    self.closing = true;
                    self.shutdown_requested = true;
                }
                After::WaitAof { gsn, timeout_ms } => {
                    let deadline = (timeout_ms > 0)
                        .then(|| Instant::now() + Duration::from_millis(timeout_ms));
                    self.push_waitaof(gsn, deadline);
                }
            }
        }
        if executed {
            let meta = &self.client.meta;
            meta.last_active_ms
                .store(shared.uptime_ms(), Ordering::Relaxed);
            meta.qbuf.store(self.input.len(), Ordering::Relaxed);
            meta.omem.store(self.output.len(), Ordering::Relaxed);
        }
    }

    /// Decodes up to `BATCH` complete requests into `ready`, then asks the engine to
    /// prefetch their keys, so a pipeline's index lookups miss the cache together. A malformed
    /// frame ends the batch; the decoder keeps its error, so it is returned by the call after
    /// the requests before it have run.
    ///
    /// A client that has yet to authenticate gets Redis's unauthenticated limits (at most 10
    /// arguments, bulks of at most 16 KiB) and one request at a time: the request after an
    /// AUTH is decoded once the AUTH has run, under the limits its outcome calls for.
    ///
    /// Likewise a CONFIG request ends the batch, and a CONFIG SET's new limits (of any
    /// connection) apply from the next batch on: `proto-max-bulk-len` takes effect for the
    /// very next request of the connection that set it, as in Redis.
    fn decode_batch(&mut self, shared: &Shared) -> Result<(), ProtocolError> {
        let epoch = shared.config_epoch.load(Ordering::Acquire);
        if epoch != self.limits_epoch {
            self.decoder.set_limits(shared.config.read().limits());
            self.limits_epoch = epoch;
        }
        self.decoder.set_auth_required(!self.client.authed);
        let batch = if self.client.authed { BATCH } else { 1 };
        while self.ready.len() < batch {
            match self.decoder.decode(&mut self.input) {
                Ok(Some(args)) => {
                    let config = args[0].eq_ignore_ascii_case(b"config");
                    self.ready.push_back(args);
                    if config {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if self.ready.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        if self.ready.len() > 1 {
            // The first argument after the name is the key of most requests; for the others
            // the prefetch is a wasted hint, never a wrong result. A request of several keys
            // prefetches the rest itself as it runs (`cmd::prefetch_chunk`).
            let keys = self.ready.iter().filter_map(|a| a.get(1)).map(|k| &k[..]);
            shared.engine.prefetch(self.client.db, keys);
        }
        Ok(())
    }

    /// Queues a WAITAOF answer: `[1, 0]` once `gsn` is durable, `[0, 0]` at the deadline.
    fn push_waitaof(&mut self, gsn: Gsn, deadline: Option<Instant>) {
        self.output.extend_from_slice(WAITAOF_OK);
        self.held.push_back(Held {
            gsn,
            len: WAITAOF_OK.len(),
            kind: HeldKind::WaitAof { deadline },
        });
    }

    /// Encodes a reply at the end of the output, held as `kind` until `gsn` is durable
    /// under `always` (0: not held itself, only behind whatever before it is held).
    fn push(&mut self, reply: &Reply, gsn: Gsn, kind: HeldKind) {
        let start = self.output.len();
        encode(reply, self.client.version, &mut self.output);
        let len = self.output.len() - start;
        if self.held.is_empty() && gsn == 0 {
            self.sendable = self.output.len();
        } else {
            self.held.push_back(Held { gsn, len, kind });
        }
    }

    /// Releases held replies covered by `durable`; once writes are refused (`failure`: an
    /// fsync failed, or the disk is full), held write replies become MISCONF errors and held
    /// reads go as they are. Returns true when something was released.
    pub fn release(&mut self, durable: Gsn, failure: Option<&str>, now: Instant) -> bool {
        if failure.is_some() && self.held.iter().any(|h| h.gsn > durable) {
            self.fail_held(durable, failure.unwrap_or_default());
            return true;
        }
        let mut released = false;
        while let Some(front) = self.held.front() {
            match front.kind {
                HeldKind::Reply if front.gsn <= durable => {}
                HeldKind::Read if front.gsn <= durable => {}
                HeldKind::WaitAof { .. } if front.gsn <= durable => {}
                HeldKind::WaitAof {
                    deadline: Some(deadline),
                } if deadline <= now => {
                    // Timed out: answer [0, 0].
                    self.output[self.sendable + WAITAOF_FLAG_AT] = b'0';
                }
                _ => break,
            }
            self.sendable += front.len;
            self.held.pop_front();
            released = true;
        }
        released
    }

    /// Rewrites the held part of the output once writes are refused: write replies not yet
    /// durable become MISCONF errors (the engine's text says whether a retry may still make
    /// them durable), WAITAOF answers [0, 0], the rest (reads included) is kept.
    fn fail_held(&mut self, durable: Gsn, why: &str) {
        let held_bytes = self.output.split_off(self.sendable);
        let mut at = 0;
        let error = Reply::Error(misconf_text(why).replace(['\r', '\n'], " ").into());
        for h in self.held.drain(..) {
            let bytes = &held_bytes[at..at + h.len];
            at += h.len;
            match h.kind {
                HeldKind::Reply if h.gsn > durable => {
                    encode(&error, self.client.version, &mut self.output);
                }
                HeldKind::WaitAof { .. } if h.gsn > durable => {
                    self.output.extend_from_slice(b"*2\r\n:0\r\n:0\r\n");
                }
                _ => self.output.extend_from_slice(bytes),
            }
        }
        self.sendable = self.output.len();
    }

    /// Writes the sendable output until done or WouldBlock.
    fn flush(&mut self, stats: &ReactorStats) -> io::Result<()> {
        while self.sendable > 0 {
            match self.stream.write(&self.output[..self.sendable]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.output.advance(n);
                    self.sendable -= n;
                    ReactorStats::add(&stats.net_output_bytes, n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.output.is_empty() && self.output.capacity() > 4 * OUTPUT_PAUSE_BYTES {
            // Give back the memory of a huge reply.
            self.output = BytesMut::new();
        }
        Ok(())
    }

    /// True when bytes are ready to write but the socket would block.
    pub fn wants_writable(&self) -> bool {
        self.sendable > 0
    }

    /// Stops reading (shutdown): pending requests are dropped, replies still go out.
    pub fn stop_reading(&mut self) {
        self.can_read = false;
        self.closing = true;
        self.input.clear();
    }
}

/// The newest GSN handed out if it is not durable yet, else 0. A value a read saw was
/// written under a GSN at most this one (GSNs are taken before the index shows a write).
/// While writes are refused (an fsync failed, or the disk is full) reads go on unheld: a
/// read is better served than held for as long as that lasts.
fn unsynced_gsn(shared: &Shared) -> Gsn {
    let engine = &shared.engine;
    let last = engine.last_gsn();
    if last > engine.durable_gsn() && !engine.writes_refused() {
        last
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize};

    use bytes::Bytes;
    use parking_lot::Mutex;
    use respite_protocol::{Limits, Version};

    use super::*;
    use crate::shared::ClientMeta;

    fn connection() -> (Connection, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let meta = Arc::new(ClientMeta {
            id: 1,
            addr: String::new(),
            laddr: String::new(),
            fd: 0,
            created: Instant::now(),
            name: Mutex::new(Bytes::new()),
            lib: Mutex::new((Bytes::new(), Bytes::new())),
            db: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            last_cmd: AtomicUsize::new(usize::MAX),
            resp: AtomicU8::new(2),
            omem: AtomicUsize::new(0),
            qbuf: AtomicUsize::new(0),
            killed: AtomicBool::new(false),
            reactor: 0,
            multi: AtomicI64::new(-1),
            dirty_cas: AtomicBool::new(false),
        });
        let client = Client {
            meta,
            db: 0,
            version: Version::Resp2,
            authed: true,
            last_write_gsn: 0,
            multi: None,
            watched: Vec::new(),
        };
        let conn = Connection::new(
            TcpStream::from_std(ours),
            client,
            Decoder::new(Limits::default()),
            0,
        );
        (conn, peer)
    }

    fn sendable(c: &Connection) -> &[u8] {
        &c.output[..c.sendable]
    }

    #[test]
    fn replies_behind_a_held_write_wait_for_it() {
        let (mut c, _peer) = connection();
        let now = Instant::now();
        c.push(&Reply::Integer(0), 0, HeldKind::Reply);
        c.push(&Reply::ok(), 5, HeldKind::Reply);
        c.push(&Reply::Integer(1), 0, HeldKind::Reply);
        c.push(&Reply::ok(), 9, HeldKind::Reply);
        assert_eq!(sendable(&c), b":0\r\n");
        assert!(!c.release(4, None, now));
        assert!(c.release(5, None, now));
        assert_eq!(sendable(&c), b":0\r\n+OK\r\n:1\r\n");
        assert!(c.is_holding());
        assert!(c.release(9, None, now));
        assert_eq!(sendable(&c), b":0\r\n+OK\r\n:1\r\n+OK\r\n");
        assert!(!c.is_holding());
    }

    #[test]
    fn a_sync_failure_turns_held_writes_into_misconf_errors() {
        let (mut c, _peer) = connection();
        let now = Instant::now();
        c.push(&Reply::ok(), 3, HeldKind::Reply);
        c.push(&Reply::bulk("v"), 0, HeldKind::Reply);
        c.push(&Reply::Integer(7), 6, HeldKind::Reply);
        c.push_waitaof(6, None);
        assert!(c.release(3, Some("fsync failed on 000.log: EIO"), now));
        let out = String::from_utf8(sendable(&c).to_vec()).unwrap();
        let misconf = "-MISCONF Errors writing to the AOF file: fsync failed on 000.log: EIO; reads still work.";
        assert!(out.starts_with("+OK\r\n$1\r\nv\r\n"), "{out}");
        assert!(out.contains(misconf), "{out}");
        assert!(out.ends_with("*2\r\n:0\r\n:0\r\n"), "{out}");
        assert!(!c.is_holding());
    }

    #[test]
    fn once_writes_are_refused_held_reads_go_as_they_are() {
        let (mut c, _peer) = connection();
        let now = Instant::now();
        c.push(&Reply::bulk("r"), 4, HeldKind::Read);
        c.push(&Reply::ok(), 5, HeldKind::Reply);
        c.push(&Reply::bulk("s"), 5, HeldKind::Read);
        assert!(!c.release(3, None, now));
        assert!(c.release(4, None, now));
        assert_eq!(sendable(&c), b"$1\r\nr\r\n");
        // Writes refused: the write becomes MISCONF, the read behind it is sent as it was.
        assert!(c.release(4, Some("write failed"), now));
        let out = String::from_utf8(sendable(&c).to_vec()).unwrap();
        let misconf = "-MISCONF Errors writing to the AOF file: write failed; reads still work.";
        assert_eq!(out, format!("$1\r\nr\r\n{misconf}\r\n$1\r\ns\r\n"));
        assert!(!c.is_holding());
    }

    #[test]
    fn waitaof_answers_zero_at_its_deadline() {
        let (mut c, _peer) = connection();
        let now = Instant::now();
        c.push_waitaof(10, Some(now));
        c.push(&Reply::simple("PONG"), 0, HeldKind::Reply);
        assert!(c.release(5, None, now));
        assert_eq!(sendable(&c), b"*2\r\n:0\r\n:0\r\n+PONG\r\n");
        c.push_waitaof(10, None);
        assert!(!c.release(9, None, now));
        assert!(c.release(10, None, now));
        assert!(sendable(&c).ends_with(b"*2\r\n:1\r\n:0\r\n"));
    }
}
