//! The differential tester, short: three thousand seeded random
//! system calls (extended attributes and ACLs among them, some as other
//! users than root) per block size
//! (1, 2 and 4 KiB, 256-byte inodes) and daemon configuration (default and
//! baseline), and fifteen hundred at 4 KiB blocks with 128-byte inodes, on
//! the kernel's driver and on ext2mfr, with no
//! unexcused mismatch, clean e2fsck on both images and no AMA
//! under-allocation. A failure prints the shrunk reproducer.
//!
//! Needs root (it mounts) and the `ext2mfr` daemon built in this target
//! directory (`cargo test --workspace` builds it; alone:
//! `cargo build -p ext2mfr`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use workloads::eval::mount::Tools;
use workloads::fsdiff::{self, Options};

const OPS: usize = 3000;
const SEED: u64 = 13;

/// The newest `ext2mfr` built in this target directory.
fn daemon_dir() -> PathBuf {
    workloads::eval::mount::newest_daemon_dir(Path::new(env!("CARGO_BIN_EXE_fs-diff")))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// One campaign; its report printed (cargo test shows it on failure, or
/// with --nocapture) and every run checked.
fn agree(block_sizes: Vec<u32>, inode_size: u32, configs: &[&str], ops: usize) {
    let tools = Tools::find(Some(&daemon_dir())).expect("daemon");
    let o = Options {
        ops,
        seed: SEED,
        block_sizes: block_sizes.clone(),
        inode_size,
        configs: configs.iter().map(|c| fsdiff::config(c).unwrap()).collect(),
        check_every: 250,
        max_mismatches: 3,
        shrink: 1,
        shrink_budget: Duration::from_secs(60),
        without: Vec::new(),
        keep: false,
        workdir: PathBuf::from("/var/tmp"),
        tools,
    };
    let mut report = Vec::new();
    let runs = fsdiff::campaign(&o, &mut report).expect("runs could be set up");
    let text = String::from_utf8_lossy(&report).into_owned();
    let _ = std::io::stdout().write_all(text.as_bytes());
    assert_eq!(runs.len(), block_sizes.len() * configs.len());
    for r in &runs {
        let what = format!(
            "block size {}, inode size {inode_size}, {}",
            r.block_size, r.config
        );
        assert_eq!(r.result.calls(), ops, "{what}: stopped early\n{text}");
        let bad = &r.result.mismatches;
        assert!(
            bad.is_empty(),
            "{what}: {} unexcused mismatches (first: {})\n{text}",
            bad.len(),
            bad.first().map_or(String::new(), |m| m.diff.describe())
        );
        let (k, m) = r.result.fsck.as_ref().expect("e2fsck ran");
        assert!(k.clean && m.clean, "{what}: e2fsck\n{text}");
        if r.config == "default" {
            assert_eq!(r.result.under_allocations, Some(0), "{what}\n{text}");
        }
    }
}

#[test]
fn kernel_and_ext2mfr_agree() {
    // Not skipped: a green test must have compared something.
    assert!(
        is_root(),
        "the differential test mounts file systems: run it as root"
    );
    agree(vec![1024, 2048, 4096], 256, &["default", "baseline"], OPS);
    // 128-byte inodes: every extended attribute and ACL in an xattr block
    // (shorter: one configuration, fewer calls).
    agree(vec![4096], 128, &["default"], OPS / 2);
}
