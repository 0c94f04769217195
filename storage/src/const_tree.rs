//! ConstTree: a database whose values all have one size (set in config) and live inline in
//! the index node, read lock-free under a SeqLock. Disk is for durability only: a read never
//! touches it. The values are made durable on the Bitcask log (the engine's one shared log,
//! records as for a VarTree, GSNs from the log append) or on the FixedStore (`fixed.rs`, one
//! slot file per shard, GSNs taken under the slot file's lock).
//!
//! SeqLock (hazard 6): the value is stored as `AtomicU64` words, so a read racing a write is a
//! race on atomics, never on plain bytes. Writers are serialised by the shard's writer lock;
//! a writer makes `version` odd, fences (Release), stores the words (Relaxed), fences
//! (Release) and makes `version` even again. A reader loads `version` (Acquire), the words
//! (Relaxed), fences (Acquire) and re-checks `version`; it retries until both loads agree and
//! are even.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use bytes::Bytes;
use crossbeam_epoch::Guard;
use crossbeam_skiplist::base::SkipList;
use parking_lot::Mutex;

use crate::engine::{Inner, now_ms};
use crate::error::{Error, Result};
use crate::fixed::FixedShard;
use crate::index::{sweep_list, take_seq};
use crate::lookup::{Hashed, LookupTable};
use crate::record::{FLAG_TOMBSTONE, Header, RECORD_HEADER, VTYPE_STRING};
use crate::types::Gsn;
use crate::writer::Writer;

/// Keys up to this many bytes live inside the node (22: the key field is then 24 bytes, as
/// in the VarTree's index).
const INLINE_KEY: usize = 22;

enum KeyBytes {
    Inline { len: u8, buf: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

/// Where a node keeps its value words: inline in the node (an array, chosen by the value
/// size, so the node is one allocation and one place in memory) or, for large values, in a
/// boxed slice.
pub(crate) trait Words: Send + Sync + 'static {
    /// Whether the words live in their own allocation.
    const BOXED: bool;
    fn with_len(n: usize) -> Self;
    fn words(&self) -> &[AtomicU64];
}

impl<const N: usize> Words for [AtomicU64; N] {
    const BOXED: bool = false;
    fn with_len(n: usize) -> Self {
        debug_assert!(n <= N);
        std::array::from_fn(|_| AtomicU64::new(0))
    }
    #[inline]
    fn words(&self) -> &[AtomicU64] {
        self
    }
}

impl Words for Box<[AtomicU64]> {
    const BOXED: bool = true;
    fn with_len(n: usize) -> Self {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }
    #[inline]
    fn words(&self) -> &[AtomicU64] {
        self
    }
}

/// A ConstTree index node: key, SeqLock version, expiry, backend location, the value words
/// and the node's sequence number, which alone orders the skiplist: in insertion order, as
/// the VarTree's index (see index.rs), so a new key's insert walks the rightmost path the
/// previous one left in the CPU cache.
///
/// `repr(C)`: the key and its hash first (a lookup reads them), the sequence last, where
/// crossbeam's tower follows it (a skiplist walk reads both at every node it passes).
#[repr(C)]
pub(crate) struct CNode<W> {
    key: KeyBytes,
    pub hash: u64,
    /// SeqLock version: odd while a writer is changing `expire` or `words`.
    version: AtomicU64,
    /// Absolute UNIX ms, 0 = none. Part of the SeqLock-protected state.
    expire: AtomicU64,
    /// Where the durable copy is: Bitcask `file << 32 | offset`, FixedStore slot number.
    /// Read and written only under the shard's writer lock.
    loc: AtomicU64,
    /// The value, little-endian, zero-padded to whole words.
    words: W,
    /// Unique in its shard, set by `ConstShard::insert` and kept for the node's life.
    pub seq: u64,
}

impl<W: Words> CNode<W> {
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.key {
            KeyBytes::Inline { len, buf } => &buf[..*len as usize],
            KeyBytes::Heap(b) => b,
        }
    }

