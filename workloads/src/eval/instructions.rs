//! The daemon's instructions (beside its CPU time): every user-space
//! instruction the daemon executes, in all its threads, counted by
//! valgrind's callgrind, for the four configurations over /dev/fuse.
//!
//! CPU seconds from /proc move with the machine's other load by a few
//! percent, which is as large as the overheads the mechanisms' goals are
//! about (1.05x, 1.10x, 1.15x); an instruction count repeats to a fraction
//! of a percent, so it shows a lever's effect that the seconds would hide.
//! Hardware counters (`perf stat -e instructions`) would be cheaper, but
//! virtual machines often do not expose them; valgrind needs nothing but
//! time (it runs the daemon some 50x slower, hence the smaller loads).
//! Valgrind does not know io_uring's URING_CMD, so /dev/fuse only.
//!
//! A count covers the daemon's whole life (mount, the load, unmount's
//! write-back); an idle run (mount, unmount) per configuration is
//! subtracted, so that what the load cost remains.

use super::compare::unmount_and_check;
use super::config::Mechanisms;
use super::image;
use super::mount::{Mount, Peer};
use super::plan::Ctx;
use super::proc::on_path;
use super::stats;
use super::table::{ratio, Table};
use crate::{postmark, sort};
use std::path::Path;

/// What one configuration is measured under.
#[derive(Clone, Debug)]
pub struct Loads {
    pub postmark: postmark::Config,
    pub sort: sort::Config,
    /// Runs of each (configuration, load); the table gives their spread.
    pub runs: usize,
}

/// The loads, in table order; `None`: the idle run.
const LOADS: [Option<&str>; 3] = [None, Some("postmark"), Some("sort")];

/// One configuration's counts: `load[l]` for the loads of [`LOADS`] after
/// the idle one, each run's (instructions, FUSE requests).
struct Counted {
    label: &'static str,
    idle: Vec<u64>,
    load: Vec<Vec<(u64, u64)>>,
}

/// The table, or why it could not run (valgrind missing).
pub fn run(ctx: &Ctx) -> Result<Result<Table, String>, String> {
    if !on_path("valgrind") {
        return Ok(Err(
            "valgrind is not installed (apt-get install valgrind)".into()
        ));
    }
    let loads = &ctx.plan.instructions;
    let mut counted = Vec::new();
    for m in Mechanisms::ALL {
        if ctx.available(m.opts())?.is_err() {
            continue;
        }
        let peer = Peer::Daemon {
            label: m.label().into(),
            opts: format!("{},transport=dev", m.opts()),
        };
        let mut c = Counted {
            label: m.label(),
            idle: Vec::new(),
            load: vec![Vec::new(); LOADS.len() - 1],
        };
        for r in 0..loads.runs.max(1) {
            for (l, load) in LOADS.iter().enumerate() {
                ctx.say(&format!(
                    "instructions: {} {} (run {}/{})",
                    m.label(),
                    load.unwrap_or("idle"),
                    r + 1,
                    loads.runs.max(1)
                ));
                let (n, requests) = one_run(ctx, &peer, *load)?;
                match l {
                    0 => c.idle.push(n),
                    _ => c.load[l - 1].push((n, requests)),
                }
            }
        }
        counted.push(c);
    }
    Ok(Ok(table(ctx, &counted)))
}

/// Mount a fresh image with the daemon under callgrind, run `load`,
/// unmount, check the image: (instructions, FUSE requests during the load).
fn one_run(ctx: &Ctx, peer: &Peer, load: Option<&str>) -> Result<(u64, u64), String> {
    let loads = &ctx.plan.instructions;
    let img = ctx.work.file("instructions.img");
    image::make(&img, ctx.plan.perf_image_mib)?;
    image::quiesce();
    let vg_log = ctx.work.file("instructions-valgrind.log");
    let _ = std::fs::remove_file(&vg_log);
    let wrapper = [
        "valgrind".to_string(),
        "--tool=callgrind".into(),
        format!("--log-file={}", vg_log.display()),
        // The per-function profile is not wanted, only the total.
        "--callgrind-out-file=/dev/null".into(),
    ];
    let label = peer.label();
    let m = Mount::start_under(
        peer,
        &ctx.tools,
        &img,
        &ctx.work.dir("instructions-mnt"),
        Some(&ctx.work.file("instructions-daemon.log")),
        &wrapper,
    )
    .map_err(|e| format!("{label} under valgrind: {e}"))?;
    let requests = |mnt: &Path| -> Result<u64, String> {
        stats::read(mnt)?["fuse_requests"]["total"]
            .as_u64()
            .ok_or_else(|| "ext2mfr.stats has no fuse_requests.total".to_string())
    };
    let before = requests(m.path())?;
    let w = m.path().join("work");
    let ran = match load {
        None => Ok(()),
        Some(name) => std::fs::create_dir(&w)
            .map_err(|e| format!("mkdir: {e}"))
            .and_then(|_| match name {
                "postmark" => postmark::run(&w, &loads.postmark)
                    .map(drop)
                    .map_err(|e| format!("postmark: {e}")),
                _ => sort::run(&w, &loads.sort)
                    .map(drop)
                    .map_err(|e| format!("sort: {e}")),
            }),
    };
    // Less the two reads of the counters themselves.
    let during = requests(m.path()).map(|after| after.saturating_sub(before + 1));
    let finished = unmount_and_check(m, &img, &format!("{label} under valgrind"));
    ran.map_err(|e| format!("{label} under valgrind: {e}"))?;
    finished?;
    let text =
        std::fs::read_to_string(&vg_log).map_err(|e| format!("{}: {e}", vg_log.display()))?;
    let n = collected(&text).ok_or_else(|| {
        format!(
            "{label}: no instruction count in valgrind's log {}",
            vg_log.display()
        )
    })?;
    Ok((n, during?))
}

