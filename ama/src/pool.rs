//! The bounded page pool: one anonymous memory map cut into pages, a free
//! list, typed object quotas, and the hook through which a client (a cache)
//! gives pages back when the pool runs dry.

use crate::aad::{ObjectKind, MAX_OBJECT_KINDS};
use crate::active::ActiveSet;
use crate::freelist::FreeList;
use crate::reserve;
use crate::stats::Counters;
use crossbeam_utils::CachePadded;
use faultinject::Injector;
use memmap2::MmapMut;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// An allocation failed (the pool is spent or a fault was injected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoMem;

impl std::fmt::Display for NoMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("out of memory")
    }
}
impl std::error::Error for NoMem {}

type Reclaimer = Box<dyn Fn(usize) -> usize + Send + Sync>;

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

pub struct Pool {
    pub(crate) id: u64,
    page_size: usize,
    capacity: usize,
    /// Kept alive for `base`; pages are reached through `base` only.
    _region: MmapMut,
    base: *mut u8,
    /// The free pages, and the counters, each in cache lines of their own,
    /// away from what every page access reads (the page size, the base)
    /// and from the pool's reference count, which every page taken or
    /// given back changes: two threads taking pages would otherwise take
    /// the line from each other at every access.
    free: FreeList,
    pub(crate) kinds: Vec<ObjectKind>,
    injector: Option<Arc<Injector>>,
    /// Are allocations on this thread subject to injection right now? (The
    /// client decides: e.g. only while a request is served.)
    in_scope: fn() -> bool,
    reclaimer: OnceLock<Reclaimer>,
    /// Panic on an under-allocation (test builds of the client).
    strict: std::sync::atomic::AtomicBool,
    /// Every this-many-th reservation gets one page fewer than its
    /// requirement (0: none); and reservations filled so far.
    short_every: AtomicU64,
    fills: AtomicU64,
    pub(crate) counters: CachePadded<Counters>,
    /// The requests holding a reserve on this pool.
    pub(crate) active: ActiveSet,
}

// SAFETY: the region is only reached through `Page`s, each of which owns a
// distinct page index handed out by the free list (see `Page`).
unsafe impl Sync for Pool {}
unsafe impl Send for Pool {}

impl Pool {
    /// A pool of `capacity` pages of `page_size` bytes.
    pub fn new(
        page_size: usize,
        capacity: usize,
        kinds: &[ObjectKind],
        injector: Option<Arc<Injector>>,
        in_scope: fn() -> bool,
    ) -> std::io::Result<Arc<Pool>> {
        assert!(kinds.len() <= MAX_OBJECT_KINDS, "too many object kinds");
        assert!(page_size > 0 && capacity > 0 && capacity < u32::MAX as usize);
        let mut region = MmapMut::map_anon(page_size * capacity)?;
        let base = region.as_mut_ptr();
        Ok(Arc::new(Pool {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            page_size,
            capacity,
            _region: region,
            base,
            free: FreeList::new(capacity as u32),
            kinds: kinds.to_vec(),
            injector,
            in_scope,
            reclaimer: OnceLock::new(),
            strict: std::sync::atomic::AtomicBool::new(false),
            short_every: AtomicU64::new(0),
            fills: AtomicU64::new(0),
            counters: CachePadded::new(Counters::default()),
            active: ActiveSet::new(),
        }))
    }

    /// The client's way to give pages back when the pool is spent: called
    /// with how many pages are wanted, returns how many it freed. It must
    /// not block on locks the allocating thread may hold.
    pub fn set_reclaimer(&self, f: impl Fn(usize) -> usize + Send + Sync + 'static) {
        let _ = self.reclaimer.set(Box::new(f));
    }

    /// Make an under-allocation panic (after it is counted and logged)
    /// instead of being served: for test builds, where it is a bug to find.
    pub fn set_strict(&self, strict: bool) {
        self.strict.store(strict, Ordering::Relaxed);
    }

    /// Test a client's handling of estimates overtaken by concurrent
    /// requests: from now on every `k`-th reservation (0: none) that asks
    /// for pages gets one fewer, as if its estimate had been made just
    /// before another request changed what it saw.
    pub fn short_every(&self, k: u64) {
        self.short_every.store(k, Ordering::Relaxed);
    }

    /// Pages to really take for a reservation asking for `pages`.
    pub(crate) fn pages_to_fill(&self, pages: u32) -> u32 {
        let k = self.short_every.load(Ordering::Relaxed);
        if k == 0 || pages == 0 {
            return pages;
        }
        let n = self.fills.fetch_add(1, Ordering::Relaxed) + 1;
        pages - u32::from(n.is_multiple_of(k))
    }

    fn under(&self, site: &str) {
        if self.strict.load(Ordering::Relaxed) {
            panic!("ama: under-allocation at {site} (strict pool)");
        }
    }

