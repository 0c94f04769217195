//! The index: per (shard, database) a lock-free ordered skiplist from key to an immutable
//! `Entry`, swapped atomically on update (RCU) and retired through crossbeam-epoch.
//!
//! Index keys are (hash, key) pairs ordered by hash first: the hash sits in the node itself,
//! so a lookup compares integers while it walks the skiplist and touches the key bytes (a
//! separate allocation) only at the end. Hash order also makes a SCAN cursor a (shard, hash
//! prefix) pair that fits a u64: a resumed scan starts at the first key whose hash is >= the
//! cursor, so a key that lives through the whole scan is never missed however the skiplist
//! changes around it.

use std::borrow::Borrow;
use std::ops::Bound;
use std::sync::atomic::Ordering;

use crossbeam_epoch::{Atomic, Guard, Owned};
use crossbeam_skiplist::base::{self, SkipList};

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

/// A skiplist key: the key's xxh3 hash and the key, ordered by (hash, key bytes).
#[derive(Clone, Debug)]
pub(crate) struct IKey {
    pub hash: u64,
    key: KeyBytes,
}

impl IKey {
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        self.key.as_slice()
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

/// Lookups search by hash alone (an order the (hash, key) order refines), then compare keys
/// among the nodes with that hash.
impl Borrow<u64> for IKey {
    fn borrow(&self) -> &u64 {
        &self.hash
    }
}

/// A skiplist of one (shard, db).
pub(crate) type Index = SkipList<IKey, Slot>;

/// A node of an index.
pub(crate) type Node<'a, 'g> = base::Entry<'a, 'g, IKey, Slot>;

/// The node of (`hash`, `key`), if present.
#[inline]
pub(crate) fn find<'a: 'g, 'g>(
    idx: &'a Index,
    hash: u64,
    key: &[u8],
    guard: &'g Guard,
) -> Option<Node<'a, 'g>> {
    let mut cur = idx.lower_bound(Bound::Included(&hash), guard);
    while let Some(e) = cur {
        if e.key().hash != hash {
            return None;
        }
        if e.key().bytes() == key {
            return Some(e);
        }
        cur = e.next();
    }
    None
}

/// The owned index key of (`hash`, `key`).
pub(crate) fn make_ikey(hash: u64, key: &[u8]) -> IKey {
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
    IKey { hash, key }
}

/// Where a key's live record is, and its value if small. Immutable once published.
pub(crate) struct Entry {
    /// Absolute UNIX ms, 0 = none.
    pub expire_at_ms: u64,
    /// Log file of the record.
    pub file: u32,
    /// Byte offset of the record (its header) in the file.
    pub offset: u32,
    /// Value length.
    pub value_len: u32,
    /// The value, when it is at most `inline_value_max` bytes.
    pub inline: Option<Box<[u8]>>,
}

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
}

/// The value of a skiplist node: an atomic pointer to the current `Entry`. Never null.
pub(crate) struct Slot(Atomic<Entry>);

impl Slot {
    pub(crate) fn new(e: Entry) -> Slot {
        Slot(Atomic::new(e))
    }

    /// The current entry, valid while `guard` is pinned.
    #[inline]
    pub(crate) fn load<'g>(&self, guard: &'g Guard) -> &'g Entry {
        let p = self.0.load(Ordering::Acquire, guard);
        // SAFETY: the pointer is never null (set in `new`, replaced only by `replace` with a
        // non-null Owned), and the entry it points to is destroyed only through
        // `defer_destroy` after being unlinked, or in Drop when no guard can reach the node,
        // so it stays valid for as long as `guard` is pinned.
        unsafe { p.deref() }
    }

    /// Publishes `e` and retires the previous entry through the epoch. Callers hold the shard
    /// writer lock, so there is never a concurrent `replace` on the same slot.
    pub(crate) fn replace(&self, e: Entry, guard: &Guard) {
        let old = self.0.swap(Owned::new(e), Ordering::AcqRel, guard);
        // SAFETY: `old` was unlinked by the swap above; readers that loaded it are pinned, so
        // the epoch destroys it only after they unpin. Nobody else retires it (one writer).
        unsafe { guard.defer_destroy(old) };
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: a Slot is dropped when its skiplist node is destroyed, which crossbeam does
        // only once no thread can reach the node (after the epoch), or when the skiplist itself
        // is dropped; either way no reader can still hold the entry.
        unsafe {
            let p = self
                .0
                .load(Ordering::Relaxed, crossbeam_epoch::unprotected());
            if !p.is_null() {
                drop(p.into_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ikeys_order_by_hash_then_key() {
        let a = make_ikey(1, b"zzz");
        let b = make_ikey(2, b"aaa");
        let c = make_ikey(2, b"aab");
        assert!(a < b && b < c);
        let idx: Index = SkipList::new(crossbeam_epoch::default_collector().clone());
        let g = crossbeam_epoch::pin();
        for k in [&a, &b, &c] {
            idx.insert(
                k.clone(),
                Slot::new(Entry {
                    expire_at_ms: 0,
                    file: 0,
                    offset: 0,
                    value_len: 0,
                    inline: None,
                }),
                &g,
            )
            .release(&g);
        }
        assert!(find(&idx, 2, b"aab", &g).is_some());
        assert!(find(&idx, 2, b"aaa", &g).is_some());
        assert!(find(&idx, 2, b"aac", &g).is_none());
        assert!(find(&idx, 1, b"zzz", &g).is_some());
        assert!(find(&idx, 3, b"zzz", &g).is_none());
        let long = vec![5u8; 100];
        let l = make_ikey(2, &long);
        assert_eq!(l.bytes(), &long[..]);
        assert!(l < c && a < l);
        assert_eq!(std::mem::size_of::<IKey>(), 32);
    }

    #[test]
    fn slot_replace_and_drop() {
        let s = Slot::new(Entry {
            expire_at_ms: 0,
            file: 1,
            offset: 2,
            value_len: 1,
            inline: Some(Box::new([1])),
        });
        let g = crossbeam_epoch::pin();
        s.replace(
            Entry {
                expire_at_ms: 5,
                file: 1,
                offset: 3,
                value_len: 0,
                inline: None,
            },
            &g,
        );
        assert_eq!(s.load(&g).offset, 3);
        assert!(!s.load(&g).live(5));
        assert!(s.load(&g).live(4));
    }
}
