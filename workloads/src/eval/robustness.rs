//! Robustness under allocation failures, the AMA paper's Tables 2, 4 and 7:
//! every configuration (baseline, recovery only, ama only, ext2-mfr) under
//! each policy, with `inject_alloc` at each probability, N runs per cell,
//! each run with its own seed, each run classified (see [`super::classify`]).
//! Then ext2-mfr's cells again over FUSE over io_uring: the transport must
//! change no outcome.

use super::config::{config_label, transport_options, Mechanisms, Policy};
use super::injected::{self, InjectedRun};
use super::paper;
use super::plan::Ctx;
use super::stats;
use super::table::{seed_ranges, Table};

/// The counts of one cell of the matrix.
#[derive(Clone, Debug)]
pub struct Cell {
    pub mech: Mechanisms,
    pub policy: Option<Policy>,
    /// Over FUSE over io_uring (else /dev/fuse).
    pub uring: bool,
    pub p: f64,
    pub runs: usize,
    pub error: usize,
    pub abort: usize,
    pub unusable: usize,
    pub inconsistent: usize,
    pub seeds: Vec<u64>,
    /// Runs with inject_alloc > 0 in which the daemon checked no allocation
    /// at all: the injection was not active and the run measured nothing.
    pub inactive: usize,
    /// The distinct reasons behind the outcomes, most frequent first.
    pub reasons: Vec<(String, usize)>,
}

impl Cell {
    pub fn all_zero(&self) -> bool {
        self.error + self.abort + self.unusable + self.inconsistent == 0
    }
    pub fn label(&self) -> String {
        config_label(self.mech, self.uring)
    }
    pub fn counts(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.error, self.abort, self.unusable, self.inconsistent
        )
    }
}

/// A configuration the daemon refused, and its message.
#[derive(Clone, Debug)]
pub struct NotRun {
    pub mech: Mechanisms,
    pub policy: Option<Policy>,
    pub uring: bool,
    pub why: String,
}

pub struct Robustness {
    pub cells: Vec<Cell>,
    pub not_run: Vec<NotRun>,
    pub tables: Vec<Table>,
}

fn policies(m: Mechanisms) -> Vec<Option<Policy>> {
    if m.has_policy() {
        Policy::ALL.iter().copied().map(Some).collect()
    } else {
        vec![None]
    }
}

pub fn policy_label(p: Option<Policy>) -> &'static str {
    p.map_or("-", Policy::label)
}

/// Seeds are fixed by a run's place in the full matrix (whether or not
/// other configurations could run), so a rerun of the same command repeats
/// the same runs.
pub fn seed_of(base: u64, cell_index: usize, run: usize) -> u64 {
    base + 1 + cell_index as u64 * 1000 + run as u64
}

/// The matrix's rows in order: every configuration and policy over
/// /dev/fuse, then ext2-mfr under each policy over io_uring (after the
/// others, so the /dev/fuse cells keep their seeds).
fn configurations() -> Vec<(Mechanisms, Option<Policy>, bool)> {
    let dev = Mechanisms::ALL
        .into_iter()
        .flat_map(|m| policies(m).into_iter().map(move |p| (m, p, false)));
    let uring = Policy::ALL
        .into_iter()
        .map(|p| (Mechanisms::Ext2Mfr, Some(p), true));
    dev.chain(uring).collect()
}

