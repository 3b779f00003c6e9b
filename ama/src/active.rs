//! The requests that hold a reserve on a pool right now, each as a sequence
//! number in a slot, so that a client can keep what they read without
//! holding a reference per object.
//!
//! A cache marks each buffer with the sequence number of every request that
//! reads it (the largest wins: see [`crate::pin_seq`]) and may evict it only
//! when that mark is below the oldest active request's ([`Pool::oldest_active`]):
//! then every request that read it has ended, since sequence numbers grow.
//! The cost is one slot claim per request and a store per read, instead of
//! a reference taken and dropped per block; the price is that a buffer read
//! by a request newer than the oldest active one stays until that one ends
//! (requests are short: a long one holds back eviction only while it runs).
//!
//! Ordering: a request claims its slot before it reads anything; a cache
//! marks a buffer under the lock of its shard and computes the oldest
//! request under the same lock before it evicts from the shard. So an
//! evictor that sees a mark sees the slot that made it.
//!
//! [`Pool::oldest_active`]: crate::Pool::oldest_active

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Concurrent reserves per pool (the daemon runs a handful of worker and
/// queue threads; a thread beyond this waits for a slot).
const SLOTS: usize = 256;

/// A free slot.
const FREE: u64 = 0;

pub(crate) struct ActiveSet {
    /// Each in a cache line of its own: every request takes a sequence
    /// number and claims and releases its thread's slot, and a line written
    /// by one CPU is taken out of the other's cache (two threads' slots in
    /// one line made a request with nothing to reserve cost 3x more).
    next_seq: CachePadded<AtomicU64>,
    slots: Box<[CachePadded<AtomicU64>]>,
    /// Slots at or above this index were never claimed: the scan for the
    /// oldest stops here.
    high: AtomicUsize,
}

impl ActiveSet {
    pub(crate) fn new() -> ActiveSet {
        ActiveSet {
            next_seq: CachePadded::new(AtomicU64::new(1)),
            slots: (0..SLOTS)
                .map(|_| CachePadded::new(AtomicU64::new(FREE)))
                .collect(),
            high: AtomicUsize::new(0),
        }
    }

    /// Enter a new request: its sequence number and its slot. `hint`: the
    /// slot this thread had last (free again in the common case).
    pub(crate) fn enter(&self, hint: usize) -> (u64, usize) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        loop {
            for k in 0..SLOTS {
                let i = (hint + k) % SLOTS;
                if self.slots[i]
                    .compare_exchange(FREE, seq, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    if self.high.load(Ordering::SeqCst) <= i {
                        self.high.fetch_max(i + 1, Ordering::SeqCst);
                    }
                    return (seq, i);
                }
            }
            std::thread::yield_now();
        }
    }

    pub(crate) fn leave(&self, slot: usize) {
        self.slots[slot].store(FREE, Ordering::Release);
    }

    /// The sequence number of the oldest request still active (`u64::MAX`
    /// when none is).
    pub(crate) fn oldest(&self) -> u64 {
        let high = self.high.load(Ordering::SeqCst);
        self.slots[..high]
            .iter()
            .map(|s| s.load(Ordering::SeqCst))
            .filter(|&v| v != FREE)
            .min()
            .unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_is_the_smallest_active_sequence() {
        let a = ActiveSet::new();
        assert_eq!(a.oldest(), u64::MAX);
        let (s1, i1) = a.enter(0);
        let (s2, i2) = a.enter(0);
        assert!(s2 > s1 && i1 != i2);
        assert_eq!(a.oldest(), s1);
        a.leave(i1);
        assert_eq!(a.oldest(), s2);
        let (s3, i3) = a.enter(i1);
        assert_eq!(i3, i1, "the hint's slot is free again");
        assert_eq!(a.oldest(), s2);
        a.leave(i2);
        assert_eq!(a.oldest(), s3);
        a.leave(i3);
        assert_eq!(a.oldest(), u64::MAX);
    }
}
