//! The command table and what every handler shares.
//!
//! A request's name is looked up once, case-insensitively and without allocating, in a
//! static table of name, arity (negative = at least), flags, key positions and handler.
//! Handlers take the arguments (name included) and return a reply value or a `CmdError`;
//! `reply.rs` turns errors into text and the connection encodes the result.

mod connection;
mod keys;
mod lcs;
mod ldouble;
mod multi;
mod server;
mod string;

pub use connection::REDIS_VERSION;
pub use multi::{Watches, forget as forget_watches};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use respite_protocol::{Reply, Version};
use respite_storage::Gsn;

use crate::reply::{CmdError, CmdResult};
use crate::shared::{ClientMeta, ReactorStats, Shared};

/// The command writes data.
pub const WRITE: u32 = 1;
/// The command only reads data.
pub const READONLY: u32 = 1 << 1;
/// O(1) or O(log n).
pub const FAST: u32 = 1 << 2;
/// Administrative.
pub const ADMIN: u32 = 1 << 3;
/// Allowed before AUTH.
pub const NO_AUTH: u32 = 1 << 4;
/// May grow memory.
pub const DENYOOM: u32 = 1 << 5;
/// Connection state only.
pub const LOADING: u32 = 1 << 6;
/// Served while stale.
pub const STALE: u32 = 1 << 7;
/// Refused inside MULTI.
pub const NO_MULTI: u32 = 1 << 8;
/// Not allowed from scripts.
pub const NOSCRIPT: u32 = 1 << 9;
/// Allowed while a script runs too long.
pub const ALLOW_BUSY: u32 = 1 << 10;
/// Left out of the slow log.
pub const SKIP_SLOWLOG: u32 = 1 << 12;
/// Refused while a replica loads asynchronously.
pub const NO_ASYNC_LOADING: u32 = 1 << 13;
/// Has subcommands (CLIENT, CONFIG...): CLIENT LIST names the subcommand. Not a Redis flag.
pub const CONTAINER: u32 = 1 << 14;
/// Runs at once inside MULTI instead of being queued (EXEC, DISCARD, MULTI, WATCH, QUIT,
/// RESET). Not a Redis flag: COMMAND INFO does not show it.
pub const TXN_CONTROL: u32 = 1 << 11;

/// A handler: the arguments include the command name at index 0.
pub type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> CmdResult;

/// One row of the command table.
pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Argument count including the name; negative means "at least -arity".
    pub arity: i32,
    /// WRITE, READONLY, FAST...
    pub flags: u32,
    /// Position of the first key (0 = none).
    pub first_key: i32,
    /// Position of the last key (-1 = last argument).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// COMMAND DOCS group.
    pub group: &'static str,
    /// COMMAND DOCS summary.
    pub summary: &'static str,
    /// The handler.
    pub handler: Handler,
}

impl CommandSpec {
    /// True when `argc` fits the arity.
    #[must_use]
    pub fn arity_ok(&self, argc: usize) -> bool {
        arity_ok(self.arity, argc)
    }

    /// Redis's flag names for COMMAND INFO.
    #[must_use]
    pub fn flag_names(&self) -> Vec<&'static str> {
        // Redis's order (server.c, addReplyCommandFlags).
        let names = [
            (WRITE, "write"),
            (READONLY, "readonly"),
            (DENYOOM, "denyoom"),
            (ADMIN, "admin"),
            (NOSCRIPT, "noscript"),
            (LOADING, "loading"),
            (STALE, "stale"),
            (SKIP_SLOWLOG, "skip_slowlog"),
            (FAST, "fast"),
            (NO_AUTH, "no_auth"),
            (NO_ASYNC_LOADING, "no_async_loading"),
            (NO_MULTI, "no_multi"),
            (ALLOW_BUSY, "allow_busy"),
        ];
        names
            .iter()
            .filter(|(f, _)| self.flags & f != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

macro_rules! cmd {
    ($name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $group:literal, $summary:literal, $handler:path) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            group: $group,
            summary: $summary,
            handler: $handler,
        }
    };
}