pub fn run(ctx: &Ctx) -> Result<Robustness, String> {
    let plan = &ctx.plan;
    let mut cells = Vec::new();
    let mut not_run = Vec::new();
    let mut runs_table = Table::new(
        "robustness-runs",
        "Robustness: every run",
        &[
            "configuration",
            "policy",
            "inject_alloc",
            "run",
            "inject_seed",
            "error",
            "abort",
            "unusable",
            "inconsistent",
            "workload",
            "alloc_faults",
            "requests_faulted",
            "retries",
            "failed_after_fault",
            "secs",
            "detail",
        ],
    );
    let mut cell_index = 0usize;
    for (mech, policy, uring) in configurations() {
        let opts = transport_options(mech, policy, uring);
        let label = config_label(mech, uring);
        if let Err(why) = ctx.available(&opts)? {
            cell_index += plan.probabilities.len();
            ctx.say(&format!("robustness: {label} ({opts}) not run: {why}"));
            not_run.push(NotRun {
                mech,
                policy,
                uring,
                why,
            });
            continue;
        }
        for &p in &plan.probabilities {
            cell_index += 1;
            let mut cell = Cell {
                mech,
                policy,
                uring,
                p,
                runs: 0,
                error: 0,
                abort: 0,
                unusable: 0,
                inconsistent: 0,
                seeds: Vec::new(),
                inactive: 0,
                reasons: Vec::new(),
            };
            for n in 0..plan.robustness_runs {
                let seed = seed_of(plan.seed, cell_index, n);
                let r = injected::run(
                    ctx,
                    &InjectedRun {
                        opts: opts.clone(),
                        inject: format!("inject_alloc={p}"),
                        seed,
                        workload: plan.robustness_workload.clone(),
                        timeout: plan.run_timeout,
                        image_mib: plan.robustness_image_mib,
                    },
                )?;
                let o = &r.outcome;
                cell.runs += 1;
                cell.error += o.error as usize;
                cell.abort += o.abort as usize;
                cell.unusable += o.unusable as usize;
                cell.inconsistent += o.inconsistent as usize;
                cell.seeds.push(seed);
                let checks = r
                    .counters
                    .as_ref()
                    .and_then(|v| stats::get(v, "faults_injected.alloc_checks"));
                if p > 0.0 && checks == Some(0) {
                    cell.inactive += 1;
                }
                if !o.detail.is_empty() {
                    let key = reason_key(&o.detail);
                    match cell.reasons.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, c)) => *c += 1,
                        None => cell.reasons.push((key, 1)),
                    }
                }
                let c = |k: &str| {
                    r.counters
                        .as_ref()
                        .and_then(|v| stats::get(v, k))
                        .map_or("n/a (daemon died)".to_string(), |x| x.to_string())
                };
                ctx.say(&format!(
                    "robustness: {} {} P={p} run {}/{} seed {}: {} ({:.1} s){}",
                    label,
                    policy_label(policy),
                    n + 1,
                    plan.robustness_runs,
                    seed,
                    flags(o),
                    r.secs,
                    if o.detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", o.detail)
                    }
                ));
                runs_table.push(vec![
                    label.clone(),
                    policy_label(policy).into(),
                    format!("{p}"),
                    (n + 1).to_string(),
                    seed.to_string(),
                    (o.error as u8).to_string(),
                    (o.abort as u8).to_string(),
                    (o.unusable as u8).to_string(),
                    (o.inconsistent as u8).to_string(),
                    workload_word(&r.workload).into(),
                    c("faults_injected.alloc_faults"),
                    c("requests.faulted"),
                    c("requests.retries"),
                    c("requests.failed_after_fault"),
                    format!("{:.2}", r.secs),
                    if o.detail.is_empty() {
                        "clean run".into()
                    } else {
                        o.detail.clone()
                    },
                ]);
            }
            cell.reasons.sort_by_key(|x| std::cmp::Reverse(x.1));
            cells.push(cell);
        }
    }
    let mut summary = summary_table(ctx, &cells, &not_run);
    summary.comparison = paper::robustness(&cells, &not_run);
    runs_table.caption = format!(
        "One line per run of [the robustness table](robustness.md): its seed (`inject_seed`, also the workload's seed), \
         its outcome flags, how the workload ended, the daemon's counters after the run \
         (`n/a` when the daemon had died), and why. Workload: {}.",
        describe_workload(ctx)
    );
    runs_table.seeds = seed_ranges(
        &cells
            .iter()
            .flat_map(|c| c.seeds.clone())
            .collect::<Vec<_>>(),
    );
    Ok(Robustness {
        cells,
        not_run,
        tables: vec![summary, runs_table],
    })
}

fn flags(o: &super::classify::Outcome) -> String {
    let mut v = Vec::new();
    if o.error {
        v.push("Error");
    }
    if o.abort {
        v.push("Abort");
    }
    if o.unusable {
        v.push("Unusable");
    }
    if o.inconsistent {
        v.push("Inconsistent");
    }
    if v.is_empty() {
        "no failure".into()
    } else {
        v.join("+")
    }
}

fn workload_word(w: &super::classify::WorkloadEnd) -> &'static str {
    use super::classify::WorkloadEnd::*;
    match w {
        Completed => "completed",
        Failed(_) => "failed a call",
        Killed(_) => "killed",
        TimedOut => "timed out",
    }
}

