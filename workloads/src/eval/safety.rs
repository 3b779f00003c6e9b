//! Memory-safety faults, the recovery-domains paper's experiment (its
//! section 6.2): a fault (the panic of a failed bounds check) strikes once
//! every `N + rand(N)` fault-point hits per thread, while a workload runs,
//! until the daemon dies or the workload ends. Reported: faults injected,
//! faults survived (the daemon kept serving), requests rolled back,
//! cascaded rollbacks, what the workload saw, and e2fsck's verdict.
//!
//! N is calibrated, not guessed: one run with an interval too large to
//! fire counts the fault-point hits of the workload, and N is set so that a
//! run sees about `safety_target_faults` faults (the paper's runs saw 17-72).
//!
//! Every configuration runs over /dev/fuse, and ext2-mfr again over FUSE
//! over io_uring: the transport must change no outcome.

use super::config::{config_label, transport_options, Mechanisms, Policy};
use super::injected::{self, InjectedRun};
use super::paper;
use super::plan::Ctx;
use super::robustness::policy_label;
use super::stats;
use super::table::{seed_ranges, Table};

/// Totals of one configuration.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub label: String,
    pub policy: String,
    pub mech: Option<Mechanisms>,
    /// Over FUSE over io_uring (else /dev/fuse).
    pub uring: bool,
    pub runs: usize,
    pub injected: u64,
    pub survived: u64,
    /// Requests rolled back because of a fault (`requests.faulted`).
    pub rolled_back: u64,
    /// Re-executions under the retry policy.
    pub retries: u64,
    pub cascaded: u64,
    /// All domains rolled back, also those of requests that ended in an
    /// ordinary error (`recovery.rolled_back`).
    pub domains_rolled_back: u64,
    pub failed_after_fault: u64,
    pub workload_errors: usize,
    pub daemon_died: usize,
    pub unusable: usize,
    pub fsck_clean: usize,
    pub seeds: Vec<u64>,
}

impl Row {
    pub fn survived_pct(&self) -> f64 {
        if self.injected == 0 {
            f64::NAN
        } else {
            100.0 * self.survived as f64 / self.injected as f64
        }
    }
}

pub struct Safety {
    pub rows: Vec<Row>,
    pub not_run: Vec<(String, String)>,
    pub interval: u64,
    pub calibration_hits: u64,
    pub tables: Vec<Table>,
}

/// Mechanisms, policy, and whether over io_uring. The io_uring rows come
/// last so the /dev/fuse rows keep their seeds.
const CONFIGS: [(Mechanisms, Option<Policy>, bool); 7] = [
    (Mechanisms::Baseline, None, false),
    (Mechanisms::RecoveryOnly, Some(Policy::Retry), false),
    (Mechanisms::RecoveryOnly, Some(Policy::FailFast), false),
    (Mechanisms::Ext2Mfr, Some(Policy::Retry), false),
    (Mechanisms::Ext2Mfr, Some(Policy::FailFast), false),
    (Mechanisms::Ext2Mfr, Some(Policy::Retry), true),
    (Mechanisms::Ext2Mfr, Some(Policy::FailFast), true),
];

/// Seeds of this part start here (apart from the robustness matrix's).
const SEED_OFFSET: u64 = 500_000;

