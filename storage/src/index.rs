//! The index: per (shard, database) a lock-free ordered skiplist from key to its entry (where
//! the record is, its expiry, a small value inline), kept in the node itself under a SeqLock.
//! Nodes are reclaimed through crossbeam-epoch.
//!
//! The skiplist is ordered by insertion: each node holds a sequence number, taken from its
//! index's counter when the key is inserted and kept for the node's life (an update changes
//! the node's slot, never the node). A new key is therefore always the list's last: its
//! insert walks the rightmost path, which the previous insert left in the CPU cache. Ordered
//! by hash, as it was until session 13, every insert walked a random path and missed the
//! cache at each of the lower levels: 27-38% of the server's CPU under `redis-benchmark -t
//! set`. A walk compares integers, and a SCAN cursor is a (shard, sequence) pair that fits a
//! u64: a resumed scan starts at the first node whose sequence is >= the cursor, so a key that
//! lives through the whole scan is never missed however the skiplist changes around it.
//!
//! Point lookups do not walk the skiplist: beside it each index keeps an open-addressing table
//! from hash to the skiplist node (a pointer to the node's `IKey`, which also holds the key's
//! `Slot`). A lookup is a probe or two in the table and one node, instead of a pointer chase
//! through a dozen levels. The table is written only under the shard lock, read lock-free, and
//! replaced (RCU, retired through the epoch) when it grows.

use std::alloc::Layout;
use std::ops::Bound;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

use bytes::Bytes;
use crossbeam_epoch::Guard;
use crossbeam_skiplist::base::{self, SkipList};

use crate::glob::glob_match;
use crate::lookup::{Hashed, LookupTable};

/// Keys up to this many bytes live inside the skiplist node (no allocation, no pointer chase).
const INLINE_KEY: usize = 22;

/// The bytes of a key: inline when short, else on the heap.
#[derive(Clone, Debug)]
pub(crate) enum KeyBytes {
    Inline { len: u8, buf: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl KeyBytes {
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            KeyBytes::Inline { len, buf } => &buf[..*len as usize],
            KeyBytes::Heap(b) => b,
        }
    }
}

/// A skiplist key: the key, the slot of its current entry, the key's xxh3 hash (for the
/// lookup table and the shard) and the node's sequence number, which alone orders the
/// skiplist (unique within an index; see the module's notes).
///
/// `repr(C)` with the sequence last: crossbeam lays a node out as key, reference count, tower,
/// so the sequence sits 16 bytes before the tower's first pointers. A skiplist search reads
/// both at every node it passes (the next pointer, then the sequence to compare), and a node
/// is only 16-byte aligned: with the sequence right before the tower they share a cache line
/// in 3 of the 4 alignments, against 2 of 4 with it first (`seq_sits_next_to_the_tower`).
#[repr(C)]
pub(crate) struct IKey {
    key: KeyBytes,
    slot: Slot,
    pub hash: u64,
    pub seq: u64,
}

impl Hashed for IKey {
    #[inline]
    fn hash(&self) -> u64 {
        self.hash
    }
}

impl IKey {
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        self.key.as_slice()
    }

    /// The key's entry slot.
    #[inline]
    pub(crate) fn value(&self) -> &Slot {
        &self.slot
    }
}

impl PartialEq for IKey {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl Eq for IKey {}

impl PartialOrd for IKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.seq.cmp(&other.seq)
    }
}

/// Range scans start at a sequence number.
impl std::borrow::Borrow<u64> for IKey {
    fn borrow(&self) -> &u64 {
        &self.seq
    }
}

/// A node of an index, as its key (which holds the slot).
pub(crate) type Node<'g> = &'g IKey;

/// A skiplist position, for ordered walks.
pub(crate) type Cursor<'a, 'g> = base::Entry<'a, 'g, IKey, ()>;

/// The sequence numbers an index hands out fit this many bits, so a SCAN cursor holds one
/// beside a shard number (at most 4096 shards: 12 bits). 2^52 inserts into one (shard, db)
/// index since start-up would take 142 years at a million new keys a second into that shard.
pub(crate) const SEQ_BITS: u32 = 52;