/// The part of a detail that names the cause, without paths and numbers,
/// so that runs failing the same way group together.
fn reason_key(detail: &str) -> String {
    detail
        .split("; ")
        .map(|part| {
            // "workload: write /var/tmp/.../pm12_ab: Cannot allocate memory (os error 12)"
            // -> "workload: write PATH: Cannot allocate memory (os error 12)"
            part.split_whitespace()
                .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
                .map(|w| match (w.starts_with('/'), w.ends_with(':')) {
                    (true, true) => "PATH:",
                    (true, false) => "PATH",
                    _ => w,
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_workload(ctx: &Ctx) -> String {
    let w = &ctx.plan.robustness_workload;
    format!(
        "PostMark ({} files, {} transactions, {} subdirectories) then {} rounds of mkdir/write/truncate down and up/rename/symlink/link/rmdir \
         on a fresh {} MiB image, deadline {} s",
        w.files,
        w.transactions,
        w.subdirectories,
        w.rounds,
        ctx.plan.robustness_image_mib,
        ctx.plan.run_timeout.as_secs()
    )
}

fn summary_table(ctx: &Ctx, cells: &[Cell], not_run: &[NotRun]) -> Table {
    let mut t = Table::new(
        "robustness",
        "Robustness under allocation failures (AMA paper, Tables 2, 4 and 7)",
        &[
            "configuration",
            "policy",
            "inject_alloc",
            "runs",
            "error",
            "abort",
            "unusable",
            "inconsistent",
            "seeds",
        ],
    );
    t.caption = format!(
        "Runs (out of `runs`) in which each outcome happened, per configuration, policy and probability \
         that an allocation fails (`inject_alloc`). Error: the workload saw a failed call from a live daemon. \
         Abort: the workload was killed or hung, or the daemon died. Unusable: afterwards the mount or a fresh \
         mount of the image could not be listed, stat'ed or written. Inconsistent: `e2fsck -fn` found problems \
         after the unmount. Outcomes are not exclusive. Configurations: baseline = `baseline` \
         (ama=off, recovery=off); recovery only = `ama=off,recovery=on`; ama only = `ama=on,recovery=off`; \
         ext2-mfr = `ama=on,recovery=on`; all over /dev/fuse, and ext2-mfr again over FUSE over io_uring \
         (`transport=uring`, \"(io_uring)\"). Workload: {}. Every run: [robustness-runs.md](robustness-runs.md).",
        describe_workload(ctx)
    );
    for c in cells {
        t.push(vec![
            c.label(),
            policy_label(c.policy).into(),
            format!("{:.0}%", c.p * 100.0),
            c.runs.to_string(),
            c.error.to_string(),
            c.abort.to_string(),
            c.unusable.to_string(),
            c.inconsistent.to_string(),
            seed_ranges(&c.seeds),
        ]);
    }
    let inactive: usize = cells.iter().map(|c| c.inactive).sum();
    if inactive > 0 {
        t.notes.push(format!(
            "WARNING: in {inactive} run(s) with inject_alloc > 0 the daemon checked no allocation at all \
             (`faults_injected.alloc_checks` = 0): injection was not active, and those cells measure nothing."
        ));
    }
    for n in not_run {
        t.notes.push(format!(
            "{} with policy {} (`-o {}`): not run, {}: {}",
            config_label(n.mech, n.uring),
            policy_label(n.policy),
            transport_options(n.mech, n.policy, n.uring),
            if n.uring {
                "FUSE over io_uring is not available"
            } else {
                "the daemon refused the options"
            },
            n.why
        ));
    }
    t.seeds = seed_ranges(
        &cells
            .iter()
            .flat_map(|c| c.seeds.clone())
            .collect::<Vec<_>>(),
    );
    t
}

/// The cells as a plain-text table, for the main job's output.
pub fn print(r: &Robustness) -> String {
    let mut s = format!(
        "{:<20} {:<10} {:>6} {:>5} {:>6} {:>6} {:>9} {:>13}\n",
        "configuration", "policy", "P", "runs", "Error", "Abort", "Unusable", "Inconsistent"
    );
    for c in &r.cells {
        s.push_str(&format!(
            "{:<20} {:<10} {:>5.0}% {:>5} {:>6} {:>6} {:>9} {:>13}\n",
            c.label(),
            policy_label(c.policy),
            c.p * 100.0,
            c.runs,
            c.error,
            c.abort,
            c.unusable,
            c.inconsistent
        ));
    }
    for n in &r.not_run {
        s.push_str(&format!(
            "{:<20} {:<10} not run: {}\n",
            config_label(n.mech, n.uring),
            policy_label(n.policy),
            n.why
        ));
    }
    s
}
