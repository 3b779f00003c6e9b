//! Performance, the AMA paper's Table 5 (and the recovery-domains paper's
//! postmark overhead): every workload under the kernel's ext2 and fuse2fs
//! (where the machine has them) and the daemon's four configurations, side
//! by side in one run with rotating order; the median round counts, and
//! times are given as ratios against the baseline.

use super::compare::{self, Sample};
use super::config::Mechanisms;
use super::mount::Peer;
use super::paper;
use super::plan::Ctx;
use super::table::{ratio, Table};
use std::path::Path;

/// Reads one workload's seconds from a sample.
pub type Seconds = fn(&Sample) -> f64;

/// The workloads in the paper's order, and how to read each from a sample.
pub const WORKLOADS: [(&str, Seconds); 6] = [
    ("sequential write", |s| s.micro[0].secs),
    ("sequential read", |s| s.micro[1].secs),
    ("random write", |s| s.micro[2].secs),
    ("random read", |s| s.micro[3].secs),
    ("sort", |s| s.sort_secs),
    ("postmark", |s| s.postmark_secs),
];

pub struct Performance {
    pub peers: Vec<Peer>,
    /// medians[workload][peer], seconds.
    pub medians: Vec<Vec<f64>>,
    /// spread[workload][peer]: slowest round / fastest round, the noise a
    /// ratio has to beat.
    pub spread: Vec<Vec<f64>>,
    pub not_run: Vec<(String, String)>,
    /// cpu[load][peer]: the daemon's median CPU seconds during postmark,
    /// micro (all four phases) and sort; `None` for the kernel's ext2.
    pub cpu: Vec<Vec<Option<f64>>>,
    pub tables: Vec<Table>,
}

/// The loads the daemon's CPU time is taken over.
pub const CPU_LOADS: [&str; 3] = ["postmark", "micro (all four)", "sort"];

impl Performance {
    pub fn peer_index(&self, label: &str) -> Option<usize> {
        self.peers.iter().position(|p| p.label() == label)
    }

    /// cpu(peer) / cpu(baseline) for CPU load `l`.
    pub fn cpu_ratio(&self, l: usize, label: &str) -> Option<f64> {
        let b = self.peer_index(Mechanisms::Baseline.label())?;
        let i = self.peer_index(label)?;
        Some(self.cpu[l][i]? / self.cpu[l][b]?.max(1e-9))
    }

    /// median(peer) / median(baseline) for workload `w`.
    pub fn ratio(&self, w: usize, label: &str) -> Option<f64> {
        let b = self.peer_index(Mechanisms::Baseline.label())?;
        let i = self.peer_index(label)?;
        Some(self.medians[w][i] / self.medians[w][b].max(1e-9))
    }
}

fn kernel_has_ext2() -> bool {
    let has = || {
        std::fs::read_to_string("/proc/filesystems")
            .map(|s| {
                s.lines()
                    .any(|l| l.split_whitespace().last() == Some("ext2"))
            })
            .unwrap_or(false)
    };
    if !has() {
        let _ = std::process::Command::new("modprobe")
            .arg("ext2")
            .stderr(std::process::Stdio::null())
            .status();
    }
    has()
}

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join(prog).is_file()))
        .unwrap_or(false)
}

