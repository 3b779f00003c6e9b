//! The logged object the runtime's bench and `examples/hot_paths` write:
//! a 4 KiB block that lends its bytes, as the daemon's cached buffers do
//! (small writes keep compact before-bytes).

use parking_lot::Mutex;
use recovery_rt::{LoggedObject, VersionChain};
use std::sync::Arc;

pub struct Block {
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

/// A fresh zeroed block.
pub fn new_block() -> Arc<dyn LoggedObject> {
    Arc::new(Block {
        chain: VersionChain::new(),
        data: Mutex::new(vec![0u8; 4096]),
    })
}
