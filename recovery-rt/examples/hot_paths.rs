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

#[path = "../benches/common/block.rs"]
mod block;

use block::new_block;
use parking_lot::Mutex;
use recovery_rt::{Kind, Runtime};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: hot_paths empty|read|write128|write4k|reversible|exclusive ITERATIONS");
        std::process::exit(2);
    };
    let rt = Runtime::new();
    let block = new_block();
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
