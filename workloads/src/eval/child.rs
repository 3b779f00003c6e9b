//! Running the robustness workload in a child process (the harness binary
//! itself, `evaluate workload ...`) with a deadline, and reading how it
//! ended: completed, failed a call (exit 1, the call on stderr), killed by a
//! signal, or hung.

use super::classify::WorkloadEnd;
use super::mixed::MixedConfig;
use super::proc::{last_line, run_for, Finished};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Exit code of a workload that saw a failed call.
pub const FAILED_CALL: i32 = 1;

/// The command-line arguments of `evaluate workload` for `cfg` in `dir`.
pub fn args(dir: &Path, cfg: &MixedConfig) -> Vec<String> {
    vec![
        "workload".into(),
        dir.display().to_string(),
        format!("--files={}", cfg.files),
        format!("--transactions={}", cfg.transactions),
        format!("--subdirectories={}", cfg.subdirectories),
        format!("--rounds={}", cfg.rounds),
        format!("--seed={}", cfg.seed),
    ]
}

pub fn run(
    self_exe: &Path,
    dir: &Path,
    cfg: &MixedConfig,
    limit: Duration,
) -> Result<WorkloadEnd, String> {
    let mut cmd = Command::new(self_exe);
    cmd.args(args(dir, cfg));
    Ok(match run_for(&mut cmd, limit)? {
        Finished::Exited { status, .. } if status.success() => WorkloadEnd::Completed,
        Finished::Exited { status, stderr, .. } => match (status.code(), status.signal()) {
            (Some(FAILED_CALL), _) => WorkloadEnd::Failed(last_line(&stderr, 160)),
            (_, Some(sig)) => WorkloadEnd::Killed(format!("signal {sig}")),
            (code, _) => WorkloadEnd::Failed(format!(
                "exit {}: {}",
                code.unwrap_or(-1),
                last_line(&stderr, 140)
            )),
        },
        Finished::TimedOut => WorkloadEnd::TimedOut,
    })
}