    #[inline]
    pub(crate) fn expire_at_ms(&self) -> u64 {
        self.expire.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn live(&self, now: u64) -> bool {
        let x = self.expire_at_ms();
        x == 0 || x > now
    }

    pub(crate) fn loc(&self) -> u64 {
        self.loc.load(Ordering::Relaxed)
    }

    pub(crate) fn set_loc(&self, loc: u64) {
        self.loc.store(loc, Ordering::Relaxed);
    }

    /// A consistent (value, expiry) pair: retries while a writer is mid-update.
    pub(crate) fn read(&self, value_size: usize) -> (Bytes, u64) {
        // Exactly value_size bytes: a Vec whose length is its capacity becomes Bytes without
        // a second allocation.
        let mut out = vec![0u8; value_size];
        loop {
            let v1 = self.version.load(Ordering::Acquire);
            if v1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let mut chunks = out.chunks_mut(8);
            for (w, chunk) in self.words.words().iter().zip(&mut chunks) {
                let b = w.load(Ordering::Relaxed).to_le_bytes();
                chunk.copy_from_slice(&b[..chunk.len()]);
            }
            let x = self.expire.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.version.load(Ordering::Relaxed) == v1 {
                return (Bytes::from(out), x);
            }
            std::hint::spin_loop();
        }
    }

    /// Publishes a new value and expiry. Caller holds the shard's writer lock (one writer).
    fn write(&self, value: &[u8], expire: u64) {
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        store_words(self.words.words(), value);
        self.expire.store(expire, Ordering::Relaxed);
        fence(Ordering::Release);
        self.version.store(v.wrapping_add(2), Ordering::Release);
    }
}

fn store_words(words: &[AtomicU64], value: &[u8]) {
    for (i, w) in words.iter().enumerate() {
        let mut b = [0u8; 8];
        let from = (i * 8).min(value.len());
        let to = (i * 8 + 8).min(value.len());
        b[..to - from].copy_from_slice(&value[from..to]);
        w.store(u64::from_le_bytes(b), Ordering::Relaxed);
    }
}

impl<W: Words> Hashed for CNode<W> {
    #[inline]
    fn hash(&self) -> u64 {
        self.hash
    }
}

impl<W: Words> PartialEq for CNode<W> {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl<W: Words> Eq for CNode<W> {}

impl<W: Words> PartialOrd for CNode<W> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<W: Words> Ord for CNode<W> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.seq.cmp(&other.seq)
    }
}

/// Ordered walks start at a sequence number.
impl<W: Words> std::borrow::Borrow<u64> for CNode<W> {
    fn borrow(&self) -> &u64 {
        &self.seq
    }
}

fn make_node<W: Words>(
    hash: u64,
    key: &[u8],
    value: &[u8],
    expire: u64,
    loc: u64,
    nwords: usize,
) -> CNode<W> {
    let key = if key.len() <= INLINE_KEY {
        let mut buf = [0u8; INLINE_KEY];
        buf[..key.len()].copy_from_slice(key);
        KeyBytes::Inline {
            len: key.len() as u8,
            buf,
        }
    } else {
        KeyBytes::Heap(key.into())
    };
    let words = W::with_len(nwords);
    store_words(words.words(), value);
    CNode {
        key,
        hash,
        version: AtomicU64::new(0),
        expire: AtomicU64::new(expire),
        loc: AtomicU64::new(loc),
        words,
        seq: 0,
    }
}

/// Packs a Bitcask location.
pub(crate) fn bitcask_loc(file: u32, offset: u32) -> u64 {
    ((file as u64) << 32) | offset as u64
}

/// One shard's slice of a ConstTree: a skiplist in insertion order (scans) and an
/// open-addressing table from hash to skiplist node (point lookups: a probe or two instead of
/// a walk).
pub(crate) struct ConstShard<W: Words> {
    list: SkipList<CNode<W>, ()>,
    table: LookupTable<CNode<W>>,
    /// The sequence number of the next insert (the first is 1). Advanced under the shard
    /// lock only (every insert holds it, or runs alone at start-up); read lock-free by
    /// RANDOMKEY.
    next_seq: AtomicU64,
}

