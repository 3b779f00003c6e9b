//! Scale (issue "Scale: indexed directories, big images, many threads"):
//! `dirscale` under the kernel's ext2, fuse2fs and ext2mfr (default
//! configuration, over /dev/fuse and, where the kernel offers it, over
//! io_uring), each run on a fresh identical `mkfs.ext2` image (dir_index on,
//! as mkfs makes it by default).
//!
//! Growth: N empty files created in one directory, then random lookups
//! with every cache cold (see `dirscale`), a listing, and unlinking them all,
//! for growing N. Threads: 1..16 threads creating files, each in its own
//! directory and all in one shared directory. dirscale runs as its own
//! process with a deadline, so a peer that slows down badly (a linear
//! directory scan at 160,000 names) is recorded as such and skips the
//! larger sizes instead of stalling the harness.

use super::config;
use super::image;
use super::mount::{Mount, Peer};
use super::performance::add_kernel;
use super::plan::Ctx;
use super::proc::on_path;
use super::proc::{run_for, Finished};
use super::svg::{self, Series};
use super::table::{ratio, Table};
use std::path::PathBuf;
use std::process::Command;

/// The issue's goals: creating 40,000 files within this factor of the
/// kernel's time ...
pub const CREATE_40K_GOAL: f64 = 3.0;
/// ... lookups among the largest directory within this factor ...
pub const LOOKUP_GOAL: f64 = 2.0;
/// ... and growth from the smallest to the largest size "close to the
/// kernel's": read here as within this factor of the kernel's own growth.
pub const GROWTH_CLOSE: f64 = 1.5;

/// dirscale's phases, in its order.
pub const PHASES: [&str; 4] = ["create", "lookup", "list", "unlink"];

/// One dirscale run: seconds per phase, or why there are none.
pub type Run = Result<Vec<(String, f64)>, String>;

pub struct Scale {
    pub peers: Vec<Peer>,
    pub sizes: Vec<usize>,
    /// growth[peer][size].
    pub growth: Vec<Vec<Run>>,
    /// (threads, shared) in the order run.
    pub thread_cases: Vec<(usize, bool)>,
    /// threads[peer][case].
    pub threads: Vec<Vec<Run>>,
    pub not_run: Vec<(String, String)>,
    pub table: Table,
    pub threads_table: Table,
    pub svg: String,
}

impl Scale {
    pub fn peer_index(&self, label: &str) -> Option<usize> {
        self.peers.iter().position(|p| p.label() == label)
    }

    /// Seconds of `phase` for peer `p` at size index `s`.
    pub fn secs(&self, p: usize, s: usize, phase: &str) -> Option<f64> {
        phase_secs(&self.growth[p][s], phase)
    }
}

fn phase_secs(r: &Run, phase: &str) -> Option<f64> {
    r.as_ref()
        .ok()?
        .iter()
        .find(|(n, _)| n == phase)
        .map(|x| x.1)
}

/// dirscale's `--json` line: {"config": ..., "phases": [{"name", "secs", ...}]}.
pub fn parse_phases(json: &str) -> Result<Vec<(String, f64)>, String> {
    let line = json
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or("dirscale printed no JSON")?;
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("dirscale's JSON: {e}"))?;
    v["phases"]
        .as_array()
        .ok_or("dirscale's JSON has no phases")?
        .iter()
        .map(|p| {
            Ok((
                p["name"]
                    .as_str()
                    .ok_or("phase without a name")?
                    .to_string(),
                p["secs"].as_f64().ok_or("phase without secs")?,
            ))
        })
        .collect()
}

/// A workload binary (`dirscale`, `postmark`) beside the daemon or this
/// harness (cargo puts a profile's binaries in one directory).
pub fn workload_bin(ctx: &Ctx, name: &str) -> Result<PathBuf, String> {
    let dir = ctx
        .tools
        .ext2mfr
        .parent()
        .ok_or("no directory for the daemon")?;
    [
        dir.to_path_buf(),
        ctx.self_exe.parent().map(PathBuf::from).unwrap_or_default(),
    ]
    .iter()
    .map(|d| d.join(name))
    .find(|p| p.is_file())
    .ok_or_else(|| {
        format!(
            "no {name} binary beside {} (cargo build --release -p workloads)",
            ctx.tools.ext2mfr.display()
        )
    })
}

