//! The pool's free pages: a shared list, and a small cache per thread in
//! front of it. A page given back goes to the giving thread's cache (up to
//! [`CACHED`] pages), and a take looks there first: a thread that frees and
//! takes pages, request after request, then takes no lock another thread
//! takes (one mutex for the whole pool made two threads' requests with
//! pages cost 3x one thread's). A take that the thread's cache and the
//! shared list cannot serve first moves every other cache's pages to the
//! shared list, so no page sits idle in a cache while a take fails.

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Per-thread caches per pool (threads beyond share them, round robin).
const CACHES: usize = 8;
/// Pages a thread's cache keeps at most; more go to the shared list.
const CACHED: usize = 64;

static NEXT_HOME: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's cache, by index (the same in every pool).
    static HOME: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn home() -> usize {
    HOME.with(|h| {
        if h.get() == usize::MAX {
            h.set(NEXT_HOME.fetch_add(1, Ordering::Relaxed) % CACHES);
        }
        h.get()
    })
}

pub(crate) struct FreeList {
    shared: CachePadded<Mutex<Vec<u32>>>,
    caches: Box<[CachePadded<Mutex<Vec<u32>>>]>,
}

impl FreeList {
    /// Pages `0..capacity`, all free.
    pub(crate) fn new(capacity: u32) -> FreeList {
        FreeList {
            shared: CachePadded::new(Mutex::new((0..capacity).rev().collect())),
            caches: (0..CACHES)
                .map(|_| CachePadded::new(Mutex::new(Vec::with_capacity(CACHED))))
                .collect(),
        }
    }

    /// Free pages in all: the shared list and every cache.
    pub(crate) fn len(&self) -> usize {
        // (One lock at a time: the shared list's guard must be gone before
        // a cache is locked.)
        let shared = self.shared.lock().len();
        shared + self.caches.iter().map(|c| c.lock().len()).sum::<usize>()
    }

    /// Take `n` pages, each handed to `put`, from this thread's cache and
    /// the shared list; all or nothing. On success, how many pages are out
    /// of the shared list when pages were taken from it (in use, or idle in
    /// a thread's cache: at most [`CACHES`] x [`CACHED`] more than in use),
    /// or `None` when the thread's cache served them all (which changes
    /// nothing of that figure).
    pub(crate) fn take(
        &self,
        n: usize,
        capacity: usize,
        mut put: impl FnMut(u32),
    ) -> Option<Option<usize>> {
        // (Lock order: a cache before the shared list; nobody takes a
        // cache while holding the shared list.)
        let mut own = self.caches[home()].lock();
        if own.len() >= n {
            // (The common case: the shared list is not touched.)
            let at = own.len() - n;
            for idx in own.drain(at..) {
                put(idx);
            }
            return Some(None);
        }
        let mut shared = self.shared.lock();
        if own.len() + shared.len() < n {
            return None;
        }
        let at = shared.len() - (n - own.len());
        for idx in own.drain(..).chain(shared.drain(at..)) {
            put(idx);
        }
        Some(Some(capacity - shared.len()))
    }

    /// Give back one page.
    pub(crate) fn give(&self, idx: u32) {
        self.give_many(std::iter::once(idx));
    }

    /// Give back pages: into this thread's cache while it has room, the
    /// rest to the shared list.
    pub(crate) fn give_many(&self, pages: impl IntoIterator<Item = u32>) {
        let mut pages = pages.into_iter().peekable();
        {
            let mut own = self.caches[home()].lock();
            while own.len() < CACHED {
                match pages.next() {
                    Some(idx) => own.push(idx),
                    None => return,
                }
            }
        }
        if pages.peek().is_some() {
            self.shared.lock().extend(pages);
        }
    }

    /// Move every cache's pages to the shared list (before a take that
    /// would fail, or a reclaim).
    pub(crate) fn gather(&self) {
        for c in self.caches.iter() {
            let pages = std::mem::take(&mut *c.lock());
            if !pages.is_empty() {
                self.shared.lock().extend(pages);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn pages_are_neither_lost_nor_doubled_under_concurrent_takes_and_gives() {
        let capacity = 512;
        let list = Arc::new(FreeList::new(capacity));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let list = list.clone();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..20_000usize {
                        let n = 1 + (i + t) % 5;
                        if list.take(n, capacity as usize, |p| held.push(p)).is_none() {
                            list.gather();
                        }
                        if held.len() > 40 || i % 3 == 0 {
                            list.give_many(held.drain(..));
                        }
                        if i % 1000 == 0 {
                            // Counting takes every lock, one at a time (a
                            // page moving meanwhile may count twice).
                            std::hint::black_box(list.len());
                        }
                    }
                    list.give_many(held);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(list.len(), capacity as usize);
        list.gather();
        let mut all = list.shared.lock().clone();
        all.sort_unstable();
        assert_eq!(all, (0..capacity).collect::<Vec<_>>(), "each page once");
    }

    #[test]
    fn a_take_fails_only_when_the_pages_are_short_in_all() {
        let list = FreeList::new(8);
        let mut held = Vec::new();
        assert_eq!(list.take(8, 8, |p| held.push(p)), Some(Some(8)), "8 out");
        assert_eq!(list.take(1, 8, |p| held.push(p)), None);
        list.give_many(held.drain(..3));
        assert_eq!(list.len(), 3);
        assert_eq!(list.take(4, 8, |p| held.push(p)), None, "all or nothing");
        assert_eq!(list.len(), 3);
        assert_eq!(list.take(3, 8, |p| held.push(p)), Some(None), "all cached");
    }
}