/// The command table.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    // connection
    cmd!("ping", -1, FAST, 0, 0, 0, "connection", "Returns the server's liveliness response.", connection::ping),
    cmd!("echo", 2, LOADING | STALE | FAST, 0, 0, 0, "connection", "Returns the given string.", connection::echo),
    cmd!("quit", -1, TXN_CONTROL | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, 0, 0, 0, "connection", "Closes the connection.", connection::quit),
    cmd!("hello", -1, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, 0, 0, 0, "connection", "Handshakes with the Redis server.", connection::hello),
    cmd!("auth", -2, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, 0, 0, 0, "connection", "Authenticates the connection.", connection::auth),
    cmd!("select", 2, FAST | LOADING | STALE, 0, 0, 0, "connection", "Changes the selected database.", connection::select),
    cmd!("reset", 1, TXN_CONTROL | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, 0, 0, 0, "connection", "Resets the connection.", connection::reset),
    cmd!("client", -2, CONTAINER, 0, 0, 0, "connection", "A container for client connection commands.", connection::client),
    // transactions
    cmd!("multi", 1, TXN_CONTROL | NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, 0, 0, 0, "transactions", "Starts a transaction.", multi::multi),
    cmd!("exec", 1, TXN_CONTROL | NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG, 0, 0, 0, "transactions", "Executes all commands in a transaction.", multi::exec),
    cmd!("discard", 1, TXN_CONTROL | NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, 0, 0, 0, "transactions", "Discards a transaction.", multi::discard),
    cmd!("watch", -2, TXN_CONTROL | NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, 1, -1, 1, "transactions", "Monitors changes to keys to determine the execution of a transaction.", multi::watch),
    cmd!("unwatch", 1, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, 0, 0, 0, "transactions", "Forgets about watched keys of a transaction.", multi::unwatch),
    // strings
    cmd!("get", 2, READONLY | FAST, 1, 1, 1, "string", "Returns the string value of a key.", string::get),
    cmd!("set", -3, WRITE | DENYOOM, 1, 1, 1, "string", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", string::set),
    cmd!("setnx", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "Set the string value of a key only when the key doesn't exist.", string::setnx),
    cmd!("setex", 4, WRITE | DENYOOM, 1, 1, 1, "string", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", string::setex),
    cmd!("psetex", 4, WRITE | DENYOOM, 1, 1, 1, "string", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", string::psetex),
    cmd!("getset", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "Returns the previous string value of a key after setting it to a new value.", string::getset),
    cmd!("getdel", 2, WRITE | FAST, 1, 1, 1, "string", "Returns the string value of a key after deleting the key.", string::getdel),
    cmd!("getex", -2, WRITE | FAST, 1, 1, 1, "string", "Returns the string value of a key after setting its expiration time.", string::getex),
    cmd!("mget", -2, READONLY | FAST, 1, -1, 1, "string", "Atomically returns the string values of one or more keys.", string::mget),
    cmd!("mset", -3, WRITE | DENYOOM, 1, -1, 2, "string", "Atomically creates or modifies the string values of one or more keys.", string::mset),
    cmd!("msetnx", -3, WRITE | DENYOOM, 1, -1, 2, "string", "Atomically modifies the string values of one or more keys only when all keys don't exist.", string::msetnx),
    cmd!("append", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "Appends a string to the value of a key. Creates the key if it doesn't exist.", string::append),
    cmd!("strlen", 2, READONLY | FAST, 1, 1, 1, "string", "Returns the length of a string value.", string::strlen),
    cmd!("incr", 2, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", string::incr),
    cmd!("decr", 2, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", string::decr),
    cmd!("incrby", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", string::incrby),
    cmd!("decrby", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", string::decrby),
    cmd!("incrbyfloat", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", string::incrbyfloat),
    cmd!("getrange", 4, READONLY, 1, 1, 1, "string", "Returns a substring of the string stored at a key.", string::getrange),
    cmd!("substr", 4, READONLY, 1, 1, 1, "string", "Returns a substring from a string value.", string::getrange),
    cmd!("lcs", -3, READONLY, 1, 2, 1, "string", "Finds the longest common substring.", lcs::lcs_command),
    cmd!("setrange", 4, WRITE | DENYOOM, 1, 1, 1, "string", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", string::setrange),
    // keys
    cmd!("del", -2, WRITE, 1, -1, 1, "generic", "Deletes one or more keys.", keys::del),
    cmd!("unlink", -2, WRITE | FAST, 1, -1, 1, "generic", "Asynchronously deletes one or more keys.", keys::del),
    cmd!("exists", -2, READONLY | FAST, 1, -1, 1, "generic", "Determines whether one or more keys exist.", keys::exists),
    cmd!("touch", -2, READONLY | FAST, 1, -1, 1, "generic", "Returns the number of existing keys out of those specified after updating the time they were last accessed.", keys::exists),
    cmd!("type", 2, READONLY | FAST, 1, 1, 1, "generic", "Determines the type of value stored at a key.", keys::type_),
    cmd!("expire", -3, WRITE | FAST, 1, 1, 1, "generic", "Sets the expiration time of a key in seconds.", keys::expire),
    cmd!("pexpire", -3, WRITE | FAST, 1, 1, 1, "generic", "Sets the expiration time of a key in milliseconds.", keys::expire),
    cmd!("expireat", -3, WRITE | FAST, 1, 1, 1, "generic", "Sets the expiration time of a key to a Unix timestamp.", keys::expire),
    cmd!("pexpireat", -3, WRITE | FAST, 1, 1, 1, "generic", "Sets the expiration time of a key to a Unix milliseconds timestamp.", keys::expire),
    cmd!("ttl", 2, READONLY | FAST, 1, 1, 1, "generic", "Returns the expiration time in seconds of a key.", keys::ttl),
    cmd!("pttl", 2, READONLY | FAST, 1, 1, 1, "generic", "Returns the expiration time in milliseconds of a key.", keys::ttl),
    cmd!("expiretime", 2, READONLY | FAST, 1, 1, 1, "generic", "Returns the expiration time of a key as a Unix timestamp.", keys::ttl),
    cmd!("pexpiretime", 2, READONLY | FAST, 1, 1, 1, "generic", "Returns the expiration time of a key as a Unix milliseconds timestamp.", keys::ttl),
    cmd!("persist", 2, WRITE | FAST, 1, 1, 1, "generic", "Removes the expiration time of a key.", keys::persist),
    cmd!("keys", 2, READONLY, 0, 0, 0, "generic", "Returns all key names that match a pattern.", keys::keys),
    cmd!("scan", -2, READONLY, 0, 0, 0, "generic", "Iterates over the key names in the database.", keys::scan),
    cmd!("randomkey", 1, READONLY, 0, 0, 0, "generic", "Returns a random key name from the database.", keys::randomkey),
    cmd!("rename", 3, WRITE, 1, 2, 1, "generic", "Renames a key and overwrites the destination.", keys::rename),
    cmd!("renamenx", 3, WRITE | FAST, 1, 2, 1, "generic", "Renames a key only when the target key name doesn't exist.", keys::rename),
    cmd!("copy", -3, WRITE | DENYOOM, 1, 2, 1, "generic", "Copies the value of a key to a new key.", keys::copy),
    cmd!("move", 3, WRITE | FAST, 1, 1, 1, "generic", "Moves a key to another database.", keys::move_),
    cmd!("dbsize", 1, READONLY | FAST, 0, 0, 0, "server", "Returns the number of keys in the database.", keys::dbsize),
    cmd!("flushdb", -1, WRITE, 0, 0, 0, "server", "Remove all keys from the current database.", keys::flushdb),
    cmd!("flushall", -1, WRITE, 0, 0, 0, "server", "Removes all keys from all databases.", keys::flushall),
    // server
    cmd!("info", -1, LOADING | STALE, 0, 0, 0, "server", "Returns information and statistics about the server.", server::info),
    cmd!("config", -2, CONTAINER, 0, 0, 0, "server", "A container for server configuration commands.", server::config),
    cmd!("command", -1, CONTAINER | LOADING | STALE, 0, 0, 0, "server", "Returns detailed information about all commands.", server::command),
    cmd!("time", 1, LOADING | STALE | FAST, 0, 0, 0, "server", "Returns the server time.", server::time),
    cmd!("save", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, 0, 0, 0, "server", "Synchronously saves the database(s) to disk.", server::save),
    cmd!("bgsave", -1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING, 0, 0, 0, "server", "Asynchronously saves the database(s) to disk.", server::bgsave),
    cmd!("bgrewriteaof", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING, 0, 0, 0, "server", "Asynchronously rewrites the append-only file to disk.", server::bgrewriteaof),
    cmd!("lastsave", 1, LOADING | STALE | FAST, 0, 0, 0, "server", "Returns the Unix timestamp of the last successful save to disk.", server::lastsave),
    cmd!("shutdown", -1, ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY, 0, 0, 0, "server", "Synchronously saves the database(s) to disk and shuts down the Redis server.", server::shutdown),
    cmd!("memory", -2, CONTAINER, 0, 0, 0, "server", "A container for memory diagnostics commands.", server::memory),
    cmd!("object", -2, CONTAINER, 0, 0, 0, "generic", "A container for object introspection commands.", server::object),
    cmd!("function", -2, CONTAINER, 0, 0, 0, "scripting", "A container for function commands.", server::function),
    cmd!("waitaof", 4, NOSCRIPT, 0, 0, 0, "generic", "Blocks until all of the preceding write commands sent by the connection are written to the append-only file of the master and/or replicas.", server::waitaof),
    cmd!("wait", 3, NOSCRIPT, 0, 0, 0, "generic", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.", server::wait),
];

/// Subcommands of container commands with Redis's arity (as for commands), for CLIENT
/// LIST's `cmd=client|list` and for checking a subcommand queued inside MULTI.
pub static SUBCOMMANDS: &[(&str, i32)] = &[
    ("client|id", 2),
    ("client|setname", 3),
    ("client|getname", 2),
    ("client|info", 2),
    ("client|list", -2),
    ("client|kill", -3),
    ("client|setinfo", 4),
    ("client|no-evict", 3),
    ("client|no-touch", 3),
    ("client|help", 2),
    ("config|get", -3),
    ("config|set", -4),
    ("config|resetstat", 2),
    ("config|rewrite", 2),
    ("config|help", 2),
    ("command|count", 2),
    ("command|list", -2),
    ("command|info", -2),
    ("command|docs", -2),
    ("command|getkeys", -4),
    ("command|help", 2),
    ("object|encoding", 3),
    ("object|refcount", 3),
    ("object|idletime", 3),
    ("object|freq", 3),
    ("object|help", 2),
    ("memory|usage", -3),
    ("memory|doctor", 2),
    ("memory|help", 2),
    ("function|list", -2),
    ("function|flush", -2),
];

/// `last_cmd` packs the table index in the low 16 bits and 1 + the SUBCOMMANDS index above.
const SUB_SHIFT: u32 = 16;

/// True when `argc` arguments (the name included) fit `arity` (negative: at least -arity).
fn arity_ok(arity: i32, argc: usize) -> bool {
    let argc = i64::try_from(argc).unwrap_or(i64::MAX);
    let arity = i64::from(arity);
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// The index in SUBCOMMANDS of a container's subcommand `args[1]`, if it is one we know.
fn subcommand(spec: &CommandSpec, args: &[Bytes]) -> Option<usize> {
    // Only containers have subcommands: every other command skips the search (it showed as
    // 6% of the server's CPU under GET -P 16 when it ran for all).
    if spec.flags & CONTAINER == 0 {
        return None;
    }
    let sub = args.get(1)?;
    SUBCOMMANDS.iter().position(|(full, _)| {
        full.split_once('|')
            .is_some_and(|(c, s)| c == spec.name && sub.eq_ignore_ascii_case(s.as_bytes()))
    })
}

/// `last_cmd`'s subcommand bits for a SUBCOMMANDS index.
fn sub_bits(sub: Option<usize>) -> usize {
    sub.map_or(0, |i| (i + 1) << SUB_SHIFT)
}

#[cfg(test)]
fn subcommand_bits(spec: &CommandSpec, args: &[Bytes]) -> usize {
    sub_bits(subcommand(spec, args))
}

/// The `cmd=` name of a packed `last_cmd` value (`get`, `client|list`, `NULL`).
#[must_use]
pub fn last_command_name(packed: usize) -> &'static str {
    let sub = packed >> SUB_SHIFT;
    if sub > 0
        && let Some((name, _)) = SUBCOMMANDS.get(sub - 1)
    {
        return name;
    }
    COMMANDS
        .get(packed & ((1 << SUB_SHIFT) - 1))
        .map_or("NULL", |s| s.name)
}

/// Looks a command up by name, ASCII case-insensitively, without allocating.
#[must_use]
pub fn lookup(name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
    static INDEX: OnceLock<HashMap<&'static [u8], usize>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        COMMANDS
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_bytes(), i))
            .collect()
    });
    let mut buf = [0u8; 32];
    let lower = buf.get_mut(..name.len())?;
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    index.get(&*lower).map(|&i| (i, &COMMANDS[i]))
}

/// What the connection must do after a command's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum After {
    /// Nothing special.
    #[default]
    Nothing,
    /// Close the connection once the reply is written (QUIT).
    Close,
    /// Close the connection and stop the server (SHUTDOWN): no reply.
    Shutdown,
    /// WAITAOF: reply `[1, 0]` once `gsn` is durable, `[0, 0]` at `deadline_ms` (0 = never).
    WaitAof { gsn: Gsn, timeout_ms: u64 },
}

/// Per-connection state commands read and change.
pub struct Client {
    /// Shared view of this client (CLIENT LIST).
    pub meta: Arc<ClientMeta>,
    /// Selected database.
    pub db: usize,
    /// RESP2 or RESP3.
    pub version: Version,
    /// False until AUTH when requirepass is set.
    pub authed: bool,
    /// Highest GSN this client wrote (WAITAOF waits for it).
    pub last_write_gsn: Gsn,
    /// The open transaction, between MULTI and EXEC/DISCARD.
    pub multi: Option<multi::Multi>,
    /// Keys this client WATCHes.
    pub watched: Vec<multi::Watched>,
}

/// What a handler works with.
pub struct Ctx<'a> {
    /// Server-wide state.
    pub shared: &'a Shared,
    /// This connection.
    pub client: &'a mut Client,
    /// The reactor's counters.
    pub stats: &'a ReactorStats,
    /// Highest GSN this command wrote (0 = none).
    pub gsn: Gsn,
    /// Follow-up for the connection.
    pub after: After,
    /// Which keys the command changed, for WATCH.
    pub changed: Changed,
}

/// Which keys a write changed, for the clients that WATCH them.
#[derive(Debug, Default)]
pub enum Changed {
    /// Every key argument, if the command wrote something (got a GSN).
    #[default]
    KeyArgs,
    /// Exactly these (database, key) pairs, said by the handler: DEL names only the keys it
    /// deleted, COPY only its destination, MOVE the key in both databases, APPEND of nothing
    /// its key though it writes no record, a flush the watched keys that existed. Filled
    /// only while someone watches.
    These(Vec<(usize, Bytes)>),
}

impl Ctx<'_> {
    /// From now on the handler names the keys it changes (`changed`); none so far.
    pub fn exact_changes(&mut self) {
        if let Changed::KeyArgs = self.changed {
            self.changed = Changed::These(Vec::new());
        }
    }

    /// The handler changed `key` in `db` (see `Changed::These`).
    pub fn changed(&mut self, db: usize, key: &Bytes) {
        self.exact_changes();
        if let Changed::These(list) = &mut self.changed
            && self.shared.watches.any()
        {
            list.push((db, key.clone()));
        }
    }

    /// Records a write's GSN.
    pub fn wrote(&mut self, gsn: Gsn) {
        self.gsn = self.gsn.max(gsn);
    }

    /// Counts a key lookup as a hit or a miss.
    pub fn hit(&self, found: bool) {
        let c = if found {
            &self.stats.keyspace_hits
        } else {
            &self.stats.keyspace_misses
        };
        ReactorStats::add(c, 1);
    }

    /// The selected database.
    pub fn db(&self) -> usize {
        self.client.db
    }

    /// `proto-max-bulk-len`: the longest string a command may build (APPEND, SETRANGE), and
    /// the most transient memory LCS may take.
    pub fn max_bulk_len(&self) -> u64 {
        self.shared.config.read().proto_max_bulk_len
    }
}

/// Runs one request. `args` is never empty.
pub fn execute(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    ReactorStats::add(&ctx.stats.commands, 1);
    let result = dispatch(ctx, args);
    reply_of(ctx, &args[0], result)
}

/// A handler's result as the reply the client gets; errors are counted (and damage logged).
fn reply_of(ctx: &Ctx<'_>, name: &[u8], result: CmdResult) -> Reply {
    match result {
        Ok(r) => r,
        Err(e) => {
            ReactorStats::add(&ctx.stats.error_replies, 1);
            if let CmdError::Damaged(what) = &e {
                slog::warn!(ctx.shared.log, "Damaged data on disk: {}", what; "command" => %String::from_utf8_lossy(name));
            }
            e.reply()
        }
    }
}

fn dispatch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let checked = check(ctx, args);
    let spec = match checked {
        Ok(spec) => spec,
        Err(e) if is(&args[0], "exec") => {
            // Redis answers a refused EXEC with EXECABORT and ends the transaction.
            multi::discard_state(ctx);
            return Err(multi::exec_abort(&e));
        }
        Err(e) => {
            // A request refused while queueing dooms the transaction.
            multi::flag_error(ctx);
            return Err(e);
        }
    };
    if ctx.client.multi.is_some() && spec.flags & TXN_CONTROL == 0 {
        return multi::queue(ctx, spec, args);
    }
    if spec.flags & TXN_CONTROL != 0 && spec.name == "exec" {
        // EXEC takes the gate exclusively itself; entering it here would wait for ourselves.
        return (spec.handler)(ctx, args);
    }
    let _entered = ctx.shared.gate.enter(ctx.client.meta.reactor);
    run(ctx, spec, args)
}

/// Looks the command up and checks arity, authentication and MULTI's exclusions.
fn check(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<&'static CommandSpec, CmdError> {
    let Some((index, spec)) = lookup(&args[0]) else {
        return Err(crate::reply::unknown_command(args));
    };
    if !spec.arity_ok(args.len()) {
        return Err(CmdError::Arity(spec.name.to_owned()));
    }
    if !ctx.client.authed && spec.flags & NO_AUTH == 0 {
        return Err(CmdError::NoAuth);
    }
    if ctx.client.multi.is_some() && spec.flags & NO_MULTI != 0 {
        return Err(CmdError::Static(
            "ERR Command not allowed inside a transaction",
        ));
    }
    // Redis checks a subcommand's name and arity before queueing it; outside MULTI the
    // container's handler gives the same errors itself.
    let sub = subcommand(spec, args);
    if ctx.client.multi.is_some() && spec.flags & CONTAINER != 0 && args.len() > 1 {
        let (_, arity) = sub
            .and_then(|i| SUBCOMMANDS.get(i))
            .ok_or_else(|| unknown_sub(args))?;
        sub_arity(args, arity_ok(*arity, args.len()))?;
    }
    ctx.client
        .meta
        .last_cmd
        .store(index | sub_bits(sub), Ordering::Relaxed);
    Ok(spec)
}

/// Runs a checked request and tells the clients watching the keys it wrote.
fn run(ctx: &mut Ctx<'_>, spec: &CommandSpec, args: &[Bytes]) -> CmdResult {
    // After an fsync failure the engine refuses writes itself (Error::WritesRefused, which
    // reply.rs words as MISCONF); no per-command check is needed here.
    let before = std::mem::take(&mut ctx.gsn);
    ctx.changed = Changed::KeyArgs;
    let watches = &ctx.shared.watches;
    let result = (spec.handler)(ctx, args);
    // A GSN means the command changed something: a failed SET NX or a DEL of a missing key
    // gets none and leaves watchers alone, as in Redis.
    match std::mem::take(&mut ctx.changed) {
        Changed::These(keys) => watches.touch_all(&keys),
        Changed::KeyArgs if ctx.gsn > 0 && spec.flags & WRITE != 0 => {
            watches.wrote(spec, args, ctx.client.db);
        }
        Changed::KeyArgs => {}
    }
    ctx.gsn = ctx.gsn.max(before);
    result
}

/// The key arguments of a request, from the table's first key, last key and step.
pub(crate) fn key_args<'a>(
    spec: &CommandSpec,
    args: &'a [Bytes],
) -> impl Iterator<Item = &'a Bytes> {
    let len = i64::try_from(args.len()).unwrap_or(i64::MAX);
    let first = i64::from(spec.first_key);
    let last = match i64::from(spec.last_key) {
        l if l < 0 => len + l,
        l => l,
    };
    let step = usize::try_from(spec.step.max(1)).unwrap_or(1);
    let range = if first > 0 && last >= first {
        usize::try_from(first).unwrap_or(0)..usize::try_from(last + 1).unwrap_or(0)
    } else {
        0..0
    };
    args.get(range).unwrap_or_default().iter().step_by(step)
}

