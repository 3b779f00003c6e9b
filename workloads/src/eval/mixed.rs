//! The robustness workload: a small PostMark run (creates, reads, appends,
//! deletes over a few subdirectories) followed by namespace and size
//! changes PostMark never makes (mkdir, rename of files and directories,
//! truncate down and up, symlink, hard link, rmdir). It stops at the first
//! failed call, as PostMark does, and leaves some files behind so that
//! `e2fsck` has more than an empty tree to check.
//!
//! It runs in a child process of the harness (`evaluate workload ...`), so
//! that a call that never returns is a killed process, not a hung harness.

use crate::postmark;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Clone, Debug)]
pub struct MixedConfig {
    pub files: usize,
    pub transactions: usize,
    pub subdirectories: usize,
    /// Rounds of the namespace/truncate part.
    pub rounds: usize,
    pub seed: u64,
}

/// Every failed call as "what path: error".
fn at<T>(r: std::io::Result<T>, what: &str, p: &Path) -> Result<T, String> {
    r.map_err(|e| format!("{what} {}: {e}", p.display()))
}

pub fn run(dir: &Path, cfg: &MixedConfig) -> Result<(), String> {
    let pm_dir = dir.join("pm");
    at(fs::create_dir(&pm_dir), "mkdir", &pm_dir)?;
    let pm = postmark::Config {
        number: cfg.files,
        transactions: cfg.transactions,
        subdirectories: cfg.subdirectories,
        seed: cfg.seed,
        ..Default::default()
    };
    postmark::run(&pm_dir, &pm).map_err(|e| format!("postmark: {e}"))?;
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x5eed);
    for round in 0..cfg.rounds {
        namespace_round(&dir.join(format!("ns{round}")), &mut rng)?;
    }
    Ok(())
}

/// Data with a recognisable, position-dependent pattern.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ salt).collect()
}

fn namespace_round(ns: &Path, rng: &mut StdRng) -> Result<(), String> {
    let a = ns.join("a");
    let b = a.join("b");
    at(fs::create_dir(ns), "mkdir", ns)?;
    at(fs::create_dir(&a), "mkdir", &a)?;
    at(fs::create_dir(&b), "mkdir", &b)?;

    // Past the 12 direct blocks of a 4 KiB-block file, so truncate has an
    // indirect block to free.
    let data = a.join("data");
    let len = rng.gen_range(60_000..120_000);
    let salt = rng.gen::<u8>();
    let content = pattern(len, salt);
    {
        let mut f = at(File::create(&data), "create", &data)?;
        at(f.write_all(&content), "write", &data)?;
        at(f.sync_all(), "fsync", &data)?;
    }
    {
        let f = at(OpenOptions::new().write(true).open(&data), "open", &data)?;
        at(f.set_len(10_000), "truncate", &data)?;
        // Up again, leaving a hole, then data at the new end.
        at(f.set_len(300_000), "truncate", &data)?;
    }
    {
        let mut f = at(OpenOptions::new().append(true).open(&data), "open", &data)?;
        at(f.write_all(&content[..4096]), "append", &data)?;
    }
    {
        let mut back = Vec::new();
        at(
            File::open(&data).and_then(|mut f| f.read_to_end(&mut back)),
            "read",
            &data,
        )?;
        if back.len() != 300_000 + 4096
            || back[..10_000] != content[..10_000]
            || back[10_000..300_000].iter().any(|&x| x != 0)
        {
            return Err(format!(
                "read {}: contents differ from what was written",
                data.display()
            ));
        }
    }

    let moved = b.join("moved");
    at(fs::rename(&data, &moved), "rename", &data)?;
    let link = ns.join("link");
    at(
        std::os::unix::fs::symlink("a/b/moved", &link),
        "symlink",
        &link,
    )?;
    let target = at(fs::read_link(&link), "readlink", &link)?;
    if target != Path::new("a/b/moved") {
        return Err(format!(
            "readlink {}: wrong target {}",
            link.display(),
            target.display()
        ));
    }
    let hard = ns.join("hard");
    at(fs::hard_link(&moved, &hard), "link", &hard)?;
    let nlink = at(fs::metadata(&hard), "stat", &hard)?.nlink();
    if nlink != 2 {
        return Err(format!(
            "stat {}: link count {nlink}, expected 2",
            hard.display()
        ));
    }

    let c = ns.join("c");
    at(fs::rename(&b, &c), "rename", &b)?;
    let names: Vec<_> = at(fs::read_dir(ns), "readdir", ns)?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    if names.len() != 4 {
        return Err(format!(
            "readdir {}: {} entries, expected 4",
            ns.display(),
            names.len()
        ));
    }
    at(fs::remove_file(&hard), "unlink", &hard)?;
    let kept = c.join("moved");
    {
        let f = at(OpenOptions::new().write(true).open(&kept), "open", &kept)?;
        at(f.set_len(0), "truncate", &kept)?;
    }
    let tmp = ns.join("tmpdir");
    at(fs::create_dir(&tmp), "mkdir", &tmp)?;
    at(fs::remove_dir(&tmp), "rmdir", &tmp)?;
    // Left behind: ns/a, ns/c/moved (empty), ns/link and a small file.
    let keep = ns.join("keep");
    at(
        fs::write(&keep, pattern(rng.gen_range(1..20_000), salt)),
        "write",
        &keep,
    )?;
    Ok(())
}