impl<W: Words> ConstShard<W> {
    /// The node of (`hash`, `key`), if present. Lock-free.
    #[inline]
    fn get<'a: 'g, 'g>(&'a self, hash: u64, key: &[u8], guard: &'g Guard) -> Option<&'g CNode<W>> {
        self.table.find(hash, guard, |k| k.bytes() == key)
    }

    /// The lookup table, for prefetching a batch of probes (`Engine::prefetch`).
    pub(crate) fn table(&self) -> &LookupTable<CNode<W>> {
        &self.table
    }

    /// Links a node whose key is not present, as the list's last. Caller holds the shard
    /// lock.
    fn insert(&self, mut node: CNode<W>, guard: &Guard) {
        node.seq = take_seq(&self.next_seq);
        let e = self.list.insert(node, (), guard);
        let p = e.key() as *const CNode<W>;
        e.release(guard);
        // SAFETY: `p` is the key of the node just linked; `remove` and `clear_table` take
        // nodes out of the table before they are unlinked.
        unsafe { self.table.insert(p, guard) };
    }

    /// Unlinks `node` (found under the same lock hold). Caller holds the shard lock.
    fn remove(&self, node: &CNode<W>, guard: &Guard) {
        // Out of the table before out of the skiplist: see `LookupTable::find`.
        self.table.remove(node, guard);
        if let Some(e) = self.list.remove(node, guard) {
            e.release(guard);
        }
    }

    /// Empties the table (before the caller unlinks every node). Caller holds the shard lock.
    fn clear_table(&self, guard: &Guard) {
        self.table.clear(guard);
    }
}

/// A ConstTree database whose nodes keep their value in `W`.
pub(crate) struct ConstTree<W: Words> {
    pub db: usize,
    pub value_size: usize,
    nwords: usize,
    /// Longest key a FixedStore slot holds (None on the Bitcask backend).
    max_key: Option<usize>,
    pub shards: Box<[ConstShard<W>]>,
    /// Per shard, the FixedStore slot file (Fixed backend), or None (Bitcask). Locked only
    /// while the shard's writer lock is held, or by the sync round (never the other way).
    pub fixed: Box<[Option<Mutex<FixedShard>>]>,
    /// Where the expiry sweep resumes in each shard: the sequence number to resume at.
    sweep_pos: Mutex<Vec<u64>>,
}

impl<W: Words> ConstTree<W> {
    pub(crate) fn new(
        db: usize,
        value_size: usize,
        max_key: Option<usize>,
        fixed: Vec<Option<FixedShard>>,
    ) -> ConstTree<W> {
        let n = fixed.len();
        let shards: Box<[ConstShard<W>]> = (0..n)
            .map(|_| ConstShard {
                list: SkipList::new(crossbeam_epoch::default_collector().clone()),
                table: LookupTable::new(),
                next_seq: AtomicU64::new(1),
            })
            .collect();
        let fixed = fixed.into_iter().map(|f| f.map(Mutex::new)).collect();
        ConstTree {
            db,
            value_size,
            nwords: value_size.div_ceil(8),
            max_key,
            shards,
            fixed,
            sweep_pos: Mutex::new(vec![0; n]),
        }
    }

    /// Refuses a value of the wrong size, or a key too long for a FixedStore slot.
    #[inline]
    pub(crate) fn check(&self, key: &[u8], value: &[u8]) -> Result<()> {
        if let Some(max) = self.max_key
            && key.len() > max
        {
            return Err(Error::KeyTooLarge {
                got: key.len(),
                max,
            });
        }
        if value.len() != self.value_size {
            return Err(Error::ValueSize {
                db: self.db,
                expected: self.value_size,
                got: value.len(),
            });
        }
        Ok(())
    }

