//! Where the application runs: the same single-threaded loads (postmark,
//! and dirscale's create and cold-lookup phases) under the kernel's ext2
//! and the daemon over both transports, once with the application free to
//! run on any CPU (as every other part runs it) and once pinned to one.
//!
//! Why it is measured: a FUSE request wakes a daemon thread and its reply
//! wakes the application. The daemon's io_uring queue thread is pinned to
//! the application's CPU (the kernel queues a request on the issuing CPU's
//! queue), so at the reply the application's CPU is busy (the daemon is
//! still on it) and the scheduler wakes the application on an idle CPU
//! instead. On a VM without halt polling, waking an idle vCPU exits to the
//! host, and a single-threaded application bounces between the vCPUs at
//! every request. The kernel's ext2 has no such wake-ups, so the ratios of
//! the other parts carry this machine's cost of an idle wake-up; pinned,
//! they show what is left. Nothing is tuned for the pinned runs: the
//! daemon and its options are the same.

use super::mount::Peer;
use super::performance::add_kernel;
use super::plan::Ctx;
use super::proc::{last_line, run_for, Finished};
use super::scale::{mount_fresh, parse_phases, workload_bin};
use super::table::{ratio, Table};
use super::{compare, config};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// The loads and their sizes.
#[derive(Clone, Debug)]
pub struct PlacementPlan {
    /// Rounds of every (peer, placement), in rotating order.
    pub rounds: usize,
    pub postmark_files: usize,
    pub postmark_transactions: usize,
    pub postmark_subdirectories: usize,
    /// dirscale: files created in one directory, then cold lookups.
    pub dir_files: usize,
    pub dir_lookups: usize,
    pub image_mib: u64,
    pub inodes: u64,
    pub deadline: Duration,
}

/// The rows: a load's phase and how to read it.
const LOADS: [&str; 3] = ["postmark", "dirscale create", "dirscale lookup"];

pub struct Placement {
    pub peers: Vec<Peer>,
    /// medians[load][peer] = (free, pinned) seconds.
    pub medians: Vec<Vec<(f64, f64)>>,
    pub table: Table,
}

/// The CPU a pinned application runs on: the first this harness may use.
fn first_cpu() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid set for sched_getaffinity to fill.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) == 0 {
            for cpu in 0..libc::CPU_SETSIZE as usize {
                if libc::CPU_ISSET(cpu, &set) {
                    return cpu;
                }
            }
        }
    }
    0
}

/// Run `cmd` on `cpu` only (set in the child before it execs).
fn pin(cmd: &mut Command, cpu: usize) {
    // SAFETY: between fork and exec the closure only calls
    // async-signal-safe sched_setaffinity on a set built on its stack.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The seconds of each of [`LOADS`] in one run of each load under
/// `peer`, each load on a fresh image; the application pinned to `cpu`
/// if given.
fn one(ctx: &Ctx, peer: &Peer, cpu: Option<usize>) -> Result<[f64; 3], String> {
    let p = &ctx.plan.placement;
    let name = peer.label();
    let mut secs = [f64::NAN; 3];
    for (load, bin) in [(0, "postmark"), (1, "dirscale")] {
        let (m, img, dir) = mount_fresh(ctx, peer, "placement", p.image_mib, p.inodes)?;
        let mut cmd = Command::new(workload_bin(ctx, bin)?);
        cmd.arg(&dir).arg("--json");
        if load == 0 {
            cmd.args(["--number", &p.postmark_files.to_string()])
                .args(["--transactions", &p.postmark_transactions.to_string()])
                .args(["--subdirectories", &p.postmark_subdirectories.to_string()])
                .args(["--seed", &ctx.plan.seed.to_string()]);
        } else {
            cmd.args(["--files", &p.dir_files.to_string()])
                .args(["--lookups", &p.dir_lookups.to_string()])
                .args(["--seed", &ctx.plan.seed.to_string()]);
        }
        if let Some(cpu) = cpu {
            pin(&mut cmd, cpu);
        }
        let out = match run_for(&mut cmd, p.deadline)? {
            Finished::Exited { status, stdout, .. } if status.success() => Ok(stdout),
            Finished::Exited { status, stderr, .. } => Err(format!(
                "{name}: {bin} failed ({status}): {}",
                last_line(&stderr, 120)
            )),
            Finished::TimedOut => Err(format!(
                "{name}: {bin} did not finish within {} s",
                p.deadline.as_secs()
            )),
        };
        // Unmounted and checked whatever the load did.
        compare::unmount_and_check(m, &img, name)?;
        let out = out?;
        if load == 0 {
            secs[0] = postmark_secs(&out)?;
        } else {
            let phases = parse_phases(&out)?;
            let phase = |n: &str| {
                phases
                    .iter()
                    .find(|(p, _)| p == n)
                    .map(|(_, s)| *s)
                    .ok_or_else(|| format!("{name}: dirscale reported no {n} phase"))
            };
            secs[1] = phase("create")?;
            secs[2] = phase("lookup")?;
        }
    }
    Ok(secs)
}

/// postmark's total seconds from its `--json` report.
fn postmark_secs(json: &str) -> Result<f64, String> {
    let line = json
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or("postmark printed no JSON")?;
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("postmark's JSON: {e}"))?;
    v["report"]["total_secs"]
        .as_f64()
        .ok_or_else(|| "postmark's JSON has no total_secs".into())
}

