//! Per-database dispatch: the `Engine` methods send a ConstTree database here, and every
//! operation that involves more than one database (rename, copy, move, mset) comes here when
//! one of them is a ConstTree. The VarTree fast paths in `engine.rs` stay as they were.
//!
//! The operations here are written once against four primitives (`t_read`, `t_in_index`,
//! `t_put`, `t_del`) that pick the VarTree or ConstTree path per database, under the same
//! shard writer locks as the VarTree paths (a ConstTree shares its shards' locks and, on the
//! Bitcask backend, the one shared log). `t_put` and `t_del` return the write's GSN, handed
//! out where the write becomes durable (the log append, or the slot write).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use crossbeam_epoch::{self as epoch, Guard};

use crate::config::{BackendKind, TreeConfig};
use crate::const_tree::{AnyConst, CNode, ConstTree, Words, bitcask_loc, with_const};
use crate::engine::{Engine, Inner, hash_key, now_ms, writer_for};
use crate::error::{Error, Result};
use crate::fixed::FixedShard;
use crate::index::{random_live, scan_lists};
use crate::types::*;
use crate::writer::Writer;

/// Largest ConstTree value.
const MAX_CONST_VALUE: usize = 1 << 20;

impl Inner {
    /// The ConstTree of `db`, if it is one.
    #[inline]
    pub(crate) fn const_tree(&self, db: usize) -> Option<&AnyConst> {
        self.consts.get(db).and_then(Option::as_ref)
    }

    /// Whether any of `dbs` is a ConstTree.
    #[inline]
    pub(crate) fn any_const(&self, dbs: &[usize]) -> bool {
        !self.consts.is_empty() && dbs.iter().any(|&d| self.const_tree(d).is_some())
    }

    /// The live value and raw expiry (0 = none) of a key.
    fn t_read(
        &self,
        db: usize,
        hash: u64,
        key: &[u8],
        guard: &Guard,
    ) -> Result<Option<(Bytes, u64)>> {
        match self.const_tree(db) {
            Some(t) => Ok(t.read_live(self.shard_of(hash), hash, key, guard)),
            None => match self.lookup_live(db, hash, key, guard) {
                Some(e) => Ok(Some((self.entry_value(key.len(), e)?, e.expire_at_ms))),
                None => Ok(None),
            },
        }
    }

    /// Whether the key is live.
    fn t_live(&self, db: usize, hash: u64, key: &[u8], guard: &Guard) -> bool {
        match self.const_tree(db) {
            Some(t) => t.is_live(self.shard_of(hash), hash, key, guard),
            None => self.lookup_live(db, hash, key, guard).is_some(),
        }
    }

    /// Whether the key is in the index and expired.
    pub(crate) fn t_expired(&self, db: usize, hash: u64, key: &[u8], guard: &Guard) -> bool {
        match self.const_tree(db) {
            Some(t) => t.is_expired(self.shard_of(hash), hash, key, guard),
            None => self
                .lookup(db, hash, key, guard)
                .is_some_and(|e| !e.live(now_ms())),
        }
    }

    /// Whether the key is in the index, live or expired.
    fn t_in_index(&self, db: usize, hash: u64, key: &[u8], guard: &Guard) -> bool {
        match self.const_tree(db) {
            Some(t) => t.contains(self.shard_of(hash), hash, key, guard),
            None => self.lookup(db, hash, key, guard).is_some(),
        }
    }

    /// Refuses a key or value `db` cannot hold, before anything is written.
    pub(crate) fn t_check(&self, db: usize, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_sizes(key, value)?;
        if let Some(t) = self.const_tree(db) {
            t.check(key, value)?;
        }
        Ok(())
    }

