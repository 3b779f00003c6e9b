//! One fault-injection run, end to end, shared by the robustness and the
//! memory-safety experiments:
//!
//! 1. a fresh image, mounted with the configuration plus the injection
//!    options and a seed of its own;
//! 2. the workload in a child process with a deadline, while the daemon's
//!    counters are polled (the last poll is all that is left of a daemon
//!    that dies);
//! 3. if the daemon lives: injection paused, final counters, the live
//!    mount's usability;
//! 4. unmount (the daemon must exit cleanly), `e2fsck -fn`;
//! 5. a fresh mount of the image without injection, and its usability.

use super::child;
use super::classify::{classify, Observation, Outcome, WorkloadEnd};
use super::image;
use super::mixed::MixedConfig;
use super::mount::{DaemonEnd, Mount, Peer};
use super::plan::Ctx;
use super::stats;
use super::usable;
use serde_json::Value;
use std::time::{Duration, Instant};

const USABLE_WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(300);
/// A small image writes back in well under this; longer means hung.
const EXIT_WAIT: Duration = Duration::from_secs(30);

pub struct InjectedRun {
    /// The configuration's options (mechanisms and policy).
    pub opts: String,
    /// The injection options, e.g. "inject_alloc=0.5".
    pub inject: String,
    pub seed: u64,
    pub workload: MixedConfig,
    pub timeout: Duration,
    pub image_mib: u64,
}

pub struct RunResult {
    pub outcome: Outcome,
    pub workload: WorkloadEnd,
    /// The counters after the workload (if the daemon lived), else the last
    /// poll before it died.
    pub counters: Option<Value>,
    pub daemon_died: bool,
    /// It died of an injected fault (its last words name the fault).
    pub died_of_injected_fault: bool,
    pub secs: f64,
}

impl InjectedRun {
    pub fn mount_options(&self) -> String {
        format!("{},{},inject_seed={}", self.opts, self.inject, self.seed)
    }
}

pub fn run(ctx: &Ctx, r: &InjectedRun) -> Result<RunResult, String> {
    let t0 = Instant::now();
    let img = ctx.work.file("injected.img");
    image::make(&img, r.image_mib)?;
    let mnt = ctx.work.dir("injected-mnt");
    let log = ctx.work.file("injected-daemon.log");
    let peer = Peer::Daemon {
        label: "under test".into(),
        opts: r.mount_options(),
    };
    let mut m = Mount::start(&peer, &ctx.tools, &img, &mnt, Some(&log))
        .map_err(|e| format!("-o {}: {e}", r.mount_options()))?;

    // The workload on its own thread; counters polled meanwhile.
    let exe = ctx.self_exe.clone();
    let dir = m.path().to_path_buf();
    let mut cfg = r.workload.clone();
    cfg.seed = r.seed;
    let limit = r.timeout;
    let job = std::thread::spawn(move || child::run(&exe, &dir, &cfg, limit));
    let mut counters: Option<Value> = None;
    while !job.is_finished() {
        if m.daemon_exited().is_none() {
            if let Ok(v) = stats::read(m.path()) {
                counters = Some(v);
            }
        }
        std::thread::sleep(POLL);
    }
    let workload = job
        .join()
        .map_err(|_| "workload thread panicked".to_string())??;

    let died_during_run = m.daemon_exited().map(|s| format!("{s}: {}", m.log_tail()));
    let mut live_usable = None;
    let mut remarks = Vec::new();
    if died_during_run.is_none() {
        // Checks after the run must not be faulted themselves. If the
        // switch cannot get through (at 99% even the kernel's GETATTR
        // before it fails), the live mount is not judged; the fresh mount
        // below still is.
        match stats::set_injection(m.path(), false) {
            Err(e) => remarks.push(format!(
                "live mount not checked: could not pause injection: {e}"
            )),
            Ok(()) => live_usable = Some(usable::probe(m.path(), USABLE_WAIT)),
        }
        if let Ok(v) = stats::read(m.path()) {
            counters = Some(v);
        }
    }
    let log_text = m.log_text();
    let died_of_injected_fault = died_during_run.is_some()
        && (log_text.contains("index out of bounds") || log_text.contains("injected"));
    let unclean_exit = match m.unmount_within(EXIT_WAIT) {
        Ok(DaemonEnd::Exited(s)) if s.success() => None,
        Ok(end) if died_during_run.is_none() => Some(format!("{end:?}: {}", last_words(&log_text))),
        Ok(_) => None,
        Err(e) if died_during_run.is_none() => Some(e),
        Err(_) => None,
    };
    let fsck = image::check(&img)?;
    let fresh_usable = fresh_mount_usable(ctx, &r.opts, &img);
    let obs = Observation {
        workload: workload.clone(),
        died_during_run: died_during_run.clone(),
        unclean_exit,
        live_usable,
        fresh_usable,
        fsck,
        remarks,
    };
    let _ = std::fs::remove_file(&img);
    if !obs.fsck.clean || died_during_run.is_some() {
        // Keep the daemon's last words of an interesting run in the
        // progress output; the log file itself is overwritten next run.
        if ctx.verbose {
            ctx.say(&format!("  daemon log: {}", last_words(&log_text)));
        }
    }
    Ok(RunResult {
        outcome: classify(&obs),
        workload,
        counters,
        daemon_died: died_during_run.is_some(),
        died_of_injected_fault,
        secs: t0.elapsed().as_secs_f64(),
    })
}

fn last_words(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(2)..]
        .join(" | ")
        .chars()
        .take(300)
        .collect()
}

/// Mount the image again (same configuration, no injection) and use it.
fn fresh_mount_usable(ctx: &Ctx, opts: &str, img: &std::path::Path) -> Result<(), String> {
    let peer = Peer::Daemon {
        label: "fresh mount".into(),
        opts: opts.into(),
    };
    let log = ctx.work.file("fresh-daemon.log");
    let m = Mount::start(
        &peer,
        &ctx.tools,
        img,
        &ctx.work.dir("fresh-mnt"),
        Some(&log),
    )
    .map_err(|e| format!("mount failed: {e}"))?;
    let r = usable::probe(m.path(), USABLE_WAIT);
    let end = m.unmount_within(EXIT_WAIT);
    r?;
    match end {
        Ok(e) if e.clean() => Ok(()),
        Ok(e) => Err(format!("daemon did not exit cleanly: {e:?}")),
        Err(e) => Err(e),
    }
}
