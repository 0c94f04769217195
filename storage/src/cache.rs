//! Block cache: 4 KiB blocks of the log files, and whole values of at least `VALUE_MIN`
//! bytes, in one quick_cache (S3-FIFO), weighted by bytes, behind a doorkeeper that admits
//! an entry on its second miss.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

/// Block size of the cache, in bytes.
pub(crate) const BLOCK: u64 = 4096;

/// Values at least this large are cached whole, by where they start, rather than as the
/// blocks they span: a read that misses costs one pread of the value alone, a hit hands out
/// the cached bytes without assembling them, and the cache holds the value, not the two or
/// more blocks (mostly other records) that a value of a few KiB straddles.
pub(crate) const VALUE_MIN: usize = 1024;

/// What an entry holds: a block of a log, or a whole value starting at `off` of a log.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Block { file: u32, block: u32 },
    Value { file: u32, off: u64 },
}

#[derive(Clone)]
struct ByLen;

impl Weighter<Key, Bytes> for ByLen {
    fn weight(&self, _key: &Key, val: &Bytes) -> u64 {
        val.len() as u64 + 64
    }
}

/// A counter striped over cache lines, so threads counting hits do not fight over one line.
pub(crate) struct Counter([CachePadded<AtomicU64>; 8]);

impl Counter {
    fn new() -> Counter {
        Counter(std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))))
    }

    #[inline]
    fn add(&self) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static STRIPE: Cell<usize> = Cell::new(NEXT.fetch_add(1, Ordering::Relaxed) % 8);
        }
        let i = STRIPE.with(Cell::get);
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn load(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// TinyLFU's doorkeeper: a small Bloom filter of the entries missed lately. An entry is
/// admitted to the cache only when the doorkeeper has seen it miss before, so data read once
/// (a scan, a uniform read of a large key space) is served by one pread into memory that is
/// freed and reused at once, instead of filling the cache with fresh pages that will never be
/// read again. Faulting in fresh memory is what such a read costs most: with every miss
/// admitted, `redis-benchmark -t get -P 16 -d 4096` over a million keys spent 8.9 µs of
/// server CPU per request; without a cache, 3.3. The filter is cleared after as many entries
/// as the cache holds, so "lately" means about one cache's worth of misses.
struct Doorkeeper {
    bits: Box<[AtomicU64]>,
    /// `bits.len() * 64 - 1`: the filter has a power-of-two number of bits.
    mask: u64,
    /// Entries recorded since the last clear, and how many to record before clearing.
    recorded: AtomicUsize,
    limit: usize,
}

impl Doorkeeper {
    /// A filter for a cache of `items` entries: 8 bits per entry, two probes (about 5%
    /// false positives when full).
    fn new(items: usize) -> Doorkeeper {
        let nbits = (items.max(64) * 8).next_power_of_two();
        Doorkeeper {
            bits: (0..nbits / 64).map(|_| AtomicU64::new(0)).collect(),
            mask: nbits as u64 - 1,
            recorded: AtomicUsize::new(0),
            limit: items.max(64),
        }
    }

    /// True if `key` missed before (since the last clear); otherwise records it.
    fn seen_before(&self, key: Key) -> bool {
        let h = mix(key);
        let probes = [h & self.mask, h.rotate_left(32) & self.mask];
        let seen = probes
            .iter()
            .all(|&b| self.bits[(b / 64) as usize].load(Ordering::Relaxed) & (1 << (b % 64)) != 0);
        if seen {
            return true;
        }
        for b in probes {
            self.bits[(b / 64) as usize].fetch_or(1 << (b % 64), Ordering::Relaxed);
        }
        if self.recorded.fetch_add(1, Ordering::Relaxed) + 1 == self.limit {
            // One thread clears; a miss recorded meanwhile may be lost, which only delays
            // that entry's admission by one more miss.
            for w in self.bits.iter() {
                w.store(0, Ordering::Relaxed);
            }
            self.recorded.store(0, Ordering::Relaxed);
        }
        false
    }
}

/// A well-spread 64-bit hash of a cache key (splitmix64's finaliser).
fn mix(key: Key) -> u64 {
    let mut x = match key {
        Key::Block { file, block } => (u64::from(file) << 32) | u64::from(block),
        Key::Value { file, off } => (u64::from(file) << 40) ^ off ^ (1 << 63),
    };
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The block cache. Keys are (file id, block number) or (file id, value offset); file ids
/// are never reused, so a block can never be stale except the tail block of the file being
/// appended to, which is re-read when it is shorter than needed. A value is cached only
/// once it is whole in its log, and a record never changes once written.
pub(crate) struct BlockCache {
    cache: Option<(Cache<Key, Bytes, ByLen>, Doorkeeper)>,
    pub hits: Counter,
    pub misses: Counter,
}

impl BlockCache {
    pub(crate) fn new(capacity_bytes: u64) -> BlockCache {
        let cache = (capacity_bytes >= BLOCK).then(|| {
            let items = (capacity_bytes / (BLOCK + 64)).max(16) as usize;
            (
                Cache::with_weighter(items, capacity_bytes, ByLen),
                Doorkeeper::new(items),
            )
        });
        BlockCache {
            cache,
            hits: Counter::new(),
            misses: Counter::new(),
        }
    }

    /// A cached block holding at least `need` bytes.
    #[inline]
    pub(crate) fn get(&self, file: u32, block: u32, need: usize) -> Option<Bytes> {
        let b = self.cache.as_ref()?.0.get(&Key::Block { file, block })?;
        (b.len() >= need).then_some(b)
    }

    /// Caches a block just read, if its doorkeeper admits it (see `Doorkeeper`).
    pub(crate) fn insert(&self, file: u32, block: u32, data: Bytes) {
        self.admit(Key::Block { file, block }, data);
    }

    /// The cached value starting at `off` of log `file`.
    #[inline]
    pub(crate) fn get_value(&self, file: u32, off: u64) -> Option<Bytes> {
        self.cache.as_ref()?.0.get(&Key::Value { file, off })
    }

    /// Caches a value just read, if its doorkeeper admits it (see `Doorkeeper`).
    pub(crate) fn insert_value(&self, file: u32, off: u64, value: Bytes) {
        self.admit(Key::Value { file, off }, value);
    }

    fn admit(&self, key: Key, data: Bytes) {
        if let Some((c, door)) = &self.cache
            && door.seen_before(key)
        {
            c.insert(key, data);
        }
    }

    pub(crate) fn count_hit(&self) {
        self.hits.add();
    }

    pub(crate) fn count_miss(&self) {
        self.misses.add();
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.0.weight())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u32) -> Bytes {
        Bytes::from(vec![n as u8; BLOCK as usize])
    }

    #[test]
    fn an_entry_is_admitted_on_its_second_miss() {
        let c = BlockCache::new(1 << 20);
        c.insert(1, 7, block(7));
        assert!(c.get(1, 7, 1).is_none(), "admitted on the first miss");
        c.insert(1, 7, block(7));
        assert_eq!(c.get(1, 7, 4096).unwrap(), block(7));
        // Values and blocks, and different files, are different entries.
        c.insert_value(1, 7 * BLOCK, block(8));
        assert!(c.get_value(1, 7 * BLOCK).is_none());
        c.insert(2, 7, block(9));
        assert!(c.get(2, 7, 1).is_none());
        c.insert_value(1, 7 * BLOCK, block(8));
        assert_eq!(c.get_value(1, 7 * BLOCK).unwrap(), block(8));
    }

    #[test]
    fn the_doorkeeper_forgets_after_a_cache_worth_of_misses() {
        let d = Doorkeeper::new(1000);
        let key = |i: u32| Key::Block { file: 3, block: i };
        assert!(!d.seen_before(key(0)));
        assert!(d.seen_before(key(0)));
        // Distinct entries are not taken for seen (a few false positives are allowed).
        let false_pos = (1..500).filter(|&i| d.seen_before(key(i))).count();
        assert!(false_pos < 25, "{false_pos} false positives of 499");
        // Recording a cache's worth of misses clears the filter: key 0 is new again.
        let mut i = 500;
        while d.recorded.load(Ordering::Relaxed) != 0 {
            d.seen_before(key(i));
            i += 1;
            assert!(i < 5000, "the filter was never cleared");
        }
        assert!(d.bits.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        assert!(!d.seen_before(key(0)), "remembered past a clear");
        assert!(d.seen_before(key(0)));
    }
}
