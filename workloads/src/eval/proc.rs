//! Running external commands with a deadline. Every wait in the harness has
//! one, so a hung daemon (or a hung `umount`, `e2fsck`, workload) becomes a
//! recorded outcome instead of a harness that never returns.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a command with a deadline ended.
#[derive(Debug)]
pub enum Finished {
    Exited {
        status: ExitStatus,
        stdout: String,
        stderr: String,
    },
    /// Killed by us at the deadline.
    TimedOut,
}

impl Finished {
    pub fn success(&self) -> bool {
        matches!(self, Finished::Exited { status, .. } if status.success())
    }
}

/// Wait for `child` at most `limit`; kill it (SIGKILL) at the deadline.
pub fn wait_child(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            // A process blocked in a FUSE request dies once the request is
            // answered or the connection goes away; do not wait forever here.
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(2) {
                if child.try_wait()?.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run `cmd` to completion, capturing its output, killing it at `limit`.
/// Output goes to files, not pipes, so a chatty command cannot stall on a
/// full pipe while we poll it.
pub fn run_for(cmd: &mut Command, limit: Duration) -> Result<Finished, String> {
    let dir = std::env::temp_dir();
    let tag = format!(
        "eval-cmd-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let out_path = dir.join(format!("{tag}.out"));
    let err_path = dir.join(format!("{tag}.err"));
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{}: {e}", describe(cmd)))?;
    let status = wait_child(&mut child, limit).map_err(|e| e.to_string())?;
    let read = |p: &Path| {
        let s = std::fs::read(p).unwrap_or_default();
        let _ = std::fs::remove_file(p);
        String::from_utf8_lossy(&s).into_owned()
    };
    let (stdout, stderr) = (read(&out_path), read(&err_path));
    Ok(match status {
        Some(status) => Finished::Exited {
            status,
            stdout,
            stderr,
        },
        None => Finished::TimedOut,
    })
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Run `cmd`; an error unless it exits successfully within `limit`.
pub fn run_ok(cmd: &mut Command, limit: Duration) -> Result<String, String> {
    match run_for(cmd, limit)? {
        Finished::Exited {
            status,
            stdout,
            stderr,
        } => {
            if status.success() {
                Ok(stdout)
            } else {
                Err(format!(
                    "{} failed ({status}): {}",
                    describe(cmd),
                    stderr.trim()
                ))
            }
        }
        Finished::TimedOut => Err(format!(
            "{} did not finish within {} s",
            describe(cmd),
            limit.as_secs()
        )),
    }
}

/// Run a closure on its own thread and give up waiting after `limit`. For
/// system calls on a FUSE mount from inside the harness: if the daemon
/// hangs, the thread stays blocked (until the connection is torn down) but
/// the harness goes on.
pub fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// The last non-empty line of some output, shortened (for table details).
pub fn last_line(s: &str, max: usize) -> String {
    let l = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let l = l.trim();
    if l.chars().count() > max {
        let cut: String = l.chars().take(max).collect();
        format!("{cut}…")
    } else {
        l.to_string()
    }
}

/// The harness mounts file systems and drops caches: it has to be root.
pub fn require_root(what: &str) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "{what} must run as root (it mounts file systems, drops the page cache and runs e2fsck); try: sudo {what} ..."
        ));
    }
    Ok(())
}

/// Is `prog` an executable file in a directory of `$PATH`?
pub fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| std::path::Path::new(&d).join(prog).is_file()))
        .unwrap_or(false)
}