    /// Writes `key = value` in `db` under the shard lock `w`; returns the write's GSN (from
    /// the log append, or the slot write on the FixedStore). Sizes are checked by the caller.
    #[allow(clippy::too_many_arguments)]
    fn t_put(
        &self,
        w: &mut Writer,
        db: usize,
        hash: u64,
        key: &[u8],
        value: &[u8],
        expire: u64,
        guard: &Guard,
    ) -> Result<Gsn> {
        match self.const_tree(db) {
            Some(t) => t.put(self, w, hash, key, value, expire, guard),
            None => self.put_locked(w, db, hash, key, value, expire, guard),
        }
    }

    /// Deletes `key` in `db` under the shard lock `w`; the tombstone's GSN, or None if the key
    /// was not in the index.
    pub(crate) fn t_del(
        &self,
        w: &mut Writer,
        db: usize,
        hash: u64,
        key: &[u8],
        guard: &Guard,
    ) -> Result<Option<Gsn>> {
        match self.const_tree(db) {
            Some(t) => t.del(self, w, hash, key, guard),
            None => self.del_locked(w, db, hash, key, guard),
        }
    }
}

/// Checks the ConstTree settings of a config before recovery.
pub(crate) fn check_config(
    trees: &[(usize, TreeConfig)],
    databases: usize,
    fixed_max_key: usize,
) -> Result<()> {
    for &(db, t) in trees {
        if db >= databases {
            return Err(Error::Config(format!(
                "tree setting for database {db}, but there are only {databases} databases"
            )));
        }
        if let TreeConfig::Const {
            value_size,
            backend,
        } = t
        {
            if value_size == 0 || value_size > MAX_CONST_VALUE {
                return Err(Error::Config(format!(
                    "database {db}: a ConstTree value size must be 1..={MAX_CONST_VALUE} bytes, \
                     got {value_size}"
                )));
            }
            if backend == BackendKind::Fixed && (fixed_max_key == 0 || fixed_max_key > 0xFFFF) {
                return Err(Error::Config(format!(
                    "fixed_max_key_bytes must be 1..=65535, got {fixed_max_key}"
                )));
            }
        }
    }
    Ok(())
}

/// Builds the ConstTrees after the Bitcask recovery: a ConstTree on the Bitcask backend takes
/// over the keys recovery put in its database's VarTree index (reading each value once); one
/// on the FixedStore recovers its slot files, encrypted under `key` if given.
pub(crate) fn attach_const_trees(
    inner: &mut Inner,
    trees: &[(usize, TreeConfig)],
    fixed_max_key: usize,
    key: Option<&crate::MasterKey>,
) -> Result<()> {
    let consts: Vec<(usize, usize, BackendKind)> = trees
        .iter()
        .filter_map(|&(db, t)| match t {
            TreeConfig::Const {
                value_size,
                backend,
            } => Some((db, value_size, backend)),
            TreeConfig::Var => None,
        })
        .collect();
    if consts.is_empty() {
        return Ok(());
    }
    let mut out: Vec<Option<AnyConst>> = (0..inner.databases).map(|_| None).collect();
    for (db, value_size, backend) in consts {
        let mut fixed = Vec::with_capacity(inner.nshards);
        let mut recovered = Vec::new();
        let mut max_gsn = 0;
        for s in 0..inner.nshards {
            if backend == BackendKind::Fixed {
                let (f, live, g) = FixedShard::open(
                    &inner.dir,
                    db,
                    s,
                    value_size,
                    fixed_max_key,
                    key,
                    &inner.logger,
                )?;
                fixed.push(Some(f));
                recovered.push(live);
                max_gsn = max_gsn.max(g);
            } else {
                fixed.push(None);
            }
        }
        let max_key = (backend == BackendKind::Fixed).then_some(fixed_max_key);
        let t = AnyConst::build(db, value_size, max_key, fixed);
        let counters = &inner.dbs[db];
        let mut guard = epoch::pin();
        for (s, live) in recovered_iter(&mut recovered, inner.nshards).enumerate() {
            let idx = &inner.shards[s].index[db];
            if backend == BackendKind::Fixed {
                if idx.front(&guard).is_some() {
                    return Err(Error::Config(format!(
                        "database {db} is configured as a ConstTree on the fixed backend but \
                         its keys are in the Bitcask logs; restore its old tree setting (or \
                         FLUSHDB it first)"
                    )));
                }
                for r in live {
                    let hash = hash_key(&r.key);
                    t.load(s, hash, &r.key, &r.value, r.expire, r.slot);
                    counters.keys.fetch_add(1, Ordering::Relaxed);
                    if r.expire != 0 {
                        counters.expires.fetch_add(1, Ordering::Relaxed);
                    }
                }
                continue;
            }
            let mut cur = idx.front(&guard);
            while let Some(e) = cur {
                let k = e.key();
                let entry = k.value().load(&guard);
                if entry.value_len as usize != value_size {
                    return Err(Error::Config(format!(
                        "database {db} is configured as a ConstTree of {value_size}-byte values \
                         but holds a value of {} bytes; restore its old tree setting",
                        entry.value_len
                    )));
                }
                let v = inner.entry_value(k.bytes().len(), entry)?;
                let loc = bitcask_loc(entry.file, entry.offset);
                t.load(s, k.hash, k.bytes(), &v, entry.expire_at_ms, loc);
                cur = e.next();
            }
            idx.clear(&mut guard, |_, _| {});
        }
        drop(guard);
        slog::info!(inner.logger, "recovered a ConstTree database"; "db" => db,
            "backend" => ?backend, "value_size" => value_size,
            "keys" => counters.keys.load(Ordering::Relaxed));
        inner.gsn.fetch_max(max_gsn, Ordering::SeqCst);
        inner.durable.fetch_max(max_gsn, Ordering::SeqCst);
        inner.requested.fetch_max(max_gsn, Ordering::SeqCst);
        out[db] = Some(t);
    }
    inner.consts = out.into_boxed_slice();
    Ok(())
}

