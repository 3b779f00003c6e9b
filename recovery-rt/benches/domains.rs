//! Cost of the runtime on the paths every request takes: a root domain's
//! begin + commit, and the first logged write of a 4 KiB block in a domain
//! (before-image copy included), against running the same code bare; and
//! the same with two threads at once on unrelated blocks, which share
//! nothing but the runtime (its graph and counters).

#[path = "common/block.rs"]
mod block;

use block::new_block;
use criterion::{criterion_group, criterion_main, Criterion};
use parking_lot::Mutex;
use recovery_rt::{LoggedObject, Runtime};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn benches(c: &mut Criterion) {
    let on = Runtime::new();
    let off = Runtime::disabled();
    c.bench_function("root domain begin+commit", |b| {
        b.iter(|| on.root(|| 1u32).unwrap())
    });
    c.bench_function("bare (runtime disabled)", |b| {
        b.iter(|| off.root(|| 1u32).unwrap())
    });
    let block: Arc<dyn LoggedObject> = new_block();
    c.bench_function("root domain with one logged 4 KiB block write", |b| {
        b.iter(|| {
            on.root(|| {
                on.write(&block);
                on.read(block.as_ref());
            })
            .unwrap()
        })
    });
    c.bench_function("logged read of a committed block (hook only)", |b| {
        b.iter(|| on.root(|| on.read(block.as_ref())).unwrap())
    });
    // An allocator's pattern: a child that writes a range of a "bitmap"
    // and leaves an inverse with its parent, as a Reversible domain (a node
    // in the graph) and as an exclusive one (none: its caller's lock).
    let bitmap = new_block();
    let inverse = |_: &()| Some(Box::new(|| {}) as Box<dyn FnOnce() + Send>);
    c.bench_function("root + Reversible child writing 1 byte", |b| {
        b.iter(|| {
            on.root(|| {
                on.domain(
                    recovery_rt::Kind::Reversible,
                    || on.write_range(&bitmap, 0..1),
                    inverse,
                )
                .unwrap()
            })
            .unwrap()
        })
    });
    let lock = Mutex::new(());
    c.bench_function("root + exclusive child writing 1 byte", |b| {
        b.iter(|| {
            on.root(|| {
                let _held = lock.lock();
                on.exclusive_domain(|| on.write_range(&bitmap, 0..1), inverse)
                    .unwrap()
            })
            .unwrap()
        })
    });
}

/// `iters` root domains on each of `threads` threads at once, each thread
/// writing its own block; the time until all are done.
fn contended(rt: &Arc<Runtime>, threads: usize, iters: u64, write: bool) -> Duration {
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (rt, start) = (rt.clone(), start.clone());
            std::thread::spawn(move || {
                let block = new_block();
                start.wait();
                for _ in 0..iters {
                    rt.root(|| {
                        if write {
                            rt.write(&block);
                        }
                        rt.read(block.as_ref());
                    })
                    .unwrap();
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

fn contended_benches(c: &mut Criterion) {
    let on = Runtime::new();
    for write in [false, true] {
        let what = if write { "logged write" } else { "logged read" };
        c.bench_function(
            &format!("2 threads: root domain with one {what} (per domain)"),
            |b| b.iter_custom(|iters| contended(&on, 2, iters, write) / 2),
        );
    }
}

criterion_group!(g, benches, contended_benches);
criterion_main!(g);
