//! Performance, the AMA paper's Table 5 (and the recovery-domains paper's
//! postmark overhead): every workload under the kernel's ext2 and fuse2fs
//! (where the machine has them) and the daemon's four configurations over
//! /dev/fuse, plus the baseline and ext2-mfr over FUSE over io_uring (where
//! the kernel offers it), side by side in one run with rotating order; the
//! median round counts, and times are given as ratios against the baseline
//! and, in a second table, against the kernel's ext2. Beside our own models
//! of postmark and sort run their independent counterparts: Debian's
//! `postmark` and GNU `sort` (see `external`).

use super::compare::{self, Sample};
use super::config::{self, Mechanisms};
use super::instructions;
use super::mount::Peer;
use super::paper;
use super::plan::Ctx;
use super::proc::on_path;
use super::table::{ratio, Table};

/// Reads one workload's seconds from a sample.
pub type Seconds = fn(&Sample) -> f64;

/// The workloads in the paper's order, then the independent counterparts,
/// and how to read each from a sample (NaN: not configured).
pub const WORKLOADS: [(&str, Seconds); 8] = [
    ("sequential write", |s| s.micro[0].secs),
    ("sequential read", |s| s.micro[1].secs),
    ("random write", |s| s.micro[2].secs),
    ("random read", |s| s.micro[3].secs),
    ("sort", |s| s.sort_secs),
    ("postmark", |s| s.postmark_secs),
    ("postmark (Debian)", |s| {
        s.ext_postmark_secs.unwrap_or(f64::NAN)
    }),
    ("GNU sort", |s| s.gnu_sort_secs.unwrap_or(f64::NAN)),
];

/// The goals against the kernel's ext2: ext2mfr within this factor
/// of its time on postmark...
pub const KERNEL_POSTMARK_GOAL: f64 = 2.5;
/// ... and at least this many times faster than fuse2fs.
pub const FUSE2FS_SPEEDUP_GOAL: f64 = 3.0;

pub struct Performance {
    pub peers: Vec<Peer>,
    /// The workloads that ran (a subset of [`WORKLOADS`], in its order);
    /// the rows of `medians` and `spread`.
    pub workloads: Vec<(&'static str, Seconds)>,
    /// medians[workload][peer], seconds.
    pub medians: Vec<Vec<f64>>,
    /// spread[workload][peer]: slowest round / fastest round, the noise a
    /// ratio has to beat.
    pub spread: Vec<Vec<f64>>,
    pub not_run: Vec<(String, String)>,
    /// cpu[load][peer]: the daemon's median CPU seconds during each of
    /// [`CPU_LOADS`]; `None` for the kernel's ext2 (NaN: load not run).
    pub cpu: Vec<Vec<Option<f64>>>,
    /// The entries of [`CPU_LOADS`] that ran.
    pub cpu_loads: Vec<usize>,
    pub tables: Vec<Table>,
}

/// The loads the daemon's CPU time is taken over.
pub const CPU_LOADS: [&str; 5] = [
    "postmark",
    "micro (all four)",
    "sort",
    "postmark (Debian)",
    "GNU sort",
];

impl Performance {
    pub fn peer_index(&self, label: &str) -> Option<usize> {
        self.peers.iter().position(|p| p.label() == label)
    }

    /// The row of workload `name`, if it ran.
    pub fn workload_index(&self, name: &str) -> Option<usize> {
        self.workloads.iter().position(|(n, _)| *n == name)
    }

