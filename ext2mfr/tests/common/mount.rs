//! Mounts, each unmounted on drop (lazily if need be, also when a test
//! panics), so a failing test never leaves a mount behind:
//!
//! - [`Mount`]: the real `ext2mfr` daemon in the foreground, on a fresh
//!   mount point; `unmount` / `unmount_and_check` / `remount` for the
//!   clean path.
//! - [`KernelMount`]: the kernel's own ext2 driver on a loop device.
//! - [`UnmountGuard`]: for a mount a test made itself (mount(8), the
//!   daemon's background mode).

use super::e2fsprogs::fsck_clean;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DAEMON: &str = env!("CARGO_BIN_EXE_ext2mfr");

/// Whether `mnt` is a mount point (in /proc/mounts).
pub fn is_mounted(mnt: &Path) -> bool {
    let want = mnt.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(1) == Some(want.as_str()))
        })
        .unwrap_or(false)
}

/// `umount DIR`, retried for a while: a process another test is forking
/// may hold one of the mount's files open for a moment (until its exec
/// closes it), and EBUSY then passes. The error is umount's stderr.
pub fn umount_retrying(dir: &Path) -> Result<(), String> {
    let mut tries = 0;
    loop {
        let out = Command::new("umount")
            .arg(dir)
            .output()
            .expect("run umount");
        if out.status.success() {
            return Ok(());
        }
        tries += 1;
        if tries >= 100 {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// For drop paths: if `dir` is still mounted, unmount it, lazily if a plain
/// umount fails. Never panics.
pub fn umount_or_lazy(dir: &Path) {
    if is_mounted(dir) {
        let s = Command::new("umount").arg(dir).status();
        if !matches!(s, Ok(s) if s.success()) {
            let _ = Command::new("umount").arg("-l").arg(dir).status();
        }
    }
}

/// A live ext2mfr mount. Dropping it unmounts (lazily if need be) and stops
/// the daemon, so a failing test never leaves a mount behind.
pub struct Mount {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    image: PathBuf,
    /// The daemon's stderr (kept when a test fails, for post-mortems).
    pub log: PathBuf,
}

impl Mount {
    pub fn new(image: &Path, opts: &str) -> Mount {
        Self::try_new(image, opts).unwrap_or_else(|e| panic!("mount failed: {e}"))
    }

    /// Start the daemon in the foreground and wait (at most 10 s) for the mount.
    pub fn try_new(image: &Path, opts: &str) -> Result<Mount, String> {
        let dir = tempfile::Builder::new()
            .prefix("ext2mfr-mnt")
            .tempdir()
            .expect("tempdir");
        let mut cmd = Command::new(DAEMON);
        cmd.arg(image).arg(dir.path()).arg("-f");
        if !opts.is_empty() {
            cmd.arg("-o").arg(opts);
        }
        // The daemon's log goes to a file beside the mount point (a pipe
        // nobody drains could fill up and stall the daemon).
        let log_path = std::env::temp_dir().join(format!(
            "ext2mfr-{}.log",
            dir.path().file_name().unwrap().to_string_lossy()
        ));
        let log = std::fs::File::create(&log_path).expect("daemon log");
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ext2mfr");
        let start = Instant::now();
        while !is_mounted(dir.path()) {
            if let Ok(Some(_)) = child.try_wait() {
                let err = std::fs::read_to_string(&log_path).unwrap_or_default();
                let _ = std::fs::remove_file(&log_path);
                return Err(err);
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                return Err("timed out waiting for the mount".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Mount {
            dir,
            child: Some(child),
            image: image.to_path_buf(),
            log: log_path,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The daemon's process id (tests that signal or kill it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon").id()
    }

    /// Wait (at most `secs` seconds) for the daemon to exit by itself
    /// (after a signal, or an unmount made elsewhere): its exit status,
    /// `None` if it is still running.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            if let Ok(Some(s)) = child.try_wait() {
                self.child = None;
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The image this mount serves.
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// Unmount, wait (at most 30 s) for the daemon to write back and exit,
    /// and check it exited successfully.
    pub fn unmount(mut self) {
        if let Err(e) = umount_retrying(self.dir.path()) {
            panic!("umount failed: {e}");
        }
        let mut child = self.child.take().expect("daemon");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait daemon") {
                break s;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("daemon did not exit after unmount");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "daemon exited with {status}");
        // Every mount of every test also checks AMA's invariant: nothing
        // was allocated beyond a request's reserve.
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Some(json) = log.split("unmounted cleanly; counters: ").nth(1) {
            let json = json.lines().next().unwrap_or("");
            let c: serde_json::Value = serde_json::from_str(json).expect("final counters");
            assert_eq!(
                c["ama"]["under_allocations"],
                0,
                "AMA under-allocations (see the daemon log {}): {}",
                self.log.display(),
                c["ama"]["by_op"]
            );
        }
        // A clean run needs no post-mortem.
        let _ = std::fs::remove_file(&self.log);
    }

    /// Unmount cleanly, then require `e2fsck -fn` to be clean.
    pub fn unmount_and_check(self) {
        let image = self.image.clone();
        self.unmount();
        fsck_clean(&image);
    }

    /// `unmount_and_check`, then mount the same image again with `opts`.
    pub fn remount(self, opts: &str) -> Mount {
        let image = self.image.clone();
        self.unmount_and_check();
        Mount::new(&image, opts)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            umount_or_lazy(self.dir.path());
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A kernel ext2 mount of an image (through a loop device). Dropping it
/// unmounts, lazily if need be.
pub struct KernelMount {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl KernelMount {
    pub fn new(image: &Path) -> KernelMount {
        let dir = tempfile::Builder::new()
            .prefix("kext2-mnt")
            .tempdir()
            .unwrap();
        let out = Command::new("mount")
            .args(["-o", "loop", "-t", "ext2"])
            .arg(image)
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "kernel ext2 mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        KernelMount { dir, mounted: true }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn unmount(mut self) {
        if let Err(e) = umount_retrying(self.dir.path()) {
            panic!("umount of kernel ext2 failed: {e}");
        }
        self.mounted = false;
    }
}

impl Drop for KernelMount {
    fn drop(&mut self) {
        if self.mounted {
            umount_or_lazy(self.dir.path());
        }
    }
}

/// Unmounts `0` on drop if it is still mounted (lazily if need be): for a
/// mount a test made itself, in case an assertion fails while mounted.
pub struct UnmountGuard(pub PathBuf);

impl UnmountGuard {
    pub fn new(mnt: &Path) -> UnmountGuard {
        UnmountGuard(mnt.to_path_buf())
    }
}

impl Drop for UnmountGuard {
    fn drop(&mut self) {
        umount_or_lazy(&self.0);
    }
}
