//! Cost of the block cache on the path every request takes many times: a
//! hit on a cached block, alone and with two threads at once on blocks
//! next to each other (inode-table, bitmap and directory blocks that
//! concurrent requests share), which lie in neighbouring shards.

use criterion::{criterion_group, criterion_main, Criterion};
use ext2mfr::cache::BlockCache;
use ext2mfr::device::Device;
use recovery_rt::Runtime;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const BLOCKS: u64 = 1024;

fn cache(dir: &tempfile::TempDir) -> Arc<BlockCache> {
    let path = dir.path().join("img");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(BLOCKS * 4096).unwrap();
    let mut dev = Device::open(&path, false).unwrap();
    dev.set_block_size(4096);
    let pool = ama::Pool::new(4096, 4096, &ext2mfr::cache::object_kinds(), None, || false).unwrap();
    Arc::new(BlockCache::new(
        Arc::new(dev),
        pool,
        2048,
        Runtime::disabled(),
        BLOCKS,
    ))
}

/// `threads` threads getting `iters` blocks each, all at once, each thread
/// cycling through four blocks of its own among the first eight (the
/// threads' blocks interleaved, so neighbours, in neighbouring shards).
fn contended(c: &Arc<BlockCache>, threads: u64, iters: u64) -> Duration {
    let start = Arc::new(Barrier::new(threads as usize + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (c, start) = (c.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..iters {
                    std::hint::black_box(c.get(1 + (i % 4) * threads + t).unwrap());
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
    let dir = tempfile::tempdir().unwrap();
    let bc = cache(&dir);
    for b in 1..=8 {
        bc.get(b).unwrap();
    }
    c.bench_function("cache: hit", |b| {
        b.iter(|| std::hint::black_box(bc.get(3).unwrap()))
    });
    c.bench_function("2 threads: hits on neighbouring blocks (per hit)", |b| {
        b.iter_custom(|iters| contended(&bc, 2, iters) / 2)
    });
}

criterion_group!(g, benches);
criterion_main!(g);
