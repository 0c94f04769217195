//! ConstTree: a database whose values all have one size (set in config) and live inline in
//! the index node, read lock-free under a SeqLock. Disk is for durability only: a read never
//! touches it. The values are made durable on the Bitcask log (the shard's shared log, records
//! as for a VarTree) or on the FixedStore (`fixed.rs`, one slot file per shard).
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
use crate::record::{FLAG_TOMBSTONE, Header, RECORD_HEADER, VTYPE_STRING};
use crate::writer::Writer;

/// Keys up to this many bytes live inside the node.
const INLINE_KEY: usize = 23;

enum KeyBytes {
    Inline { len: u8, buf: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

/// A ConstTree index node: key, SeqLock version, expiry, backend location and the value
/// words. Ordered by (hash, key) like the VarTree's index.
pub(crate) struct CNode {
    pub hash: u64,
    key: KeyBytes,
    /// SeqLock version: odd while a writer is changing `expire` or `words`.
    version: AtomicU64,
    /// Absolute UNIX ms, 0 = none. Part of the SeqLock-protected state.
    expire: AtomicU64,
    /// Where the durable copy is: Bitcask `file << 32 | offset`, FixedStore slot number.
    /// Read and written only under the shard's writer lock.
    loc: AtomicU64,
    /// The value, little-endian, zero-padded to whole words.
    words: Box<[AtomicU64]>,
}

impl CNode {
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
        let mut out = vec![0u8; self.words.len() * 8];
        loop {
            let v1 = self.version.load(Ordering::Acquire);
            if v1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            for (w, chunk) in self.words.iter().zip(out.chunks_exact_mut(8)) {
                chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
            }
            let x = self.expire.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.version.load(Ordering::Relaxed) == v1 {
                out.truncate(value_size);
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
        store_words(&self.words, value);
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

impl PartialEq for CNode {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.bytes() == other.bytes()
    }
}

impl Eq for CNode {}

impl PartialOrd for CNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CNode {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.hash
            .cmp(&other.hash)
            .then_with(|| self.bytes().cmp(other.bytes()))
    }
}

impl std::borrow::Borrow<u64> for CNode {
    fn borrow(&self) -> &u64 {
        &self.hash
    }
}

fn make_node(hash: u64, key: &[u8], value: &[u8], expire: u64, loc: u64, nwords: usize) -> CNode {
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
    let words: Box<[AtomicU64]> = (0..nwords).map(|_| AtomicU64::new(0)).collect();
    store_words(&words, value);
    CNode {
        hash,
        key,
        version: AtomicU64::new(0),
        expire: AtomicU64::new(expire),
        loc: AtomicU64::new(loc),
        words,
    }
}

/// Packs a Bitcask location.
pub(crate) fn bitcask_loc(file: u32, offset: u32) -> u64 {
    ((file as u64) << 32) | offset as u64
}

/// One shard's slice of a ConstTree.
pub(crate) struct ConstShard {
    list: SkipList<CNode, ()>,
    /// The FixedStore slot file of this (db, shard), for the Fixed backend. Locked only
    /// while the shard's writer lock is held, or by the sync round (never the other way).
    pub fixed: Option<Mutex<FixedShard>>,
}

/// A ConstTree database.
pub(crate) struct ConstTree {
    pub db: usize,
    pub value_size: usize,
    nwords: usize,
    /// Longest key a FixedStore slot holds (None on the Bitcask backend).
    max_key: Option<usize>,
    pub shards: Box<[ConstShard]>,
    /// Where the expiry sweep resumes in each shard.
    sweep_pos: Mutex<Vec<Option<u64>>>,
}

impl ConstTree {
    pub(crate) fn new(
        db: usize,
        value_size: usize,
        max_key: Option<usize>,
        fixed: Vec<Option<FixedShard>>,
    ) -> ConstTree {
        let shards: Box<[ConstShard]> = fixed
            .into_iter()
            .map(|f| ConstShard {
                list: SkipList::new(crossbeam_epoch::default_collector().clone()),
                fixed: f.map(Mutex::new),
            })
            .collect();
        let n = shards.len();
        ConstTree {
            db,
            value_size,
            nwords: value_size.div_ceil(8),
            max_key,
            shards,
            sweep_pos: Mutex::new(vec![None; n]),
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
    ) -> Option<&'g CNode> {
        let list = &self.shards[shard].list;
        let mut cur = list.lower_bound(Bound::Included(&hash), guard);
        while let Some(e) = cur {
            let k: &'g CNode = e.key();
            if k.hash != hash {
                return None;
            }
            if k.bytes() == key {
                return Some(k);
            }
            cur = e.next();
        }
        None
    }

    /// The live node of a key.
    #[inline]
    pub(crate) fn find_live<'a: 'g, 'g>(
        &'a self,
        shard: usize,
        hash: u64,
        key: &[u8],
        guard: &'g Guard,
    ) -> Option<&'g CNode> {
        self.find(shard, hash, key, guard).filter(|n| {
            let x = n.expire_at_ms();
            x == 0 || x > now_ms()
        })
    }

    /// The first node whose hash is >= `hash`, for ordered walks.
    pub(crate) fn seek<'a: 'g, 'g>(
        &'a self,
        shard: usize,
        hash: u64,
        after: bool,
        guard: &'g Guard,
    ) -> Option<crossbeam_skiplist::base::Entry<'a, 'g, CNode, ()>> {
        let b = if after {
            Bound::Excluded(&hash)
        } else {
            Bound::Included(&hash)
        };
        self.shards[shard].list.lower_bound(b, guard)
    }