/// The recovered keys of each shard (none on the Bitcask backend).
fn recovered_iter(
    recovered: &mut Vec<Vec<crate::fixed::Recovered>>,
    nshards: usize,
) -> impl Iterator<Item = Vec<crate::fixed::Recovered>> {
    recovered.resize_with(nshards, Vec::new);
    std::mem::take(recovered).into_iter()
}

impl Engine {
    /// (used, total) slots of a FixedStore database's slot files, summed over shards; None
    /// for any other database (test / ops hook).
    #[doc(hidden)]
    pub fn fixed_slot_usage(&self, db: usize) -> Option<(u64, u64)> {
        let t = self.inner.const_tree(db)?;
        let mut out = None;
        for f in t.fixed().iter().flatten() {
            let (u, n) = f.lock().usage();
            let o = out.get_or_insert((0, 0));
            o.0 += u;
            o.1 += n;
        }
        out
    }

    // ------------------------------------------------------------ ConstTree reads and writes

    #[inline]
    pub(crate) fn const_get(&self, t: &AnyConst, key: &[u8]) -> Option<(Bytes, Option<u64>)> {
        with_const!(t, t => self.const_get_w(t, key))
    }

    #[inline]
    pub(crate) fn const_expiry(&self, t: &AnyConst, key: &[u8]) -> Option<Option<u64>> {
        with_const!(t, t => self.const_expiry_w(t, key))
    }

    #[inline]
    pub(crate) fn const_scan(
        &self,
        t: &AnyConst,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
        expired: &mut Vec<(usize, u64, Bytes)>,
    ) -> (u64, Vec<Bytes>) {
        with_const!(t, t => self.const_scan_w(t, cursor, pattern, count, expired))
    }

    #[inline]
    pub(crate) fn const_random_key(&self, t: &AnyConst) -> Option<Bytes> {
        with_const!(t, t => self.const_random_key_w(t))
    }

