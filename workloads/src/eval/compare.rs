//! Side-by-side performance runs (shared by `fs-compare` and `evaluate`):
//! the same postmark, micro and sort loads on the same kind of fresh image,
//! under one peer per run. Each run starts quiet (sync, caches dropped) and
//! ends with an unmount and a clean `e2fsck -fn`, so a fast but broken peer
//! cannot win. Rounds rotate the peer order; the median round counts.

use super::external::{self, External};
use super::image;
use super::mount::{Mount, Peer, Tools};
use super::workdir::WorkDir;
use crate::{micro, postmark, sort};
use std::path::Path;

/// The loads of one run.
#[derive(Clone, Debug)]
pub struct Loads {
    pub postmark: postmark::Config,
    pub micro: micro::Config,
    pub sort: sort::Config,
    /// Independent counterparts (Debian's postmark, GNU sort), where set.
    pub external: External,
}

impl Loads {
    /// Small loads for a quick check.
    pub fn quick() -> Loads {
        Loads {
            postmark: postmark::Config {
                number: 500,
                transactions: 1000,
                subdirectories: 10,
                ..Default::default()
            },
            micro: micro::Config {
                file_size: 16 << 20,
                random_ops: 1024,
                ..Default::default()
            },
            sort: sort::Config {
                input_bytes: 4 << 20,
                run_lines: 20_000,
                ..Default::default()
            },
            external: External::default(),
        }
    }

    pub fn full() -> Loads {
        Loads {
            postmark: postmark::Config {
                number: 2000,
                transactions: 10000,
                subdirectories: 20,
                ..Default::default()
            },
            micro: micro::Config {
                file_size: 256 << 20,
                random_ops: 8192,
                ..Default::default()
            },
            sort: sort::Config {
                input_bytes: 32 << 20,
                run_lines: 100_000,
                ..Default::default()
            },
            external: External::default(),
        }
    }