/// `peer` mounted on a fresh image of `mib` MiB with `inodes` inodes
/// (files named after `tag` in the scratch directory), quiet, with an
/// empty directory `d` made in it: the mount, the image, the directory.
pub fn mount_fresh(
    ctx: &Ctx,
    peer: &Peer,
    tag: &str,
    mib: u64,
    inodes: u64,
) -> Result<(Mount, PathBuf, PathBuf), String> {
    let img = ctx.work.file(&format!("{tag}.img"));
    image::make_with(&img, mib, &["-N", &inodes.to_string()])?;
    image::quiesce();
    let log = ctx.work.file(&format!("{tag}-daemon.log"));
    let name = peer.label();
    let m = Mount::start(
        peer,
        &ctx.tools,
        &img,
        &ctx.work.dir(&format!("{tag}-mnt")),
        Some(&log),
    )
    .map_err(|e| format!("{name}: {e}"))?;
    let dir = m.path().join("d");
    std::fs::create_dir(&dir).map_err(|e| format!("{name}: mkdir: {e}"))?;
    Ok((m, img, dir))
}

/// One dirscale run on a fresh image. Outer Err: the harness could not
/// make or mount the image; inner Err: the run failed, missed its
/// deadline, or left an image e2fsck does not pass.
fn one(
    ctx: &Ctx,
    bin: &PathBuf,
    peer: &Peer,
    files: usize,
    lookups: usize,
    threads: usize,
    shared: bool,
) -> Result<Run, String> {
    let sp = &ctx.plan.scale;
    let name = peer.label();
    let (m, img, dir) = mount_fresh(ctx, peer, "scale", sp.image_mib, sp.inodes)?;
    let mut cmd = Command::new(bin);
    cmd.arg(&dir)
        .arg("--json")
        .args(["--files", &files.to_string()])
        .args(["--lookups", &lookups.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--seed", &ctx.plan.seed.to_string()]);
    if shared {
        cmd.arg("--shared");
    }
    let mut run: Run = match run_for(&mut cmd, sp.deadline)? {
        Finished::Exited { status, stdout, .. } if status.success() => parse_phases(&stdout),
        Finished::Exited { status, stderr, .. } => Err(format!(
            "dirscale failed ({status}): {}",
            super::proc::last_line(&stderr, 120)
        )),
        Finished::TimedOut => Err(format!("did not finish within {} s", sp.deadline.as_secs())),
    };
    let end = m.unmount().map_err(|e| format!("{name}: {e}"))?;
    if run.is_ok() && !end.clean() {
        run = Err(format!("daemon did not exit cleanly: {end:?}"));
    }
    if run.is_ok() {
        let f = image::check(&img)?;
        if !f.clean {
            run = Err(format!("e2fsck -fn not clean: {}", f.first_problem));
        }
    }
    let _ = std::fs::remove_file(&img);
    Ok(run)
}

pub fn run(ctx: &Ctx) -> Result<Scale, String> {
    let sp = ctx.plan.scale.clone();
    let bin = workload_bin(ctx, "dirscale")?;
    let mut peers = Vec::new();
    let mut not_run = Vec::new();
    add_kernel(&mut peers, &mut not_run);
    if on_path("fuse2fs") {
        peers.push(Peer::Fuse2fs);
    } else {
        not_run.push(("fuse2fs".into(), "fuse2fs is not installed".into()));
    }
    // The daemon as it mounts by default (AMA and recovery on, /dev/fuse).
    match ctx.available("")? {
        Ok(()) => peers.push(Peer::Daemon {
            label: "ext2-mfr".into(),
            opts: String::new(),
        }),
        Err(why) => not_run.push(("ext2-mfr".into(), why)),
    }
    let uring = [Peer::Daemon {
        label: "ext2-mfr (io_uring)".into(),
        opts: "transport=uring".into(),
    }];
    let (ok, why) = config::uring_available(&uring, |o| ctx.available(o))?;
    peers.extend(ok);
    not_run.extend(why);

    // Growth: sizes in increasing order; rotating peer order per size.
    let mut growth: Vec<Vec<Run>> = peers.iter().map(|_| Vec::new()).collect();
    let mut stopped: Vec<Option<String>> = vec![None; peers.len()];
    for (si, &n) in sp.sizes.iter().enumerate() {
        let mut row: Vec<Option<Run>> = vec![None; peers.len()];
        for k in 0..peers.len() {
            let i = (k + si) % peers.len();
            let r = match &stopped[i] {
                Some(why) => Err(format!("skipped: {why}")),
                None => {
                    ctx.say(&format!(
                        "scale: {n} files in one directory: {}",
                        peers[i].label()
                    ));
                    let r = one(ctx, &bin, &peers[i], n, sp.lookups.min(n), 1, false)?;
                    match &r {
                        Err(e) => {
                            ctx.say(&format!("scale: {}: {e}", peers[i].label()));
                            stopped[i] = Some(e.clone());
                        }
                        Ok(phases) => {
                            if let Some(&next) = sp.sizes.get(si + 1) {
                                let total = |r: &Run| -> Option<f64> {
                                    Some(r.as_ref().ok()?.iter().map(|p| p.1).sum())
                                };
                                let secs: f64 = phases.iter().map(|p| p.1).sum();
                                let before = si
                                    .checked_sub(1)
                                    .and_then(|b| Some((sp.sizes[b], total(growth[i].get(b)?)?)));
                                if let Some(why) = too_slow(before, n, secs, next, sp.deadline) {
                                    ctx.say(&format!("scale: {}: {why}", peers[i].label()));
                                    not_run.push((
                                        format!("{} above {n} files", peers[i].label()),
                                        why.clone(),
                                    ));
                                    stopped[i] = Some(why);
                                }
                            }
                        }
                    }
                    r
                }
            };
            row[i] = Some(r);
        }
        for (i, r) in row.into_iter().enumerate() {
            growth[i].push(r.expect("every peer"));
        }
    }

    // Threads: creates only (no lookups), own directories then shared.
    let thread_cases: Vec<(usize, bool)> = [false, true]
        .iter()
        .flat_map(|&sh| sp.threads.iter().map(move |&t| (t, sh)))
        .collect();
    let mut threads: Vec<Vec<Run>> = peers.iter().map(|_| Vec::new()).collect();
    for (ci, &(t, shared)) in thread_cases.iter().enumerate() {
        let mut row: Vec<Option<Run>> = vec![None; peers.len()];
        for k in 0..peers.len() {
            let i = (k + ci) % peers.len();
            ctx.say(&format!(
                "scale: {} files by {t} thread(s) in {}: {}",
                sp.thread_files,
                if shared {
                    "one directory"
                } else {
                    "their own directories"
                },
                peers[i].label()
            ));
            let r = one(ctx, &bin, &peers[i], sp.thread_files, 0, t, shared)?;
            if let Err(e) = &r {
                ctx.say(&format!("scale: {}: {e}", peers[i].label()));
            }
            row[i] = Some(r);
        }
        for (i, r) in row.into_iter().enumerate() {
            threads[i].push(r.expect("every peer"));
        }
    }

    let mut s = Scale {
        peers,
        sizes: sp.sizes.clone(),
        growth,
        thread_cases,
        threads,
        not_run,
        table: Table::default(),
        threads_table: Table::default(),
        svg: String::new(),
    };
    s.table = growth_table(ctx, &s);
    s.threads_table = threads_table(ctx, &s);
    s.svg = figure(&s);
    Ok(s)
}

/// Seconds with three significant digits down to milliseconds ("0.0123").
pub fn secs_text(x: f64) -> String {
    if x < 0.1 {
        format!("{x:.4}")
    } else if x < 10.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.1}")
    }
}

