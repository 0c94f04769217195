//! The lookup table beside each skiplist (the VarTree's `Index` and each ConstTree shard):
//! an open-addressing table from a key's hash to its node, so a point lookup is a probe or
//! two and one node instead of a walk through a dozen skiplist levels.
//!
//! A slot is one word: EMPTY, TOMB, or `tag << 48 | ptr`, where ptr is the address of a node
//! inside a live skiplist entry (8-aligned, so never 0 or 1) and tag is the top 16 bits of the
//! key's hash (a probe dereferences only nodes whose tag matches). The table is written only
//! under the owner's shard lock, read lock-free, and replaced (RCU, retired through the epoch)
//! when it grows.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_epoch::{Atomic, Guard, Owned};

const EMPTY: u64 = 0;
const TOMB: u64 = 1;
const PTR_BITS: u32 = 48;
const PTR_MASK: u64 = (1 << PTR_BITS) - 1;
const MIN_TABLE: usize = 16;

/// A node the table points at: it knows its key's hash.
pub(crate) trait Hashed {
    fn hash(&self) -> u64;
}

#[inline]
fn tag(hash: u64) -> u64 {
    hash >> PTR_BITS
}

/// The slot a probe for `hash` starts at. Not the hash's low bits: the engine picks a key's
/// shard from those (`hash % shards`, 64 by default), so within one shard's table they are
/// the same for every key, and only every 64th slot would ever start a probe (long runs of
/// full slots, several cache lines per lookup). The bits from 16 up are independent of the
/// shard, and of the tag too in any table under 2^32 slots.
#[inline]
fn home(hash: u64, mask: usize) -> usize {
    (hash >> 16) as usize & mask
}

fn pack(hash: u64, p: usize) -> u64 {
    // User-space addresses on Linux x86-64 and aarch64 fit in 48 bits (the kernel hands out
    // higher ones only to mmap calls that ask for them, which the allocator does not).
    assert!(
        (p as u64) >> PTR_BITS == 0,
        "index node address {p:#x} does not fit in 48 bits"
    );
    (tag(hash) << PTR_BITS) | p as u64
}

/// Asks the CPU to start loading the cache line at `p` (a hint: a no-op off x86-64).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only moves a line toward the cache. It never faults, whatever the
    // address (an unmapped or freed one is simply dropped), and reads or writes nothing a
    // program can observe; SSE, which it needs, is part of every x86-64 CPU.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches the probes of a batch of hashes, each in the table `table` gives for it: every
/// first slot, then (those having landed meanwhile) every node they point at.
pub(crate) fn prefetch_probes<'t, T: Hashed + 't>(
    hashes: &[u64],
    guard: &Guard,
    table: impl Fn(u64) -> &'t LookupTable<T>,
) {
    for &h in hashes {
        table(h).prefetch_slot(h, guard);
    }
    for &h in hashes {
        table(h).prefetch_node(h, guard);
    }
}

struct Table {
    mask: usize,
    slots: Box<[AtomicU64]>,
}

impl Table {
    fn new(cap: usize) -> Table {
        Table {
            mask: cap - 1,
            slots: (0..cap).map(|_| AtomicU64::new(EMPTY)).collect(),
        }
    }
}

/// The table over nodes of type `T`.
pub(crate) struct LookupTable<T> {
    table: Atomic<Table>,
    /// Slots that are not EMPTY (live + tombstones). Written under the shard lock.
    used: AtomicUsize,
    /// Live entries. Written under the shard lock.
    live: AtomicUsize,
    _nodes: PhantomData<fn() -> T>,
}

impl<T: Hashed> LookupTable<T> {
    pub(crate) fn new() -> LookupTable<T> {
        LookupTable {
            table: Atomic::new(Table::new(MIN_TABLE)),
            used: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            _nodes: PhantomData,
        }
    }

