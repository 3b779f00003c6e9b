//! Directory scale: many names in one directory, and many threads. Phases
//! on a fresh directory: create N empty files (open O_CREAT + close), look
//! up M random names after every cache is dropped (so each lookup reaches
//! the file system, and its storage), list the directory, unlink every file. With
//! `threads` > 1 the files are created by that many threads, each in a
//! directory of its own or all in one shared directory.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Files in all.
    pub files: usize,
    /// Random lookups (stat of existing names) after a cache drop.
    pub lookups: usize,
    /// Creating threads.
    pub threads: usize,
    /// All threads in one directory (else one directory each).
    pub shared: bool,
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub secs: f64,
    pub ops: usize,
    pub ops_per_sec: f64,
}

fn phase(name: &'static str, secs: f64, ops: usize) -> Phase {
    Phase {
        name,
        secs,
        ops,
        ops_per_sec: ops as f64 / secs.max(1e-9),
    }
}

/// Start cold: write everything back (drop_caches leaves dirty pages, so a
/// kernel driver would keep what the create phase wrote), empty ext2mfr's
/// own block cache when `root` is on ext2mfr (its `ext2mfr.drop_caches`
/// control, which writes back into the image file first; other file
/// systems refuse the name, which is ignored), and only then drop the
/// kernel's caches, so that what ext2mfr wrote back does not stay in the
/// page cache of its image. Best effort: without root the lookups may be
/// served by the dcache.
fn drop_caches(root: &Path) {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    if let Some(top) = mount_root(root) {
        let _ = crate::eval::stats::set_xattr(&top, "ext2mfr.drop_caches", b"1");
    }
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

/// The root of the mount `dir` is on (the last ancestor on its device).
fn mount_root(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dir = fs::canonicalize(dir).ok()?;
    let dev = fs::metadata(&dir).ok()?.dev();
    let mut top = dir.clone();
    for a in dir.ancestors().skip(1) {
        if fs::metadata(a).ok()?.dev() != dev {
            break;
        }
        top = a.to_path_buf();
    }
    Some(top)
}

/// A name long enough to look like real files, and unique.
fn name(thread: usize, i: usize) -> String {
    format!("file_{thread:02}_{i:08}_data")
}

fn dir_of(root: &Path, cfg: &Config, thread: usize) -> PathBuf {
    if cfg.shared {
        root.join("shared")
    } else {
        root.join(format!("t{thread:02}"))
    }
}

pub fn run(root: &Path, cfg: &Config) -> std::io::Result<Vec<Phase>> {
    let threads = cfg.threads.max(1);
    for t in 0..threads {
        fs::create_dir_all(dir_of(root, cfg, t))?;
    }
    let per = cfg.files / threads;
    let start = Instant::now();
    std::thread::scope(|s| -> std::io::Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> std::io::Result<()> {
                    let dir = dir_of(root, cfg, t);
                    for i in 0..per {
                        OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(dir.join(name(t, i)))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().expect("creating thread")?;
        }
        Ok(())
    })?;
    let mut phases = vec![phase(
        "create",
        start.elapsed().as_secs_f64(),
        per * threads,
    )];

    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut all: Vec<(usize, usize)> = (0..threads)
        .flat_map(|t| (0..per).map(move |i| (t, i)))
        .collect();
    all.shuffle(&mut rng);
    drop_caches(root);
    let start = Instant::now();
    for &(t, i) in all.iter().cycle().take(cfg.lookups.min(all.len())) {
        fs::symlink_metadata(dir_of(root, cfg, t).join(name(t, i)))?;
    }
    phases.push(phase(
        "lookup",
        start.elapsed().as_secs_f64(),
        cfg.lookups.min(all.len()),
    ));

    drop_caches(root);
    let start = Instant::now();
    let mut listed = 0;
    for t in 0..if cfg.shared { 1 } else { threads } {
        listed += fs::read_dir(dir_of(root, cfg, t))?.count();
    }
    if listed != per * threads {
        return Err(std::io::Error::other(format!(
            "the listing found {listed} entries, {} were created",
            per * threads
        )));
    }
    phases.push(phase("list", start.elapsed().as_secs_f64(), listed));

    let start = Instant::now();
    for &(t, i) in &all {
        fs::remove_file(dir_of(root, cfg, t).join(name(t, i)))?;
    }
    phases.push(phase("unlink", start.elapsed().as_secs_f64(), all.len()));
    Ok(phases)
}
