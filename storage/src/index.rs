//! The index: per (shard, database) a lock-free ordered skiplist from key to an immutable
//! `Entry`, swapped atomically on update (RCU) and retired through crossbeam-epoch.
//!
//! Index keys are (hash, key) pairs ordered by hash first: the hash sits in the node itself,
//! so a lookup compares integers while it walks the skiplist and touches the key bytes (a
//! separate allocation) only at the end. Hash order also makes a SCAN cursor a (shard, hash
//! prefix) pair that fits a u64: a resumed scan starts at the first key whose hash is >= the
//! cursor, so a key that lives through the whole scan is never missed however the skiplist
//! changes around it.

use std::alloc::Layout;
use std::borrow::Borrow;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_epoch::Guard;
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
                Slot::new(NewEntry {
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
