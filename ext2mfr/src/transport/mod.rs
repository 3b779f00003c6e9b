//! Our own FUSE transport: the message layer ([`abi`], [`dispatch`]), the
//! session ([`session`]: mount, INIT, unmount), and two ways to carry
//! requests: /dev/fuse reads and writes ([`devloop`]) and FUSE over
//! io_uring ([`uring`]). Both feed the same request layer (`request.rs`).
//! The fuser adapter (`fuse.rs`) remains the default (`transport=dev`).

pub mod abi;
pub mod devloop;
pub mod dispatch;
pub mod sched;
pub mod session;
pub mod uring;

use crate::fs::Ext2;
use dispatch::Dispatcher;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The fuse module's switch for FUSE over io_uring (off by default; root
/// may turn it on).
pub const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

/// Whether the kernel would take FUSE over io_uring: `None` when it has no
/// such parameter (a kernel before 6.14, or without CONFIG_FUSE_IO_URING).
pub fn uring_enabled() -> Option<bool> {
    std::fs::read_to_string(ENABLE_URING)
        .ok()
        .map(|s| s.trim() == "Y" || s.trim() == "1")
}

/// Ring entries per queue: requests a CPU's queue holds at once.
pub const RING_DEPTH: usize = 2;

/// Mounted, INIT not yet answered (a daemon going to the background
/// forks between the two: threads do not survive a fork).
pub struct Mounted {
    pub mountpoint: PathBuf,
    dev: Arc<File>,
}

/// A mounted session being served.
pub struct Running {
    /// Requests come over io_uring (else /dev/fuse only).
    pub uring: bool,
    threads: Vec<JoinHandle<()>>,
    _dev: Arc<File>,
}

/// Mount on `mountpoint` (/dev/fuse opened, mount(2)).
pub fn mount(mountpoint: &Path, params: &session::MountParams) -> io::Result<Mounted> {
    Ok(Mounted {
        mountpoint: mountpoint.to_path_buf(),
        dev: Arc::new(session::mount(mountpoint, params)?),
    })
}

impl Mounted {
    /// Answer INIT and serve `fs`: over io_uring when `uring` is asked for
    /// and the kernel accepts it at INIT (its queue threads scheduled by
    /// `policy`), else over /dev/fuse with `threads` threads, named
    /// `dev_name` in `ext2mfr.stats`. Unmounts on failure.
    pub fn serve(
        self,
        fs: Arc<Ext2>,
        uring: bool,
        policy: sched::QueuePolicy,
        threads: usize,
        only_uid: Option<u32>,
        dev_name: &'static str,
    ) -> io::Result<Running> {
        let fail = |e: io::Error| {
            let _ = session::unmount(&self.mountpoint);
            e
        };
        let conn = session::negotiate(&self.dev, uring, fs.config.writeback_cache).map_err(fail)?;
        fs.fuse_requests.count(abi::opcode::INIT);
        fs.writeback_cache.store(
            conn.flags & abi::init::WRITEBACK_CACHE != 0,
            std::sync::atomic::Ordering::Relaxed,
        );
        // Before any request is served (none is until the threads start),
        // so that the first reader of the counters sees it.
        let _ = fs
            .transport
            .set(if conn.uring { "uring" } else { dev_name });
        if conn.uring {
            let _ = fs.queue_policy.set(match policy {
                sched::QueuePolicy::Idle => "idle",
                sched::QueuePolicy::Normal => "normal",
            });
        }
        let promotions = fs.queue_promotions.clone();
        let d = Arc::new(Dispatcher::new(fs, only_uid).with_device(self.dev.clone()));
        let mut all = Vec::new();
        let spawned = if conn.uring {
            // FORGET and INTERRUPT still come on /dev/fuse: one reader.
            devloop::spawn(self.dev.clone(), d.clone(), 1).and_then(|t| {
                all.extend(t);
                uring::spawn(
                    self.dev.clone(),
                    d,
                    conn.max_payload,
                    RING_DEPTH,
                    policy,
                    promotions,
                )
            })
        } else {
            devloop::spawn(self.dev.clone(), d, threads)
        };
        all.extend(spawned.map_err(fail)?);
        Ok(Running {
            uring: conn.uring,
            threads: all,
            _dev: self.dev,
        })
    }
}

impl Running {
    /// Wait until the session ends (unmount, or the connection aborted).
    pub fn wait(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}