/// Would a peer that took `secs` at `n` files (and `before`, the size and
/// seconds of its previous run, if any) miss the deadline at `next`? Its
/// time is projected to grow as it did between its last two sizes (at
/// least linearly), or quadratically from a single size (a linear
/// directory scan per create): why it would, or `None`. So a slow peer
/// skips the larger sizes instead of spending the deadline on each.
pub fn too_slow(
    before: Option<(usize, f64)>,
    n: usize,
    secs: f64,
    next: usize,
    deadline: std::time::Duration,
) -> Option<String> {
    let (exponent, how) = match before {
        Some((m, t)) if m < n && t > 0.0 => {
            let e = ((secs / t).ln() / (n as f64 / m as f64).ln()).max(1.0);
            (e, format!("growing as from {m} files (n^{e:.2})"))
        }
        _ => (2.0, "quadratic growth".to_string()),
    };
    let projected = secs * (next as f64 / n as f64).powf(exponent);
    (projected > deadline.as_secs_f64()).then(|| {
        format!(
            "took {secs:.1} s at {n} files; {how} would take {projected:.0} s at {next}, over the {} s deadline",
            deadline.as_secs()
        )
    })
}

fn cell(secs: Option<f64>, r: Option<f64>, run: &Run) -> String {
    match (secs, r, run) {
        (Some(x), Some(r), _) => format!("{} ({})", secs_text(x), ratio(r)),
        (Some(x), None, _) => secs_text(x),
        (None, _, Err(e)) if e.starts_with("skipped") => "skipped".into(),
        (None, _, Err(_)) => "failed".into(),
        (None, _, Ok(_)) => "n/a".into(),
    }
}