/// Keys a multi-key request prefetches at a time (see `prefetch_chunk`).
const PREFETCH_CHUNK: usize = 16;

/// Before a multi-key request (MGET, DEL, EXISTS...) reads `keys[i]`: at the start of each
/// chunk, asks the engine to prefetch the chunk's keys, so their cache misses overlap
/// instead of coming one per key. A batch of pipelined requests prefetches only each
/// request's first key (`Connection::decode_batch`).
pub(crate) fn prefetch_chunk(ctx: &Ctx<'_>, keys: &[Bytes], i: usize) {
    if i.is_multiple_of(PREFETCH_CHUNK) && keys.len() > 1 {
        let chunk = keys[i..].iter().take(PREFETCH_CHUNK);
        ctx.shared.engine.prefetch(ctx.db(), chunk.map(|k| &k[..]));
    }
}

/// Redis's string2ll: optional '-', digits, no leading zeros, no spaces, fits i64.
#[must_use]
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = match b[0] {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        v = if neg {
            v.checked_mul(10)?.checked_sub(d)?
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(v)
}

/// An integer argument or Redis's "not an integer" error.
///
/// # Errors
///
/// `CmdError::NotInteger`.
pub fn arg_i64(b: &[u8]) -> Result<i64, CmdError> {
    parse_i64(b).ok_or(CmdError::NotInteger)
}

/// A database number argument as Redis reads it (getIntFromObjectOrReply, then selectDb):
/// not an integer, outside C's int, or not one of our databases, each with Redis's text.
///
/// # Errors
///
/// `NotInteger`, the int range error, or `DbIndex`.
pub fn db_index(ctx: &Ctx<'_>, b: &[u8]) -> Result<usize, CmdError> {
    let n = arg_i64(b)?;
    if i32::try_from(n).is_err() {
        return Err(CmdError::Static(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    usize::try_from(n)
        .ok()
        .filter(|&d| d < ctx.shared.engine.databases())
        .ok_or(CmdError::DbIndex)
}

/// ASCII case-insensitive comparison of an argument with a keyword.
#[must_use]
pub fn is(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// Lossy UTF-8 of an argument, for error texts.
#[must_use]
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reply helpers.
pub fn int(n: impl TryInto<i64>) -> Reply {
    Reply::Integer(n.try_into().unwrap_or(i64::MAX))
}

/// A bulk reply copied from a string.
pub fn bulk_str(s: impl Into<String>) -> Reply {
    Reply::Bulk(Bytes::from(s.into()))
}

/// A bulk reply or Null.
pub fn bulk_opt(b: Option<Bytes>) -> Reply {
    b.map_or(Reply::Null, Reply::Bulk)
}

/// Checks that a subcommand got the right number of arguments.
///
/// # Errors
///
/// `ERR wrong number of arguments for 'cmd|sub' command`.
pub fn sub_arity(args: &[Bytes], ok: bool) -> Result<(), CmdError> {
    if ok {
        Ok(())
    } else {
        Err(CmdError::Arity(format!(
            "{}|{}",
            text(&args[0]).to_ascii_lowercase(),
            text(&args[1]).to_ascii_lowercase()
        )))
    }
}

/// The "unknown subcommand" error for `args[1]`.
#[must_use]
pub fn unknown_sub(args: &[Bytes]) -> CmdError {
    CmdError::UnknownSubcommand {
        cmd: String::from_utf8_lossy(crate::reply::cbytes(&args[0], usize::MAX))
            .to_ascii_uppercase(),
        sub: args[1].clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup(b"GeT").unwrap().1.name, "get");
        assert!(lookup(b"nope").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
    }

    #[test]
    fn table_names_are_lower_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in COMMANDS {
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(seen.insert(c.name), "{} twice", c.name);
        }
    }

    #[test]
    fn subcommand_names_pack_into_last_cmd() {
        let (index, spec) = lookup(b"CLIENT").unwrap();
        let args = [Bytes::from("CLIENT"), Bytes::from("List")];
        assert_eq!(
            last_command_name(index | subcommand_bits(spec, &args)),
            "client|list"
        );
        let (index, spec) = lookup(b"get").unwrap();
        assert_eq!(
            last_command_name(index | subcommand_bits(spec, &args[..1])),
            "get"
        );
        assert_eq!(last_command_name(usize::MAX), "NULL");
        for (full, _) in SUBCOMMANDS {
            let (container, _) = full.split_once('|').unwrap();
            let spec = lookup(container.as_bytes()).unwrap().1;
            assert!(spec.flags & CONTAINER != 0, "{full}");
        }
    }

    #[test]
    fn arity() {
        let get = lookup(b"get").unwrap().1;
        assert!(get.arity_ok(2));
        assert!(!get.arity_ok(3));
        let set = lookup(b"set").unwrap().1;
        assert!(set.arity_ok(3));
        assert!(set.arity_ok(8));
        assert!(!set.arity_ok(2));
    }

    #[test]
    fn integers_follow_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [&b""[..], b"01", b"-0", b"+1", b" 1", b"1 ", b"1a", b"-"] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }
}