pub fn run(ctx: &Ctx) -> Result<Safety, String> {
    let plan = &ctx.plan;
    let (hits, interval) = calibrate(ctx)?;
    ctx.say(&format!(
        "safety: the workload hits {hits} fault points; inject_interval={interval} (about {} faults a run)",
        plan.safety_target_faults
    ));
    let mut rows = Vec::new();
    let mut not_run = Vec::new();
    let mut runs_table = Table::new(
        "safety-runs",
        "Memory-safety faults: every run",
        &[
            "configuration",
            "policy",
            "run",
            "inject_seed",
            "faults_injected",
            "faults_survived",
            "requests_rolled_back",
            "retries",
            "cascaded_rollbacks",
            "failed_after_fault",
            "domains_rolled_back",
            "workload",
            "daemon_died",
            "e2fsck",
            "secs",
            "detail",
        ],
    );
    for (ci, (mech, policy, uring)) in CONFIGS.into_iter().enumerate() {
        let opts = transport_options(mech, policy, uring);
        let label = config_label(mech, uring);
        if let Err(why) = ctx.available(&opts)? {
            ctx.say(&format!("safety: {label} ({opts}) not run: {why}"));
            not_run.push((
                format!("{label} with policy {} (`-o {opts}`)", policy_label(policy)),
                why,
            ));
            continue;
        }
        let mut row = Row {
            label: label.clone(),
            policy: policy_label(policy).into(),
            mech: Some(mech),
            uring,
            ..Default::default()
        };
        for n in 0..plan.safety_runs {
            let seed = plan.seed + SEED_OFFSET + ci as u64 * 1000 + n as u64 + 1;
            let r = injected::run(
                ctx,
                &InjectedRun {
                    opts: opts.clone(),
                    inject: format!("inject_interval={interval}"),
                    seed,
                    workload: plan.safety_workload.clone(),
                    timeout: plan.safety_timeout,
                    image_mib: plan.robustness_image_mib * 2,
                },
            )?;
            let c = |k: &str| {
                r.counters
                    .as_ref()
                    .and_then(|v| stats::get(v, k))
                    .unwrap_or(0)
            };
            // A dead daemon's counters are its last poll; the fault that
            // killed it came after.
            let fatal = u64::from(r.daemon_died && r.died_of_injected_fault);
            let injected = c("faults_injected.safety_faults") + fatal;
            let survived = injected.saturating_sub(u64::from(r.daemon_died));
            row.runs += 1;
            row.injected += injected;
            row.survived += survived;
            row.rolled_back += c("requests.faulted");
            row.retries += c("requests.retries");
            row.cascaded += c("recovery.cascaded_rollbacks");
            row.domains_rolled_back += c("recovery.rolled_back");
            row.failed_after_fault += c("requests.failed_after_fault");
            row.workload_errors += r.outcome.error as usize;
            row.daemon_died += r.daemon_died as usize;
            row.unusable += r.outcome.unusable as usize;
            row.fsck_clean += (!r.outcome.inconsistent) as usize;
            row.seeds.push(seed);
            ctx.say(&format!(
                "safety: {} {} run {}/{} seed {seed}: {injected} faults, {survived} survived, daemon {}, e2fsck {} ({:.1} s)",
                label,
                policy_label(policy),
                n + 1,
                plan.safety_runs,
                if r.daemon_died { "died" } else { "lived" },
                if r.outcome.inconsistent { "found problems" } else { "clean" },
                r.secs
            ));
            runs_table.push(vec![
                label.clone(),
                policy_label(policy).into(),
                (n + 1).to_string(),
                seed.to_string(),
                injected.to_string(),
                survived.to_string(),
                c("requests.faulted").to_string(),
                c("requests.retries").to_string(),
                c("recovery.cascaded_rollbacks").to_string(),
                c("requests.failed_after_fault").to_string(),
                c("recovery.rolled_back").to_string(),
                match &r.workload {
                    super::classify::WorkloadEnd::Completed => "completed".into(),
                    super::classify::WorkloadEnd::Failed(m) => format!("failed: {m}"),
                    super::classify::WorkloadEnd::Killed(s) => format!("killed ({s})"),
                    super::classify::WorkloadEnd::TimedOut => "timed out".into(),
                },
                (r.daemon_died as u8).to_string(),
                if r.outcome.inconsistent {
                    "problems".into()
                } else {
                    "clean".into()
                },
                format!("{:.2}", r.secs),
                if r.outcome.detail.is_empty() {
                    "clean run".into()
                } else {
                    r.outcome.detail.clone()
                },
            ]);
        }
        rows.push(row);
    }
    let mut t = summary_table(ctx, &rows, &not_run, interval, hits);
    t.comparison = paper::safety(&rows, &not_run);
    runs_table.caption = format!(
        "One line per run of [the memory-safety table](safety.md), with `inject_interval={interval}`. \
         Counters are read from `ext2mfr.stats` after the workload; for a daemon that died, at the last poll \
         (every 0.3 s) before its death, plus the fault that killed it."
    );
    runs_table.seeds = seed_ranges(
        &rows
            .iter()
            .flat_map(|r| r.seeds.clone())
            .collect::<Vec<_>>(),
    );
    Ok(Safety {
        rows,
        not_run,
        interval,
        calibration_hits: hits,
        tables: vec![t, runs_table],
    })
}