    #[inline]
    pub(crate) fn const_set(
        &self,
        t: &AnyConst,
        key: &[u8],
        value: &[u8],
        opts: SetOptions,
    ) -> Result<SetOutcome> {
        with_const!(t, t => self.const_set_w(t, key, value, opts))
    }

    #[inline]
    pub(crate) fn const_delete(&self, t: &AnyConst, key: &[u8]) -> Result<(bool, Gsn)> {
        with_const!(t, t => self.const_delete_w(t, key))
    }

    #[inline]
    fn const_get_w<W: Words>(&self, t: &ConstTree<W>, key: &[u8]) -> Option<(Bytes, Option<u64>)> {
        self.const_read_live(t, key, |n| {
            let (v, x) = n.read(t.value_size);
            (v, (x != 0).then_some(x))
        })
    }

    fn const_expiry_w<W: Words>(&self, t: &ConstTree<W>, key: &[u8]) -> Option<Option<u64>> {
        self.const_read_live(t, key, |n| {
            let x = n.expire_at_ms();
            (x != 0).then_some(x)
        })
    }

    /// `f` of the live node of `key`. An expired node found on the way is deleted at once,
    /// as `read_live` does for a VarTree.
    fn const_read_live<W: Words, R>(
        &self,
        t: &ConstTree<W>,
        key: &[u8],
        f: impl FnOnce(&CNode<W>) -> R,
    ) -> Option<R> {
        let hash = hash_key(key);
        let s = self.inner.shard_of(hash);
        {
            let guard = epoch::pin();
            match t.find(s, hash, key, &guard) {
                // Most keys have no expiry: do not read the clock for them.
                Some(n) if n.expire_at_ms() == 0 || n.live(now_ms()) => return Some(f(n)),
                Some(_) => {}
                None => return None,
            }
        }
        self.inner.reap(s, t.db, &[(hash, key)]);
        None
    }

    fn const_scan_w<W: Words>(
        &self,
        t: &ConstTree<W>,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
        expired: &mut Vec<(usize, u64, Bytes)>,
    ) -> (u64, Vec<Bytes>) {
        let now = now_ms();
        let guard = epoch::pin();
        scan_lists(
            self.inner.nshards,
            cursor,
            count,
            |s, pos| t.seek(s, pos, &guard),
            |k| (k.bytes(), k.hash, k.live(now)),
            pattern,
            expired,
        )
    }

    fn const_random_key_w<W: Words>(&self, t: &ConstTree<W>) -> Option<Bytes> {
        let inner = &*self.inner;
        let guard = epoch::pin();
        random_live(
            inner.nshards,
            |s| t.next_seq(s),
            |s, pos| t.seek(s, pos, &guard),
            |k, now| k.live(now).then(|| k.bytes()),
            || inner.dbs[t.db].keys.load(Ordering::Relaxed) == 0,
        )
    }

    // ------------------------------------------------------------ ConstTree writes

    fn const_set_w<W: Words>(
        &self,
        t: &ConstTree<W>,
        key: &[u8],
        value: &[u8],
        opts: SetOptions,
    ) -> Result<SetOutcome> {
        let inner = &*self.inner;
        inner.check_sizes(key, value)?;
        t.check(key, value)?;
        let hash = hash_key(key);
        let s = inner.shard_of(hash);
        let guard = epoch::pin();
        if opts.condition == SetCondition::IfAbsent && !opts.return_old {
            // SETNX on an existing key: answered without the lock (a lock-free read), as a
            // key that exists now existed at some point during the call.
            if t.find_live(s, hash, key, &guard).is_some() {
                return Ok(SetOutcome::default());
            }
        }
        let mut w = inner.shards[s].writer.lock();
        inner.check_writable()?;
        let node = t.find(s, hash, key, &guard);
        let cur = node.filter(|n| {
            let x = n.expire_at_ms();
            x == 0 || x > now_ms()
        });
        let old = match (opts.return_old, cur) {
            (true, Some(n)) => Some(n.read(t.value_size).0),
            _ => None,
        };
        if !opts.condition.holds(cur.is_some()) {
            return Ok(SetOutcome::not_written(old));
        }
        let expire = opts.expiry.raw_ms(cur.map_or(0, |n| n.expire_at_ms()));
        let gsn = t.put_with(inner, &mut w, hash, key, value, expire, &guard, node)?;
        drop(w);
        self.after_write(gsn);
        Ok(SetOutcome::written(old, gsn))
    }

