//! The index: per (shard, database) a lock-free ordered skiplist from key to an immutable
//! `Entry`, swapped atomically on update (RCU) and retired through crossbeam-epoch.
//!
//! Index keys are (hash, key) pairs ordered by hash first: the hash sits in the node itself,
//! so a walk of the skiplist compares integers. Hash order also makes a SCAN cursor a (shard,
//! hash prefix) pair that fits a u64: a resumed scan starts at the first key whose hash is >=
//! the cursor, so a key that lives through the whole scan is never missed however the
//! skiplist changes around it.
//!
//! Point lookups do not walk the skiplist: beside it each index keeps an open-addressing table
//! from hash to the skiplist node (a pointer to the node's `IKey`, which also holds the key's
//! `Slot`). A lookup is a probe or two in the table and one node, instead of a pointer chase
//! through a dozen levels. The table is written only under the shard lock, read lock-free, and
//! replaced (RCU, retired through the epoch) when it grows.

use std::alloc::Layout;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_epoch::Guard;
use crossbeam_skiplist::base::{self, SkipList};

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

/// A skiplist key: the key's xxh3 hash, the key, and the slot of its current entry. Ordered
/// by (hash, key bytes); the slot is not part of the order (it changes, the order does not).
///
/// `repr(C)` with the hash last: crossbeam lays a node out as key, reference count, tower, so
/// the hash sits 16 bytes before the tower's first pointers. A skiplist search reads both at
/// every node it passes (the next pointer, then the hash to compare), and a node is only
/// 16-byte aligned: with the hash right before the tower they share a cache line in 3 of the 4
/// alignments, against 2 of 4 with the hash first (`hash_sits_next_to_the_tower`).
#[repr(C)]
pub(crate) struct IKey {
    key: KeyBytes,
    slot: Slot,
    pub hash: u64,
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
        self.hash == other.hash && self.bytes() == other.bytes()
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
        self.hash
            .cmp(&other.hash)
            .then_with(|| self.bytes().cmp(other.bytes()))
    }
}

/// Range scans start by hash alone (an order the (hash, key) order refines).
impl std::borrow::Borrow<u64> for IKey {
    fn borrow(&self) -> &u64 {
        &self.hash
    }
}

/// A node of an index, as its key (which holds the slot).
pub(crate) type Node<'g> = &'g IKey;

/// A skiplist position, for ordered walks.
pub(crate) type Cursor<'a, 'g> = base::Entry<'a, 'g, IKey, ()>;

/// One (shard, db) index: the ordered skiplist and the lookup table over it.
pub(crate) struct Index {
    list: SkipList<IKey, ()>,
    table: LookupTable<IKey>,
}

impl Index {
    pub(crate) fn new() -> Index {
        Index {
            list: SkipList::new(crossbeam_epoch::default_collector().clone()),
            table: LookupTable::new(),
        }
    }