    #[inline]
    fn current<'g>(&self, guard: &'g Guard) -> &'g Table {
        // SAFETY: the table pointer is never null; a replaced table is retired through the
        // epoch, so it lives while `guard` is pinned.
        unsafe { self.table.load(Ordering::Acquire, guard).deref() }
    }

    /// The first node with this hash for which `is` says yes. Lock-free.
    #[inline]
    pub(crate) fn find<'g>(
        &self,
        hash: u64,
        guard: &'g Guard,
        mut is: impl FnMut(&'g T) -> bool,
    ) -> Option<&'g T> {
        let t = self.current(guard);
        let want = tag(hash);
        let mut i = home(hash, t.mask);
        loop {
            let w = t.slots[i].load(Ordering::Acquire);
            if w == EMPTY {
                return None;
            }
            if w != TOMB && w >> PTR_BITS == want {
                // SAFETY: the word was in the table after this thread pinned `guard`. By
                // `insert`'s contract a node leaves the table (TOMB) before it is unlinked
                // from its skiplist, and crossbeam destroys unlinked nodes only after every
                // guard pinned before the unlink is dropped: the node is valid for 'g.
                let k = unsafe { &*((w & PTR_MASK) as usize as *const T) };
                if k.hash() == hash && is(k) {
                    return Some(k);
                }
            }
            // The table is never more than 3/4 used, so an EMPTY slot ends every probe.
            i = (i + 1) & t.mask;
        }
    }

    /// Starts loading the slot a `find` of `hash` probes first. Reads nothing itself.
    #[inline]
    pub(crate) fn prefetch_slot(&self, hash: u64, guard: &Guard) {
        let t = self.current(guard);
        prefetch(std::ptr::from_ref(&t.slots[home(hash, t.mask)]).cast());
    }

    /// Starts loading the node the first probed slot of `hash` points at, if its tag
    /// matches: meant to follow `prefetch_slot` once that had time to land. The node is not
    /// read here (a prefetch of a node freed meanwhile is harmless: it never faults).
    #[inline]
    pub(crate) fn prefetch_node(&self, hash: u64, guard: &Guard) {
        let t = self.current(guard);
        let w = t.slots[home(hash, t.mask)].load(Ordering::Relaxed);
        if w != EMPTY && w != TOMB && w >> PTR_BITS == tag(hash) {
            let first = (w & PTR_MASK) as usize;
            // A node may straddle two cache lines: load the line of its last byte too.
            let last = first.wrapping_add(std::mem::size_of::<T>() - 1);
            prefetch(first as *const u8);
            prefetch(last as *const u8);
        }
    }

    /// Adds `node`. Caller holds the shard lock.
    ///
    /// # Safety
    /// `node` must point at a node linked in the owner's skiplist, and it must be taken out
    /// of this table (`remove` or `clear`) before it is unlinked; nodes are freed through the
    /// epoch.
    pub(crate) unsafe fn insert(&self, node: *const T, guard: &Guard) {
        // SAFETY: by the contract, `node` is a live linked node.
        let hash = unsafe { (*node).hash() };
        let used = self.used.load(Ordering::Relaxed);
        let mut t = self.current(guard);
        if (used + 1) * 4 > t.slots.len() * 3 {
            t = self.rebuild(guard);
        }
        let mut i = home(hash, t.mask);
        loop {
            let w = t.slots[i].load(Ordering::Relaxed);
            if w == EMPTY || w == TOMB {
                if w == EMPTY {
                    self.used.fetch_add(1, Ordering::Relaxed);
                }
                // Release: a reader that loads the word sees the node it points to.
                t.slots[i].store(pack(hash, node as usize), Ordering::Release);
                self.live.fetch_add(1, Ordering::Relaxed);
                return;
            }
            i = (i + 1) & t.mask;
        }
    }

    /// Replaces the table by one sized for the live entries (dropping tombstones).
    fn rebuild<'g>(&self, guard: &'g Guard) -> &'g Table {
        let live = self.live.load(Ordering::Relaxed);
        let cap = ((live + 1) * 2).next_power_of_two().max(MIN_TABLE);
        let new = Table::new(cap);
        let old = self.current(guard);
        let mut n = 0;
        for w in old.slots.iter() {
            let w = w.load(Ordering::Relaxed);
            if w == EMPTY || w == TOMB {
                continue;
            }
            // SAFETY: a live table word points at a linked node (the caller holds the shard
            // lock, so nothing unlinks it meanwhile).
            let hash = unsafe { (*((w & PTR_MASK) as usize as *const T)).hash() };
            let mut i = home(hash, new.mask);
            while new.slots[i].load(Ordering::Relaxed) != EMPTY {
                i = (i + 1) & new.mask;
            }
            new.slots[i].store(w, Ordering::Relaxed);
            n += 1;
        }
        self.used.store(n, Ordering::Relaxed);
        self.live.store(n, Ordering::Relaxed);
        // AcqRel: readers that load the new table see its slots.
        let old = self.table.swap(Owned::new(new), Ordering::AcqRel, guard);
        // SAFETY: the old table is unreachable for new readers; readers that loaded it are
        // pinned and the epoch frees it after they unpin. Only the lock holder swaps.
        unsafe { guard.defer_destroy(old) };
        self.current(guard)
    }

    /// Takes `node` out of the table, before the caller unlinks it from the skiplist (see
    /// `find`). Caller holds the shard lock.
    pub(crate) fn remove(&self, node: &T, guard: &Guard) {
        let p = node as *const T as u64;
        let t = self.current(guard);
        let mut i = home(node.hash(), t.mask);
        loop {
            let w = t.slots[i].load(Ordering::Relaxed);
            if w == EMPTY {
                return; // not in the table (cannot happen: every node is inserted there)
            }
            if w != TOMB && w & PTR_MASK == p {
                t.slots[i].store(TOMB, Ordering::Release);
                self.live.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            i = (i + 1) & t.mask;
        }
    }

    /// Empties the table (before the caller unlinks every node). New readers see an empty
    /// table at once. Caller holds the shard lock.
    pub(crate) fn clear(&self, guard: &Guard) {
        let old = self
            .table
            .swap(Owned::new(Table::new(MIN_TABLE)), Ordering::AcqRel, guard);
        // SAFETY: as in `rebuild`.
        unsafe { guard.defer_destroy(old) };
        self.used.store(0, Ordering::Relaxed);
        self.live.store(0, Ordering::Relaxed);
    }
}