/// Takes the next sequence number from an index's counter (`next` holds the next one to hand
/// out). Only the holder of the shard lock calls this, so a load and a store do, with no
/// read-modify-write.
pub(crate) fn take_seq(next: &AtomicU64) -> u64 {
    let seq = next.load(Ordering::Relaxed);
    debug_assert!(seq < 1 << SEQ_BITS);
    next.store(seq + 1, Ordering::Relaxed);
    seq
}

/// One SCAN call over the `nshards` skiplists of a database, a VarTree's or a ConstTree's
/// (both ordered by sequence number alone): from `cursor`, (shard << SEQ_BITS) | (the
/// sequence number to resume at), examines up to `count` nodes (at least one) and returns
/// the cursor to resume at (0 once every shard is done) with the live keys matching
/// `pattern`. Expired keys that match go to `expired` as (shard, hash, key). `seek(shard,
/// seq)` is the shard's first node whose sequence number is >= `seq`; `describe` gives a
/// node's key, hash and whether it is live.
pub(crate) fn scan_lists<'a: 'g, 'g, K: Ord + std::borrow::Borrow<u64> + 'a>(
    nshards: usize,
    cursor: u64,
    count: usize,
    mut seek: impl FnMut(usize, u64) -> Option<base::Entry<'a, 'g, K, ()>>,
    describe: impl Fn(&K) -> (&[u8], u64, bool),
    pattern: Option<&[u8]>,
    expired: &mut Vec<(usize, u64, Bytes)>,
) -> (u64, Vec<Bytes>) {
    let count = count.max(1);
    let mut out = Vec::new();
    let mut shard = usize::try_from(cursor >> SEQ_BITS).unwrap_or(usize::MAX);
    let mut pos = cursor & ((1 << SEQ_BITS) - 1);
    let mut examined = 0usize;
    while shard < nshards {
        let mut cur = seek(shard, pos);
        while let Some(e) = cur {
            if examined >= count {
                // Sequence numbers are unique: resuming at this node repeats nothing.
                return (((shard as u64) << SEQ_BITS) | *e.key().borrow(), out);
            }
            examined += 1;
            let (key, hash, live) = describe(e.key());
            if pattern.is_none_or(|p| glob_match(p, key)) {
                if live {
                    out.push(Bytes::copy_from_slice(key));
                } else {
                    expired.push((shard, hash, Bytes::copy_from_slice(key)));
                }
            }
            cur = e.next();
        }
        shard += 1;
        pos = 0;
        if examined >= count && shard < nshards {
            return ((shard as u64) << SEQ_BITS, out);
        }
    }
    (0, out)
}

/// RANDOMKEY over the `nshards` skiplists of a database, a VarTree's or a ConstTree's: up to
/// 8 draws, each from a random shard on through the others, in each from a random sequence
/// number below `next_seq(shard)` (wrapping to the front) to the first live node among the
/// next 17. `seek` as for `scan_lists`; `live_key(node, now)` gives its key if it is live; a draw
/// that finds none stops the search once `is_empty()`.
pub(crate) fn random_live<'a: 'g, 'g, K: Ord + std::borrow::Borrow<u64> + 'a>(
    nshards: usize,
    next_seq: impl Fn(usize) -> u64,
    mut seek: impl FnMut(usize, u64) -> Option<base::Entry<'a, 'g, K, ()>>,
    live_key: impl Fn(&K, u64) -> Option<&[u8]>,
    is_empty: impl Fn() -> bool,
) -> Option<Bytes> {
    static SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let now = crate::engine::now_ms();
    for _ in 0..8 {
        let r = crate::engine::hash_key(
            &(SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ now).to_le_bytes(),
        );
        let first = (r % nshards as u64) as usize;
        for i in 0..nshards {
            let s = (first + i) % nshards;
            let start = r.rotate_left(17) % next_seq(s);
            let mut cur = seek(s, start).or_else(|| seek(s, 0));
            let mut tries = 0;
            while let Some(e) = cur {
                if let Some(key) = live_key(e.key(), now) {
                    return Some(Bytes::copy_from_slice(key));
                }
                tries += 1;
                if tries > 16 {
                    break;
                }
                cur = e.next();
            }
        }
        if is_empty() {
            break;
        }
    }
    None
}