    /// One line describing the loads (for reports).
    pub fn describe(&self) -> String {
        format!(
            "postmark: {} files, {} transactions, {} subdirectories, sizes {}..{} B, seed {}; \
             micro: {} MiB file, {}-byte I/O, {} random ops, seed {}; sort: {} MiB input, {} lines per run, seed {}",
            self.postmark.number,
            self.postmark.transactions,
            self.postmark.subdirectories,
            self.postmark.size_low,
            self.postmark.size_high,
            self.postmark.seed,
            self.micro.file_size >> 20,
            self.micro.block,
            self.micro.random_ops,
            self.micro.seed,
            self.sort.input_bytes >> 20,
            self.sort.run_lines,
            self.sort.seed
        ) + &match self.external.describe() {
            e if e.is_empty() => String::new(),
            e => format!("; {e}"),
        }
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Sample {
    pub postmark_tps: f64,
    pub postmark_secs: f64,
    pub sort_secs: f64,
    /// seq-write, seq-read, rand-write, rand-read, in that order.
    pub micro: Vec<micro::Phase>,
    /// Debian's postmark and GNU sort (`None`: not configured).
    pub ext_postmark_secs: Option<f64>,
    pub gnu_sort_secs: Option<f64>,
    /// The daemon's CPU seconds during postmark, the four micro phases
    /// together, sort, Debian's postmark and GNU sort (NaN for a load not
    /// configured; `None` without a daemon: the kernel's ext2).
    pub daemon_cpu: Option<[f64; 5]>,
}

/// One run of all loads under `peer` on a fresh `image_mib` MiB image.
pub fn one_run(
    peer: &Peer,
    tools: &Tools,
    work: &WorkDir,
    image_mib: u64,
    loads: &Loads,
) -> Result<Sample, String> {
    let img = work.file("compare.img");
    image::make(&img, image_mib)?;
    // Start every run quiet: the previous run's dirty pages (its image
    // file) would otherwise be written back during this one.
    image::quiesce();
    let log = work.file("compare-daemon.log");
    let m = Mount::start(peer, tools, &img, &work.dir("compare-mnt"), Some(&log))
        .map_err(|e| format!("{}: {e}", peer.label()))?;
    let name = peer.label();
    let w = m.path().join("work");
    std::fs::create_dir(&w).map_err(|e| format!("{name}: mkdir: {e}"))?;
    let cpu0 = m.daemon_cpu_secs();
    let r = postmark::run(&w, &loads.postmark).map_err(|e| format!("{name}: postmark: {e}"))?;
    let cpu1 = m.daemon_cpu_secs();
    let phases = micro::run(&w, &loads.micro).map_err(|e| format!("{name}: micro: {e}"))?;
    let cpu2 = m.daemon_cpu_secs();
    let sr = sort::run(&w, &loads.sort).map_err(|e| format!("{name}: sort: {e}"))?;
    let cpu3 = m.daemon_cpu_secs();
    // The independent loads start quiet too (untimed, outside their CPU
    // readings): the kernel's ext2 would otherwise write back the earlier
    // loads' dirty pages during them, which a daemon already took.
    let (cpu3b, ext_postmark_secs) = match &loads.external.postmark {
        Some(c) => {
            image::quiesce();
            let c0 = m.daemon_cpu_secs();
            let secs = external::postmark(&w.join("postmark-debian"), c)
                .map_err(|e| format!("{name}: {e}"))?;
            (c0, Some(secs))
        }
        None => (cpu3, None),
    };
    let cpu4 = m.daemon_cpu_secs();
    let (cpu4b, gnu_sort_secs) = match &loads.external.gnu_sort {
        Some(c) => {
            let dir = w.join("gnu-sort");
            external::gnu_sort_prepare(&dir, c).map_err(|e| format!("{name}: {e}"))?;
            let c0 = m.daemon_cpu_secs();
            let secs = external::gnu_sort(&dir, c).map_err(|e| format!("{name}: {e}"))?;
            (c0, Some(secs))
        }
        None => (cpu4, None),
    };
    let cpu5 = m.daemon_cpu_secs();
    let daemon_cpu = match (cpu0, cpu1, cpu2, cpu3, cpu3b, cpu4, cpu4b, cpu5) {
        (Some(a), Some(b), Some(c), Some(d), Some(d2), Some(e), Some(e2), Some(f)) => {
            let or_nan = |ran: bool, x: f64| if ran { x } else { f64::NAN };
            Some([
                b - a,
                c - b,
                d - c,
                or_nan(ext_postmark_secs.is_some(), e - d2),
                or_nan(gnu_sort_secs.is_some(), f - e2),
            ])
        }
        _ => None,
    };
    unmount_and_check(m, &img, name)?;
    Ok(Sample {
        postmark_tps: r.transactions_per_sec,
        postmark_secs: r.total_secs,
        sort_secs: sr.total_secs,
        micro: phases,
        ext_postmark_secs,
        gnu_sort_secs,
        daemon_cpu,
    })
}

/// End a run: unmount, require a clean daemon exit and a clean
/// `e2fsck -fn`, then remove the image. Errors start with `name`.
pub fn unmount_and_check(m: Mount, img: &Path, name: &str) -> Result<(), String> {
    let end = m.unmount().map_err(|e| format!("{name}: {e}"))?;
    if !end.clean() {
        return Err(format!(
            "{name}: daemon did not exit cleanly after unmount: {end:?}"
        ));
    }
    let fsck = image::check(img)?;
    if !fsck.clean {
        return Err(format!(
            "{name}: e2fsck -fn not clean: {}",
            fsck.first_problem
        ));
    }
    let _ = std::fs::remove_file(img);
    Ok(())
}

/// Rounds of all peers, rotating the order each round so a noisy
/// neighbour does not always hit the same peer. `samples[i]` are peer i's.
pub fn rounds(
    peers: &[Peer],
    tools: &Tools,
    work: &WorkDir,
    image_mib: u64,
    loads: &Loads,
    rounds: usize,
    progress: &dyn Fn(&str),
) -> Result<Vec<Vec<Sample>>, String> {
    let mut samples: Vec<Vec<Sample>> = peers.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds.max(1) {
        for k in 0..peers.len() {
            let i = (k + round) % peers.len();
            progress(&format!(
                "round {}/{}: {}",
                round + 1,
                rounds.max(1),
                peers[i].label()
            ));
            samples[i].push(one_run(&peers[i], tools, work, image_mib, loads)?);
        }
    }
    Ok(samples)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
