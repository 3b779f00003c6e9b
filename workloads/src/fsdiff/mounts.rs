//! Two identical images, one mounted by the kernel's driver and one by the
//! ext2mfr daemon, behind the evaluation harness's guards (eval::mount:
//! unmount on drop, even on panic; wait for the daemon to finish writing
//! back before the image is touched; `umount -l` as last resort).

use crate::eval::image::{self, Fsck};
use crate::eval::mount::{Mount, Peer, Tools};
use crate::eval::proc::run_ok;
use crate::eval::stats;
use crate::eval::workdir::WorkDir;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Image size: large enough that no sequence fills it (ENOSPC behaviour
/// legitimately differs: the kernel preallocates), small enough to copy
/// and check in a blink.
pub const IMAGE_MIB: u64 = 128;

/// One pristine image per geometry, made once by the real mke2fs and
/// copied for every run (two copies of one file are identical images,
/// down to the UUID and the directory hash seed).
pub struct Pristine {
    _dir: WorkDir,
    pub img: PathBuf,
    pub block_size: u32,
}

impl Pristine {
    pub fn make(parent: &Path, block_size: u32, inode_size: u32) -> Result<Pristine, String> {
        let dir = WorkDir::new(parent, "fs-diff-img")?;
        let img = dir.file(&format!("pristine-{block_size}-{inode_size}.img"));
        run_ok(
            Command::new("mkfs.ext2")
                .args(["-q", "-F", "-b", &block_size.to_string()])
                .args(["-I", &inode_size.to_string()])
                .arg(&img)
                .arg(format!("{IMAGE_MIB}M")),
            Duration::from_secs(120),
        )?;
        // The root open to everyone, sticky (as /tmp): ops run as other
        // users too, and may then make their own files and directories.
        run_ok(
            Command::new("debugfs")
                .args(["-w", "-R", "set_inode_field / mode 041777"])
                .arg(&img),
            Duration::from_secs(60),
        )?;
        Ok(Pristine {
            _dir: dir,
            img,
            block_size,
        })
    }
}

/// How the daemon is started: a label and its -o options.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub label: String,
    pub opts: String,
}

impl DaemonConfig {
    /// AMA is on unless the options switch it off; its counters must exist then.
    pub fn ama_on(&self) -> bool {
        !self
            .opts
            .split(',')
            .any(|o| o == "baseline" || o == "ama=off")
    }
}

pub struct Pair {
    // Field order matters for drop: the mounts go before the directory.
    kernel: Option<Mount>,
    ours: Option<Mount>,
    kimg: PathBuf,
    oimg: PathBuf,
    kmnt: PathBuf,
    omnt: PathBuf,
    log: PathBuf,
    peer: Peer,
    tools: Tools,
    dir: WorkDir,
}

fn copy_sparse(from: &Path, to: &Path) -> Result<(), String> {
    run_ok(
        Command::new("cp").arg("--sparse=always").arg(from).arg(to),
        Duration::from_secs(60),
    )
    .map(|_| ())
}

impl Pair {
    /// Copy the pristine image twice and mount both copies.
    pub fn new(
        parent: &Path,
        pristine: &Pristine,
        tools: &Tools,
        daemon: &DaemonConfig,
    ) -> Result<Pair, String> {
        let dir = WorkDir::new(parent, "fs-diff")?;
        let kimg = dir.file("kernel.img");
        let oimg = dir.file("ext2mfr.img");
        copy_sparse(&pristine.img, &kimg)?;
        copy_sparse(&pristine.img, &oimg)?;
        let mut p = Pair {
            kernel: None,
            ours: None,
            kmnt: dir.dir("kernel"),
            omnt: dir.dir("ext2mfr"),
            log: dir.file("daemon.log"),
            kimg,
            oimg,
            // allow_other: ops run as other users too (the kernel's ext2
            // serves everyone; a FUSE mount only its mounter without it).
            peer: Peer::Daemon {
                label: daemon.label.clone(),
                opts: if daemon.opts.is_empty() {
                    "allow_other".into()
                } else {
                    format!("{},allow_other", daemon.opts)
                },
            },
            tools: tools.clone(),
            dir,
        };
        p.mount()?;
        Ok(p)
    }

