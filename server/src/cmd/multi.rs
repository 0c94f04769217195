//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Between MULTI and EXEC a client's commands are checked (name, arity, auth) and queued.
//! EXEC runs the queue inside the server's `Gate::exclusive`, so no other client's command
//! runs in the middle of it, as Redis promises. An error while queueing makes EXEC answer
//! EXECABORT and run nothing.
//!
//! WATCH is optimistic locking: every command that wrote (it got a GSN) marks the clients
//! watching its keys dirty, through `Watches`; a dirty client's EXEC answers a null array and
//! runs nothing. A watched key that existed at WATCH and has expired by EXEC counts as
//! written, as in Redis 7.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use respite_protocol::Reply;

use super::{After, CommandSpec, Ctx};
use crate::reply::{CmdError, CmdResult};
use crate::shared::{ClientMeta, ReactorStats};

/// The most a transaction may queue, in argument bytes: Redis's default
/// `client-query-buffer-limit`. Redis itself has no cap on a MULTI queue; without one a
/// client could grow the server's memory without end by never sending EXEC.
pub const MULTI_MAX_BYTES: usize = 1 << 30;

/// What one queued argument costs beyond its bytes (its `Bytes` handle and vector slot).
const ARG_OVERHEAD: usize = 32;

/// A client's open transaction.
#[derive(Default)]
pub struct Multi {
    /// Checked requests in order, each with its command table row.
    queued: Vec<(&'static CommandSpec, Vec<Bytes>)>,
    /// What `queued` holds, in argument bytes plus overhead.
    bytes: usize,
    /// An error while queueing: EXEC answers EXECABORT.
    aborted: bool,
}

impl Multi {
    /// Queues a checked request; past `limit` bytes the transaction is aborted and its queue
    /// freed. A transaction already aborted keeps nothing, since it will never run.
    fn push(
        &mut self,
        spec: &'static CommandSpec,
        args: &[Bytes],
        limit: usize,
    ) -> Result<(), CmdError> {
        if self.aborted {
            return Ok(());
        }
        let cost: usize = args.iter().map(|a| a.len() + ARG_OVERHEAD).sum();
        if self.bytes + cost > limit {
            self.queued = Vec::new();
            self.bytes = 0;
            self.aborted = true;
            return Err(CmdError::Static(
                "ERR transaction queue over client-query-buffer-limit (1 GiB): discarded",
            ));
        }
        self.bytes += cost;
        self.queued.push((spec, args.to_vec()));
        Ok(())
    }
}

/// One key a client watches.
#[derive(Debug)]
pub struct Watched {
    db: usize,
    key: Bytes,
    /// The key existed (unexpired) at WATCH: if it is gone at EXEC, it expired.
    existed: bool,
}

/// The watchers of each (database, key).
type WatchMap = HashMap<(usize, Bytes), Vec<Arc<ClientMeta>>>;

/// Who watches which key, server-wide.
///
/// The map is behind one mutex, but a write looks at `count` first and takes the mutex only
/// while some client watches something, so a server nobody WATCHes pays one relaxed load per
/// write.
#[derive(Default)]
pub struct Watches {
    count: AtomicUsize,
    keys: Mutex<WatchMap>,
}

impl Watches {
    fn add(&self, db: usize, key: &Bytes, client: &Arc<ClientMeta>) {
        self.keys
            .lock()
            .entry((db, key.clone()))
            .or_default()
            .push(client.clone());
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    fn remove(&self, watched: &[Watched], client: &Arc<ClientMeta>) {
        if watched.is_empty() {
            return;
        }
        let mut keys = self.keys.lock();
        for w in watched {
            let k = (w.db, w.key.clone());
            if let Some(list) = keys.get_mut(&k) {
                list.retain(|c| !Arc::ptr_eq(c, client));
                if list.is_empty() {
                    keys.remove(&k);
                }
            }
        }
        self.count.fetch_sub(watched.len(), Ordering::SeqCst);
    }

    /// True while any client watches any key.
    pub fn any(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Marks the watchers of `key` in `db` dirty.
    fn touch(keys: &WatchMap, db: usize, key: &Bytes) {
        if let Some(list) = keys.get(&(db, key.clone())) {
            for c in list {
                c.dirty_cas.store(true, Ordering::SeqCst);
            }
        }
    }

    /// The watched keys that exist now in `db` (every database if None): those a flush of
    /// it is about to change. Watchers of absent keys see no change, as in Redis.
    pub fn existing(
        &self,
        engine: &respite_storage::Engine,
        db: Option<usize>,
    ) -> Vec<(usize, Bytes)> {
        if !self.any() {
            return Vec::new();
        }
        let keys = self.keys.lock();
        keys.keys()
            .filter(|(d, key)| {
                db.is_none_or(|db| db == *d) && engine.exists(*d, key).unwrap_or(true)
            })
            .cloned()
            .collect()
    }

    /// Marks dirty the watchers of every key `spec` names in `args`, in `db`.
    pub fn wrote(&self, spec: &CommandSpec, args: &[Bytes], db: usize) {
        if !self.any() {
            return;
        }
        let keys = self.keys.lock();
        for key in super::key_args(spec, args) {
            Self::touch(&keys, db, key);
        }
    }

    /// Marks dirty the watchers of each (database, key).
    pub fn touch_all(&self, changed: &[(usize, Bytes)]) {
        if changed.is_empty() || !self.any() {
            return;
        }
        let keys = self.keys.lock();
        for (db, key) in changed {
            Self::touch(&keys, *db, key);
        }
    }
}

/// Forgets a closing client's watches.
pub fn forget(watches: &Watches, client: &mut super::Client) {
    let watched = std::mem::take(&mut client.watched);
    watches.remove(&watched, &client.meta);
    client.meta.dirty_cas.store(false, Ordering::SeqCst);
}

/// Ends a transaction and drops every watch (EXEC, DISCARD, RESET).
pub fn discard_state(ctx: &mut Ctx<'_>) {
    ctx.client.multi = None;
    ctx.client.meta.multi.store(-1, Ordering::Relaxed);
    forget(&ctx.shared.watches, ctx.client);
}

/// Queues a checked request of a client inside MULTI.
pub fn queue(ctx: &mut Ctx<'_>, spec: &'static CommandSpec, args: &[Bytes]) -> CmdResult {
    let Some(multi) = ctx.client.multi.as_mut() else {
        return Err(CmdError::Static("ERR EXEC without MULTI"));
    };
    multi.push(spec, args, MULTI_MAX_BYTES)?;
    let n = i64::try_from(multi.queued.len()).unwrap_or(i64::MAX);
    ctx.client.meta.multi.store(n, Ordering::Relaxed);
    Ok(Reply::simple("QUEUED"))
}

/// Redis's answer to an EXEC refused before it runs (wrong arity, NOAUTH): the error text
/// after "EXECABORT Transaction discarded because of: ", without its ERR code.
pub fn exec_abort(e: &CmdError) -> CmdError {
    let line = e.line();
    let why = line.strip_prefix(b"ERR ").unwrap_or(&line);
    let mut out = b"EXECABORT Transaction discarded because of: ".to_vec();
    out.extend_from_slice(why);
    CmdError::Raw(out)
}

/// An error while queueing: EXEC will answer EXECABORT.
pub fn flag_error(ctx: &mut Ctx<'_>) {
    if let Some(multi) = ctx.client.multi.as_mut() {
        multi.aborted = true;
    }
}

pub fn multi(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::Static("ERR MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(Multi::default());
    ctx.client.meta.multi.store(0, Ordering::Relaxed);
    Ok(Reply::ok())
}

pub fn discard(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(CmdError::Static("ERR DISCARD without MULTI"));
    }
    discard_state(ctx);
    Ok(Reply::ok())
}

pub fn watch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::Static("ERR WATCH inside MULTI is not allowed"));
    }
    let db = ctx.db();
    for key in &args[1..] {
        if ctx
            .client
            .watched
            .iter()
            .any(|w| w.db == db && w.key == *key)
        {
            continue;
        }
        let existed = ctx.shared.engine.exists(db, key)?;
        ctx.shared.watches.add(db, key, &ctx.client.meta);
        ctx.client.watched.push(Watched {
            db,
            key: key.clone(),
            existed,
        });
    }
    Ok(Reply::ok())
}

