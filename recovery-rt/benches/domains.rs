//! Cost of the runtime on the paths every request takes: a root domain's
//! begin + commit, and the first logged write of a 4 KiB block in a domain
//! (before-image copy included), against running the same code bare.

use criterion::{criterion_group, criterion_main, Criterion};
use parking_lot::Mutex;
use recovery_rt::{LoggedObject, Runtime, VersionChain};
use std::sync::Arc;

struct Block {
    chain: VersionChain,
    data: Mutex<Vec<u8>>,
}

impl LoggedObject for Block {
    fn chain(&self) -> &VersionChain {
        &self.chain
    }
    fn snapshot(&self) -> recovery_rt::Image {
        Box::new(self.data.lock().clone())
    }
    fn restore(&self, image: &[u8]) {
        self.data.lock().copy_from_slice(image);
    }
}

fn benches(c: &mut Criterion) {
    let on = Runtime::new();
    let off = Runtime::disabled();
    c.bench_function("root domain begin+commit", |b| {
        b.iter(|| on.root(|| 1u32).unwrap())
    });
    c.bench_function("bare (runtime disabled)", |b| {
        b.iter(|| off.root(|| 1u32).unwrap())
    });
    let block: Arc<dyn LoggedObject> = Arc::new(Block {
        chain: VersionChain::new(),
        data: Mutex::new(vec![0u8; 4096]),
    });
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
}

criterion_group!(g, benches);
criterion_main!(g);