    /// The node of a key (live or expired). Lock-free.
    #[inline]
    pub(crate) fn find<'a: 'g, 'g>(
        &'a self,
        shard: usize,
        hash: u64,
        key: &[u8],
        guard: &'g Guard,
    ) -> Option<&'g CNode<W>> {
        self.shards[shard].get(hash, key, guard)
    }

    /// The live node of a key.
    #[inline]
    pub(crate) fn find_live<'a: 'g, 'g>(
        &'a self,
        shard: usize,
        hash: u64,
        key: &[u8],
        guard: &'g Guard,
    ) -> Option<&'g CNode<W>> {
        // Most keys have no expiry: do not read the clock for them.
        self.find(shard, hash, key, guard).filter(|n| {
            let x = n.expire_at_ms();
            x == 0 || x > now_ms()
        })
    }

    /// The first node of `shard` whose sequence number is >= `seq`, for ordered walks.
    pub(crate) fn seek<'a: 'g, 'g>(
        &'a self,
        shard: usize,
        seq: u64,
        guard: &'g Guard,
    ) -> Option<crossbeam_skiplist::base::Entry<'a, 'g, CNode<W>, ()>> {
        self.shards[shard]
            .list
            .lower_bound(Bound::Included(&seq), guard)
    }

    /// The sequence number `shard`'s next insert gets: every node's is below it.
    pub(crate) fn next_seq(&self, shard: usize) -> u64 {
        self.shards[shard].next_seq.load(Ordering::Relaxed)
    }

    /// Writes `key = value` under the shard's writer lock `w`; returns the write's GSN. The
    /// value size is checked by the caller (`check_value`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put(
        &self,
        inner: &Inner,
        w: &mut Writer,
        hash: u64,
        key: &[u8],
        value: &[u8],
        expire: u64,
        guard: &Guard,
    ) -> Result<Gsn> {
        let existing = self.find(inner.shard_of(hash), hash, key, guard);
        self.put_with(inner, w, hash, key, value, expire, guard, existing)
    }

    /// `put` with the key's node already looked up under the same lock hold.
    ///
    /// The GSN comes from where the write becomes durable: on the Bitcask backend from the
    /// shared log's append (under the log lock), on the FixedStore from the slot write (under
    /// the slot file's lock), so a sync round that read `Inner::gsn` finds every write at or
    /// below it in the log buffer or in a slot file it then syncs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put_with(
        &self,
        inner: &Inner,
        w: &mut Writer,
        hash: u64,
        key: &[u8],
        value: &[u8],
        expire: u64,
        guard: &Guard,
        existing: Option<&CNode<W>>,
    ) -> Result<Gsn> {
        debug_assert_eq!(value.len(), self.value_size);
        let s = inner.shard_of(hash);
        let (loc, gsn) = match &self.fixed[s] {
            None => {
                let h = Header {
                    gsn: 0,
                    expire_at_ms: expire,
                    flags: 0,
                    vtype: VTYPE_STRING,
                    db: self.db as u16,
                    key_len: key.len() as u32,
                    value_len: value.len() as u32,
                };
                let (file, off, gsn) = w.append(inner, &h, key, value)?;
                if let Some(n) = existing {
                    inner.add_dead((n.loc() >> 32) as u32, self.record_len(key.len()));
                }
                (bitcask_loc(file, off), gsn)
            }
            Some(f) => {
                let mut f = f.lock();
                let (slot, gsn) = f.write(&inner.gsn, expire, 0, key, value)?;
                if let Some(n) = existing {
                    f.free_after(gsn, n.loc());
                }
                (slot, gsn)
            }
        };
        let counters = &inner.dbs[self.db];
        match existing {
            Some(n) => {
                match (n.expire_at_ms() != 0, expire != 0) {
                    (false, true) => {
                        counters.expires.fetch_add(1, Ordering::Relaxed);
                    }
                    (true, false) => {
                        counters.expires.fetch_sub(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                n.write(value, expire);
                n.set_loc(loc);
            }
            None => {
                let node = make_node(hash, key, value, expire, loc, self.nwords);
                self.shards[s].insert(node, guard);
                counters.keys.fetch_add(1, Ordering::Relaxed);
                if expire != 0 {
                    counters.expires.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(gsn)
    }

    /// Deletes `key` (live or expired) under the shard's writer lock, leaving a durable
    /// tombstone. Returns the tombstone's GSN (from the log append or the slot write, as in
    /// `put_with`), or None if the key was not in the index.
    pub(crate) fn del(
        &self,
        inner: &Inner,
        w: &mut Writer,
        hash: u64,
        key: &[u8],
        guard: &Guard,
    ) -> Result<Option<Gsn>> {
        let s = inner.shard_of(hash);
        let Some(node) = self.find(s, hash, key, guard) else {
            return Ok(None);
        };
        let gsn = match &self.fixed[s] {
            None => {
                let h = Header {
                    gsn: 0,
                    expire_at_ms: 0,
                    flags: FLAG_TOMBSTONE,
                    vtype: VTYPE_STRING,
                    db: self.db as u16,
                    key_len: key.len() as u32,
                    value_len: 0,
                };
                let (file, _, gsn) = w.append(inner, &h, key, b"")?;
                inner.add_dead((node.loc() >> 32) as u32, self.record_len(key.len()));
                inner.add_dead(file, h.record_len() as u64);
                gsn
            }
            Some(f) => {
                let mut f = f.lock();
                let (tomb, gsn) = f.write(&inner.gsn, 0, FLAG_TOMBSTONE, key, &[])?;
                f.free_after(gsn, node.loc());
                f.tomb_after(gsn, tomb);
                gsn
            }
        };
        let counters = &inner.dbs[self.db];
        if node.expire_at_ms() != 0 {
            counters.expires.fetch_sub(1, Ordering::Relaxed);
        }
        counters.keys.fetch_sub(1, Ordering::Relaxed);
        self.shards[s].remove(node, guard);
        Ok(Some(gsn))
    }

    /// FLUSHDB / FLUSHALL on the FixedStore, under every shard's writer lock: zeroes every
    /// used slot's header (that is what makes the flush durable there). The caller does this
    /// before its flush marker takes a GSN from the log, so a sync round that publishes that
    /// GSN (it reads `Inner::gsn`, then takes each slot file's lock) finds the zeroing done
    /// and syncs it.
    pub(crate) fn zero_slots(&self) -> Result<()> {
        for f in self.fixed.iter().flatten() {
            f.lock().zero_all()?;
        }
        Ok(())
    }

    /// Removes every key of shard `s` from memory (FLUSHDB / FLUSHALL) under its writer lock.
    /// On the Bitcask backend the caller's flush marker makes it durable; on the FixedStore
    /// `zero_slots` did.
    pub(crate) fn clear_shard(&self, inner: &Inner, s: usize, guard: &Guard) -> Result<()> {
        self.shards[s].clear_table(guard);
        let list = &self.shards[s].list;
        let mut cur = list.front(guard);
        while let Some(e) = cur {
            if self.fixed[s].is_none() {
                let loc = e.key().loc();
                inner.add_dead((loc >> 32) as u32, self.record_len(e.key().bytes().len()));
            }
            e.remove();
            cur = e.next();
        }
        Ok(())
    }

    /// Inserts a recovered key (start-up only, no concurrent access).
    pub(crate) fn load(
        &self,
        s: usize,
        hash: u64,
        key: &[u8],
        value: &[u8],
        expire: u64,
        loc: u64,
    ) {
        let guard = crossbeam_epoch::pin();
        // Recovery hands each key over once: a second node of a key would be a second node
        // in the list too (it is ordered by sequence, not by key).
        debug_assert!(self.shards[s].get(hash, key, &guard).is_none());
        let node = make_node(hash, key, value, expire, loc, self.nwords);
        self.shards[s].insert(node, &guard);
    }

    /// Bytes of this tree's slot files (0 on the Bitcask backend: its logs are counted there).
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.fixed
            .iter()
            .flatten()
            .map(|f| f.lock().file_bytes())
            .sum()
    }

    fn record_len(&self, key_len: usize) -> u64 {
        (RECORD_HEADER + key_len + self.value_size) as u64
    }

    /// Bytes of memory per key, estimated: the skiplist node (key inline up to 22 bytes,
    /// average tower), the value words' allocation and allocator overhead.
    pub(crate) fn bytes_per_key(&self) -> u64 {
        let words = if W::BOXED {
            self.nwords * 8 + 16 // a boxed slice: its own allocation
        } else {
            0
        };
        (std::mem::size_of::<CNode<W>>() + 40 + words) as u64
    }

    /// One bounded step of the expiry sweep: up to 64 nodes per shard.
    pub(crate) fn sweep_step(&self, inner: &Inner) {
        if inner.dbs[self.db].expires.load(Ordering::Relaxed) == 0 {
            return;
        }
        for s in 0..self.shards.len() {
            let expired = {
                let mut pos = self.sweep_pos.lock();
                let guard = crossbeam_epoch::pin();
                sweep_list(
                    &mut pos[s],
                    |pos| self.seek(s, pos, &guard),
                    |k, now| (!k.live(now)).then(|| (k.hash, k.bytes())),
                )
            };
            inner.reap(s, self.db, &expired);
        }
    }
}

/// A ConstTree of any value size: the node layout (value words inline, or boxed beyond 256
/// bytes) is picked from the value size when the database is opened.
pub(crate) enum AnyConst {
    W1(ConstTree<[AtomicU64; 1]>),
    W2(ConstTree<[AtomicU64; 2]>),
    W4(ConstTree<[AtomicU64; 4]>),
    W8(ConstTree<[AtomicU64; 8]>),
    W16(ConstTree<[AtomicU64; 16]>),
    W32(ConstTree<[AtomicU64; 32]>),
    Heap(ConstTree<Box<[AtomicU64]>>),
}

/// Runs `$body` with `$x` bound to the typed tree inside an `AnyConst`.
macro_rules! with_const {
    ($t:expr, $x:ident => $body:expr) => {
        match $t {
            $crate::const_tree::AnyConst::W1($x) => $body,
            $crate::const_tree::AnyConst::W2($x) => $body,
            $crate::const_tree::AnyConst::W4($x) => $body,
            $crate::const_tree::AnyConst::W8($x) => $body,
            $crate::const_tree::AnyConst::W16($x) => $body,
            $crate::const_tree::AnyConst::W32($x) => $body,
            $crate::const_tree::AnyConst::Heap($x) => $body,
        }
    };
}
pub(crate) use with_const;

impl AnyConst {
    pub(crate) fn build(
        db: usize,
        value_size: usize,
        max_key: Option<usize>,
        fixed: Vec<Option<FixedShard>>,
    ) -> AnyConst {
        match value_size.div_ceil(8) {
            0..=1 => AnyConst::W1(ConstTree::new(db, value_size, max_key, fixed)),
            2 => AnyConst::W2(ConstTree::new(db, value_size, max_key, fixed)),
            3..=4 => AnyConst::W4(ConstTree::new(db, value_size, max_key, fixed)),
            5..=8 => AnyConst::W8(ConstTree::new(db, value_size, max_key, fixed)),
            9..=16 => AnyConst::W16(ConstTree::new(db, value_size, max_key, fixed)),
            17..=32 => AnyConst::W32(ConstTree::new(db, value_size, max_key, fixed)),
            _ => AnyConst::Heap(ConstTree::new(db, value_size, max_key, fixed)),
        }
    }

    pub(crate) fn db(&self) -> usize {
        with_const!(self, t => t.db)
    }

    pub(crate) fn value_size(&self) -> usize {
        with_const!(self, t => t.value_size)
    }

    pub(crate) fn fixed(&self) -> &[Option<Mutex<FixedShard>>] {
        with_const!(self, t => &t.fixed)
    }

    #[inline]
    pub(crate) fn check(&self, key: &[u8], value: &[u8]) -> Result<()> {
        with_const!(self, t => t.check(key, value))
    }

    /// The live value and raw expiry of a key.
    pub(crate) fn read_live(
        &self,
        shard: usize,
        hash: u64,
        key: &[u8],
        guard: &Guard,
    ) -> Option<(Bytes, u64)> {
        with_const!(self, t => t
            .find_live(shard, hash, key, guard)
            .map(|n| n.read(t.value_size)))
    }

    /// Whether the key is in the tree and expired.
    pub(crate) fn is_expired(&self, shard: usize, hash: u64, key: &[u8], guard: &Guard) -> bool {
        with_const!(self, t => t
            .find(shard, hash, key, guard)
            .is_some_and(|n| !n.live(now_ms())))
    }

    pub(crate) fn is_live(&self, shard: usize, hash: u64, key: &[u8], guard: &Guard) -> bool {
        with_const!(self, t => t.find_live(shard, hash, key, guard).is_some())
    }

    pub(crate) fn contains(&self, shard: usize, hash: u64, key: &[u8], guard: &Guard) -> bool {
        with_const!(self, t => t.find(shard, hash, key, guard).is_some())
    }

    /// The backend location of a key's durable copy (compaction's compare-and-swap).
    pub(crate) fn loc_of(&self, shard: usize, hash: u64, key: &[u8], guard: &Guard) -> Option<u64> {
        with_const!(self, t => t.find(shard, hash, key, guard).map(|n| n.loc()))
    }

    pub(crate) fn set_loc_of(&self, shard: usize, hash: u64, key: &[u8], loc: u64, guard: &Guard) {
        with_const!(self, t => {
            if let Some(n) = t.find(shard, hash, key, guard) {
                n.set_loc(loc);
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put(
        &self,
        inner: &Inner,
        w: &mut Writer,
        hash: u64,
        key: &[u8],
        value: &[u8],
        expire: u64,
        guard: &Guard,
    ) -> Result<Gsn> {
        with_const!(self, t => t.put(inner, w, hash, key, value, expire, guard))
    }

    pub(crate) fn del(
        &self,
        inner: &Inner,
        w: &mut Writer,
        hash: u64,
        key: &[u8],
        guard: &Guard,
    ) -> Result<Option<Gsn>> {
        with_const!(self, t => t.del(inner, w, hash, key, guard))
    }

    pub(crate) fn clear_shard(&self, inner: &Inner, s: usize, guard: &Guard) -> Result<()> {
        with_const!(self, t => t.clear_shard(inner, s, guard))
    }

    pub(crate) fn zero_slots(&self) -> Result<()> {
        with_const!(self, t => t.zero_slots())
    }

    pub(crate) fn load(
        &self,
        s: usize,
        hash: u64,
        key: &[u8],
        value: &[u8],
        expire: u64,
        loc: u64,
    ) {
        with_const!(self, t => t.load(s, hash, key, value, expire, loc))
    }

    pub(crate) fn bytes_per_key(&self) -> u64 {
        with_const!(self, t => t.bytes_per_key())
    }

    pub(crate) fn disk_bytes(&self) -> u64 {
        with_const!(self, t => t.disk_bytes())
    }

    pub(crate) fn sweep_step(&self, inner: &Inner) {
        with_const!(self, t => t.sweep_step(inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_odd_sizes() {
        for size in [0usize, 1, 7, 8, 9, 100] {
            let v: Vec<u8> = (0..size).map(|i| i as u8 ^ 0x5A).collect();
            let n: CNode<Box<[AtomicU64]>> = make_node(1, b"k", &v, 5, 0, size.div_ceil(8));
            assert_eq!(n.read(size), (Bytes::from(v.clone()), 5));
            let n: CNode<[AtomicU64; 16]> = make_node(1, b"k", &v, 5, 0, size.div_ceil(8));
            assert_eq!(n.read(size), (Bytes::from(v.clone()), 5));
            let v2: Vec<u8> = v.iter().map(|b| !b).collect();
            n.write(&v2, 0);
            assert_eq!(n.read(size), (Bytes::from(v2), 0));
            assert_eq!(n.version.load(Ordering::Relaxed), 2);
        }
    }

    /// The list is in insertion order whatever the hashes, a re-inserted key goes last, and
    /// `seek` and `next_seq` speak sequence numbers.
    #[test]
    fn the_list_is_in_insertion_order() {
        let t: ConstTree<[AtomicU64; 1]> = ConstTree::new(0, 8, None, vec![None]);
        let shard = &t.shards[0];
        let g = crossbeam_epoch::pin();
        // Hashes falling, rising and equal: none of them may order the list.
        let hashes = [900u64, 5, 77, 5, u64::MAX, 0];
        for (i, &h) in hashes.iter().enumerate() {
            let k = format!("k{i}");
            shard.insert(make_node(h, k.as_bytes(), b"v", 0, 0, 1), &g);
        }
        let order = |g: &Guard| -> Vec<(u64, Vec<u8>)> {
            let mut out = Vec::new();
            let mut cur = shard.list.front(g);
            while let Some(e) = cur {
                out.push((e.key().seq, e.key().bytes().to_vec()));
                cur = e.next();
            }
            out
        };
        let keys: Vec<Vec<u8>> = order(&g).into_iter().map(|(_, k)| k).collect();
        let want: Vec<Vec<u8>> = (0..6).map(|i| format!("k{i}").into_bytes()).collect();
        assert_eq!(keys, want);
        // k1 leaves and comes back: it is now the last, with a new number.
        let k1 = shard.get(5, b"k1", &g).unwrap();
        assert_eq!(k1.seq, 2);
        shard.remove(k1, &g);
        shard.insert(make_node(5, b"k1", b"w", 0, 0, 1), &g);
        let after = order(&g);
        assert_eq!(after.last().unwrap(), &(7, b"k1".to_vec()));
        assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(t.next_seq(0), 8);
        // A walk resumes at a sequence number: k2 is the third insert.
        assert_eq!(t.seek(0, 3, &g).unwrap().key().bytes(), b"k2");
        assert_eq!(t.seek(0, 4, &g).unwrap().key().bytes(), b"k3");
        assert_eq!(shard.get(5, b"k3", &g).unwrap().seq, 4);
    }

    #[test]
    fn node_layout() {
        assert_eq!(std::mem::size_of::<KeyBytes>(), 24);
        assert_eq!(std::mem::size_of::<CNode<[AtomicU64; 16]>>(), 192);
        // The skiplist node is (key, refs: usize, tower): the sequence is the key's last
        // word, next to the tower, whatever the value's size.
        assert_eq!(
            std::mem::offset_of!(CNode<[AtomicU64; 16]>, seq) + 8,
            std::mem::size_of::<CNode<[AtomicU64; 16]>>()
        );
        assert_eq!(
            std::mem::offset_of!(CNode<Box<[AtomicU64]>>, seq) + 8,
            std::mem::size_of::<CNode<Box<[AtomicU64]>>>()
        );
    }

    #[test]
    fn long_keys_go_to_the_heap() {
        let k = vec![3u8; 40];
        let n: CNode<[AtomicU64; 1]> = make_node(1, &k, b"", 0, 0, 0);
        assert_eq!(n.bytes(), &k[..]);
        let s: CNode<[AtomicU64; 1]> = make_node(1, b"short", b"", 0, 0, 0);
        assert_eq!(s.bytes(), b"short");
    }
}