pub fn unwatch(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    forget(&ctx.shared.watches, ctx.client);
    Ok(Reply::ok())
}

/// True when the transaction must not run: a watched key was written, or expired.
fn watched_changed(ctx: &Ctx<'_>) -> Result<bool, CmdError> {
    if ctx.client.meta.dirty_cas.load(Ordering::SeqCst) {
        return Ok(true);
    }
    for w in &ctx.client.watched {
        if w.existed && !ctx.shared.engine.exists(w.db, &w.key)? {
            return Ok(true);
        }
    }
    Ok(false)
}

pub fn exec(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let Some(multi) = ctx.client.multi.take() else {
        return Err(CmdError::Static("ERR EXEC without MULTI"));
    };
    if multi.aborted {
        discard_state(ctx);
        return Err(CmdError::Static(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    // From here until the guard drops, no other client's command runs.
    let _exclusive = ctx.shared.gate.exclusive();
    let changed = watched_changed(ctx);
    // Unwatch before running, as Redis does: the transaction's own writes dirty nobody's
    // EXEC of ours. CLIENT LIST keeps showing the transaction until it has run.
    forget(&ctx.shared.watches, ctx.client);
    if changed.as_ref().map_or(true, |c| *c) {
        ctx.client.meta.multi.store(-1, Ordering::Relaxed);
        return changed.map(|_| Reply::NullArray);
    }
    let mut replies = Vec::with_capacity(multi.queued.len());
    for (spec, args) in &multi.queued {
        ReactorStats::add(&ctx.stats.commands, 1);
        ctx.after = After::Nothing;
        let result = super::run(ctx, spec, args);
        let reply = match (result, ctx.after) {
            // WAITAOF inside a transaction answers at once, as in Redis 7.2.
            (Ok(_), After::WaitAof { gsn, .. }) => Reply::Array(vec![
                Reply::Integer(i64::from(ctx.shared.engine.durable_gsn() >= gsn)),
                Reply::Integer(0),
            ]),
            (result, _) => super::reply_of(ctx, &args[0], result),
        };
        replies.push(reply);
    }
    ctx.after = After::Nothing;
    ctx.client.meta.multi.store(-1, Ordering::Relaxed);
    Ok(Reply::Array(replies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_past_its_limit_is_freed_and_the_transaction_aborted() {
        let (_, set) = super::super::lookup(b"set").unwrap();
        let args = [Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")];
        let cost = 5 + 3 * ARG_OVERHEAD;
        let mut m = Multi::default();
        m.push(set, &args, 2 * cost).unwrap();
        m.push(set, &args, 2 * cost).unwrap();
        assert_eq!((m.queued.len(), m.bytes, m.aborted), (2, 2 * cost, false));
        assert!(m.push(set, &args, 2 * cost).is_err());
        assert_eq!((m.queued.len(), m.bytes, m.aborted), (0, 0, true));
        // Aborted: later requests are answered but not kept.
        m.push(set, &args, 2 * cost).unwrap();
        assert!(m.queued.is_empty());
    }
}
