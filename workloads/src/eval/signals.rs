//! Ctrl-C (SIGINT), SIGTERM and SIGHUP must not leave mounts behind. The
//! daemons, in the same process group, get the terminal's SIGINT too and
//! unmount themselves; the kernel's ext2 mount and the scratch directory
//! are ours to clean. The handler only sets a flag (all a signal handler
//! may safely do); a watcher thread lazily unmounts everything under the
//! scratch directory, removes it, and exits with 128 + the signal.

use super::mount::is_mounted;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    CAUGHT.store(sig, Ordering::SeqCst);
}

/// Install the handlers and the watcher for the scratch directory `root`.
pub fn clean_up_on_signal(root: PathBuf) {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
    std::thread::spawn(move || loop {
        let sig = CAUGHT.load(Ordering::SeqCst);
        if sig != 0 {
            eprintln!(
                "evaluate: signal {sig}: unmounting what is left under {} and stopping",
                root.display()
            );
            let prefix = root.to_string_lossy().to_string();
            let ours = || -> Vec<String> {
                std::fs::read_to_string("/proc/mounts")
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.split(' ').nth(1))
                    .filter(|m| m.starts_with(&prefix))
                    .map(str::to_string)
                    .collect()
            };
            // Twice: a mount that was coming up during the first pass
            // shows up for the second.
            for _ in 0..2 {
                for mnt in ours() {
                    let _ = std::process::Command::new("umount")
                        .arg("-l")
                        .arg(&mnt)
                        .status();
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            if ours().iter().all(|m| !is_mounted(std::path::Path::new(m))) {
                let _ = std::fs::remove_dir_all(&root);
            }
            std::process::exit(128 + sig);
        }
        std::thread::sleep(Duration::from_millis(100));
    });
}