/// One shard's part of a step of the expiry sweep, over a VarTree's or a ConstTree's list:
/// examines up to 64 nodes from `seek(*pos)` (as for `scan_lists`: the first node whose
/// sequence number is >= `pos`; 0, the first step's, is the front) and returns the expired
/// ones as (hash, key); leaves in `pos` the sequence number the next step resumes at (0
/// again once the list's end is reached). `expired_key(node, now)` gives a node's hash and
/// key if it is expired.
pub(crate) fn sweep_list<'a: 'g, 'g, K: Ord + std::borrow::Borrow<u64> + 'a>(
    pos: &mut u64,
    seek: impl FnOnce(u64) -> Option<base::Entry<'a, 'g, K, ()>>,
    expired_key: impl Fn(&K, u64) -> Option<(u64, &[u8])>,
) -> Vec<(u64, Box<[u8]>)> {
    let now = crate::engine::now_ms();
    let mut expired = Vec::new();
    let mut cur = seek(std::mem::take(pos));
    let mut n = 0;
    while let Some(e) = cur {
        if let Some((hash, key)) = expired_key(e.key(), now) {
            expired.push((hash, key.into()));
        }
        n += 1;
        if n >= 64 {
            *pos = *e.key().borrow() + 1;
            break;
        }
        cur = e.next();
    }
    expired
}

/// One (shard, db) index: the skiplist in insertion order and the lookup table over it.
pub(crate) struct Index {
    list: SkipList<IKey, ()>,
    table: LookupTable<IKey>,
    /// The sequence number of the next insert (the first is 1). Advanced under the shard
    /// lock only (every insert holds it), read lock-free by RANDOMKEY.
    next_seq: AtomicU64,
}

impl Index {
    pub(crate) fn new() -> Index {
        Index {
            list: SkipList::new(crossbeam_epoch::default_collector().clone()),
            table: LookupTable::new(),
            next_seq: AtomicU64::new(1),
        }
    }

    /// The node of (`hash`, `key`), if present. Lock-free.
    #[inline]
    pub(crate) fn get<'g>(&self, hash: u64, key: &[u8], guard: &'g Guard) -> Option<Node<'g>> {
        self.table.find(hash, guard, |k| k.bytes() == key)
    }

    /// The lookup table, for prefetching a batch of probes (`Engine::prefetch`).
    pub(crate) fn table(&self) -> &LookupTable<IKey> {
        &self.table
    }

    /// Inserts a key that is not in the index, as the list's last node. Caller holds the
    /// shard lock.
    pub(crate) fn insert_new<'g>(
        &self,
        hash: u64,
        key: &[u8],
        e: NewEntry<'_>,
        guard: &'g Guard,
    ) -> Node<'g> {
        let seq = take_seq(&self.next_seq);
        let node = self
            .list
            .insert(make_ikey(hash, seq, key, Slot::new(e)), (), guard);
        let p = node.key() as *const IKey;
        node.release(guard);
        // SAFETY: `p` is the key of the node just linked; `remove` and `clear` take nodes
        // out of the table before unlinking them.
        unsafe { self.table.insert(p, guard) };
        // SAFETY: the node was just linked and only this thread (holding the shard lock) can
        // unlink it; it stays valid at least while `guard` is pinned.
        unsafe { &*p }
    }

    /// Removes `node` (found under the same lock hold). Caller holds the shard lock.
    pub(crate) fn remove(&self, node: Node<'_>, guard: &Guard) {
        // Out of the table before out of the skiplist: see `LookupTable::find`.
        self.table.remove(node, guard);
        if let Some(e) = self.list.remove(node, guard) {
            e.release(guard);
        }
    }

    /// Removes every key, calling `f` on each first. Caller holds the shard lock.
    pub(crate) fn clear(&self, guard: &mut Guard, mut f: impl FnMut(&IKey, &Guard)) {
        // New readers see an empty table at once; the nodes go after.
        self.table.clear(guard);
        let g: &Guard = guard;
        let mut cur = self.list.front(g);
        while let Some(e) = cur {
            f(e.key(), g);
            e.remove();
            cur = e.next();
        }
        guard.repin();
    }

    /// The first node whose sequence number is >= `seq`.
    pub(crate) fn seek<'a: 'g, 'g>(&'a self, seq: u64, guard: &'g Guard) -> Option<Cursor<'a, 'g>> {
        self.list.lower_bound(Bound::Included(&seq), guard)
    }

    /// The sequence number the next insert will take: every node's is below it.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed)
    }

    /// The first node.
    pub(crate) fn front<'a: 'g, 'g>(&'a self, guard: &'g Guard) -> Option<Cursor<'a, 'g>> {
        self.list.front(guard)
    }
}