    /// median(peer) / median(other) for workload `w`.
    pub fn ratio_to(&self, w: usize, label: &str, other: &str) -> Option<f64> {
        let o = self.peer_index(other)?;
        let i = self.peer_index(label)?;
        Some(self.medians[w][i] / self.medians[w][o].max(1e-9))
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

pub fn kernel_has_ext2() -> bool {
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

/// The kernel's ext2 as a peer where it has the driver, else a note why not.
pub fn add_kernel(peers: &mut Vec<Peer>, not_run: &mut Vec<(String, String)>) {
    if kernel_has_ext2() {
        peers.push(Peer::Kernel);
    } else {
        not_run.push((
            "kernel ext2".into(),
            "the kernel has no ext2 driver (modprobe ext2 failed)".into(),
        ));
    }
}

pub fn run(ctx: &Ctx) -> Result<Performance, String> {
    let plan = &ctx.plan;
    let mut peers = Vec::new();
    let mut not_run = Vec::new();
    add_kernel(&mut peers, &mut not_run);
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
    let (uring, why) = config::uring_available(&config::uring_peers(), |o| ctx.available(o))?;
    peers.extend(uring);
    not_run.extend(why);
    let mut loads = plan.loads.clone();
    if loads.external.postmark.is_some() && !on_path("postmark") {
        loads.external.postmark = None;
        not_run.push((
            "postmark (Debian)".into(),
            "the `postmark` program is not installed (apt-get install postmark)".into(),
        ));
    }
    if loads.external.gnu_sort.is_some() && !on_path("sort") {
        loads.external.gnu_sort = None;
        not_run.push((
            "GNU sort".into(),
            "`sort` is not on PATH (coreutils)".into(),
        ));
    }
    let loads = &loads;
    let workloads: Vec<(&'static str, Seconds)> = WORKLOADS
        .iter()
        .copied()
        .filter(|(n, _)| match *n {
            "postmark (Debian)" => loads.external.postmark.is_some(),
            "GNU sort" => loads.external.gnu_sort.is_some(),
            _ => true,
        })
        .collect();
    let cpu_loads: Vec<usize> = (0..CPU_LOADS.len())
        .filter(|&l| match l {
            3 => loads.external.postmark.is_some(),
            4 => loads.external.gnu_sort.is_some(),
            _ => true,
        })
        .collect();
    let mut samples = compare::rounds(
        &peers,
        &ctx.tools,
        &ctx.work,
        plan.perf_image_mib,
        loads,
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
            // The pair is about the paper's loads (AMA's 1.05x goal); the
            // independent counterparts keep the common rounds only.
            &compare::Loads {
                external: Default::default(),
                ..loads.clone()
            },
            plan.ama_pair_rounds,
            &|m| ctx.say(&format!("performance, ama pair: {m}")),
        )?;
        let [eb, ea]: [Vec<Sample>; 2] = extra.try_into().expect("two peers");
        samples[b].extend(eb);
        samples[a].extend(ea);
    }
    let medians: Vec<Vec<f64>> = workloads
        .iter()
        .map(|(_, f)| {
            samples
                .iter()
                .map(|s| compare::median(s.iter().map(f).filter(|x| x.is_finite()).collect()))
                .collect()
        })
        .collect();
    let spread: Vec<Vec<f64>> = workloads
        .iter()
        .map(|(_, f)| {
            samples
                .iter()
                .map(|s| {
                    let v: Vec<f64> = s.iter().map(f).filter(|x| x.is_finite()).collect();
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
                    v.map(|v| compare::median(v.into_iter().filter(|x| x.is_finite()).collect()))
                })
                .collect()
        })
        .collect();
    let mut perf = Performance {
        peers,
        workloads,
        medians,
        spread,
        not_run,
        cpu,
        cpu_loads,
        tables: Vec::new(),
    };
    let mut t = table(ctx, &perf, &samples);
    t.comparison = paper::performance(&perf);
    perf.tables.push(t);
    if let Some(k) = kernel_table(ctx, &perf) {
        perf.tables.push(k);
    }
    let mut c = cpu_table(ctx, &perf, &samples);
    c.comparison = paper::performance_cpu(&perf);
    // A count that cannot be taken is a note, not the loss of the tables
    // above (the quick test fails it where valgrind is installed).
    match instructions::run(ctx).and_then(|r| r) {
        Ok(i) => {
            c.notes.push(
                "Instructions, the same configurations' exact counts beside these times: \
                 [`performance-instructions`](performance-instructions.md)."
                    .into(),
            );
            c.comparison.extend(i.comparison.iter().cloned());
            perf.tables.push(c);
            perf.tables.push(i);
        }
        Err(why) => {
            c.notes.push(format!("instruction counts: not run: {why}"));
            perf.tables.push(c);
        }
    }
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
    for &l in &perf.cpu_loads {
        let name = CPU_LOADS[l];
        let mut md = vec![name.to_string()];
        for &i in &daemons {
            let p = &perf.peers[i];
            let secs = perf.cpu[l][i].unwrap_or(f64::NAN);
            let r = perf.cpu_ratio(l, p.label());
            let rounds = samples[i]
                .iter()
                .filter_map(|s| s.daemon_cpu.map(|c| c[l]))
                .filter(|x| x.is_finite());
            push_cell(&mut t, &mut md, name, p.label(), secs, r, rounds);
        }
        t.md_rows.push(md);
    }
    t.seeds = seeds(ctx);
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
         the recovery-domains paper's overhead to *recovery only*. *baseline (io_uring)* and *ext2-mfr (io_uring)* \
         are the same configurations over FUSE over io_uring (`transport=uring`) instead of /dev/fuse; \
         *ext2-mfr (io_uring, writeback_cache)* adds the opt-in `writeback_cache` (the kernel's page cache keeps \
         written data and sends it later, in large writes; a write's errors then come at fsync or close: another \
         semantics, never the default, see the README). *postmark \
         (Debian)* and *GNU sort* are independent programs beside our own postmark and sort models. Loads: {}. Sequential read and random read \
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
    for (w, (name, f)) in perf.workloads.iter().enumerate() {
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
                samples[i].iter().map(f).filter(|x| x.is_finite()),
            );
        }
        t.md_rows.push(md);
    }
    for (what, why) in &perf.not_run {
        t.notes.push(format!("{what}: not run: {why}"));
    }
    t.seeds = seeds(ctx);
    t
}

/// The caption's note on the baseline's and ama only's further rounds.
fn pair_rounds(ctx: &Ctx) -> String {
    match ctx.plan.ama_pair_rounds {
        0 => String::new(),
        n => format!(
            "; the baseline and ama only, whose ratio AMA's 1.05x goal is about, {} rounds: {n} more \
             of only those two, back to back, alternating which goes first (without Debian's postmark and GNU \
             sort, which have the common rounds only)",
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
        s.push_str(&format!(" {:>19}", peer.label()));
    }
    s.push('\n');
    let base = p.peer_index(Mechanisms::Baseline.label());
    for (w, (name, _)) in p.workloads.iter().enumerate() {
        s.push_str(&format!("{name:<18}"));
        for i in 0..p.peers.len() {
            let secs = p.medians[w][i];
            let cell = match base {
                Some(b) => format!("{secs:.2}s ({})", ratio(secs / p.medians[w][b].max(1e-9))),
                None => format!("{secs:.2}s"),
            };
            s.push_str(&format!(" {cell:>19}"));
        }
        s.push('\n');
    }
    if let Some(k) = p.peer_index(Peer::Kernel.label()) {
        s.push_str("\nratio to the kernel's ext2 (median time / kernel's)\n");
        s.push_str(&format!("{:<18}", "workload"));
        for (i, peer) in p.peers.iter().enumerate() {
            if i != k {
                s.push_str(&format!(" {:>19}", peer.label()));
            }
        }
        s.push('\n');
        for (w, (name, _)) in p.workloads.iter().enumerate() {
            s.push_str(&format!("{name:<18}"));
            for i in (0..p.peers.len()).filter(|&i| i != k) {
                let r = p.medians[w][i] / p.medians[w][k].max(1e-9);
                s.push_str(&format!(" {:>19}", ratio(r)));
            }
            s.push('\n');
        }
    }
    for (what, why) in &p.not_run {
        s.push_str(&format!("not run: {what}: {why}\n"));
    }
    s
}

fn seeds(ctx: &Ctx) -> String {
    let e = &ctx.plan.loads.external;
    let mut s = format!(
        "postmark {}, micro {}, sort {}",
        ctx.plan.loads.postmark.seed, ctx.plan.loads.micro.seed, ctx.plan.loads.sort.seed
    );
    if let Some(p) = &e.postmark {
        s.push_str(&format!(", Debian postmark {}", p.seed));
    }
    if let Some(g) = &e.gnu_sort {
        s.push_str(&format!(", GNU sort input {}", g.seed));
    }
    s
}

/// Every peer's time against the kernel's ext2 (and fuse2fs against
/// ext2mfr), with the goals: ext2mfr within 2.5x of the kernel on
/// postmark, and at least 3x faster than fuse2fs. None without the kernel.
fn kernel_table(ctx: &Ctx, perf: &Performance) -> Option<Table> {
    let k = perf.peer_index(Peer::Kernel.label())?;
    let mut t = Table::new(
        "performance-kernel",
        "Performance against the kernel's ext2",
        &[
            "workload",
            "peer",
            "median_secs",
            "ratio_vs_kernel",
            "fuse2fs_over_peer",
        ],
    );
    t.caption = format!(
        "The medians of the performance table (same runs, {} rounds) as ratios to the kernel's ext2 driver on \
         the same image (>1 is slower than the kernel), over both FUSE transports: /dev/fuse and, in the \
         (io_uring) columns, FUSE over io_uring. In the CSV, `fuse2fs_over_peer` is fuse2fs's time over the \
         peer's (>1: the peer is faster than fuse2fs).",
        ctx.plan.rounds
    );
    let f2 = perf.peer_index(Peer::Fuse2fs.label());
    let others: Vec<usize> = (0..perf.peers.len()).filter(|&i| i != k).collect();
    t.md_columns = std::iter::once("workload".to_string())
        .chain(
            others
                .iter()
                .map(|&i| format!("{} / kernel", perf.peers[i].label())),
        )
        .collect();
    for (w, (name, _)) in perf.workloads.iter().enumerate() {
        let mut md = vec![name.to_string()];
        for &i in &others {
            let r = perf.medians[w][i] / perf.medians[w][k].max(1e-9);
            md.push(ratio(r));
            let vs_f2 = f2.map(|f| perf.medians[w][f] / perf.medians[w][i].max(1e-9));
            t.push(vec![
                name.to_string(),
                perf.peers[i].label().to_string(),
                format!("{:.3}", perf.medians[w][i]),
                format!("{r:.3}"),
                vs_f2.map_or("n/a".into(), |x| format!("{x:.3}")),
            ]);
        }
        t.md_rows.push(md);
    }
    t.comparison = paper::performance_kernel(perf);
    for (what, why) in &perf.not_run {
        t.notes.push(format!("{what}: not run: {why}"));
    }
    t.seeds = seeds(ctx);
    Some(t)
}