    fn const_delete_w<W: Words>(&self, t: &ConstTree<W>, key: &[u8]) -> Result<(bool, Gsn)> {
        let inner = &*self.inner;
        let hash = hash_key(key);
        let s = inner.shard_of(hash);
        let mut w = inner.shards[s].writer.lock();
        inner.check_writable()?;
        let guard = epoch::pin();
        let Some(node) = t.find(s, hash, key, &guard) else {
            return Ok((false, 0));
        };
        let live = node.live(now_ms());
        let gsn = t.del(inner, &mut w, hash, key, &guard)?.unwrap_or(0);
        drop(w);
        self.after_write(gsn);
        Ok((live, gsn))
    }

    // ------------------------------------------------------------ any tree

    /// `update` for a ConstTree database.
    pub(crate) fn update_any<R>(
        &self,
        db: usize,
        key: &[u8],
        f: impl FnOnce(Option<Current>) -> (Update, R),
    ) -> Result<(R, Gsn)> {
        let inner = &*self.inner;
        let hash = hash_key(key);
        let mut w = inner.shards[inner.shard_of(hash)].writer.lock();
        inner.check_writable()?;
        let guard = epoch::pin();
        let cur = inner.t_read(db, hash, key, &guard)?;
        let (u, r) = f(cur.as_ref().map(|(v, x)| Current {
            value: v.clone(),
            expire_at_ms: (*x != 0).then_some(*x),
        }));
        let gsn = match u {
            Update::Keep => 0,
            Update::Delete => {
                if inner.t_in_index(db, hash, key, &guard) {
                    inner.t_del(&mut w, db, hash, key, &guard)?.unwrap_or(0)
                } else {
                    0
                }
            }
            Update::Set { value, expiry } => {
                inner.t_check(db, key, &value)?;
                let expire = expiry.raw_ms(cur.as_ref().map_or(0, |c| c.1));
                inner.t_put(&mut w, db, hash, key, &value, expire, &guard)?
            }
            Update::SetExpiry(at) => match cur {
                None => 0,
                Some((v, _)) => match at {
                    Some(x) if x <= now_ms() => {
                        inner.t_del(&mut w, db, hash, key, &guard)?.unwrap_or(0)
                    }
                    _ => {
                        let expire = at.unwrap_or(0);
                        inner.t_put(&mut w, db, hash, key, &v, expire, &guard)?
                    }
                },
            },
        };
        drop(w);
        self.after_write(gsn);
        Ok((r, gsn))
    }

    /// `rename` when the database is a ConstTree.
    pub(crate) fn rename_any(
        &self,
        db: usize,
        src: &[u8],
        dst: &[u8],
        only_if_absent: bool,
    ) -> Result<(RenameOutcome, Gsn)> {
        let inner = &*self.inner;
        inner.check_sizes(dst, b"")?;
        let (hs, hd) = (hash_key(src), hash_key(dst));
        let mut locks = inner.lock_shards(&[hs, hd]);
        inner.check_writable()?;
        let guard = epoch::pin();
        let Some((value, expire)) = inner.t_read(db, hs, src, &guard)? else {
            return Ok((RenameOutcome::NoSuchKey, 0));
        };
        if src == dst {
            let outcome = if only_if_absent {
                RenameOutcome::TargetExists
            } else {
                RenameOutcome::Renamed
            };
            return Ok((outcome, 0));
        }
        if only_if_absent && inner.t_live(db, hd, dst, &guard) {
            return Ok((RenameOutcome::TargetExists, 0));
        }
        inner.t_check(db, dst, &value)?;
        let wd = writer_for(&mut locks, inner.shard_of(hd));
        let g1 = inner.t_put(wd, db, hd, dst, &value, expire, &guard)?;
        let ws = writer_for(&mut locks, inner.shard_of(hs));
        let g2 = inner.t_del(ws, db, hs, src, &guard)?.unwrap_or(g1);
        drop(locks);
        self.after_write(g2);
        Ok((RenameOutcome::Renamed, g2))
    }

