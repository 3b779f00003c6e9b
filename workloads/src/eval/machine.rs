//! What produced a result: the command line, the date, the machine (CPU
//! model, cores, memory, kernel) and the source revision. Printed beside
//! every table and figure.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug)]
pub struct Provenance {
    /// The exact command line, shell-quoted.
    pub command: String,
    /// UTC, ISO 8601.
    pub date: String,
    pub machine: String,
    /// `git describe --always --dirty` of the work tree, if any.
    pub revision: String,
}

impl Provenance {
    pub fn now(args: &[String]) -> Provenance {
        Provenance {
            command: shell_join(args),
            date: utc_now(),
            machine: machine(),
            revision: revision(),
        }
    }

    /// One line per fact, for Markdown (as a list) and CSV (as comments).
    pub fn lines(&self, seeds: &str) -> Vec<String> {
        vec![
            format!("command: `{}`", self.command),
            format!("date: {}", self.date),
            format!("machine: {}", self.machine),
            format!("revision: {}", self.revision),
            format!("seeds: {seeds}"),
        ]
    }
}

fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// "CPU model, N cores, M GiB memory, Linux x.y.z".
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    format!(
        "{model}, {cores} cores, {:.1} GiB memory, Linux {kernel}",
        mem_kib as f64 / (1u64 << 20) as f64
    )
}

/// The commit, and "-dirty" if tracked files other than `results/` differ
/// from it (the run itself rewrites `results/`, so those do not count).
fn revision() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(rev) = git(&["rev-parse", "--short", "HEAD"]).filter(|s| !s.is_empty()) else {
        return "unknown (not a git work tree)".into();
    };
    let top = git(&["rev-parse", "--show-toplevel"]).unwrap_or_else(|| ".".into());
    let changed = git(&[
        "-C",
        &top,
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":(exclude)results",
    ]);
    match changed {
        Some(c) if c.is_empty() => rev,
        _ => format!("{rev}-dirty"),
    }
}

/// The current time, UTC, as 2024-05-01T12:34:56Z.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm), so no date crate is needed.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn quoting() {
        assert_eq!(
            shell_join(&["evaluate".into(), "--out".into(), "a b".into()]),
            "evaluate --out 'a b'"
        );
    }
}