pub fn run(ctx: &Ctx) -> Result<Performance, String> {
    let plan = &ctx.plan;
    let mut peers = Vec::new();
    let mut not_run = Vec::new();
    if kernel_has_ext2() {
        peers.push(Peer::Kernel);
    } else {
        not_run.push((
            "kernel ext2".into(),
            "the kernel has no ext2 driver (modprobe ext2 failed)".into(),
        ));
    }
    if on_path("fuse2fs") {
        peers.push(Peer::Fuse2fs);
    } else {
        not_run.push(("fuse2fs".into(), "fuse2fs is not installed".into()));
    }
    for m in Mechanisms::ALL {
        match ctx.available(m.opts())? {
            Ok(()) => peers.push(m.peer()),
            Err(why) => not_run.push((format!("{} (`-o {}`)", m.label(), m.opts()), why)),
        }
    }
    let mut samples = compare::rounds(
        &peers,
        &ctx.tools,
        &ctx.work,
        plan.perf_image_mib,
        &plan.loads,
        plan.rounds,
        &|m| ctx.say(&format!("performance: {m}")),
    )?;
    let pair = [Mechanisms::Baseline, Mechanisms::AmaOnly]
        .map(|m| peers.iter().position(|p| p.label() == m.label()));
    if let ([Some(b), Some(a)], true) = (pair, plan.ama_pair_rounds > 0) {
        let extra = compare::rounds(
            &[peers[b].clone(), peers[a].clone()],
            &ctx.tools,
            &ctx.work,
            plan.perf_image_mib,
            &plan.loads,
            plan.ama_pair_rounds,
            &|m| ctx.say(&format!("performance, ama pair: {m}")),
        )?;
        let [eb, ea]: [Vec<Sample>; 2] = extra.try_into().expect("two peers");
        samples[b].extend(eb);
        samples[a].extend(ea);
    }
    let medians: Vec<Vec<f64>> = WORKLOADS
        .iter()
        .map(|(_, f)| {
            samples
                .iter()
                .map(|s| compare::median(s.iter().map(f).collect()))
                .collect()
        })
        .collect();
    let spread: Vec<Vec<f64>> = WORKLOADS
        .iter()
        .map(|(_, f)| {
            samples
                .iter()
                .map(|s| {
                    let v: Vec<f64> = s.iter().map(f).collect();
                    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = v.iter().copied().fold(0.0, f64::max);
                    hi / lo.max(1e-9)
                })
                .collect()
        })
        .collect();
    let cpu: Vec<Vec<Option<f64>>> = (0..CPU_LOADS.len())
        .map(|l| {
            samples
                .iter()
                .map(|s| {
                    let v: Option<Vec<f64>> =
                        s.iter().map(|x| x.daemon_cpu.map(|c| c[l])).collect();
                    v.map(compare::median)
                })
                .collect()
        })
        .collect();
    let mut perf = Performance {
        peers,
        medians,
        spread,
        not_run,
        cpu,
        tables: Vec::new(),
    };
    let mut t = table(ctx, &perf, &samples);
    t.comparison = paper::performance(&perf);
    perf.tables.push(t);
    let mut c = cpu_table(ctx, &perf, &samples);
    c.comparison = paper::performance_cpu(&perf);
    perf.tables.push(c);
    Ok(perf)
}

/// The daemon's CPU time per load: what the mechanisms cost the daemon
/// itself, less exposed to scheduling noise than wall time.
fn cpu_table(ctx: &Ctx, perf: &Performance, samples: &[Vec<Sample>]) -> Table {
    let mut t = Table::new(
        "performance-cpu",
        "Daemon CPU time (beside Table 5)",
        &[
            "load",
            "peer",
            "median_cpu_secs",
            "ratio_vs_baseline",
            "cpu_secs_per_round",
        ],
    );
    t.caption = format!(
        "CPU seconds (user + system, all threads; from /proc) the file-system daemon used while each load \
         ran, in the same runs as the performance table (median of {} rounds{}), and in brackets the ratio to \
         the baseline. The kernel's ext2 has no daemon and is left out. Wall time also holds the \
         application's own time and FUSE's round trips, where the mechanisms cost nothing; this is their \
         cost where it arises.",
        ctx.plan.rounds,
        pair_rounds(ctx)
    );
    let daemons: Vec<usize> = (0..perf.peers.len())
        .filter(|&i| perf.cpu.iter().all(|l| l[i].is_some()))
        .collect();
    t.md_columns = std::iter::once("load".to_string())
        .chain(
            daemons
                .iter()
                .map(|&i| format!("{} (CPU s)", perf.peers[i].label())),
        )
        .collect();
    for (l, name) in CPU_LOADS.iter().enumerate() {
        let mut md = vec![name.to_string()];
        for &i in &daemons {
            let p = &perf.peers[i];
            let secs = perf.cpu[l][i].unwrap_or(f64::NAN);
            let r = perf.cpu_ratio(l, p.label());
            let rounds = samples[i].iter().filter_map(|s| s.daemon_cpu.map(|c| c[l]));
            push_cell(&mut t, &mut md, name, p.label(), secs, r, rounds);
        }
        t.md_rows.push(md);
    }
    t.seeds = format!(
        "postmark {}, micro {}, sort {}",
        ctx.plan.loads.postmark.seed, ctx.plan.loads.micro.seed, ctx.plan.loads.sort.seed
    );
    t
}

