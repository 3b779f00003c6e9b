//! Cost of AMA on the path every request takes: begin a reserve, fill it
//! with the request's requirement, serve its allocations from it, end it
//! (the unused rest goes back); with nothing to take (everything was found
//! cached: the common case), with four pages of which two are used, and
//! with two threads at once on one pool.

use ama::{Aad, Pool};
use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn pool() -> Arc<Pool> {
    Pool::new(4096, 1024, &[], None, || false).unwrap()
}

/// One request: reserve `reserved` pages, use `used` of them.
fn request(pool: &Arc<Pool>, reserved: u32, used: u32) {
    let mut r = pool.begin("bench");
    r.fill(Aad::pages(reserved)).unwrap();
    for _ in 0..used {
        std::hint::black_box(pool.alloc_page("bench").unwrap());
    }
}

/// `threads` threads making `iters` requests each (`reserved` pages,
/// `used` of them used), all at once.
fn contended(pool: &Arc<Pool>, threads: usize, reserved: u32, used: u32, iters: u64) -> Duration {
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (pool, start) = (pool.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..iters {
                    request(&pool, reserved, used);
                }
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    t.elapsed()
}

fn benches(c: &mut Criterion) {
    let p = pool();
    c.bench_function("reserve: begin+fill+end, nothing to take", |b| {
        b.iter(|| request(&p, 0, 0))
    });
    c.bench_function("reserve: begin+fill 4 pages, use 2, end", |b| {
        b.iter(|| request(&p, 4, 2))
    });
    c.bench_function("no reserve: 2 pages from the pool", |b| {
        b.iter(|| {
            for _ in 0..2 {
                std::hint::black_box(p.alloc_page("bench").unwrap());
            }
        })
    });
    c.bench_function(
        "2 threads: begin+fill+end, nothing to take (per request)",
        |b| b.iter_custom(|iters| contended(&p, 2, 0, 0, iters) / 2),
    );
    c.bench_function(
        "2 threads: begin+fill 4 pages, use 2, end (per request)",
        |b| b.iter_custom(|iters| contended(&p, 2, 4, 2, iters) / 2),
    );
}

criterion_group!(g, benches);
criterion_main!(g);