/// Count the workload's fault-point hits with an interval too large to fire.
fn calibrate(ctx: &Ctx) -> Result<(u64, u64), String> {
    let plan = &ctx.plan;
    let r = injected::run(
        ctx,
        &InjectedRun {
            opts: transport_options(Mechanisms::Baseline, None, false),
            inject: "inject_interval=1000000000000".into(),
            seed: plan.seed + SEED_OFFSET,
            workload: plan.safety_workload.clone(),
            timeout: plan.safety_timeout,
            image_mib: plan.robustness_image_mib * 2,
        },
    )?;
    if r.outcome != Default::default() {
        return Err(format!(
            "safety calibration run (no fault can fire) did not run cleanly: {}",
            r.outcome.detail
        ));
    }
    let hits = r
        .counters
        .as_ref()
        .and_then(|v| stats::get(v, "faults_injected.fault_point_hits"))
        .ok_or("safety calibration: no faults_injected.fault_point_hits in the counters")?;
    // A fault fires every n + rand(n) hits, 1.5 n on average.
    let interval = (hits as f64 / (1.5 * plan.safety_target_faults as f64)).max(1.0) as u64;
    Ok((hits, interval))
}

fn summary_table(
    ctx: &Ctx,
    rows: &[Row],
    not_run: &[(String, String)],
    interval: u64,
    hits: u64,
) -> Table {
    let w = &ctx.plan.safety_workload;
    let mut t = Table::new(
        "safety",
        "Memory-safety faults (recovery-domains paper, section 6.2)",
        &[
            "configuration",
            "policy",
            "runs",
            "faults_injected",
            "faults_survived",
            "survived_pct",
            "requests_rolled_back",
            "retries",
            "cascaded_rollbacks",
            "failed_after_fault",
            "domains_rolled_back",
            "workload_errors",
            "daemon_died",
            "unusable",
            "e2fsck_clean",
            "seeds",
        ],
    );
    t.caption = format!(
        "A memory-safety fault (the panic of a failed bounds check) strikes once every N + rand(N) fault-point \
         hits per daemon thread (`inject_interval={interval}`; the workload hits {hits} fault points, so a run sees \
         about {} faults), while PostMark ({} files, {} transactions) and {} rounds of namespace and truncate \
         operations run, until the daemon dies or the workload ends. Sums over the runs: faults injected; faults \
         survived (the daemon went on serving after them); from `ext2mfr.stats`: requests rolled back because \
         of a fault (`requests.faulted`), their re-executions under retry, cascaded rollbacks (dependents rolled \
         back with a faulting request), requests answered with an error after a fault, and all domains rolled \
         back (`recovery.rolled_back`, which also counts requests that ended in an ordinary error such as a \
         negative lookup); then runs in which the workload saw an error, the daemon died, the file system was \
         unusable afterwards, and `e2fsck -fn` was clean. All configurations run over /dev/fuse, and ext2-mfr \
         again over FUSE over io_uring (`transport=uring`, \"(io_uring)\"). \
         Every run: [safety-runs.md](safety-runs.md).",
        ctx.plan.safety_target_faults, w.files, w.transactions, w.rounds
    );
    for r in rows {
        t.push(vec![
            r.label.clone(),
            r.policy.clone(),
            r.runs.to_string(),
            r.injected.to_string(),
            r.survived.to_string(),
            if r.injected == 0 {
                "n/a".into()
            } else {
                format!("{:.1}", r.survived_pct())
            },
            r.rolled_back.to_string(),
            r.retries.to_string(),
            r.cascaded.to_string(),
            r.failed_after_fault.to_string(),
            r.domains_rolled_back.to_string(),
            r.workload_errors.to_string(),
            r.daemon_died.to_string(),
            r.unusable.to_string(),
            format!("{}/{}", r.fsck_clean, r.runs),
            seed_ranges(&r.seeds),
        ]);
    }
    for (what, why) in not_run {
        t.notes.push(format!(
            "{what}: not run, the daemon refused the options: {why}"
        ));
    }
    t.seeds = seed_ranges(
        &rows
            .iter()
            .flat_map(|r| r.seeds.clone())
            .collect::<Vec<_>>(),
    );
    t
}