fn growth_table(ctx: &Ctx, s: &Scale) -> Table {
    let sp = &ctx.plan.scale;
    let mut t = Table::new(
        "scale",
        "Scale: one directory growing",
        &["files", "phase", "peer", "secs", "ratio_vs_kernel", "note"],
    );
    t.caption = format!(
        "Seconds per phase of `dirscale` (one run each; peers in rotating order) on a fresh {} MiB image made \
         by `mkfs.ext2 -b 4096 -N {}` (dir_index on, the default), and in brackets the ratio to the kernel's ext2 \
         (>1 is slower). *create*: N empty files in one directory (open O_CREAT|O_EXCL, close); *lookup*: {} \
         random names (at most N) stat'ed cold: after a sync, ext2-mfr's own block cache dropped \
         (`ext2mfr.drop_caches`; fuse2fs keeps only a few blocks of its own), then the kernel's caches; *list*: \
         readdir of the directory, cold the same way; *unlink*: every file. *ext2-mfr* is the daemon's default \
         configuration (AMA and recovery on) over /dev/fuse; *(io_uring)* the same over FUSE over io_uring. \
         A run has {} s; a peer that fails, misses that, or would miss it at the next size were its time to keep \
         growing as between its last two sizes (at least linearly; quadratically after its first), skips the \
         larger sizes (see the notes). Every run ends with a clean unmount and \
         `e2fsck -fn`.",
        sp.image_mib,
        sp.inodes,
        sp.lookups,
        sp.deadline.as_secs()
    );
    let k = s.peer_index(Peer::Kernel.label());
    t.md_columns = ["files", "phase"]
        .iter()
        .map(|x| x.to_string())
        .chain(s.peers.iter().map(|p| format!("{} (s)", p.label())))
        .collect();
    for (si, &n) in s.sizes.iter().enumerate() {
        for ph in PHASES {
            let mut md = vec![n.to_string(), ph.to_string()];
            for (i, p) in s.peers.iter().enumerate() {
                let secs = s.secs(i, si, ph);
                let r = match (secs, k.and_then(|k| s.secs(k, si, ph))) {
                    (Some(x), Some(kx)) => Some(x / kx.max(1e-9)),
                    _ => None,
                };
                md.push(cell(secs, r, &s.growth[i][si]));
                t.push(vec![
                    n.to_string(),
                    ph.to_string(),
                    p.label().to_string(),
                    secs.map_or("n/a".into(), |x| format!("{x:.4}")),
                    r.map_or("n/a".into(), |r| format!("{r:.3}")),
                    s.growth[i][si]
                        .as_ref()
                        .err()
                        .cloned()
                        .unwrap_or_else(|| "ok".into()),
                ]);
            }
            t.md_rows.push(md);
        }
    }
    for (i, p) in s.peers.iter().enumerate() {
        if let Some((si, Err(e))) = s.growth[i]
            .iter()
            .enumerate()
            .find(|(_, r)| r.as_ref().is_err_and(|e| !e.starts_with("skipped")))
        {
            t.notes
                .push(format!("{} at {} files: {e}", p.label(), s.sizes[si]));
        }
    }
    for (what, why) in &s.not_run {
        t.notes.push(format!("{what}: not run: {why}"));
    }
    t.comparison = goals(s);
    t.seeds = format!("dirscale --seed {}", ctx.plan.seed);
    t
}

