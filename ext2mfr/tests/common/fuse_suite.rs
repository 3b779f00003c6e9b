//! The conventions of the `fuse_*.rs` files (every operation of the daemon
//! through a real FUSE mount): each test starts with `let _serial =
//! setup();`, mounts with [`mount`] and remounts with [`remount`].
//!
//! `FUSE_OPS_OPTS` adds mount options to every one of those mounts:
//! `FUSE_OPS_OPTS=baseline cargo test -p ext2mfr --test 'fuse_*'` runs them
//! all with recovery off, `FUSE_OPS_OPTS=transport=uring` over io_uring
//! (checked at each mount through `ext2mfr.stats`; the fuse module's
//! `enable_uring` must be Y). (`fuse_concurrency.rs` and `fuse_interop.rs` match
//! the pattern too but mount with `Mount::new` and the options they name,
//! as every other test file does: the variable does not reach them.)

use super::e2fsprogs::fsck_strict;
use super::mount::Mount;
use super::sys::assert_root;
use std::path::Path;

/// Tests in one file run one at a time. Running them in parallel threads
/// makes `umount` fail now and then with EBUSY: another test's fork (for
/// e2fsck, debugfs, the daemon) copies this process's descriptors, and until
/// that child calls exec it holds the files a finishing test just closed.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Take the test lock, and set a fixed umask so created modes are
/// predictable. The suite runs as root (it mounts, chowns, acts as nobody).
pub fn setup() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_root();
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o022) };
    g
}

/// `opts` with the options of `FUSE_OPS_OPTS` added.
pub fn with_extra(opts: &str) -> String {
    match std::env::var("FUSE_OPS_OPTS") {
        Ok(x) if !x.is_empty() && opts.is_empty() => x,
        Ok(x) if !x.is_empty() => format!("{opts},{x}"),
        _ => opts.to_string(),
    }
}

/// Mount with `opts` and `FUSE_OPS_OPTS`.
pub fn mount(img: &Path, opts: &str) -> Mount {
    let opts = with_extra(opts);
    let m = Mount::new(img, &opts);
    check_transport(&m, &opts);
    m
}

/// A mount that names a transport (`FUSE_OPS_OPTS=transport=uring`) runs
/// over it, or the suite would pass over another one unnoticed.
pub fn check_transport(m: &Mount, opts: &str) {
    let named = opts
        .split(',')
        .filter_map(|o| o.strip_prefix("transport="))
        .next_back();
    if let Some(t @ ("uring" | "dev-own" | "dev")) = named {
        assert_eq!(
            super::xattr::counters(m.path())["transport"],
            t,
            "the mount's transport"
        );
    }
}

/// Turn FUSE over io_uring on in the kernel (root may; the parameter is
/// off by default). `false` when this kernel has no such parameter.
pub fn enable_fuse_uring() -> bool {
    const P: &str = "/sys/module/fuse/parameters/enable_uring";
    if !Path::new(P).exists() {
        return false;
    }
    std::fs::write(P, "Y").expect("enable FUSE over io_uring");
    std::fs::read_to_string(P).unwrap().trim() == "Y"
}

pub fn try_mount(img: &Path, opts: &str) -> Result<Mount, String> {
    Mount::try_new(img, &with_extra(opts))
}

/// Unmount cleanly, require e2fsck to be clean without a question
/// ([`fsck_strict`]), and mount again (nothing cached in the daemon).
pub fn remount(m: Mount, img: &Path, opts: &str) -> Mount {
    m.unmount_and_check();
    fsck_strict(img);
    mount(img, opts)
}