    pub fn mount(&mut self) -> Result<(), String> {
        self.kernel = Some(
            Mount::start(&Peer::Kernel, &self.tools, &self.kimg, &self.kmnt, None)
                .map_err(|e| format!("kernel mount: {e}"))?,
        );
        self.ours = Some(
            Mount::start(
                &self.peer,
                &self.tools,
                &self.oimg,
                &self.omnt,
                Some(&self.log),
            )
            .map_err(|e| format!("ext2mfr mount: {e}"))?,
        );
        // nodev on both: sequences make device nodes with random numbers,
        // and nothing may ever open a real device through them. A bind
        // remount changes only the mount's flags, not the file system's
        // options, so the drivers run as configured.
        for m in [&self.kmnt, &self.omnt] {
            run_ok(
                Command::new("mount")
                    .args(["-o", "remount,bind,nodev"])
                    .arg(m),
                Duration::from_secs(15),
            )?;
        }
        Ok(())
    }

    /// (kernel, ext2mfr) mount roots.
    pub fn roots(&self) -> (&Path, &Path) {
        (&self.kmnt, &self.omnt)
    }

    /// The daemon's `ama.under_allocations` counter (None: not reported).
    pub fn under_allocations(&self) -> Result<Option<u64>, String> {
        let v = stats::read(&self.omnt)?;
        Ok(stats::get(&v, "ama.under_allocations"))
    }

    /// Unmount both (the daemon has written everything back when this returns).
    pub fn unmount(&mut self) -> Result<(), String> {
        let mut errs = Vec::new();
        if let Some(m) = self.kernel.take() {
            if let Err(e) = m.unmount() {
                errs.push(format!("kernel: {e}"));
            }
        }
        if let Some(m) = self.ours.take() {
            match m.unmount() {
                Ok(end) if end.clean() => {}
                Ok(end) => errs.push(format!("ext2mfr daemon ended badly: {end:?}")),
                Err(e) => errs.push(format!("ext2mfr: {e}")),
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("; "))
        }
    }

    /// (kernel, ext2mfr) image files.
    pub fn images(&self) -> (&Path, &Path) {
        (&self.kimg, &self.oimg)
    }

    /// e2fsck -fn on both images (unmounted): (kernel, ext2mfr).
    pub fn fsck(&self) -> Result<(Fsck, Fsck), String> {
        Ok((image::check(&self.kimg)?, image::check(&self.oimg)?))
    }

    /// The last lines of the daemon's log (for reports).
    pub fn daemon_log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// Keep the images and the log for a post-mortem.
    pub fn keep(&mut self) -> PathBuf {
        self.dir.keep();
        self.dir.path().to_path_buf()
    }
}

/// Aborts the FUSE connection of a mount when nothing progressed for a
/// while: a hung daemon then fails the blocked call with ENOTCONN (which
/// shows as mismatches) instead of hanging the tester and its test forever.
pub struct Watchdog {
    base: Instant,
    /// Milliseconds since `base` of the last sign of progress.
    last: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn start(mnt: &Path, limit: Duration) -> Watchdog {
        use std::os::unix::fs::MetadataExt;
        let base = Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        // A FUSE mount's st_dev minor names its connection in fusectl.
        let abort = std::fs::metadata(mnt).ok().map(|m| {
            PathBuf::from(format!(
                "/sys/fs/fuse/connections/{}/abort",
                libc::minor(m.dev())
            ))
        });
        let (l, s, mnt) = (last.clone(), stop.clone(), mnt.to_path_buf());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(500));
                let idle = base.elapsed().as_millis() as u64 - l.load(Ordering::SeqCst);
                if idle > limit.as_millis() as u64 {
                    eprintln!(
                        "fs-diff: no progress on {} for {} s: aborting its FUSE connection",
                        mnt.display(),
                        limit.as_secs()
                    );
                    if let Some(a) = &abort {
                        if !a.exists() {
                            // fusectl is usually mounted by systemd; not always.
                            let _ = Command::new("mount")
                                .args(["-t", "fusectl", "fusectl", "/sys/fs/fuse/connections"])
                                .status();
                        }
                        if let Err(e) = std::fs::write(a, "1") {
                            eprintln!("fs-diff: {}: {e}", a.display());
                        }
                    }
                    return;
                }
            }
        });
        Watchdog { base, last, stop }
    }

    pub fn tick(&self) {
        self.last
            .store(self.base.elapsed().as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
