//! Mounting one file system under test (the kernel's ext2, fuse2fs, or the
//! ext2mfr daemon with some options) behind a guard that always unmounts:
//! on [`Mount::unmount`], and on drop (errors, panics). Shared by `evaluate`
//! and `fs-compare`.

use super::proc::{run_for, wait_child, Finished};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a mount may take to appear, an unmount to return, and a daemon
/// to finish writing back after the unmount.
const MOUNT_WAIT: Duration = Duration::from_secs(15);
const UMOUNT_WAIT: Duration = Duration::from_secs(20);
const DAEMON_EXIT_WAIT: Duration = Duration::from_secs(120);

/// One file system to compare: its label in tables and how to mount it.
#[derive(Clone, Debug, PartialEq)]
pub enum Peer {
    /// `mount -t ext2 -o loop`.
    Kernel,
    /// `fuse2fs IMAGE MNT -f -o hard_remove`.
    Fuse2fs,
    /// `ext2mfr IMAGE MNT -f -o OPTS`.
    Daemon { label: String, opts: String },
}

impl Peer {
    pub fn label(&self) -> &str {
        match self {
            Peer::Kernel => "kernel ext2",
            Peer::Fuse2fs => "fuse2fs",
            Peer::Daemon { label, .. } => label,
        }
    }
}

/// Where the binaries the harness launches live.
#[derive(Clone, Debug)]
pub struct Tools {
    pub ext2mfr: PathBuf,
}

impl Tools {
    /// The daemon beside the running binary (cargo puts all of a profile's
    /// binaries in one directory), or in `bin_dir` when given.
    pub fn find(bin_dir: Option<&Path>) -> Result<Tools, String> {
        let dir = match bin_dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_exe()
                .map_err(|e| e.to_string())?
                .parent()
                .ok_or("no directory for the running binary")?
                .to_path_buf(),
        };
        let ext2mfr = dir.join("ext2mfr");
        if !ext2mfr.is_file() {
            return Err(format!(
                "no ext2mfr daemon at {} (build it: cargo build --release -p ext2mfr, or pass --bin-dir)",
                ext2mfr.display()
            ));
        }
        Ok(Tools { ext2mfr })
    }
}

/// The directory of the newest `ext2mfr` among the debug and release
/// profiles of the target directory that holds `bin` (a binary cargo built
/// there): tests find the daemon this way whichever profile built it last.
pub fn newest_daemon_dir(bin: &Path) -> Result<PathBuf, String> {
    let target = bin
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("no target directory above {}", bin.display()))?;
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = ["debug", "release"]
        .iter()
        .map(|p| target.join(p))
        .filter_map(|d| {
            let m = std::fs::metadata(d.join("ext2mfr")).ok()?.modified().ok()?;
            Some((m, d))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, d)| d).ok_or_else(|| {
        format!(
            "no ext2mfr binary under {} (cargo build -p ext2mfr)",
            target.display()
        )
    })
}

/// Why a mount did not come up.
#[derive(Debug)]
pub enum MountError {
    /// The daemon exited before mounting, with this message (e.g. it refused
    /// an option this build does not have).
    Refused {
        code: Option<i32>,
        message: String,
    },
    Failed(String),
}

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MountError::Refused { message, .. } => write!(f, "daemon refused to mount: {message}"),
            MountError::Failed(m) => f.write_str(m),
        }
    }
}

/// How a daemon ended after the unmount.
#[derive(Clone, Debug, PartialEq)]
pub enum DaemonEnd {
    /// No daemon (the kernel's driver).
    NoDaemon,
    Exited(ExitStatus),
    /// Still running long after the unmount: killed.
    KilledByHarness,
}

impl DaemonEnd {
    pub fn clean(&self) -> bool {
        match self {
            DaemonEnd::NoDaemon => true,
            DaemonEnd::Exited(s) => s.success(),
            DaemonEnd::KilledByHarness => false,
        }
    }
}

pub fn is_mounted(mnt: &Path) -> bool {
    let m = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let want = mnt.to_string_lossy();
    m.lines().any(|l| l.split(' ').nth(1) == Some(&*want))
}

/// A live mount. Dropping it unmounts (lazily if need be) and stops the daemon.
pub struct Mount {
    mnt: PathBuf,
    label: String,
    daemon: Option<Child>,
    log: Option<PathBuf>,
}

impl Mount {
    /// Mount `img` on `mnt` (created if missing). A daemon's stderr goes to
    /// `log` when given (a pipe nobody drains could stall it).
    pub fn start(
        peer: &Peer,
        tools: &Tools,
        img: &Path,
        mnt: &Path,
        log: Option<&Path>,
    ) -> Result<Mount, MountError> {
        Mount::start_under(peer, tools, img, mnt, log, &[])
    }

