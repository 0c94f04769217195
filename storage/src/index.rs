//! The index: per (shard, database) a lock-free ordered skiplist from key to an immutable
//! `Entry`, swapped atomically on update (RCU) and retired through crossbeam-epoch.
//!
//! Index keys are `hash (8 bytes, big-endian) ++ key`, so each skiplist is ordered by hash
//! first. That makes a SCAN cursor a (shard, hash prefix) pair that fits a u64, and a resumed
//! scan starts at the first key whose hash is >= the cursor: a key that lives through the
//! whole scan is never missed however the skiplist changes around it.

use std::sync::atomic::Ordering;

use crossbeam_epoch::{Atomic, Guard, Owned};
use crossbeam_skiplist::base::SkipList;

/// A skiplist of one (shard, db).
pub(crate) type Index = SkipList<Box<[u8]>, Slot>;

/// Longest key built on the stack for lookups.
const STACK_KEY: usize = 120;

/// Calls `f` with the index key of (`hash`, `key`) without allocating for short keys.
#[inline]
pub(crate) fn with_ikey<R>(hash: u64, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    if key.len() <= STACK_KEY {
        let mut buf = [0u8; STACK_KEY + 8];
        buf[..8].copy_from_slice(&hash.to_be_bytes());
        buf[8..8 + key.len()].copy_from_slice(key);
        f(&buf[..8 + key.len()])
    } else {
        f(&make_ikey(hash, key))
    }
}

/// The owned index key of (`hash`, `key`).
pub(crate) fn make_ikey(hash: u64, key: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(8 + key.len());
    v.extend_from_slice(&hash.to_be_bytes());
    v.extend_from_slice(key);
    v.into_boxed_slice()
}

/// The user key inside an index key.
#[inline]
pub(crate) fn user_key(ikey: &[u8]) -> &[u8] {
    &ikey[8..]
}

/// The hash inside an index key.
pub(crate) fn ikey_hash(ikey: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&ikey[..8]);
    u64::from_be_bytes(a)
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
        assert!(a < b);
        assert_eq!(user_key(&a), b"zzz");
        assert_eq!(ikey_hash(&b), 2);
        with_ikey(1, b"zzz", |k| assert_eq!(k, &*a));
        let long = vec![7u8; 500];
        with_ikey(3, &long, |k| assert_eq!(k, &*make_ikey(3, &long)));
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