/// The node of (`hash`, `key`), if present (a table probe, lock-free).
#[inline]
pub(crate) fn find<'g>(idx: &Index, hash: u64, key: &[u8], guard: &'g Guard) -> Option<Node<'g>> {
    idx.get(hash, key, guard)
}

/// The owned index key of (`hash`, `key`), with sequence number `seq`.
pub(crate) fn make_ikey(hash: u64, seq: u64, key: &[u8], slot: Slot) -> IKey {
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
    IKey {
        key,
        slot,
        hash,
        seq,
    }
}

/// What a new index entry says: where the key's record is, and its value if small.
#[derive(Clone, Copy)]
pub(crate) struct NewEntry<'a> {
    /// Absolute UNIX ms, 0 = none.
    pub expire_at_ms: u64,
    /// Log file of the record.
    pub file: u32,
    /// Byte offset of the record (its header) in the file.
    pub offset: u32,
    /// Value length.
    pub value_len: u32,
    /// The value, when it is at most `inline_value_max` bytes.
    pub inline: Option<&'a [u8]>,
}

/// A key's entry as read from its node: where the record is, and the value if it is small
/// enough to live in the index. A consistent copy (see `Slot::load`); the inline bytes stay
/// valid while the guard it was loaded under is pinned.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry<'g> {
    /// Absolute UNIX ms, 0 = none.
    pub expire_at_ms: u64,
    /// Log file of the record.
    pub file: u32,
    /// Byte offset of the record (its header) in the file.
    pub offset: u32,
    /// Value length.
    pub value_len: u32,
    inline: Option<&'g [u8]>,
}

impl<'g> Entry<'g> {
    #[inline]
    pub(crate) fn live(&self, now_ms: u64) -> bool {
        self.expire_at_ms == 0 || self.expire_at_ms > now_ms
    }

    pub(crate) fn expiry(&self) -> Option<u64> {
        (self.expire_at_ms != 0).then_some(self.expire_at_ms)
    }

    /// Bytes of the record on disk, for dead-byte accounting.
    pub(crate) fn record_len(&self, key_len: usize) -> u64 {
        (crate::record::RECORD_HEADER + key_len + self.value_len as usize) as u64
    }

    /// The inline value, if the value is small enough to live in the index.
    #[inline]
    pub(crate) fn inline(&self) -> Option<&'g [u8]> {
        self.inline
    }
}

/// The bytes of an inline value: a length word followed by the bytes, in one allocation.
#[repr(C)]
struct Blob {
    len: usize,
}

fn blob_layout(len: usize) -> Layout {
    // Sizes here are at most 8 + inline_value_max, far below isize::MAX.
    Layout::from_size_align(
        std::mem::size_of::<Blob>() + len,
        std::mem::align_of::<Blob>(),
    )
    .unwrap_or_else(|_| unreachable!("blob layout of {len} bytes"))
}

