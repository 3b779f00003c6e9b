//! The differential tester, short: three thousand seeded random
//! system calls per block size (1, 2 and 4 KiB) and daemon configuration
//! (default and baseline) on the kernel's driver and on ext2mfr, with no
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

#[test]
fn kernel_and_ext2mfr_agree() {
    // Not skipped: a green test must have compared something.
    assert!(
        is_root(),
        "the differential test mounts file systems: run it as root"
    );
    let tools = Tools::find(Some(&daemon_dir())).expect("daemon");
    let o = Options {
        ops: OPS,
        seed: SEED,
        block_sizes: vec![1024, 2048, 4096],
        inode_size: 256,
        configs: vec![
            fsdiff::config("default").unwrap(),
            fsdiff::config("baseline").unwrap(),
        ],
        check_every: 250,
        max_mismatches: 3,
        shrink: 1,
        shrink_budget: Duration::from_secs(60),
        without: Vec::new(),
        keep: false,
        workdir: PathBuf::from("/var/tmp"),
        tools,
    };
    // Print as it goes (cargo test shows it on failure, or with --nocapture).
    let mut report = Vec::new();
    let runs = fsdiff::campaign(&o, &mut report).expect("runs could be set up");
    let text = String::from_utf8_lossy(&report).into_owned();
    let _ = std::io::stdout().write_all(text.as_bytes());
    assert_eq!(runs.len(), 6);
    for r in &runs {
        let what = format!("block size {}, {}", r.block_size, r.config);
        assert_eq!(r.result.calls(), OPS, "{what}: stopped early\n{text}");
        assert!(
            r.result.mismatches.is_empty(),
            "{what}: {} unexcused mismatches (first: {})\n{text}",
            r.result.mismatches.len(),
            r.result.mismatches[0].diff.describe()
        );
        let (k, m) = r.result.fsck.as_ref().expect("e2fsck ran");
        assert!(k.clean && m.clean, "{what}: e2fsck\n{text}");
        if r.config == "default" {
            assert_eq!(r.result.under_allocations, Some(0), "{what}\n{text}");
        }
    }
}