/// The issue's goals, from the measured rows.
pub fn goals(s: &Scale) -> Vec<String> {
    let mut out = Vec::new();
    let Some(k) = s.peer_index(Peer::Kernel.label()) else {
        out.push("The issue's goals are against the kernel's ext2, which did not run here.".into());
        return out;
    };
    let (Some(&first), Some(&largest)) = (s.sizes.first(), s.sizes.last()) else {
        return out;
    };
    let s_first = 0;
    // Growth and lookups "to 160k": at 160,000 if measured, else the largest.
    let s_last = s
        .sizes
        .iter()
        .position(|&n| n == 160_000)
        .unwrap_or(s.sizes.len() - 1);
    let last = s.sizes[s_last];
    // "Creates of 40k": at 40,000 if measured, else the largest size.
    let s40 = s.sizes.iter().position(|&n| n == 40_000).unwrap_or(s_last);
    let at = |si: usize| {
        if s.sizes[si] == 40_000 {
            String::new()
        } else {
            format!(
                " (40,000 was not among this run's sizes; at {})",
                s.sizes[si]
            )
        }
    };
    out.push(format!(
        "The issue asks: creating 40,000 files in one directory within {CREATE_40K_GOAL}x of the kernel's ext2; \
         growth from 10,000 to 160,000 files close to the kernel's growth (read here as within {GROWTH_CLOSE}x of \
         the kernel's growth factor); lookups in a 160,000-file directory within {LOOKUP_GOAL}x of the kernel. \
         This run's sizes: {first} to {largest}."
    ));
    let verdict = |ok: bool| if ok { "**met**" } else { "**not met**" };
    for (i, p) in s.peers.iter().enumerate() {
        if i == k || matches!(p, Peer::Kernel) {
            continue;
        }
        let label = p.label();
        let mut parts = Vec::new();
        match (s.secs(i, s40, "create"), s.secs(k, s40, "create")) {
            (Some(x), Some(kx)) => {
                let r = x / kx.max(1e-9);
                parts.push(format!(
                    "create {} files {} s vs {} s, {}{}: {}",
                    s.sizes[s40],
                    secs_text(x),
                    secs_text(kx),
                    ratio(r),
                    at(s40),
                    verdict(r <= CREATE_40K_GOAL)
                ));
            }
            _ => parts.push(format!("create at {}: no measurement", s.sizes[s40])),
        }
        let g = |p: usize| -> Option<f64> {
            Some(s.secs(p, s_last, "create")? / s.secs(p, s_first, "create")?.max(1e-9))
        };
        match (g(i), g(k)) {
            (Some(gi), Some(gk)) if s_last > s_first => {
                let r = gi / gk.max(1e-9);
                parts.push(format!(
                    "create time grew {} from {first} to {last} files (kernel {}; {} the kernel's growth): {}",
                    ratio(gi),
                    ratio(gk),
                    ratio(r),
                    verdict(r <= GROWTH_CLOSE)
                ));
            }
            _ => parts.push(format!("growth {first} to {last}: no measurement")),
        }
        match (s.secs(i, s_last, "lookup"), s.secs(k, s_last, "lookup")) {
            (Some(x), Some(kx)) => {
                let r = x / kx.max(1e-9);
                parts.push(format!(
                    "lookups in {last} files {} s vs {} s, {}: {}",
                    secs_text(x),
                    secs_text(kx),
                    ratio(r),
                    verdict(r <= LOOKUP_GOAL)
                ));
            }
            _ => parts.push(format!("lookups at {last}: no measurement")),
        }
        // "A directory of 1,000,000 entries created, listed, looked up at
        // random and removed, e2fsck clean": a run that finished did all of
        // that (dirscale checks the listing's count, the run e2fsck).
        if let Some(si) = s.sizes.iter().position(|&n| n >= MILLION) {
            let phases = ["create", "lookup", "list", "unlink"];
            let secs: Option<Vec<f64>> = phases.iter().map(|ph| s.secs(i, si, ph)).collect();
            parts.push(match secs {
                Some(secs) => format!(
                    "{} entries created, looked up, listed and removed, e2fsck clean: **met** ({})",
                    s.sizes[si],
                    phases
                        .iter()
                        .zip(&secs)
                        .map(|(ph, x)| {
                            let k = s.secs(k, si, ph).map_or(String::new(), |kx| {
                                format!(", {} the kernel", ratio(x / kx.max(1e-9)))
                            });
                            format!("{ph} {} s{k}", secs_text(*x))
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                None => format!("{} entries: **not met** (no complete run)", s.sizes[si]),
            });
        }
        out.push(format!("{label}: {}.", parts.join("; ")));
    }
    out
}

/// The issue's largest directory.
const MILLION: usize = 1_000_000;

fn threads_table(ctx: &Ctx, s: &Scale) -> Table {
    let sp = &ctx.plan.scale;
    let mut t = Table::new(
        "scale-threads",
        "Scale: creating threads",
        &[
            "threads",
            "directories",
            "peer",
            "create_secs",
            "ratio_vs_kernel",
            "note",
        ],
    );
    t.caption = format!(
        "Seconds to create {} empty files in all (divided evenly) by 1 to {} threads, each in a directory of its \
         own or all in one shared directory (`dirscale --threads T [--shared] --lookups 0`), one run each on a \
         fresh image as in the growth table, and in brackets the ratio to the kernel's ext2.",
        sp.thread_files,
        sp.threads.iter().max().copied().unwrap_or(1)
    );
    let k = s.peer_index(Peer::Kernel.label());
    t.md_columns = ["threads", "directories"]
        .iter()
        .map(|x| x.to_string())
        .chain(s.peers.iter().map(|p| format!("{} (s)", p.label())))
        .collect();
    for (ci, &(n, shared)) in s.thread_cases.iter().enumerate() {
        let dirs = if shared { "one shared" } else { "own" };
        let mut md = vec![n.to_string(), dirs.to_string()];
        for (i, p) in s.peers.iter().enumerate() {
            let secs = phase_secs(&s.threads[i][ci], "create");
            let r = match (
                secs,
                k.and_then(|k| phase_secs(&s.threads[k][ci], "create")),
            ) {
                (Some(x), Some(kx)) => Some(x / kx.max(1e-9)),
                _ => None,
            };
            md.push(cell(secs, r, &s.threads[i][ci]));
            t.push(vec![
                n.to_string(),
                dirs.to_string(),
                p.label().to_string(),
                secs.map_or("n/a".into(), |x| format!("{x:.4}")),
                r.map_or("n/a".into(), |r| format!("{r:.3}")),
                s.threads[i][ci]
                    .as_ref()
                    .err()
                    .cloned()
                    .unwrap_or_else(|| "ok".into()),
            ]);
        }
        t.md_rows.push(md);
    }
    for (i, p) in s.peers.iter().enumerate() {
        for (ci, r) in s.threads[i].iter().enumerate() {
            if let Err(e) = r {
                let (n, sh) = s.thread_cases[ci];
                t.notes.push(format!(
                    "{} with {n} thread(s){}: {e}",
                    p.label(),
                    if sh { " in one directory" } else { "" }
                ));
            }
        }
    }
    for (what, why) in &s.not_run {
        t.notes.push(format!("{what}: not run: {why}"));
    }
    t.seeds = format!("dirscale --seed {}", ctx.plan.seed);
    t
}

fn figure(s: &Scale) -> String {
    let series: Vec<Series> = s
        .peers
        .iter()
        .enumerate()
        .map(|(i, p)| Series {
            label: p.label().to_string(),
            points: s
                .sizes
                .iter()
                .enumerate()
                .filter_map(|(si, &n)| Some((n as f64, s.secs(i, si, "create")?)))
                .collect(),
        })
        .collect();
    let ymin = series
        .iter()
        .flat_map(|x| x.points.iter().map(|p| p.1))
        .filter(|&y| y > 0.0)
        .fold(f64::INFINITY, f64::min);
    let floor = if ymin.is_finite() { ymin / 2.0 } else { 0.01 };
    svg::log_log_from(
        "Creating N files in one directory",
        "files in the directory (N)",
        "seconds to create them",
        &series,
        floor,
    )
}

/// The tables as plain text, for the main job's output.
pub fn print(s: &Scale) -> String {
    let mut out = String::new();
    for t in [&s.table, &s.threads_table] {
        out.push_str(&format!("-- {}\n{}", t.title, t.markdown_grid()));
        for n in &t.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        for c in &t.comparison {
            out.push_str(&format!("- {c}\n"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dirscale_json() {
        let j = r#"{"config":{"files":10},"phases":[{"name":"create","secs":1.5,"ops":10,"ops_per_sec":6.6},{"name":"lookup","secs":0.25,"ops":10,"ops_per_sec":40.0}]}"#;
        let p = parse_phases(&format!("noise\n{j}\n")).unwrap();
        assert_eq!(p, vec![("create".into(), 1.5), ("lookup".into(), 0.25)]);
        assert!(parse_phases("no json").is_err());
    }

    fn run(create: f64, lookup: f64) -> Run {
        Ok(vec![
            ("create".into(), create),
            ("lookup".into(), lookup),
            ("list".into(), 0.1),
            ("unlink".into(), 0.1),
        ])
    }

    #[test]
    fn quadratic_projection() {
        let d = std::time::Duration::from_secs(120);
        // From one size: quadratic (50 s -> 200 s; 20 s -> 80 s).
        assert!(too_slow(None, 40_000, 50.0, 80_000, d).is_some());
        assert!(too_slow(None, 40_000, 20.0, 80_000, d).is_none());
        // Linear so far (20 s -> 40 s): 40 s -> 80 s, within 120 s.
        assert!(too_slow(Some((20_000, 20.0)), 40_000, 40.0, 80_000, d).is_none());
        // Quadratic so far (10 s -> 40 s): 40 s -> 160 s.
        let why = too_slow(Some((20_000, 10.0)), 40_000, 40.0, 80_000, d).expect("too slow");
        assert!(why.contains("(n^2.00) would take 160 s at 80000"), "{why}");
        // Faster at the larger size: projected linearly, not below.
        assert!(too_slow(Some((20_000, 50.0)), 40_000, 40.0, 80_000, d).is_none());
        assert!(too_slow(Some((20_000, 50.0)), 40_000, 70.0, 80_000, d).is_some());
    }

    #[test]
    fn goals_from_rows() {
        let s = Scale {
            peers: vec![
                Peer::Kernel,
                Peer::Daemon {
                    label: "ext2-mfr".into(),
                    opts: String::new(),
                },
            ],
            sizes: vec![10_000, 40_000, 160_000],
            growth: vec![
                vec![run(0.1, 0.1), run(0.4, 0.1), run(1.6, 0.2)],
                vec![run(0.2, 0.1), run(1.0, 0.1), run(8.0, 0.3)],
            ],
            thread_cases: vec![],
            threads: vec![vec![], vec![]],
            not_run: vec![],
            table: Table::default(),
            threads_table: Table::default(),
            svg: String::new(),
        };
        let g = goals(&s);
        assert_eq!(g.len(), 2);
        // 1.0 / 0.4 = 2.5x: met; growth 40x vs 16x = 2.5x: not met; lookups 1.5x: met.
        assert!(
            g[1].contains("create 40000 files 1.000 s vs 0.400 s, 2.50x: **met**"),
            "{}",
            g[1]
        );
        assert!(
            g[1].contains("(kernel 16.00x; 2.50x the kernel's growth): **not met**"),
            "{}",
            g[1]
        );
        assert!(
            g[1].contains("lookups in 160000 files 0.300 s vs 0.200 s, 1.50x: **met**"),
            "{}",
            g[1]
        );
        assert!(!g[1].contains("entries created"), "{}", g[1]);
    }

    /// A million-entry run: the growth and lookup goals stay at 160,000,
    /// and the run says whether the million was done (a failed run: not).
    #[test]
    fn goals_with_a_million_entries() {
        let peer = |label: &str| Peer::Daemon {
            label: label.into(),
            opts: String::new(),
        };
        let s = Scale {
            peers: vec![Peer::Kernel, peer("ext2-mfr"), peer("other")],
            sizes: vec![10_000, 40_000, 160_000, 1_000_000],
            growth: vec![
                vec![run(0.1, 0.1), run(0.4, 0.1), run(1.6, 0.2), run(10.0, 0.5)],
                vec![run(0.2, 0.1), run(1.0, 0.1), run(8.0, 0.3), run(30.0, 1.0)],
                vec![
                    run(0.2, 0.1),
                    run(1.0, 0.1),
                    run(8.0, 0.3),
                    Err("timed out".into()),
                ],
            ],
            thread_cases: vec![],
            threads: vec![vec![], vec![], vec![]],
            not_run: vec![],
            table: Table::default(),
            threads_table: Table::default(),
            svg: String::new(),
        };
        let g = goals(&s);
        assert!(
            g[0].contains("This run's sizes: 10000 to 1000000."),
            "{}",
            g[0]
        );
        assert!(
            g[1].contains("grew 40.00x from 10000 to 160000 files"),
            "{}",
            g[1]
        );
        assert!(g[1].contains("lookups in 160000 files"), "{}", g[1]);
        assert!(
            g[1].contains("1000000 entries created, looked up, listed and removed, e2fsck clean: **met** (create 30.0 s, 3.00x the kernel; lookup"),
            "{}",
            g[1]
        );
        assert!(
            g[2].contains("1000000 entries: **not met** (no complete run)"),
            "{}",
            g[2]
        );
    }
}