fn alloc_blob(v: &[u8]) -> usize {
    let layout = blob_layout(v.len());
    // SAFETY: the layout's size is at least 8, never zero.
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `p` is a fresh allocation of 8 + v.len() bytes aligned for Blob: the length
    // fits at its start and the bytes right after it; `v` cannot overlap a fresh allocation.
    unsafe {
        (p as *mut Blob).write(Blob { len: v.len() });
        std::ptr::copy_nonoverlapping(v.as_ptr(), p.add(std::mem::size_of::<Blob>()), v.len());
    }
    p as usize
}

/// The bytes of a blob made by `alloc_blob`.
///
/// # Safety
/// `p` came from `alloc_blob` and is not freed before `'a` ends.
unsafe fn blob_bytes<'a>(p: usize) -> &'a [u8] {
    // SAFETY: per the contract, `p` points at a live blob: its length, then that many bytes.
    unsafe {
        let len = (*(p as *const Blob)).len;
        std::slice::from_raw_parts((p as *const u8).add(std::mem::size_of::<Blob>()), len)
    }
}

/// Frees a blob made by `alloc_blob`.
///
/// # Safety
/// `p` came from `alloc_blob`, is freed once, and no reference into it is used afterwards.
unsafe fn free_blob(p: usize) {
    // SAFETY: per the contract, `p` points at a live blob; same pointer and layout as the
    // allocation.
    unsafe {
        let len = (*(p as *const Blob)).len;
        std::alloc::dealloc(p as *mut u8, blob_layout(len));
    }
}

/// The value of a skiplist node: the key's current entry, kept in the node itself. A read
/// chases no pointer past the node; an update of a value that is not inline allocates and
/// retires nothing.
///
/// A SeqLock, as in the ConstTree: the one writer (it holds the shard lock) makes `seq` odd,
/// fences (Release), stores the fields (Relaxed) and makes `seq` even again (Release); a
/// reader loads `seq` (Acquire), the fields (Relaxed), fences (Acquire) and re-checks `seq`,
/// retrying until both loads agree on an even value. Every field is an atomic, so a read
/// racing a write is never undefined behaviour, only retried. An inline value lives in a
/// blob behind `inline`, swapped by the writer and freed through the epoch, so the bytes a
/// reader holds stay valid while its guard is pinned.
pub(crate) struct Slot {
    seq: AtomicU32,
    value_len: AtomicU32,
    file: AtomicU32,
    offset: AtomicU32,
    expire_at_ms: AtomicU64,
    /// A blob from `alloc_blob`, or 0 for no inline value.
    inline: AtomicUsize,
}

impl Slot {
    pub(crate) fn new(e: NewEntry<'_>) -> Slot {
        Slot {
            seq: AtomicU32::new(0),
            value_len: AtomicU32::new(e.value_len),
            file: AtomicU32::new(e.file),
            offset: AtomicU32::new(e.offset),
            expire_at_ms: AtomicU64::new(e.expire_at_ms),
            inline: AtomicUsize::new(e.inline.map_or(0, alloc_blob)),
        }
    }