/// The total of callgrind's `==PID== Collected : N` line.
fn collected(log: &str) -> Option<u64> {
    log.lines()
        .find_map(|l| l.split_once("Collected :"))
        .and_then(|(_, n)| n.trim().parse().ok())
}

/// Configuration `c`'s counts of load `l` (an index after the idle run),
/// less its median idle count: what the load cost, per run.
fn net(c: &Counted, l: usize) -> Vec<u64> {
    let idle = median(&c.idle);
    c.load[l]
        .iter()
        .map(|(n, _)| n.saturating_sub(idle))
        .collect()
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn table(ctx: &Ctx, counted: &[Counted]) -> Table {
    let loads = &ctx.plan.instructions;
    let mut t = Table::new(
        "performance-instructions",
        "Daemon instructions (beside Table 5 and the CPU time)",
        &[
            "load",
            "peer",
            "median_instructions",
            "ratio_vs_baseline",
            "fuse_requests",
            "instructions_per_request",
            "instructions_per_run",
        ],
    );
    t.caption = format!(
        "User-space instructions the daemon executed (all threads; valgrind's callgrind), over /dev/fuse, \
         each load on a fresh {} MiB image (median of {} runs; an idle run's count, mount and unmount \
         alone, subtracted), and in brackets the ratio to the baseline. Requests: the FUSE requests the \
         load made (`ext2mfr.stats`); they should be equal across configurations, so that the ratio is \
         the mechanisms' cost per request. Loads: postmark {} files, {} transactions, {} subdirectories; \
         sort {} MiB input. Instruction counts repeat to a fraction of a percent, where CPU seconds \
         ([`performance-cpu`](performance-cpu.md)) move by several.",
        ctx.plan.perf_image_mib,
        loads.runs.max(1),
        loads.postmark.number,
        loads.postmark.transactions,
        loads.postmark.subdirectories,
        loads.sort.input_bytes >> 20,
    );
    t.md_columns = vec!["load".into(), "idle".into()];
    t.md_columns.extend(
        counted
            .iter()
            .map(|c| format!("{} (instructions)", c.label)),
    );
    t.md_columns.push("requests".into());
    let base = counted.iter().position(|c| c.label == "baseline");
    for (l, name) in LOADS.iter().skip(1).enumerate() {
        let name = name.expect("a load");
        let base_n = base.map(|b| median(&net(&counted[b], l)));
        let mut md = vec![name.to_string(), String::new()];
        let mut requests = Vec::new();
        for c in counted {
            let runs = net(c, l);
            let n = median(&runs);
            let req = median(&c.load[l].iter().map(|(_, r)| *r).collect::<Vec<_>>());
            requests.push(req);
            let r = base_n.map(|b| n as f64 / (b as f64).max(1.0));
            md.push(match r {
                Some(r) => format!("{:.3e} ({})", n as f64, ratio(r)),
                None => format!("{:.3e}", n as f64),
            });
            t.push(vec![
                name.to_string(),
                c.label.to_string(),
                n.to_string(),
                r.map_or("n/a".into(), |r| format!("{r:.4}")),
                req.to_string(),
                format!("{:.0}", n as f64 / (req as f64).max(1.0)),
                runs.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            ]);
        }
        md[1] = counted
            .iter()
            .map(|c| format!("{:.2e}", median(&c.idle) as f64))
            .collect::<Vec<_>>()
            .join(" / ");
        requests.dedup();
        md.push(
            requests
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / "),
        );
        t.md_rows.push(md);
    }
    t.notes.push(
        "*idle*: each configuration's idle count (mount and unmount alone), in the order of the columns; \
         *requests*: one figure where every configuration made the same number, else each one's."
            .into(),
    );
    t.comparison = goals(counted);
    t.seeds = format!("postmark {}, sort {}", loads.postmark.seed, loads.sort.seed);
    t
}

/// The goals for the mechanisms' CPU cost, read as instruction
/// ratios: AMA only <= 1.05x, recovery only <= 1.10x, both <= 1.15x.
fn goals(counted: &[Counted]) -> Vec<String> {
    let Some(b) = counted.iter().find(|c| c.label == "baseline") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (m, goal) in [
        (Mechanisms::AmaOnly, 1.05),
        (Mechanisms::RecoveryOnly, 1.10),
        (Mechanisms::Ext2Mfr, 1.15),
    ] {
        let Some(c) = counted.iter().find(|c| c.label == m.label()) else {
            continue;
        };
        let cells: Vec<String> = LOADS
            .iter()
            .skip(1)
            .enumerate()
            .map(|(l, name)| {
                let r = median(&net(c, l)) as f64 / (median(&net(b, l)) as f64).max(1.0);
                format!(
                    "{} {}: {}",
                    name.expect("a load"),
                    ratio(r),
                    if r <= goal { "**met**" } else { "**not met**" }
                )
            })
            .collect();
        out.push(format!(
            "Goal: {} / baseline <= {goal}x in daemon instructions: {}",
            m.label(),
            cells.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_callgrinds_total() {
        let log = "==12== Callgrind, a call-graph generating cache profiler\n==12== \n\
                   ==12== Events    : Ir\n==12== Collected : 1018318035\n==12== \n==12== I   refs:      1,018,318,035\n";
        assert_eq!(super::collected(log), Some(1_018_318_035));
        assert_eq!(super::collected("nothing"), None);
    }
}
