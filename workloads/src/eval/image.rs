//! Images and their checks: every image is made by e2fsprogs' `mkfs.ext2`
//! (the same kind of image for every peer) and judged by `e2fsck -fn`.

use super::proc::{run_for, run_ok, Finished};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A fresh ext2 image of `mib` MiB with 4 KiB blocks (a sparse file).
pub fn make(img: &Path, mib: u64) -> Result<(), String> {
    make_with(img, mib, &[])
}

/// [`make`] with further `mkfs.ext2` options (e.g. `-N` inodes).
pub fn make_with(img: &Path, mib: u64, extra: &[&str]) -> Result<(), String> {
    let _ = std::fs::remove_file(img);
    run_ok(
        Command::new("mkfs.ext2")
            .args(["-q", "-F", "-b", "4096"])
            .args(extra)
            .arg(img)
            .arg(format!("{mib}M")),
        Duration::from_secs(120),
    )
    .map(|_| ())
}

/// `e2fsck -fn`'s verdict on an image.
#[derive(Clone, Debug, PartialEq)]
pub struct Fsck {
    pub clean: bool,
    /// Its exit code (None: it did not finish in time).
    pub exit: Option<i32>,
    /// The first problem it reported, for the run's details.
    pub first_problem: String,
}

pub fn check(img: &Path) -> Result<Fsck, String> {
    let r = run_for(
        Command::new("e2fsck").arg("-fn").arg(img),
        Duration::from_secs(600),
    )?;
    Ok(match r {
        Finished::Exited { status, stdout, .. } => Fsck {
            clean: status.success(),
            exit: status.code(),
            first_problem: if status.success() {
                String::new()
            } else {
                first_problem(&stdout)
            },
        },
        Finished::TimedOut => Fsck {
            clean: false,
            exit: None,
            first_problem: "e2fsck did not finish within 600 s".into(),
        },
    })
}

/// The first line of e2fsck's output that is not a pass header or summary.
fn first_problem(out: &str) -> String {
    out.lines()
        .map(str::trim)
        .find(|l| {
            !l.is_empty()
                && !l.starts_with("Pass ")
                && !l.starts_with("e2fsck ")
                && !l.contains("files (")
                && !l.contains("***")
        })
        .unwrap_or("problems (see e2fsck -fn)")
        .chars()
        .take(100)
        .collect()
}

/// Sync and drop the kernel's caches so a run does not pay for the
/// previous one's write-back and reads reach the file system.
pub fn quiesce() {
    let _ = run_for(&mut Command::new("sync"), Duration::from_secs(120));
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_problem_skips_headers() {
        let out = "Pass 1: Checking inodes, blocks, and sizes\nInode 12 has illegal block(s).  Clear? no\n\nPass 2: x\nfs.img: 11/16 files (0.0% non-contiguous)\n";
        assert_eq!(
            super::first_problem(out),
            "Inode 12 has illegal block(s).  Clear? no"
        );
    }
}