    /// A consistent copy of the current entry; its inline bytes are valid while `guard` is
    /// pinned.
    #[inline]
    pub(crate) fn load<'g>(&self, _guard: &'g Guard) -> Entry<'g> {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let expire_at_ms = self.expire_at_ms.load(Ordering::Relaxed);
                let file = self.file.load(Ordering::Relaxed);
                let offset = self.offset.load(Ordering::Relaxed);
                let value_len = self.value_len.load(Ordering::Relaxed);
                let blob = self.inline.load(Ordering::Relaxed);
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    // SAFETY: `seq` was even and unchanged around the loads, so `blob` is the
                    // pointer of a complete write: made by `alloc_blob` and written before the
                    // Release store of `seq` that the Acquire load of `s1` (or an earlier one
                    // of this thread) synchronises with. It was current while this thread
                    // was pinned by `_guard`, and a replaced blob is freed only through the
                    // epoch (or in Drop, when no reader can reach the node): it lives for 'g.
                    let inline = (blob != 0).then(|| unsafe { blob_bytes::<'g>(blob) });
                    return Entry {
                        expire_at_ms,
                        file,
                        offset,
                        value_len,
                        inline,
                    };
                }
            }
            std::hint::spin_loop();
        }
    }

    /// Publishes `e` and retires the previous inline value (if any) through the epoch.
    /// Callers hold the shard writer lock, so there is never a concurrent `replace` on the
    /// same slot.
    pub(crate) fn replace(&self, e: NewEntry<'_>, guard: &Guard) {
        let blob = e.inline.map_or(0, alloc_blob);
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.expire_at_ms.store(e.expire_at_ms, Ordering::Relaxed);
        self.file.store(e.file, Ordering::Relaxed);
        self.offset.store(e.offset, Ordering::Relaxed);
        self.value_len.store(e.value_len, Ordering::Relaxed);
        let old = self.inline.swap(blob, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
        if old != 0 {
            // SAFETY: `old` is unreachable from the slot after the swap; readers that loaded
            // it are pinned, and the deferred free runs only after they unpin. Nobody else
            // frees it (one writer).
            unsafe { guard.defer_unchecked(move || free_blob(old)) };
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: a Slot is dropped when its skiplist node is destroyed, which crossbeam does
        // only once no thread can reach the node (after the epoch), or when the skiplist itself
        // is dropped; either way no reader can still hold its inline value, freed once here.
        let blob = *self.inline.get_mut();
        if blob != 0 {
            // SAFETY: as above; the blob came from `alloc_blob`.
            unsafe { free_blob(blob) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ne(offset: u32) -> NewEntry<'static> {
        NewEntry {
            expire_at_ms: 0,
            file: 0,
            offset,
            value_len: 0,
            inline: None,
        }
    }

    #[test]
    fn ikeys_order_by_sequence_alone() {
        let a = make_ikey(9, 1, b"zzz", Slot::new(ne(0)));
        let b = make_ikey(2, 2, b"aaa", Slot::new(ne(0)));
        let long = vec![5u8; 100];
        let l = make_ikey(2, 3, &long, Slot::new(ne(0)));
        assert_eq!(l.bytes(), &long[..]);
        assert!(a < b && b < l);
        assert_eq!(std::mem::size_of::<IKey>(), 72);
    }

    #[test]
    fn seq_sits_next_to_the_tower() {
        // The skiplist node is (key, refs: usize, tower): the sequence is the key's last
        // word, so it and the first tower pointers are at most 24 bytes apart.
        assert_eq!(
            std::mem::offset_of!(IKey, seq) + 8,
            std::mem::size_of::<IKey>()
        );
    }

    #[test]
    fn index_table_and_list_agree() {
        let idx = Index::new();
        let mut g = crossbeam_epoch::pin();
        // Hashes 0 and 1 (stored under another tag), collisions on the low bits, equal hashes.
        let keys: Vec<(u64, Vec<u8>)> = (0..2000u64)
            .map(|i| {
                let h = match i % 4 {
                    0 => i / 4,
                    1 => (i / 4) << 40,
                    2 => 7,
                    _ => i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                };
                (h, format!("key{i}").into_bytes())
            })
            .collect();
        for (i, (h, k)) in keys.iter().enumerate() {
            assert!(find(&idx, *h, k, &g).is_none());
            idx.insert_new(*h, k, ne(i as u32), &g);
            assert_eq!(
                find(&idx, *h, k, &g).unwrap().value().load(&g).offset,
                i as u32
            );
        }
        for (i, (h, k)) in keys.iter().enumerate() {
            let n = find(&idx, *h, k, &g).unwrap();
            assert_eq!(n.value().load(&g).offset, i as u32);
            if i % 3 == 0 {
                idx.remove(n, &g);
                assert!(find(&idx, *h, k, &g).is_none());
            }
        }
        // Tombstones get reused and the table rebuilt; everything stays findable.
        for (i, (h, k)) in keys.iter().enumerate() {
            if i % 3 == 0 {
                idx.insert_new(*h, k, ne(i as u32 + 1), &g);
            }
        }
        // The list holds every key once, in insertion order: the re-inserted ones last.
        let mut listed = Vec::new();
        let mut cur = idx.front(&g);
        let mut last = 0;
        while let Some(e) = cur {
            assert!(e.key().seq > last, "list out of order");
            last = e.key().seq;
            listed.push(e.key().bytes().to_vec());
            cur = e.next();
        }
        let kept = keys.iter().enumerate().filter(|(i, _)| i % 3 != 0);
        let again = keys.iter().enumerate().filter(|(i, _)| i % 3 == 0);
        let want: Vec<Vec<u8>> = kept.chain(again).map(|(_, (_, k))| k.clone()).collect();
        assert_eq!(listed, want);
        assert!(idx.next_seq() > last);
        for (h, k) in &keys {
            assert!(find(&idx, *h, k, &g).is_some());
        }
        let mut cleared = 0;
        idx.clear(&mut g, |_, _| cleared += 1);
        assert_eq!(cleared, keys.len());
        for (h, k) in &keys {
            assert!(find(&idx, *h, k, &g).is_none());
        }
        assert!(idx.front(&g).is_none());
    }

    #[test]
    fn slot_replace_and_drop() {
        let s = Slot::new(NewEntry {
            expire_at_ms: 0,
            file: 1,
            offset: 2,
            value_len: 3,
            inline: Some(b"abc"),
        });
        let g = crossbeam_epoch::pin();
        assert_eq!(s.load(&g).inline(), Some(&b"abc"[..]));
        let empty = Slot::new(NewEntry {
            expire_at_ms: 0,
            file: 1,
            offset: 2,
            value_len: 0,
            inline: Some(b""),
        });
        assert_eq!(empty.load(&g).inline(), Some(&b""[..]));
        for i in 0..100u32 {
            s.replace(
                NewEntry {
                    expire_at_ms: 5,
                    file: 1,
                    offset: i,
                    value_len: 10,
                    inline: None,
                },
                &g,
            );
        }
        assert_eq!(s.load(&g).offset, 99);
        assert_eq!(s.load(&g).inline(), None);
        assert!(!s.load(&g).live(5));
        assert!(s.load(&g).live(4));
    }

    /// Readers racing a writer that flips a slot between two entries (different inline values,
    /// one with none) always see one whole entry, never fields of both.
    #[test]
    fn slot_reads_are_never_torn() {
        let small = std::env::var("RESPITE_TEST_SCALE").as_deref() == Ok("small");
        let flips: u32 = if small { 2_000 } else { 200_000 };
        let a = NewEntry {
            expire_at_ms: 0x1111_1111_1111_1111,
            file: 0x1111_1111,
            offset: 0x1111_1111,
            value_len: 3,
            inline: Some(b"aaa"),
        };
        let b = NewEntry {
            expire_at_ms: 0x2222_2222_2222_2222,
            file: 0x2222_2222,
            offset: 0x2222_2222,
            value_len: 0x2222_2222,
            inline: None,
        };
        let slot = Slot::new(a);
        let done = std::sync::atomic::AtomicBool::new(false);
        let seen = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|sc| {
            for _ in 0..2 {
                sc.spawn(|| {
                    let mut n = 0u64;
                    while !done.load(Ordering::Acquire) {
                        let g = crossbeam_epoch::pin();
                        let e = slot.load(&g);
                        let want = if e.file == a.file { a } else { b };
                        assert_eq!(
                            (e.expire_at_ms, e.file, e.offset, e.value_len, e.inline()),
                            (
                                want.expire_at_ms,
                                want.file,
                                want.offset,
                                want.value_len,
                                want.inline
                            ),
                            "a read mixed two entries"
                        );
                        n += 1;
                    }
                    seen.fetch_add(n, Ordering::Relaxed);
                });
            }
            for i in 0..flips {
                let g = crossbeam_epoch::pin();
                slot.replace(if i % 2 == 0 { b } else { a }, &g);
            }
            done.store(true, Ordering::Release);
        });
        assert!(seen.load(Ordering::Relaxed) > 0);
        let g = crossbeam_epoch::pin();
        assert_eq!(slot.load(&g).file, a.file);
    }
}