fn table(ctx: &Ctx, perf: &Performance, samples: &[Vec<Sample>]) -> Table {
    let mut t = Table::new(
        "performance",
        "Performance (AMA paper, Table 5)",
        &[
            "workload",
            "peer",
            "median_secs",
            "ratio_vs_baseline",
            "secs_per_round",
        ],
    );
    let base = perf.peer_index(Mechanisms::Baseline.label());
    t.caption = format!(
        "Seconds (median of {} rounds{}; each round runs every peer once, in rotating order, each on a fresh \
         {} MiB image made by mkfs.ext2 -b 4096, after sync and dropping caches; every run ends with a clean \
         `e2fsck -fn`), and in brackets the ratio to the baseline (ext2mfr with `baseline`: AMA and recovery \
         off; >1 is slower). The AMA paper's ext2-mfr corresponds to *ama only* (it had no recovery domains); \
         the recovery-domains paper's overhead to *recovery only*. Loads: {}. Sequential read and random read \
         start with the kernel's page cache dropped; the daemon's own block cache (64 MiB by default) is not \
         dropped, as a kernel file system's buffer cache would be.",
        ctx.plan.rounds,
        pair_rounds(ctx),
        ctx.plan.perf_image_mib,
        ctx.plan.loads.describe()
    );
    t.md_columns = std::iter::once("workload".to_string())
        .chain(perf.peers.iter().map(|p| format!("{} (s)", p.label())))
        .collect();
    for (w, (name, f)) in WORKLOADS.iter().enumerate() {
        let mut md = vec![name.to_string()];
        for (i, p) in perf.peers.iter().enumerate() {
            let secs = perf.medians[w][i];
            let r = base.map(|b| secs / perf.medians[w][b].max(1e-9));
            push_cell(
                &mut t,
                &mut md,
                name,
                p.label(),
                secs,
                r,
                samples[i].iter().map(f),
            );
        }
        t.md_rows.push(md);
    }
    for (what, why) in &perf.not_run {
        t.notes.push(format!("{what}: not run: {why}"));
    }
    t.seeds = format!(
        "postmark {}, micro {}, sort {}",
        ctx.plan.loads.postmark.seed, ctx.plan.loads.micro.seed, ctx.plan.loads.sort.seed
    );
    t
}

/// The caption's note on the baseline's and ama only's further rounds.
fn pair_rounds(ctx: &Ctx) -> String {
    match ctx.plan.ama_pair_rounds {
        0 => String::new(),
        n => format!(
            "; the baseline and ama only, whose ratio AMA's 1.05x goal is about, {} rounds: {n} more \
             of only those two, back to back, alternating which goes first",
            ctx.plan.rounds + n
        ),
    }
}

/// One peer's cell of a workload's Markdown row (seconds, ratio) and its
/// CSV row (with every round's seconds).
fn push_cell(
    t: &mut Table,
    md: &mut Vec<String>,
    load: &str,
    peer: &str,
    secs: f64,
    r: Option<f64>,
    rounds: impl Iterator<Item = f64>,
) {
    md.push(match r {
        Some(r) => format!("{secs:.2} ({})", ratio(r)),
        None => format!("{secs:.2}"),
    });
    t.push(vec![
        load.to_string(),
        peer.to_string(),
        format!("{secs:.3}"),
        r.map_or("n/a".into(), |r| format!("{r:.3}")),
        rounds
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(" "),
    ]);
}

/// The overhead table as plain text, for the main job's output.
pub fn print(p: &Performance) -> String {
    let mut s = format!("{:<18}", "workload");
    for peer in &p.peers {
        s.push_str(&format!(" {:>18}", peer.label()));
    }
    s.push('\n');
    let base = p.peer_index(Mechanisms::Baseline.label());
    for (w, (name, _)) in WORKLOADS.iter().enumerate() {
        s.push_str(&format!("{name:<18}"));
        for i in 0..p.peers.len() {
            let secs = p.medians[w][i];
            let cell = match base {
                Some(b) => format!("{secs:.2}s ({})", ratio(secs / p.medians[w][b].max(1e-9))),
                None => format!("{secs:.2}s"),
            };
            s.push_str(&format!(" {cell:>18}"));
        }
        s.push('\n');
    }
    for (what, why) in &p.not_run {
        s.push_str(&format!("not run: {what}: {why}\n"));
    }
    s
}
