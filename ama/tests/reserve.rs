//! The pool, reserves, policies and accounting, without any file system.

use ama::{acquire, Aad, ObjectKind, Policy, Pool, Restart};
use faultinject::{Config, Injector};
use std::sync::Arc;

const KINDS: [ObjectKind; 1] = [ObjectKind {
    name: "thing",
    size: 100,
}];

fn always() -> bool {
    true
}

fn pool(capacity: usize, inject: Option<f64>) -> Arc<Pool> {
    let inj = inject.map(|p| {
        Injector::new(Config {
            alloc_p: p,
            seed: 7,
            ..Config::default()
        })
    });
    Pool::new(512, capacity, &KINDS, inj, always).unwrap()
}

#[test]
fn a_reserve_serves_downstream_allocations_and_returns_the_rest() {
    let p = pool(16, None);
    {
        let mut r = p.begin("op");
        r.fill(Aad::pages(5).with_objects(0, 2)).unwrap();
        assert_eq!(p.free_pages(), 11, "taken in one go on entry");
        let mut a = p.alloc_page("site").unwrap();
        let b = p.alloc_page("site").unwrap();
        a[0] = 1;
        assert_eq!(a.len(), 512);
        assert_ne!(a.as_ptr(), b.as_ptr());
        p.take_object(0, "site").unwrap();
        assert_eq!(p.free_pages(), 11, "served from the reserve, not the pool");
        drop((a, b));
    }
    assert_eq!(p.free_pages(), 16, "unused pages returned, used ones freed");
    let s = p.space();
    let op = &s.by_op["op"];
    assert_eq!(
        (op.reserved_pages, op.used_pages, op.returned_pages),
        (5, 2, 3)
    );
    assert_eq!(s.under_allocations, 0);
    assert_eq!(s.allocated_pages, 5);
    assert_eq!(s.allocated_object_bytes, 200);
}

#[test]
fn an_allocation_beyond_the_reserve_is_an_under_allocation() {
    let p = pool(8, None);
    let mut r = p.begin("tight");
    r.fill(Aad::pages(1)).unwrap();
    let _a = p.alloc_page("first").unwrap();
    let _b = p
        .alloc_page("second")
        .expect("served by the pool after all");
    assert!(p.take_object(0, "obj").is_ok());
    drop(r);
    let s = p.space();
    assert_eq!(s.under_allocations, 2);
    assert_eq!(s.by_op["tight"].under_allocations, 2);
}

/// A charge speaks for a page of the reserve as an allocation would take
/// it (the same used count, the same under-allocation beyond it), but no
/// page leaves the reserve: all go back to the pool at its end.
#[test]
fn a_charge_counts_like_a_page_but_takes_none() {
    let p = pool(8, None);
    {
        let mut r = p.begin("charged");
        r.fill(Aad::pages(2)).unwrap();
        p.charge_page("compact").unwrap();
        let page = p.alloc_page("page").unwrap();
        assert_eq!(p.free_pages(), 6, "nothing taken beyond the reserve");
        // Both pages are spoken for: the next is beyond the reserve.
        p.charge_page("compact again").unwrap();
        drop(page);
    }
    assert_eq!(p.free_pages(), 8, "the charged page went back unused");
    let s = p.space();
    assert_eq!(s.by_op["charged"].used_pages, 2);
    assert_eq!(
        s.under_allocations, 1,
        "the third page was beyond the reserve"
    );
    // Without a reserve a charge takes nothing from the pool.
    p.charge_page("bare").unwrap();
    assert_eq!(p.free_pages(), 8);
}

#[test]
fn with_a_reserve_only_the_reservation_meets_injected_failures() {
    // Every allocation attempt fails: the reservation does, and nothing
    // downstream of a (forced) reservation is even asked.
    let p = pool(64, Some(1.0));
    let mut r = p.begin("op");
    assert!(r.fill(Aad::pages(3)).is_err());
    drop(r);
    assert!(
        p.alloc_page("bare").is_err(),
        "no reserve: an injection point"
    );
    assert!(p.take_object(0, "bare").is_err());
    let s = p.space();
    assert_eq!(s.reservation_failures, 1);
    assert_eq!(p.free_pages(), 64, "a failed reservation keeps nothing");
}

#[test]
fn policies_fail_fast_and_retry() {
    let p = pool(64, Some(0.9));
    let mut failures = 0;
    for _ in 0..50 {
        match acquire(&p, "ff", Policy::FailFast, Restart::Never, |_, _| {
            Aad::pages(2)
        }) {
            Ok(r) => drop(r),
            Err(_) => failures += 1,
        }
    }
    assert!(failures > 30, "fail-fast reports the failures: {failures}");
    for _ in 0..20 {
        let r = acquire(&p, "retry", Policy::Retry, Restart::Never, |_, _| {
            Aad::pages(2)
        })
        .unwrap();
        assert!(ama::active());
        let _page = p.alloc_page("downstream").unwrap();
        drop(r);
    }
    assert!(!ama::active());
    assert_eq!(p.space().under_allocations, 0);
    assert_eq!(p.free_pages(), 64);
}

#[test]
fn retry_alternate_asks_for_the_smaller_requirement() {
    let p = pool(64, Some(0.8));
    let mut saw_alternate = false;
    for _ in 0..20 {
        let r = acquire(
            &p,
            "alt",
            Policy::RetryAlternate,
            Restart::Never,
            |_, alt| {
                saw_alternate |= alt;
                Aad::pages(if alt { 1 } else { 8 })
            },
        )
        .unwrap();
        drop(r);
    }
    assert!(saw_alternate);
}