    pub fn page_size(&self) -> usize {
        self.page_size
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn free_pages(&self) -> usize {
        self.free.len()
    }
    pub fn in_use(&self) -> usize {
        self.capacity.saturating_sub(self.free_pages())
    }

    pub(crate) fn injected(&self, site: &str) -> bool {
        match &self.injector {
            Some(inj) if (self.in_scope)() => inj.alloc_fails(site),
            _ => false,
        }
    }

    /// Take `n` pages at once into `out`, asking the reclaimer for what is
    /// missing. All or nothing.
    pub(crate) fn take_pages_into(self: &Arc<Self>, n: usize, out: &mut Vec<Page>) -> bool {
        self.take(n, |p| out.push(p))
    }

    /// Take `n` pages at once, each handed to `put`. All or nothing.
    fn take(self: &Arc<Self>, n: usize, mut put: impl FnMut(Page)) -> bool {
        if n == 0 {
            return true; // (most reserves: all they need was peeked at)
        }
        for attempt in 0..3 {
            let taken = self.free.take(n, self.capacity, |idx| {
                put(Page {
                    pool: self.clone(),
                    idx,
                })
            });
            if let Some(out) = taken {
                // (The peak counts pages idle in threads' caches as in
                // use: see `FreeList::take`.)
                self.counters.allocated(n, out.unwrap_or(0));
                return true;
            }
            match attempt {
                // Pages idle in other threads' caches, then what the
                // client can give back.
                0 => self.free.gather(),
                1 => {
                    if let Some(r) = self.reclaimer.get() {
                        r(n);
                    }
                    self.free.gather();
                }
                _ => {}
            }
        }
        false
    }

    /// Give many pages back under one lock.
    pub(crate) fn give_back_all(&self, pages: &mut Vec<Page>) {
        if pages.is_empty() {
            return;
        }
        self.free.give_many(
            pages
                .iter_mut()
                .map(|p| std::mem::replace(&mut p.idx, RETURNED)),
        );
        pages.clear();
    }

    /// One page: from this thread's active reserve if it has one for this
    /// pool, else from the pool (an injection point).
    pub fn alloc_page(self: &Arc<Self>, site: &'static str) -> Result<Page, NoMem> {
        match reserve::serve_page(self, site) {
            reserve::Served::Page(p) => return Ok(p),
            reserve::Served::Stale => return Err(NoMem),
            reserve::Served::Under => self.under(site),
            _ => {}
        }
        if self.injected(site) {
            return Err(NoMem);
        }
        // (One page without a vector: this is every allocation's path
        // when no reserve is active.)
        let mut one = None;
        self.take(1, |p| one = Some(p));
        one.ok_or(NoMem)
    }

    /// Account for a page's worth of memory that the caller keeps in a
    /// smaller form of its own (a before-image of a few bytes): from the
    /// active reserve one page is spoken for, exactly as [`alloc_page`]
    /// would take it (so an estimate of a page per image stays exact, and
    /// a reserve too short for it is found stale or under-allocated the
    /// same way), but no page moves; without a reserve it is an injection
    /// point, as an allocation would be.
    ///
    /// [`alloc_page`]: Pool::alloc_page
    pub fn charge_page(self: &Arc<Self>, site: &'static str) -> Result<(), NoMem> {
        match reserve::charge_page(self, site) {
            reserve::Served::Charged => return Ok(()),
            reserve::Served::Stale => return Err(NoMem),
            reserve::Served::Under => self.under(site),
            _ => {}
        }
        if self.injected(site) {
            return Err(NoMem);
        }
        Ok(())
    }

    /// Account for one object of kind `kind` (an index into the kinds given
    /// to [`Pool::new`]): served from the active reserve, or else an
    /// injection point. The object itself lives on the Rust heap; the pool
    /// keeps its quota and accounting.
    pub fn take_object(self: &Arc<Self>, kind: usize, site: &'static str) -> Result<(), NoMem> {
        match reserve::serve_object(self, kind, site) {
            reserve::Served::Object => return Ok(()),
            reserve::Served::Stale => return Err(NoMem),
            reserve::Served::Under => self.under(site),
            _ => {}
        }
        if self.injected(site) {
            return Err(NoMem);
        }
        self.counters.object_bytes(self.kinds[kind].size);
        Ok(())
    }

    fn give_back(&self, idx: u32) {
        self.free.give(idx);
    }

    /// The sequence number of the oldest request holding a reserve on
    /// this pool (`u64::MAX` when none does): what a request marked with
    /// [`crate::pin_seq`] at or above it may still use.
    pub fn oldest_active(&self) -> u64 {
        self.active.oldest()
    }

    pub fn space(&self) -> crate::Space {
        self.counters.snapshot(self)
    }
}

/// The index of a page already given back (by `give_back_all`).
const RETURNED: u32 = u32::MAX;

/// One page of a pool; it goes back to the pool's free list when dropped.
pub struct Page {
    pool: Arc<Pool>,
    idx: u32,
}

impl Page {
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl std::ops::Deref for Page {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let ps = self.pool.page_size;
        // SAFETY: `idx < capacity` and no other `Page` has this index while
        // this one lives (the free list hands each index out once).
        unsafe { std::slice::from_raw_parts(self.pool.base.add(self.idx as usize * ps), ps) }
    }
}

impl std::ops::DerefMut for Page {
    fn deref_mut(&mut self) -> &mut [u8] {
        let ps = self.pool.page_size;
        // SAFETY: as in `deref`, and `&mut self` makes this access unique.
        unsafe { std::slice::from_raw_parts_mut(self.pool.base.add(self.idx as usize * ps), ps) }
    }
}

impl AsRef<[u8]> for Page {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for Page {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        if self.idx != RETURNED {
            self.pool.give_back(self.idx);
        }
    }
}
