//! Xattr-block sharing on an unmounted image, read with debugfs: how many
//! inodes refer to an xattr block (`i_file_acl`) and how many distinct
//! blocks they refer to. The kernel's driver shares identical xattr
//! blocks between inodes (mbcache); each block shared by k inodes saves
//! k-1 blocks. A free-block difference at the quiescent statfs that equals
//! the difference in savings is explained by sharing; the runner adds this
//! to the mismatch's detail (it stays a mismatch: see excused.rs, nothing
//! excuses it).

use crate::eval::proc::run_ok;
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// References to xattr blocks and distinct xattr blocks among `inos`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sharing {
    pub references: usize,
    pub blocks: usize,
}

impl Sharing {
    /// Blocks saved by sharing.
    pub fn saved(&self) -> usize {
        self.references - self.blocks
    }
}

/// Count over the inodes `inos` of the image `img` (not mounted).
pub fn count(img: &Path, inos: &[u64]) -> Result<Sharing, String> {
    if inos.is_empty() {
        return Ok(Sharing::default());
    }
    let script: String = inos.iter().map(|i| format!("stat <{i}>\n")).collect();
    let dir = std::env::temp_dir().join(format!("fs-diff-sharing-{}", std::process::id()));
    std::fs::write(&dir, script).map_err(|e| e.to_string())?;
    let out = run_ok(
        Command::new("debugfs").arg("-f").arg(&dir).arg(img),
        Duration::from_secs(120),
    );
    let _ = std::fs::remove_file(&dir);
    let out = out?;
    let mut blocks = HashSet::new();
    let mut references = 0;
    // debugfs prints "File ACL: N" in every inode's stat.
    for l in out.lines() {
        if let Some(rest) = l.split("File ACL: ").nth(1) {
            let n: u64 = rest
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if n != 0 {
                references += 1;
                blocks.insert(n);
            }
        }
    }
    Ok(Sharing {
        references,
        blocks: blocks.len(),
    })
}