#[test]
fn a_requirement_larger_than_the_pool_fails_even_under_retry() {
    let p = pool(4, None);
    assert!(acquire(
        &p,
        "huge",
        Policy::Retry,
        Restart::Never,
        |_, _| Aad::pages(5)
    )
    .is_err());
}

#[test]
fn the_scratch_page_is_recycled_and_a_request_stays_active_until_the_end() {
    let p = pool(8, None);
    assert_eq!(ama::pin_seq(), 0, "no request");
    assert_eq!(p.oldest_active(), u64::MAX);
    {
        let mut r = p.begin("scan");
        let seq = ama::pin_seq();
        assert_ne!(seq, 0);
        assert_eq!(p.oldest_active(), seq);
        r.note_peeked();
        r.fill(Aad::pages(0).with_scratch()).unwrap();
        for i in 0..100u8 {
            let got = ama::with_scratch(|page| {
                page[0] = i;
                // Nested use finds it taken: the caller falls back.
                assert!(ama::with_scratch(|_| ()).is_none());
                page[0]
            });
            assert_eq!(got, Some(i));
        }
        // A nested begin is inert: same request, same number.
        drop(p.begin("nested"));
        assert_eq!(ama::pin_seq(), seq);
        assert_eq!(p.oldest_active(), seq);
        // Another thread's request is newer.
        let p2 = p.clone();
        std::thread::spawn(move || {
            let _r = p2.begin("other");
            assert!(ama::pin_seq() > seq);
            assert_eq!(p2.oldest_active(), seq);
        })
        .join()
        .unwrap();
    }
    assert_eq!(ama::pin_seq(), 0, "ended at cleanup");
    assert_eq!(p.oldest_active(), u64::MAX);
    assert!(ama::with_scratch(|_| ()).is_none());
    let s = p.space();
    assert_eq!(s.by_op["scan"].pinned_pages, 1);
    assert_eq!(s.by_op["scan"].reserved_pages, 1);
    assert_eq!(p.free_pages(), 8);
}

#[test]
fn the_reclaimer_is_asked_when_the_pool_runs_dry() {
    let p = pool(4, None);
    let held: Arc<parking_lot::Mutex<Vec<ama::Page>>> = Default::default();
    for _ in 0..4 {
        held.lock().push(p.alloc_page("cache").unwrap());
    }
    let h = held.clone();
    p.set_reclaimer(move |want| {
        let mut v = h.lock();
        let n = want.min(v.len());
        let keep = v.len() - n;
        v.truncate(keep);
        n
    });
    let mut r = p.begin("op");
    r.fill(Aad::pages(3)).unwrap();
    assert_eq!(held.lock().len(), 1);
}

#[test]
fn a_stale_estimate_is_refused_for_a_restart_only_while_restarting_is_safe() {
    let p = pool(8, None);
    // Before any change: refused, nothing taken from the pool, marked stale.
    {
        let mut r = p.begin("reader");
        r.fill(Aad::pages(1)).unwrap();
        r.allow_restart(Restart::BeforeChange);
        let _a = p.alloc_page("first").unwrap();
        assert!(!r.is_stale());
        assert!(p.alloc_page("second").is_err(), "refused, not served");
        assert!(r.is_stale());
        assert_eq!(p.free_pages(), 7);
    }
    // After a change: an ordinary under-allocation (the request cannot run
    // again as if it had not run).
    {
        let mut r = p.begin("writer");
        r.fill(Aad::pages(0)).unwrap();
        r.allow_restart(Restart::BeforeChange);
        ama::note_change();
        let _a = p.alloc_page("after change").expect("served by the pool");
        assert!(!r.is_stale());
    }
    // With a rollback behind it: refused even after a change.
    {
        let mut r = p.begin("rolled back");
        r.fill(Aad::pages(0)).unwrap();
        r.allow_restart(Restart::Anywhere);
        ama::note_change();
        assert!(p.take_object(0, "obj").is_err());
        assert!(r.is_stale());
    }
    let s = p.space();
    assert_eq!(s.under_allocations, 1);
    assert_eq!(s.restarts, 2);
    assert_eq!(s.by_op["reader"].restarts, 1);
    assert_eq!(s.by_op["writer"].under_allocations, 1);
}

#[test]
fn a_strict_pool_panics_on_an_under_allocation_after_counting_it() {
    let p = pool(8, None);
    p.set_strict(true);
    let q = p.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut r = q.begin("strict");
        r.fill(Aad::pages(0)).unwrap();
        let _ = q.alloc_page("beyond");
    }));
    assert!(r.is_err(), "panicked");
    assert_eq!(p.space().under_allocations, 1);
    assert_eq!(p.free_pages(), 8, "the reserve was dropped on the way out");
}

/// Each thread counts its requests in its own share of the counters: a
/// snapshot sums them, and takes the largest of their maxima. (Two pools
/// used in turn on one thread keep their counts apart.)
#[test]
fn counts_of_several_threads_and_pools_add_up() {
    let (p, q) = (pool(64, None), pool(64, None));
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let (p, q) = (&p, &q);
            s.spawn(move || {
                for i in 0..100u32 {
                    let mut r = p.begin("counted");
                    r.fill(Aad::pages(1 + t)).unwrap();
                    drop(r);
                    if i % 10 == 0 {
                        q.begin("other").fill(Aad::pages(2)).unwrap();
                    }
                }
            });
        }
    });
    let (s, o) = (p.space(), q.space());
    let c = &s.by_op["counted"];
    assert_eq!(c.requests, 400);
    assert_eq!(c.reserved_pages, 100 * (1 + 2 + 3 + 4));
    assert_eq!(c.max_reserved, 4);
    assert_eq!(s.reservations, 400);
    assert!(!s.by_op.contains_key("other"));
    assert_eq!(o.by_op["other"].requests, 40);
    assert_eq!(o.reservations, 40);
}