    /// Writes `key = value` under the shard's writer lock `w`. The value size is checked by
    /// the caller (`check_value`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put(
        &self,
        inner: &Inner,
        w: &mut Writer,
        hash: u64,
        key: &[u8],
        value: &[u8],
        expire: u64,
        gsn: u64,
        guard: &Guard,
    ) -> Result<()> {
        debug_assert_eq!(value.len(), self.value_size);
        let s = inner.shard_of(hash);
        let existing = self.find(s, hash, key, guard);
        let loc = match &self.shards[s].fixed {
            None => {
                let h = Header {
                    gsn,
                    expire_at_ms: expire,
                    flags: 0,
                    vtype: VTYPE_STRING,
                    db: self.db as u16,
                    key_len: key.len() as u32,
                    value_len: value.len() as u32,
                };
                let (file, off) = w.append(inner, &h, key, value)?;
                if let Some(n) = existing {
                    inner.add_dead((n.loc() >> 32) as u32, self.record_len(key.len()));
                }
                bitcask_loc(file, off)
            }
            Some(f) => {
                let mut f = f.lock();
                let slot = f.write(gsn, expire, 0, key, value)?;
                if let Some(n) = existing {
                    f.free_after(gsn, n.loc());
                }
                slot
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
                self.shards[s].list.insert(node, (), guard).release(guard);
                counters.keys.fetch_add(1, Ordering::Relaxed);
                if expire != 0 {
                    counters.expires.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Deletes `key` (live or expired) under the shard's writer lock, leaving a durable
    /// tombstone. Returns whether it was in the index.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn del(
        &self,
        inner: &Inner,
        w: &mut Writer,
        hash: u64,
        key: &[u8],
        gsn: u64,
        guard: &Guard,
    ) -> Result<bool> {
        let s = inner.shard_of(hash);
        let Some(node) = self.find(s, hash, key, guard) else {
            return Ok(false);
        };
        match &self.shards[s].fixed {
            None => {
                let h = Header {
                    gsn,
                    expire_at_ms: 0,
                    flags: FLAG_TOMBSTONE,
                    vtype: VTYPE_STRING,
                    db: self.db as u16,
                    key_len: key.len() as u32,
                    value_len: 0,
                };
                let (file, _) = w.append(inner, &h, key, b"")?;
                inner.add_dead((node.loc() >> 32) as u32, self.record_len(key.len()));
                inner.add_dead(file, h.record_len() as u64);
            }
            Some(f) => {
                let mut f = f.lock();
                let tomb = f.write(gsn, 0, FLAG_TOMBSTONE, key, &[])?;
                f.free_after(gsn, node.loc());
                f.tomb_after(gsn, tomb);
            }
        }
        let counters = &inner.dbs[self.db];
        if node.expire_at_ms() != 0 {
            counters.expires.fetch_sub(1, Ordering::Relaxed);
        }
        counters.keys.fetch_sub(1, Ordering::Relaxed);
        if let Some(e) = self.shards[s].list.remove(node, guard) {
            e.release(guard);
        }
        Ok(true)
    }

    /// Removes every key of shard `s` (FLUSHDB / FLUSHALL) under its writer lock. On the
    /// Bitcask backend the caller's flush marker makes it durable; on the FixedStore every
    /// used slot's header is zeroed.
    pub(crate) fn clear_shard(&self, inner: &Inner, s: usize, guard: &Guard) -> Result<()> {
        if let Some(f) = &self.shards[s].fixed {
            f.lock().zero_all()?;
        }
        let list = &self.shards[s].list;
        let mut cur = list.front(guard);
        while let Some(e) = cur {
            if self.shards[s].fixed.is_none() {
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
        let node = make_node(hash, key, value, expire, loc, self.nwords);
        self.shards[s].list.insert(node, (), &guard).release(&guard);
    }

    /// Bytes of this tree's slot files (0 on the Bitcask backend: its logs are counted there).
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.shards
            .iter()
            .filter_map(|s| s.fixed.as_ref())
            .map(|f| f.lock().file_bytes())
            .sum()
    }

    fn record_len(&self, key_len: usize) -> u64 {
        (RECORD_HEADER + key_len + self.value_size) as u64
    }

    /// Bytes of memory per key, estimated: the skiplist node (key inline up to 23 bytes,
    /// average tower), the value words' allocation and allocator overhead.
    pub(crate) fn bytes_per_key(&self) -> u64 {
        (std::mem::size_of::<CNode>() + 40 + self.nwords * 8 + 16) as u64
    }

    /// One bounded step of the expiry sweep: up to 64 nodes per shard.
    pub(crate) fn sweep_step(&self, inner: &Inner) {
        if inner.dbs[self.db].expires.load(Ordering::Relaxed) == 0 {
            return;
        }
        let now = now_ms();
        for s in 0..self.shards.len() {
            let mut expired: Vec<(u64, Box<[u8]>)> = Vec::new();
            {
                let mut pos = self.sweep_pos.lock();
                let guard = crossbeam_epoch::pin();
                let mut cur = match pos[s] {
                    Some(h) => self.seek(s, h, true, &guard),
                    None => self.shards[s].list.front(&guard),
                };
                pos[s] = None;
                let mut n = 0;
                while let Some(e) = cur {
                    let k = e.key();
                    if !k.live(now) {
                        expired.push((k.hash, k.bytes().into()));
                    }
                    n += 1;
                    if n >= 64 {
                        pos[s] = Some(k.hash);
                        break;
                    }
                    cur = e.next();
                }
            }
            if expired.is_empty() {
                continue;
            }
            let mut w = inner.shards[s].writer.lock();
            let guard = crossbeam_epoch::pin();
            let mut last = 0;
            for (hash, key) in &expired {
                let still = self
                    .find(s, *hash, key, &guard)
                    .is_some_and(|n| !n.live(now_ms()));
                if !still {
                    continue;
                }
                let gsn = inner.gsn.fetch_add(1, Ordering::SeqCst) + 1;
                match self.del(inner, &mut w, *hash, key, gsn, &guard) {
                    Ok(_) => {
                        inner.expired_keys.fetch_add(1, Ordering::Relaxed);
                        last = gsn;
                    }
                    Err(_) => break,
                }
            }
            drop(w);
            if last != 0 && inner.sync_mode() == crate::config::SyncMode::Always {
                inner.request_sync(last);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_odd_sizes() {
        for size in [0usize, 1, 7, 8, 9, 100] {
            let v: Vec<u8> = (0..size).map(|i| i as u8 ^ 0x5A).collect();
            let n = make_node(1, b"k", &v, 5, 0, size.div_ceil(8));
            assert_eq!(n.read(size), (Bytes::from(v.clone()), 5));
            let v2: Vec<u8> = v.iter().map(|b| !b).collect();
            n.write(&v2, 0);
            assert_eq!(n.read(size), (Bytes::from(v2), 0));
            assert_eq!(n.version.load(Ordering::Relaxed), 2);
        }
    }

    #[test]
    fn long_keys_go_to_the_heap() {
        let k = vec![3u8; 40];
        let n = make_node(1, &k, b"", 0, 0, 0);
        assert_eq!(n.bytes(), &k[..]);
        let s = make_node(1, b"short", b"", 0, 0, 0);
        assert_eq!(s.bytes(), b"short");
    }
}