    /// The node of (`hash`, `key`), if present. Lock-free.
    #[inline]
    pub(crate) fn get<'g>(&self, hash: u64, key: &[u8], guard: &'g Guard) -> Option<Node<'g>> {
        self.table.find(hash, guard, |k| k.bytes() == key)
    }

    /// Inserts a key that is not in the index. Caller holds the shard lock.
    pub(crate) fn insert_new<'g>(
        &self,
        hash: u64,
        key: &[u8],
        e: NewEntry<'_>,
        guard: &'g Guard,
    ) -> Node<'g> {
        let node = self
            .list
            .insert(make_ikey(hash, key, Slot::new(e)), (), guard);
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

    /// The first node whose hash is >= `hash`.
    pub(crate) fn seek<'a: 'g, 'g>(
        &'a self,
        hash: u64,
        guard: &'g Guard,
    ) -> Option<Cursor<'a, 'g>> {
        self.list.lower_bound(Bound::Included(&hash), guard)
    }

    /// The first node whose hash is > `hash`.
    pub(crate) fn seek_after<'a: 'g, 'g>(
        &'a self,
        hash: u64,
        guard: &'g Guard,
    ) -> Option<Cursor<'a, 'g>> {
        self.list.lower_bound(Bound::Excluded(&hash), guard)
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

/// The owned index key of (`hash`, `key`).
pub(crate) fn make_ikey(hash: u64, key: &[u8], slot: Slot) -> IKey {
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
    IKey { key, slot, hash }
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

/// `inline_len` of an entry without an inline value.
const NO_INLINE: u32 = u32::MAX;

/// A published index entry: a 24-byte header followed, in the same allocation, by the inline
/// value if there is one (one allocation, one cache miss). Immutable once published; it only
/// ever exists inside an allocation made by `Slot` (the private field stops anyone else from
/// building one), which is what makes `inline` sound.
#[repr(C)]
pub(crate) struct Entry {
    /// Absolute UNIX ms, 0 = none.
    pub expire_at_ms: u64,
    /// Log file of the record.
    pub file: u32,
    /// Byte offset of the record (its header) in the file.
    pub offset: u32,
    /// Value length.
    pub value_len: u32,
    /// Bytes of inline value following the header, or NO_INLINE.
    inline_len: u32,
}

const HDR: usize = std::mem::size_of::<Entry>();

impl Entry {
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
    pub(crate) fn inline(&self) -> Option<&[u8]> {
        if self.inline_len == NO_INLINE {
            return None;
        }
        // SAFETY: an Entry is only ever reached through `Slot::load`, which points at an
        // allocation of HDR + inline_len bytes made by `alloc_entry` with the inline bytes
        // written right after the header; the allocation outlives `&self` (freed only after
        // the epoch, or in Slot's Drop).
        unsafe {
            Some(std::slice::from_raw_parts(
                (self as *const Entry as *const u8).add(HDR),
                self.inline_len as usize,
            ))
        }
    }
}

fn entry_layout(inline_len: usize) -> Layout {
    // Sizes here are at most HDR + inline_value_max, far below isize::MAX.
    Layout::from_size_align(HDR + inline_len, std::mem::align_of::<Entry>())
        .unwrap_or_else(|_| unreachable!("entry layout of {inline_len} inline bytes"))
}

fn alloc_entry(e: NewEntry<'_>) -> usize {
    let n = e.inline.map_or(0, <[u8]>::len);
    let layout = entry_layout(n);
    // SAFETY: the layout's size is at least HDR (24), never zero.
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    let hdr = Entry {
        expire_at_ms: e.expire_at_ms,
        file: e.file,
        offset: e.offset,
        value_len: e.value_len,
        inline_len: if e.inline.is_some() {
            n as u32
        } else {
            NO_INLINE
        },
    };
    // SAFETY: `p` is a fresh allocation of HDR + n bytes aligned for Entry: the header fits at
    // its start and the n inline bytes right after it; `v` cannot overlap a fresh allocation.
    unsafe {
        (p as *mut Entry).write(hdr);
        if let Some(v) = e.inline {
            std::ptr::copy_nonoverlapping(v.as_ptr(), p.add(HDR), n);
        }
    }
    p as usize
}

/// Frees an entry made by `alloc_entry`.
///
/// # Safety
/// `p` came from `alloc_entry`, is freed once, and no reference into it is used afterwards.
unsafe fn free_entry(p: usize) {
    // SAFETY: per the contract, `p` points at a live header written by `alloc_entry`.
    let inline_len = unsafe { (*(p as *const Entry)).inline_len };
    let n = if inline_len == NO_INLINE {
        0
    } else {
        inline_len as usize
    };
    // SAFETY: same pointer and layout as the allocation.
    unsafe { std::alloc::dealloc(p as *mut u8, entry_layout(n)) };
}

/// The value of a skiplist node: an atomic pointer to the current `Entry`. Never null.
pub(crate) struct Slot(AtomicUsize);

impl Slot {
    pub(crate) fn new(e: NewEntry<'_>) -> Slot {
        Slot(AtomicUsize::new(alloc_entry(e)))
    }

    /// The current entry, valid while `guard` is pinned.
    #[inline]
    pub(crate) fn load<'g>(&self, _guard: &'g Guard) -> &'g Entry {
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: the pointer is never null and was fully written before its Release
        // publication (Acquire above pairs with it); an entry is freed only through
        // `defer_unchecked` after being swapped out (so after every guard pinned before the
        // swap, including `_guard`, is dropped) or in Drop when no guard can reach the node.
        unsafe { &*(p as *const Entry) }
    }

    /// Publishes `e` and retires the previous entry through the epoch. Callers hold the shard
    /// writer lock, so there is never a concurrent `replace` on the same slot.
    pub(crate) fn replace(&self, e: NewEntry<'_>, guard: &Guard) {
        let new = alloc_entry(e);
        let old = self.0.swap(new, Ordering::AcqRel);
        // SAFETY: `old` is unlinked by the swap; readers that loaded it are pinned, and the
        // deferred free runs only after they unpin. Nobody else frees it (one writer).
        unsafe { guard.defer_unchecked(move || free_entry(old)) };
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: a Slot is dropped when its skiplist node is destroyed, which crossbeam does
        // only once no thread can reach the node (after the epoch), or when the skiplist itself
        // is dropped; either way no reader can still hold the entry, and it is freed once.
        unsafe { free_entry(*self.0.get_mut()) };
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
    fn ikeys_order_by_hash_then_key() {
        let a = make_ikey(1, b"zzz", Slot::new(ne(0)));
        let b = make_ikey(2, b"aaa", Slot::new(ne(0)));
        let c = make_ikey(2, b"aab", Slot::new(ne(0)));
        assert!(a < b && b < c);
        let long = vec![5u8; 100];
        let l = make_ikey(2, &long, Slot::new(ne(0)));
        assert_eq!(l.bytes(), &long[..]);
        assert!(l < c && a < l);
        assert_eq!(std::mem::size_of::<IKey>(), 40);
    }

    #[test]
    fn hash_sits_next_to_the_tower() {
        // The skiplist node is (key, refs: usize, tower): the hash is the key's last word, so
        // it and the first tower pointers are at most 24 bytes apart.
        assert_eq!(
            std::mem::offset_of!(IKey, hash) + 8,
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
        let mut listed = 0;
        let mut cur = idx.front(&g);
        let mut last: Option<(u64, Vec<u8>)> = None;
        while let Some(e) = cur {
            let k = (e.key().hash, e.key().bytes().to_vec());
            assert!(last.as_ref().is_none_or(|l| *l < k), "list out of order");
            last = Some(k);
            listed += 1;
            cur = e.next();
        }
        assert_eq!(listed, keys.len());
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
        assert_eq!(std::mem::size_of::<Entry>(), 24);
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
}
