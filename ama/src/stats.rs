//! Space accounting: what was allocated from the pool, and per operation
//! type what reserves held, used and gave back.

use crate::aad::Aad;
use crate::pool::Pool;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

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

/// Operation types are few: their counters live in a fixed table of
/// atomics, so that recording a request takes no lock.
const MAX_OPS: usize = 48;

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

pub(crate) struct Counters {
    allocated_pages: AtomicU64,
    object_bytes: AtomicU64,
    peak: AtomicU64,
    reservations: AtomicU64,
    reservation_failures: AtomicU64,
    under: AtomicU64,
    restarts: AtomicU64,
    /// Names of the operation types seen, by slot (claimed once each).
    names: [OnceLock<&'static str>; MAX_OPS],
    slots: [OpSlot; MAX_OPS],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            allocated_pages: AtomicU64::new(0),
            object_bytes: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            reservations: AtomicU64::new(0),
            reservation_failures: AtomicU64::new(0),
            under: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            names: std::array::from_fn(|_| OnceLock::new()),
            slots: std::array::from_fn(|_| OpSlot::default()),
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
    pub(crate) fn reservation_attempt(&self) {
        self.reservations.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn reservation_failed(&self) {
        self.reservation_failures.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn under_allocation(&self) {
        self.under.fetch_add(1, Ordering::Relaxed);
    }

    fn slot(&self, op: &'static str) -> Option<&OpSlot> {
        // Callers pass the same literal each time: its address finds the
        // slot without comparing strings (a string compare per slot before
        // it was most of a request's accounting).
        for (name, slot) in self.names.iter().zip(&self.slots) {
            match name.get() {
                Some(n) if std::ptr::eq(*n, op) => return Some(slot),
                Some(_) => {}
                None => break,
            }
        }
        for (name, slot) in self.names.iter().zip(&self.slots) {
            // The first free slot is claimed for `op` (or, if another
            // thread claims it first, compared like the others).
            let n = name.get_or_init(|| op);
            if std::ptr::eq(*n, op) || *n == op {
                return Some(slot);
            }
        }
        None
    }

    pub(crate) fn record(
        &self,
        op: &'static str,
        aad: Aad,
        used: u32,
        peeked: u32,
        under: u32,
        stale: bool,
    ) {
        if stale {
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
        let Some(s) = self.slot(op) else { return };
        s.restarts.fetch_add(stale as u64, Ordering::Relaxed);
        s.requests.fetch_add(1, Ordering::Relaxed);
        s.reserved.fetch_add(aad.pages as u64, Ordering::Relaxed);
        s.used.fetch_add(used as u64, Ordering::Relaxed);
        s.pinned.fetch_add(peeked as u64, Ordering::Relaxed);
        s.max_reserved
            .fetch_max(aad.pages as u64, Ordering::Relaxed);
        s.max_used.fetch_max(used as u64, Ordering::Relaxed);
        s.under.fetch_add(under as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, pool: &Pool) -> Space {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Space {
            page_size: pool.page_size(),
            capacity_pages: pool.capacity(),
            in_use_pages: pool.in_use(),
            peak_pages: l(&self.peak),
            allocated_pages: l(&self.allocated_pages),
            allocated_object_bytes: l(&self.object_bytes),
            reservations: l(&self.reservations),
            reservation_failures: l(&self.reservation_failures),
            under_allocations: l(&self.under),
            restarts: l(&self.restarts),
            by_op: self
                .names
                .iter()
                .map_while(OnceLock::get)
                .zip(&self.slots)
                .map(|(name, s)| {
                    let reserved = l(&s.reserved);
                    let used = l(&s.used);
                    (
                        *name,
                        OpSpace {
                            requests: l(&s.requests),
                            reserved_pages: reserved,
                            used_pages: used,
                            returned_pages: reserved.saturating_sub(used),
                            pinned_pages: l(&s.pinned),
                            max_reserved: l(&s.max_reserved),
                            max_used: l(&s.max_used),
                            under_allocations: l(&s.under),
                            restarts: l(&s.restarts),
                        },
                    )
                })
                .collect(),
        }
    }
}