impl<T> Drop for LookupTable<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader or writer can reach this table any more; the current
        // table was allocated by `Owned::new` and is freed exactly once here (replaced tables
        // went through `defer_destroy`).
        unsafe {
            let t = self
                .table
                .load(Ordering::Relaxed, crossbeam_epoch::unprotected());
            drop(t.into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TestNode {
        hash: u64,
    }

    impl Hashed for TestNode {
        fn hash(&self) -> u64 {
            self.hash
        }
    }

    impl<T: Hashed> LookupTable<T> {
        /// How many slots a `find` of `node` probes before it reaches it.
        fn probes(&self, node: &T, guard: &Guard) -> usize {
            let t = self.current(guard);
            let p = std::ptr::from_ref(node) as u64;
            let mut i = home(node.hash(), t.mask);
            let mut n = 1;
            while t.slots[i].load(Ordering::Relaxed) & PTR_MASK != p {
                i = (i + 1) & t.mask;
                n += 1;
            }
            n
        }
    }

    /// The engine gives a shard's table only keys whose `hash % 64` is the shard's number:
    /// the probes must still spread over the whole table.
    #[test]
    fn one_shards_keys_probe_a_slot_or_two() {
        let nodes: Vec<TestNode> = (0u64..)
            .map(|i| xxhash_rust::xxh3::xxh3_64(format!("key:{i}").as_bytes()))
            .filter(|h| h % 64 == 5)
            .take(20_000)
            .map(|hash| TestNode { hash })
            .collect();
        let table = LookupTable::new();
        let guard = crossbeam_epoch::pin();
        for n in &nodes {
            // SAFETY: `nodes` outlives the table's use here and nothing is removed.
            unsafe { table.insert(n, &guard) };
        }
        let total: usize = nodes.iter().map(|n| table.probes(n, &guard)).sum();
        let mean = total as f64 / nodes.len() as f64;
        // Linear probing at most 3/4 full averages under 2.5 probes per hit; a table indexed
        // by the hash's low bits averages dozens here.
        assert!(mean < 2.5, "{mean:.1} probes per lookup");
        for n in &nodes {
            let found = table.find(n.hash, &guard, |_| true);
            assert!(found.is_some_and(|f| std::ptr::eq(f, n)));
        }
    }
}
