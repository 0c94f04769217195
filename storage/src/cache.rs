//! Block cache: 4 KiB blocks of the log files, and whole values of at least `VALUE_MIN`
//! bytes, in one quick_cache (S3-FIFO), weighted by bytes.

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

/// The block cache. Keys are (file id, block number) or (file id, value offset); file ids
/// are never reused, so a block can never be stale except the tail block of the file being
/// appended to, which is re-read when it is shorter than needed. A value is cached only
/// once it is whole in its log, and a record never changes once written.
pub(crate) struct BlockCache {
    cache: Option<Cache<Key, Bytes, ByLen>>,
    pub hits: Counter,
    pub misses: Counter,
}

impl BlockCache {
    pub(crate) fn new(capacity_bytes: u64) -> BlockCache {
        let cache = (capacity_bytes >= BLOCK).then(|| {
            let items = (capacity_bytes / (BLOCK + 64)).max(16) as usize;
            Cache::with_weighter(items, capacity_bytes, ByLen)
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
        let b = self.cache.as_ref()?.get(&Key::Block { file, block })?;
        (b.len() >= need).then_some(b)
    }

    pub(crate) fn insert(&self, file: u32, block: u32, data: Bytes) {
        if let Some(c) = &self.cache {
            c.insert(Key::Block { file, block }, data);
        }
    }

    /// The cached value starting at `off` of log `file`.
    #[inline]
    pub(crate) fn get_value(&self, file: u32, off: u64) -> Option<Bytes> {
        self.cache.as_ref()?.get(&Key::Value { file, off })
    }

    pub(crate) fn insert_value(&self, file: u32, off: u64, value: Bytes) {
        if let Some(c) = &self.cache {
            c.insert(Key::Value { file, off }, value);
        }
    }

    pub(crate) fn count_hit(&self) {
        self.hits.add();
    }

    pub(crate) fn count_miss(&self) {
        self.misses.add();
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.weight())
    }
}
