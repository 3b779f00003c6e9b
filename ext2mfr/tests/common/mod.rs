//! Test support: make images, mount them through the real `ext2mfr` daemon,
//! unmount on drop (also when a test panics), and run the real e2fsck.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DAEMON: &str = env!("CARGO_BIN_EXE_ext2mfr");

/// A temporary directory holding an image file.
pub struct Image {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

/// An image made by our mkfs (`bs` block size, `size` bytes).
pub fn mkfs_ext2mfr(size: u64, bs: u32) -> Image {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fs.img");
    let o = mkfs_ext2mfr::MkfsOptions {
        size: Some(size),
        block_size: Some(bs),
        ..Default::default()
    };
    mkfs_ext2mfr::mkfs(&path, &o).expect("mkfs.ext2mfr");
    Image { dir, path }
}

/// An image made by the real mke2fs (`extra` are more mkfs.ext2 arguments).
pub fn mkfs_ext2(size_kib: u64, bs: u32, extra: &[&str]) -> Image {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fs.img");
    let out = Command::new("mkfs.ext2")
        .args(["-q", "-F", "-b", &bs.to_string()])
        .args(extra)
        .arg(&path)
        .arg(size_kib.to_string())
        .output()
        .expect("run mkfs.ext2");
    assert!(
        out.status.success(),
        "mkfs.ext2 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Image { dir, path }
}

/// Run `e2fsck -fn` and panic with its report unless the image is clean.
pub fn fsck_clean(image: &Path) {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .output()
        .expect("run e2fsck");
    assert!(
        out.status.success(),
        "e2fsck -fn found problems (exit {:?}):\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `debugfs -R "cat PATH"`: the file's bytes as e2fsprogs reads them.
pub fn debugfs_cat(image: &Path, path: &str) -> Vec<u8> {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(image)
        .stderr(Stdio::null())
        .output()
        .expect("run debugfs");
    assert!(out.status.success());
    out.stdout
}

fn is_mounted(mnt: &Path) -> bool {
    let want = mnt.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(1) == Some(want.as_str()))
        })
        .unwrap_or(false)
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

    /// Unmount, wait (at most 30 s) for the daemon to write back and exit,
    /// and check it exited successfully.
    pub fn unmount(mut self) {
        // A process another test is forking may hold one of our files open
        // for a moment (until its exec closes it): EBUSY then passes; retry.
        let mut tries = 0;
        while !Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success())
        {
            tries += 1;
            assert!(tries < 100, "umount failed");
            std::thread::sleep(Duration::from_millis(50));
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
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if is_mounted(self.dir.path()) {
                let s = Command::new("umount").arg(self.dir.path()).status();
                if !matches!(s, Ok(s) if s.success()) {
                    let _ = Command::new("umount")
                        .arg("-l")
                        .arg(self.dir.path())
                        .status();
                }
            }
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

/// Write one of the daemon's control attributes on the mount's root
/// (`ext2mfr.inject`, `ext2mfr.fault_after`).
pub fn control(mnt: &Path, name: &str, value: &str) {
    let n = std::ffi::CString::new(name).unwrap();
    let p = std::ffi::CString::new(mnt.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C strings and a value buffer of the given length.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(r, 0, "setting {name}: {}", std::io::Error::last_os_error());
}

/// The daemon's counters (the `ext2mfr.stats` attribute of the root).
pub fn counters(mnt: &Path) -> serde_json::Value {
    let name = std::ffi::CString::new("ext2mfr.stats").unwrap();
    let path = std::ffi::CString::new(mnt.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    // SAFETY: valid C strings and a buffer of the given length.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert!(
        n > 0,
        "reading counters: {}",
        std::io::Error::last_os_error()
    );
    serde_json::from_slice(&buf[..n as usize]).unwrap()
}

/// Everything the oracle compares, by relative path.
pub fn snapshot(root: &Path) -> std::collections::BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == "lost+found" {
                continue;
            }
            let md = std::fs::symlink_metadata(&p).unwrap();
            let desc = if md.file_type().is_symlink() {
                format!("symlink -> {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                walk(root, &p, out);
                format!(
                    "dir mode {:o} nlink {}",
                    std::os::unix::fs::MetadataExt::mode(&md) & 0o7777,
                    std::os::unix::fs::MetadataExt::nlink(&md)
                )
            } else {
                let data = std::fs::read(&p).unwrap();
                let sum: u64 = data
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| (i as u64 + 1) * b as u64)
                    .sum();
                format!(
                    "file mode {:o} nlink {} size {} sum {sum}",
                    std::os::unix::fs::MetadataExt::mode(&md) & 0o7777,
                    std::os::unix::fs::MetadataExt::nlink(&md),
                    md.len()
                )
            };
            out.insert(rel, desc);
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Deterministic pseudo-random bytes (xorshift), different for each seed, so
/// a block read from the wrong place never matches by accident.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        let n = (len - out.len()).min(8);
        out.extend_from_slice(&b[..n]);
    }
    out
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
        // Retry a transient EBUSY (see common::Mount::unmount).
        let mut tries = 0;
        loop {
            let out = Command::new("umount")
                .arg(self.dir.path())
                .output()
                .expect("run umount");
            if out.status.success() {
                break;
            }
            tries += 1;
            assert!(
                tries < 100,
                "umount of kernel ext2 failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.mounted = false;
    }
}

impl Drop for KernelMount {
    fn drop(&mut self) {
        if self.mounted {
            let ok = Command::new("umount")
                .arg(self.dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(self.dir.path())
                    .status();
            }
        }
    }
}