    /// [`Mount::start`], with our daemon run under `wrapper` (a program and
    /// its arguments, e.g. valgrind's) when it is not empty; the kernel's
    /// ext2 and fuse2fs ignore it.
    pub fn start_under(
        peer: &Peer,
        tools: &Tools,
        img: &Path,
        mnt: &Path,
        log: Option<&Path>,
        wrapper: &[String],
    ) -> Result<Mount, MountError> {
        std::fs::create_dir_all(mnt)
            .map_err(|e| MountError::Failed(format!("{}: {e}", mnt.display())))?;
        if is_mounted(mnt) {
            return Err(MountError::Failed(format!(
                "{} is already a mount point",
                mnt.display()
            )));
        }
        let stderr = || -> Result<Stdio, MountError> {
            Ok(match log {
                Some(p) => Stdio::from(
                    std::fs::File::create(p)
                        .map_err(|e| MountError::Failed(format!("{}: {e}", p.display())))?,
                ),
                None => Stdio::null(),
            })
        };
        let daemon = match peer {
            Peer::Kernel => {
                let r = run_for(
                    Command::new("mount")
                        .args(["-o", "loop", "-t", "ext2"])
                        .arg(img)
                        .arg(mnt),
                    MOUNT_WAIT,
                )
                .map_err(MountError::Failed)?;
                if !r.success() {
                    return Err(MountError::Failed(format!("mount -t ext2: {r:?}")));
                }
                None
            }
            Peer::Fuse2fs => Some(
                Command::new("fuse2fs")
                    .arg(img)
                    .arg(mnt)
                    .arg("-f")
                    // libfuse otherwise renames a file unlinked while a
                    // release is still in flight to .fuse_hidden*, which
                    // makes a later rmdir fail with ENOTEMPTY.
                    .args(["-o", "hard_remove"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(stderr()?)
                    .spawn()
                    .map_err(|e| MountError::Failed(format!("fuse2fs: {e}")))?,
            ),
            Peer::Daemon { opts, .. } => {
                let mut c = match wrapper.split_first() {
                    Some((program, args)) => {
                        let mut c = Command::new(program);
                        c.args(args).arg(&tools.ext2mfr);
                        c
                    }
                    None => Command::new(&tools.ext2mfr),
                };
                c.arg(img).arg(mnt).arg("-f");
                if !opts.is_empty() {
                    c.arg("-o").arg(opts);
                }
                Some(
                    c.stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(stderr()?)
                        .spawn()
                        .map_err(|e| {
                            MountError::Failed(format!("{}: {e}", tools.ext2mfr.display()))
                        })?,
                )
            }
        };
        let mut m = Mount {
            mnt: mnt.to_path_buf(),
            label: peer.label().to_string(),
            daemon,
            log: log.map(Path::to_path_buf),
        };
        let t = Instant::now();
        while !is_mounted(mnt) {
            if let Some(d) = m.daemon.as_mut() {
                if let Ok(Some(status)) = d.try_wait() {
                    m.daemon = None;
                    // The first line says why (a usage text may follow).
                    let message = m
                        .log_text()
                        .lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("(no message)")
                        .trim()
                        .to_string();
                    return Err(MountError::Refused {
                        code: status.code(),
                        message,
                    });
                }
            }
            if t.elapsed() > MOUNT_WAIT {
                return Err(MountError::Failed(format!(
                    "{} did not mount within {} s: {}",
                    m.label,
                    MOUNT_WAIT.as_secs(),
                    m.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(m)
    }

    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// CPU seconds (user + system, all threads) the daemon has used so far;
    /// `None` without a daemon (the kernel's ext2).
    pub fn daemon_cpu_secs(&self) -> Option<f64> {
        let pid = self.daemon.as_ref()?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) in
        // parentheses: utime and stime are the 12th and 13th.
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Some(ticks as f64 / hz)
    }

    /// The daemon's exit status if it has already exited (died while mounted).
    pub fn daemon_exited(&mut self) -> Option<ExitStatus> {
        self.daemon
            .as_mut()
            .and_then(|d| d.try_wait().ok().flatten())
    }

    /// The last lines of the daemon's log (for error messages and details).
    pub fn log_tail(&self) -> String {
        let Some(p) = &self.log else {
            return String::new();
        };
        let s = std::fs::read_to_string(p).unwrap_or_default();
        let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    }

    pub fn log_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Unmount, then wait for the daemon to finish writing back and exit.
    /// Falls back to a lazy unmount; a daemon that does not exit is killed.
    pub fn unmount(self) -> Result<DaemonEnd, String> {
        self.unmount_within(DAEMON_EXIT_WAIT)
    }

    /// [`Mount::unmount`], waiting at most `exit_wait` for the daemon.
    pub fn unmount_within(mut self, exit_wait: Duration) -> Result<DaemonEnd, String> {
        let plain = unmount_path(&self.mnt);
        let end = match self.daemon.take() {
            None => DaemonEnd::NoDaemon,
            Some(mut d) => match wait_child(&mut d, exit_wait).map_err(|e| e.to_string())? {
                Some(s) => DaemonEnd::Exited(s),
                None => DaemonEnd::KilledByHarness,
            },
        };
        // A daemon that was killed leaves its mount behind: make sure it goes.
        if is_mounted(&self.mnt) {
            lazy_unmount(&self.mnt);
        }
        plain.map(|_| end)
    }
}

/// `umount MNT` with a deadline, retrying a transient EBUSY; `umount -l` if
/// it still fails. Err says why the plain unmount failed (the lazy one ran).
pub fn unmount_path(mnt: &Path) -> Result<(), String> {
    let mut why = String::new();
    let t = Instant::now();
    while t.elapsed() < UMOUNT_WAIT {
        if !is_mounted(mnt) {
            return Ok(());
        }
        match run_for(Command::new("umount").arg(mnt), UMOUNT_WAIT) {
            Ok(r) if r.success() => return Ok(()),
            Ok(Finished::Exited { stderr, .. }) => why = stderr.trim().to_string(),
            Ok(Finished::TimedOut) => {
                why = "umount hung".into();
                break;
            }
            Err(e) => why = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    lazy_unmount(mnt);
    Err(format!("umount {}: {why}", mnt.display()))
}

fn lazy_unmount(mnt: &Path) {
    let _ = run_for(Command::new("umount").arg("-l").arg(mnt), UMOUNT_WAIT);
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let _ = unmount_path(&self.mnt);
        }
        if let Some(mut d) = self.daemon.take() {
            if wait_child(&mut d, Duration::from_secs(30))
                .ok()
                .flatten()
                .is_none()
            {
                let _ = d.kill();
                let _ = d.wait();
            }
        }
        if is_mounted(&self.mnt) {
            lazy_unmount(&self.mnt);
        }
    }
}
