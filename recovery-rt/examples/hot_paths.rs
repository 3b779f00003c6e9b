//! Instructions per iteration of the runtime's hot paths, exactly, where
//! the criterion bench (`benches/domains.rs`) gives times that this
//! machine's noise blurs. Run under callgrind with 0 and N iterations and
//! take the difference over N:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/hot_paths write128 20000
//! ```
//!
//! Paths: `empty` (a root that does nothing: a lookup's domain), `read` (a
//! root with one logged read), `write128` (a root writing 128 bytes of a 4
//! KiB block: an inode), `write4k` (a whole block), `reversible` and
//! `exclusive` (a root whose child writes one byte and leaves an inverse:
//! an allocator, with and without its caller's lock).

use parking_lot::Mutex;
use recovery_rt::{Kind, LoggedObject, Runtime, VersionChain};
use std::sync::Arc;

/// A 4 KiB block that lends its bytes, as the daemon's cached buffers do.
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
    fn read_bytes(&self, f: &mut dyn FnMut(&[u8])) -> bool {
        f(&self.data.lock());
        true
    }
    fn write_bytes(&self, f: &mut dyn FnMut(&mut [u8])) {
        f(&mut self.data.lock());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: hot_paths empty|read|write128|write4k|reversible|exclusive ITERATIONS");
        std::process::exit(2);
    };
    let rt = Runtime::new();
    let block: Arc<dyn LoggedObject> = Arc::new(Block {
        chain: VersionChain::new(),
        data: Mutex::new(vec![0u8; 4096]),
    });
    let group_lock = Mutex::new(());
    let inverse = |_: &()| Some(Box::new(|| {}) as Box<dyn FnOnce() + Send>);
    let one: Box<dyn Fn()> = match path.as_str() {
        "empty" => Box::new(|| rt.root(|| ()).unwrap()),
        "read" => Box::new(|| rt.root(|| rt.read(block.as_ref())).unwrap()),
        "write128" => Box::new(|| rt.root(|| rt.write_range(&block, 256..384)).unwrap()),
        "write4k" => Box::new(|| rt.root(|| rt.write(&block)).unwrap()),
        "reversible" => Box::new(|| {
            rt.root(|| {
                rt.domain(Kind::Reversible, || rt.write_range(&block, 0..1), inverse)
                    .unwrap()
            })
            .unwrap()
        }),
        "exclusive" => Box::new(|| {
            rt.root(|| {
                let _held = group_lock.lock();
                rt.exclusive_domain(|| rt.write_range(&block, 0..1), inverse)
                    .unwrap()
            })
            .unwrap()
        }),
        other => {
            eprintln!("hot_paths: no path {other}");
            std::process::exit(2);
        }
    };
    for _ in 0..n {
        one();
    }
}