    /// `copy` when either database is a ConstTree.
    pub(crate) fn copy_any(
        &self,
        src_db: usize,
        src: &[u8],
        dst_db: usize,
        dst: &[u8],
        replace: bool,
    ) -> Result<(bool, Gsn)> {
        let inner = &*self.inner;
        inner.check_sizes(dst, b"")?;
        let (hs, hd) = (hash_key(src), hash_key(dst));
        let mut locks = inner.lock_shards(&[hs, hd]);
        inner.check_writable()?;
        let guard = epoch::pin();
        let Some((value, expire)) = inner.t_read(src_db, hs, src, &guard)? else {
            return Ok((false, 0));
        };
        if src_db == dst_db && src == dst {
            return Ok((false, 0));
        }
        if !replace && inner.t_live(dst_db, hd, dst, &guard) {
            return Ok((false, 0));
        }
        inner.t_check(dst_db, dst, &value)?;
        let wd = writer_for(&mut locks, inner.shard_of(hd));
        let gsn = inner.t_put(wd, dst_db, hd, dst, &value, expire, &guard)?;
        drop(locks);
        self.after_write(gsn);
        Ok((true, gsn))
    }

    /// `move_key` when either database is a ConstTree.
    pub(crate) fn move_any(&self, src_db: usize, key: &[u8], dst_db: usize) -> Result<(bool, Gsn)> {
        let inner = &*self.inner;
        let hash = hash_key(key);
        let mut w = inner.shards[inner.shard_of(hash)].writer.lock();
        inner.check_writable()?;
        let guard = epoch::pin();
        let Some((value, expire)) = inner.t_read(src_db, hash, key, &guard)? else {
            return Ok((false, 0));
        };
        if inner.t_live(dst_db, hash, key, &guard) {
            return Ok((false, 0));
        }
        inner.t_check(dst_db, key, &value)?;
        let g1 = inner.t_put(&mut w, dst_db, hash, key, &value, expire, &guard)?;
        let g2 = inner
            .t_del(&mut w, src_db, hash, key, &guard)?
            .unwrap_or(g1);
        drop(w);
        self.after_write(g2);
        Ok((true, g2))
    }

    /// `mset` on a ConstTree database: every value is checked before anything is written.
    pub(crate) fn mset_any(
        &self,
        db: usize,
        pairs: &[(&[u8], &[u8])],
        only_if_none_exist: bool,
    ) -> Result<(bool, Gsn)> {
        let inner = &*self.inner;
        for (k, v) in pairs {
            inner.t_check(db, k, v)?;
        }
        let hashes: Vec<u64> = pairs.iter().map(|(k, _)| hash_key(k)).collect();
        let mut locks = inner.lock_shards(&hashes);
        inner.check_writable()?;
        let guard = epoch::pin();
        if only_if_none_exist
            && pairs
                .iter()
                .zip(&hashes)
                .any(|((k, _), &h)| inner.t_live(db, h, k, &guard))
        {
            return Ok((false, 0));
        }
        let mut gsn = 0;
        for ((k, v), &h) in pairs.iter().zip(&hashes) {
            let w = writer_for(&mut locks, inner.shard_of(h));
            gsn = inner.t_put(w, db, h, k, v, 0, &guard)?;
        }
        drop(locks);
        self.after_write(gsn);
        Ok((true, gsn))
    }
}
