//! Block cache: 4 KiB blocks of the log files in a quick_cache (S3-FIFO), weighted by bytes.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

/// Block size of the cache, in bytes.
pub(crate) const BLOCK: u64 = 4096;

#[derive(Clone)]
struct ByLen;

impl Weighter<(u32, u32), Bytes> for ByLen {
    fn weight(&self, _key: &(u32, u32), val: &Bytes) -> u64 {
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

/// The block cache. Keys are (file id, block number); file ids are never reused, so a block
/// can never be stale except the tail block of the file being appended to, which is
/// re-read when it is shorter than needed.
pub(crate) struct BlockCache {
    cache: Option<Cache<(u32, u32), Bytes, ByLen>>,
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
        let b = self.cache.as_ref()?.get(&(file, block))?;
        (b.len() >= need).then_some(b)
    }

    pub(crate) fn insert(&self, file: u32, block: u32, data: Bytes) {
        if let Some(c) = &self.cache {
            c.insert((file, block), data);
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
