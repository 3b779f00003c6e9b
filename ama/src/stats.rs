//! Space accounting: what was allocated from the pool, and per operation
//! type what reserves held, used and gave back.

use crate::aad::Aad;
use crate::pool::Pool;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Per operation type, summed over its requests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpSpace {
    pub requests: u64,
    pub reserved_pages: u64,
    pub used_pages: u64,
    pub returned_pages: u64,
    /// Blocks found cached and pinned instead of reserved (cache peeking).
    pub pinned_pages: u64,
    pub max_reserved: u64,
    pub max_used: u64,
    pub under_allocations: u64,
    /// Attempts whose estimate a concurrent request made stale, restarted
    /// with a fresh one (see `Reserve::allow_restart`).
    pub restarts: u64,
}

/// The pool's accounting at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Space {
    pub page_size: usize,
    pub capacity_pages: usize,
    pub in_use_pages: usize,
    /// The most pages out of the shared free list at once: in use, or idle
    /// in a thread's cache of freed pages (so at most 512 more than were in
    /// use; see `freelist.rs`).
    pub peak_pages: u64,
    /// Pages handed out since the pool was made (directly or to reserves).
    pub allocated_pages: u64,
    /// Object bytes accounted since the pool was made.
    pub allocated_object_bytes: u64,
    pub reservations: u64,
    pub reservation_failures: u64,
    pub under_allocations: u64,
    pub restarts: u64,
    pub by_op: BTreeMap<&'static str, OpSpace>,
}

impl Space {
    /// Everything allocated, in bytes: the paper's Table 6 measure.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_pages * self.page_size as u64 + self.allocated_object_bytes
    }
}

/// Operation types are few: their counters live in a fixed table, a slot
/// per type.
pub(crate) const MAX_OPS: usize = 48;

#[derive(Default)]
struct OpSlot {
    requests: AtomicU64,
    reserved: AtomicU64,
    used: AtomicU64,
    pinned: AtomicU64,
    max_reserved: AtomicU64,
    max_used: AtomicU64,
    under: AtomicU64,
    restarts: AtomicU64,
}

/// One thread's share of a pool's per-request counters. Only its thread
/// writes it, with a load and a store (no read-modify-write, and no line
/// another thread writes: a request's accounting moves no cache line
/// between CPUs); a snapshot sums the shares.
pub(crate) struct Share {
    reservations: AtomicU64,
    slots: [OpSlot; MAX_OPS],
}

/// Add to a counter only this thread writes.
fn add(a: &AtomicU64, n: u64) {
    if n != 0 {
        a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

/// Raise a maximum only this thread writes.
fn raise(a: &AtomicU64, v: u64) {
    if v > a.load(Ordering::Relaxed) {
        a.store(v, Ordering::Relaxed);
    }
}

impl Share {
    pub(crate) fn reservation_attempt(&self) {
        add(&self.reservations, 1);
    }

    /// A request of the operation in `slot` ended (see [`Counters::slot_of`]).
    pub(crate) fn record(
        &self,
        slot: usize,
        aad: Aad,
        used: u32,
        peeked: u32,
        under: u32,
        stale: bool,
    ) {
        let s = &self.slots[slot];
        add(&s.restarts, stale as u64);
        add(&s.requests, 1);
        add(&s.reserved, aad.pages as u64);
        add(&s.used, used as u64);
        add(&s.pinned, peeked as u64);
        raise(&s.max_reserved, aad.pages as u64);
        raise(&s.max_used, used as u64);
        add(&s.under, under as u64);
    }
}

pub(crate) struct Counters {
    allocated_pages: AtomicU64,
    object_bytes: AtomicU64,
    peak: AtomicU64,
    reservation_failures: AtomicU64,
    under: AtomicU64,
    restarts: AtomicU64,
    /// Names of the operation types seen, by slot (claimed once each).
    names: [OnceLock<&'static str>; MAX_OPS],
    /// Every thread's share, for snapshots.
    shares: Mutex<Vec<Arc<Share>>>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            allocated_pages: AtomicU64::new(0),
            object_bytes: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            reservation_failures: AtomicU64::new(0),
            under: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            names: std::array::from_fn(|_| OnceLock::new()),
            shares: Mutex::new(Vec::new()),
        }
    }
}

impl Counters {
    pub(crate) fn allocated(&self, n: usize, in_use: usize) {
        self.allocated_pages.fetch_add(n as u64, Ordering::Relaxed);
        self.peak.fetch_max(in_use as u64, Ordering::Relaxed);
    }
    pub(crate) fn object_bytes(&self, n: usize) {
        self.object_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn reservation_failed(&self) {
        self.reservation_failures.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn under_allocation(&self) {
        self.under.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// A new share of the counters, for a thread that has none of this pool.
    pub(crate) fn new_share(&self) -> Arc<Share> {
        let share = Arc::new(Share {
            reservations: AtomicU64::new(0),
            slots: std::array::from_fn(|_| OpSlot::default()),
        });
        self.shares.lock().push(share.clone());
        share
    }

    /// The slot of operation type `op` (`None`: the table is full).
    pub(crate) fn slot_of(&self, op: &'static str) -> Option<usize> {
        // Callers pass the same literal each time: its address finds the
        // slot without comparing strings.
        for (i, name) in self.names.iter().enumerate() {
            match name.get() {
                Some(n) if std::ptr::eq(*n, op) => return Some(i),
                Some(_) => {}
                None => break,
            }
        }
        for (i, name) in self.names.iter().enumerate() {
            // The first free slot is claimed for `op` (or, if another
            // thread claims it first, compared like the others).
            let n = name.get_or_init(|| op);
            if std::ptr::eq(*n, op) || *n == op {
                return Some(i);
            }
        }
        None
    }

    pub(crate) fn snapshot(&self, pool: &Pool) -> Space {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let shares = self.shares.lock().clone();
        let sum = |i: usize, f: fn(&OpSlot) -> &AtomicU64| -> u64 {
            shares.iter().map(|t| l(f(&t.slots[i]))).sum()
        };
        let max = |i: usize, f: fn(&OpSlot) -> &AtomicU64| -> u64 {
            shares.iter().map(|t| l(f(&t.slots[i]))).max().unwrap_or(0)
        };
        Space {
            page_size: pool.page_size(),
            capacity_pages: pool.capacity(),
            in_use_pages: pool.in_use(),
            peak_pages: l(&self.peak),
            allocated_pages: l(&self.allocated_pages),
            allocated_object_bytes: l(&self.object_bytes),
            reservations: shares.iter().map(|t| l(&t.reservations)).sum(),
            reservation_failures: l(&self.reservation_failures),
            under_allocations: l(&self.under),
            restarts: l(&self.restarts),
            by_op: self
                .names
                .iter()
                .map_while(OnceLock::get)
                .enumerate()
                .map(|(i, name)| {
                    let reserved = sum(i, |s| &s.reserved);
                    let used = sum(i, |s| &s.used);
                    (
                        *name,
                        OpSpace {
                            requests: sum(i, |s| &s.requests),
                            reserved_pages: reserved,
                            used_pages: used,
                            returned_pages: reserved.saturating_sub(used),
                            pinned_pages: sum(i, |s| &s.pinned),
                            max_reserved: max(i, |s| &s.max_reserved),
                            max_used: max(i, |s| &s.max_used),
                            under_allocations: sum(i, |s| &s.under),
                            restarts: sum(i, |s| &s.restarts),
                        },
                    )
                })
                .collect(),
        }
    }
}
