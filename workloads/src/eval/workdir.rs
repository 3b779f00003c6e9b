//! A unique scratch directory for images, mount points and daemon logs
//! (under /var/tmp by default: images can be large, and /tmp may be a small
//! tmpfs). Removed on drop, after lazily unmounting anything left inside.

use super::mount::is_mounted;
use std::path::{Path, PathBuf};

pub struct WorkDir {
    root: PathBuf,
    keep: bool,
}

impl WorkDir {
    pub fn new(parent: &Path, tag: &str) -> Result<WorkDir, String> {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        for n in 0..1000u32 {
            let root = parent.join(format!("{tag}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&root) {
                Ok(()) => return Ok(WorkDir { root, keep: false }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("{}: {e}", root.display())),
            }
        }
        Err(format!(
            "no free scratch directory name under {}",
            parent.display()
        ))
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A file path inside (not created).
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// A sub-directory (created).
    pub fn dir(&self, name: &str) -> PathBuf {
        let p = self.root.join(name);
        let _ = std::fs::create_dir_all(&p);
        p
    }

    /// Keep the directory (for post-mortems of a failed harness run).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        // Never remove files through a mount that is still there.
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            for e in rd.flatten() {
                let p = e.path();
                if is_mounted(&p) {
                    let _ = std::process::Command::new("umount")
                        .arg("-l")
                        .arg(&p)
                        .status();
                }
                if is_mounted(&p) {
                    return;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