pub fn run(ctx: &Ctx) -> Result<Placement, String> {
    let p = ctx.plan.placement.clone();
    let mut peers = Vec::new();
    let mut not_run = Vec::new();
    add_kernel(&mut peers, &mut not_run);
    let uring = [Peer::Daemon {
        label: "ext2-mfr (io_uring)".into(),
        opts: config::URING_OPTION.into(),
    }];
    let (ok, why) = config::uring_available(&uring, |o| ctx.available(o))?;
    peers.extend(ok);
    not_run.extend(why);
    match ctx.available("")? {
        Ok(()) => peers.push(Peer::Daemon {
            label: "ext2-mfr".into(),
            opts: String::new(),
        }),
        Err(why) => not_run.push(("ext2-mfr".into(), why)),
    }
    let cpu = first_cpu();
    // Every (peer, placement), rotated each round.
    let runs: Vec<(usize, Option<usize>)> = (0..peers.len())
        .flat_map(|i| [(i, None), (i, Some(cpu))])
        .collect();
    let mut samples: Vec<Vec<[f64; 3]>> = runs.iter().map(|_| Vec::new()).collect();
    for round in 0..p.rounds.max(1) {
        for k in 0..runs.len() {
            let r = (k + round) % runs.len();
            let (i, pinned) = runs[r];
            ctx.say(&format!(
                "placement: round {}/{}: {} ({})",
                round + 1,
                p.rounds.max(1),
                peers[i].label(),
                if pinned.is_some() { "pinned" } else { "free" }
            ));
            samples[r].push(one(ctx, &peers[i], pinned)?);
        }
    }
    let median =
        |r: usize, load: usize| compare::median(samples[r].iter().map(|s| s[load]).collect());
    let medians: Vec<Vec<(f64, f64)>> = (0..LOADS.len())
        .map(|load| {
            (0..peers.len())
                .map(|i| (median(2 * i, load), median(2 * i + 1, load)))
                .collect()
        })
        .collect();
    let table = table(ctx, &p, &peers, &medians, cpu, &not_run);
    Ok(Placement {
        peers,
        medians,
        table,
    })
}

fn table(
    ctx: &Ctx,
    p: &PlacementPlan,
    peers: &[Peer],
    medians: &[Vec<(f64, f64)>],
    cpu: usize,
    not_run: &[(String, String)],
) -> Table {
    let mut t = Table::new(
        "placement",
        "Where the application runs: free, or pinned to one CPU",
        &[
            "load",
            "peer",
            "free_secs",
            "pinned_secs",
            "free_over_pinned",
            "free_ratio_vs_kernel",
            "pinned_ratio_vs_kernel",
        ],
    );
    t.caption = format!(
        "Seconds (the median round of {}, peers and placements in rotating order, each run on a fresh {} MiB image \
         with `-N {}`) of single-threaded loads, the application either free to run on any CPU (*free*, as in \
         every other part) or pinned to CPU {cpu} (*pinned*); the daemon is the same in both (its io_uring queue \
         threads are always pinned, one per CPU). *postmark*: our model, {} files, {} transactions, {} \
         subdirectories; *dirscale create*: {} empty files created in one directory; *dirscale lookup*: {} random \
         names stat'ed cold (after a sync, ext2-mfr's own cache dropped, then the kernel's). Ratios are to the kernel's ext2 in the same \
         placement (>1 is slower). A FUSE reply wakes the application while the daemon still holds its CPU, so a \
         free application is woken on another, idle CPU; on a VM without halt polling that wake-up exits to the \
         host at every request.",
        p.rounds.max(1),
        p.image_mib,
        p.inodes,
        p.postmark_files,
        p.postmark_transactions,
        p.postmark_subdirectories,
        p.dir_files,
        p.dir_lookups
    );
    let kernel = peers.iter().position(|x| matches!(x, Peer::Kernel));
    for (load, name) in LOADS.iter().enumerate() {
        for (i, peer) in peers.iter().enumerate() {
            let (free, pinned) = medians[load][i];
            let vs = |x: f64, k: f64| match kernel {
                Some(_) => ratio(x / k.max(1e-9)),
                None => "-".into(),
            };
            let (kf, kp) = kernel.map_or((f64::NAN, f64::NAN), |k| medians[load][k]);
            t.push(vec![
                name.to_string(),
                peer.label().to_string(),
                format!("{free:.3}"),
                format!("{pinned:.3}"),
                ratio(free / pinned.max(1e-9)),
                vs(free, kf),
                vs(pinned, kp),
            ]);
        }
    }
    for (who, why) in not_run {
        t.notes.push(format!("{who}: not run: {why}"));
    }
    if let (Some(k), Some(u)) = (
        kernel,
        peers
            .iter()
            .position(|x| x.label() == "ext2-mfr (io_uring)"),
    ) {
        let (kf, kp) = medians[0][k];
        let (uf, up) = medians[0][u];
        t.comparison.push(format!(
            "postmark over io_uring: {:.2}x the kernel's ext2 with the application free, {:.2}x pinned \
             (the issue's goal: within {}x); pinning took {:.2}x off ext2-mfr's time and {:.2}x off the kernel's.",
            uf / kf.max(1e-9),
            up / kp.max(1e-9),
            super::performance::KERNEL_POSTMARK_GOAL,
            uf / up.max(1e-9),
            kf / kp.max(1e-9)
        ));
    }
    t.seeds = format!("postmark --seed {0}; dirscale --seed {0}", ctx.plan.seed);
    t
}

pub fn print(p: &Placement) -> String {
    let mut s = String::new();
    for (load, name) in LOADS.iter().enumerate() {
        for (i, peer) in p.peers.iter().enumerate() {
            let (free, pinned) = p.medians[load][i];
            s += &format!(
                "{name:<16} {:<22} free {free:>8.3} s  pinned {pinned:>8.3} s  ({:.2}x)\n",
                peer.label(),
                free / pinned.max(1e-9)
            );
        }
    }
    s
}
