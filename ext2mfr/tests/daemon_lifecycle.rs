//! The daemon's life cycle: mounted through mount(8)'s FUSE helper (the
//! argument form fstab and `mount -t fuse...` produce), backgrounding, and
//! clean unmounts by umount, fusermount3 -u, SIGTERM and SIGINT.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Pids of daemons serving `image` (matched on the command line).
fn daemons_for(image: &Path) -> Vec<u32> {
    let want = image.to_string_lossy().to_string();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.ends_with("ext2mfr")) && args.contains(&want) {
            pids.push(pid);
        }
    }
    pids
}

/// umount(8) a mount the daemon serves in the background, then wait for
/// the daemon to finish writing back and exit.
fn umount_and_wait(guard: UnmountGuard, mnt: &Path, image: &Path) {
    assert!(Command::new("umount").arg(mnt).status().unwrap().success());
    drop(guard);
    wait_gone(image);
}

/// Wait until no daemon serves `image`: none runs with it as an argument
/// and its lock is free (a daemon started with a relative path is found by
/// the lock alone).
fn wait_gone(image: &Path) {
    let t = Instant::now();
    while !daemons_for(image).is_empty() || image_locked(image) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "daemon still running after unmount"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a daemon still holds the image's exclusive lock.
fn image_locked(image: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(image).unwrap();
    // SAFETY: flock on a descriptor we own; closing it releases the lock.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

#[test]
fn mount_helper_backgrounds_and_umount_writes_back() {
    let img = mkfs_ext2mfr(32 << 20, 4096);
    let mnt = tempfile::tempdir().unwrap();
    // mount(8) -> mount.fuse3 -> "ext2mfr IMAGE DIR -o opts" (no -f: the daemon forks).
    let st = Command::new("mount")
        .args(["-t", "fuse"])
        .arg(format!("{DAEMON}#{}", img.path.display()))
        .arg(mnt.path())
        .args(["-o", "noatime,nodev"])
        .status()
        .unwrap();
    assert!(st.success(), "mount -t fuse failed");
    let guard = UnmountGuard::new(mnt.path());
    std::fs::write(mnt.path().join("f"), vec![7u8; 100_000]).unwrap();
    assert_eq!(
        daemons_for(&img.path).len(),
        1,
        "one background daemon serves the mount"
    );
    umount_and_wait(guard, mnt.path(), &img.path);
    fsck_clean(&img.path);
    assert_eq!(debugfs_cat(&img.path, "/f"), vec![7u8; 100_000]);
    assert_eq!(dumpe2fs_field(&img.path, "Filesystem state"), "clean");
    assert_eq!(dumpe2fs_field(&img.path, "Mount count"), "1");
    assert_ne!(dumpe2fs_field(&img.path, "Last mount time"), "n/a");
}

fn signal_unmount(sig: i32) {
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = Mount::new(&img.path, "");
    std::fs::write(m.p("data"), b"written before the signal").unwrap();
    std::fs::create_dir(m.p("dir")).unwrap();
    let pids = daemons_for(&img.path);
    assert_eq!(pids.len(), 1);
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pids[0] as i32, sig) };
    wait_gone(&img.path);
    drop(m);
    fsck_clean(&img.path);
    assert_eq!(
        debugfs_cat(&img.path, "/data"),
        b"written before the signal"
    );
    assert_eq!(dumpe2fs_field(&img.path, "Filesystem state"), "clean");
}

#[test]
fn sigterm_unmounts_cleanly() {
    signal_unmount(libc::SIGTERM);
}

#[test]
fn sigint_unmounts_cleanly() {
    signal_unmount(libc::SIGINT);
}

#[test]
fn fusermount_u_unmounts_cleanly() {
    // Not installed is a failure, not a skip: .ci/run installs fuse3.
    assert!(
        Command::new("fusermount3").arg("-V").output().is_ok(),
        "fusermount3 not installed (.ci/run installs fuse3)"
    );
    let img = mkfs_ext2mfr(16 << 20, 2048);
    let m = Mount::new(&img.path, "");
    std::fs::write(m.p("x"), b"fusermount").unwrap();
    assert!(Command::new("fusermount3")
        .arg("-u")
        .arg(m.path())
        .status()
        .unwrap()
        .success());
    wait_gone(&img.path);
    drop(m);
    fsck_clean(&img.path);
    assert_eq!(debugfs_cat(&img.path, "/x"), b"fusermount");
}

#[test]
fn bad_arguments_are_refused() {
    let img = mkfs_ext2mfr(8 << 20, 1024);
    let mnt = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (
            vec![img.path.to_str().unwrap()],
            "expected IMAGE and MOUNTPOINT",
        ),
        (
            vec![img.path.to_str().unwrap(), "/nonexistent-dir-xyz"],
            "not a directory",
        ),
        (
            vec!["/nonexistent.img", mnt.path().to_str().unwrap(), "-f"],
            "nonexistent.img",
        ),
        (
            vec![
                img.path.to_str().unwrap(),
                mnt.path().to_str().unwrap(),
                "-o",
                "cache=tiny",
            ],
            "cache=tiny",
        ),
        (
            vec![
                img.path.to_str().unwrap(),
                mnt.path().to_str().unwrap(),
                "--bogus",
            ],
            "--bogus",
        ),
    ] {
        let out = Command::new(DAEMON).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(needle),
            "{args:?}: message '{err}' should mention '{needle}'"
        );
    }
    // Nothing was mounted and the image is untouched.
    assert_eq!(dumpe2fs_field(&img.path, "Mount count"), "0");
    fsck_clean(&img.path);
}

/// Start the daemon in the background (no `-f`) with its stdout and stderr
/// on pipes, do a little on the mount, unmount, and return everything the
/// daemon wrote to those pipes, from its start to its exit.
fn background_output(img: &Path, opts: &str) -> Vec<u8> {
    use std::io::Read;
    let mnt = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(DAEMON);
    cmd.arg(img).arg(mnt.path());
    if !opts.is_empty() {
        cmd.arg("-o").arg(opts);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first process exits once the mount is up; the daemon it forked
    // keeps serving (and holds the pipes until it lets go of them).
    assert!(child.wait().unwrap().success(), "background mount failed");
    let guard = UnmountGuard::new(mnt.path());
    std::fs::write(mnt.path().join("f"), b"quiet").unwrap();
    umount_and_wait(guard, mnt.path(), img);
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_end(&mut out).unwrap();
    out
}

/// In the background the daemon writes nothing to the terminal (or script)
/// that started it, also not the report it logs at unmount: that goes to
/// syslog, or to the file `log=` names.
#[test]
fn background_daemon_is_quiet_and_logs_where_told() {
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let out = background_output(&img.path, "");
    assert!(
        out.is_empty(),
        "written to the terminal: {}",
        String::from_utf8_lossy(&out)
    );

    let log = img.dir.path().join("daemon.log");
    let opts = format!("log={}", log.display());
    let out = background_output(&img.path, &opts);
    assert!(
        out.is_empty(),
        "written to the terminal: {}",
        String::from_utf8_lossy(&out)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("unmounted cleanly; counters:"),
        "log file: {text}"
    );
    fsck_clean(&img.path);

    // A log file that cannot be opened refuses the mount, saying why.
    let mnt = tempfile::tempdir().unwrap();
    let r = Command::new(DAEMON)
        .arg(&img.path)
        .arg(mnt.path())
        .args(["-o", "log=/nonexistent-dir/x.log"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("log file /nonexistent-dir/x.log"));
}

/// (source, type) of the mount at `mnt` in /proc/mounts.
fn mount_entry(mnt: &Path) -> Option<(String, String)> {
    let want = mnt.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&want))
        .map(|f| (f[0].clone(), f[2].clone()))
}

/// The mount shows as `fuse.ext2mfr`, with the image's absolute path as its
/// source, however it was started (findmnt, `df -T` and mount helpers go
/// by these): by the daemon with a relative image path, and by mount(8).
#[test]
fn mount_shows_type_and_source() {
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let abs = std::fs::canonicalize(&img.path)
        .unwrap()
        .display()
        .to_string();

    let mnt = tempfile::tempdir().unwrap();
    let st = Command::new(DAEMON)
        .current_dir(img.dir.path())
        .arg(img.path.file_name().unwrap())
        .arg(mnt.path())
        .status()
        .unwrap();
    assert!(st.success());
    let guard = UnmountGuard::new(mnt.path());
    assert_eq!(
        mount_entry(mnt.path()),
        Some((abs.clone(), "fuse.ext2mfr".into()))
    );
    umount_and_wait(guard, mnt.path(), &img.path);

    let st = Command::new("mount")
        .args(["-t", "fuse"])
        .arg(format!("{DAEMON}#{}", img.path.display()))
        .arg(mnt.path())
        .status()
        .unwrap();
    assert!(st.success(), "mount -t fuse failed");
    let guard = UnmountGuard::new(mnt.path());
    assert_eq!(mount_entry(mnt.path()), Some((abs, "fuse.ext2mfr".into())));
    umount_and_wait(guard, mnt.path(), &img.path);
    fsck_clean(&img.path);
}

/// `ext2mfr IMAGE DIR -o remount,ro|rw`, as mount.fuse3 runs it for
/// `mount -o remount,ro DIR`: read-only writes everything back and marks
/// the image clean (e2fsck judges it while mounted), then refuses writes
/// with EROFS; read-write takes them again. An image mounted `ro` was
/// opened read-only and stays so.
#[test]
fn remount_read_only_and_back() {
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = Mount::new(&img.path, "");
    let remount = |mnt: &Path, how: &str| {
        Command::new(DAEMON)
            .arg(&img.path)
            .arg(mnt)
            .args(["-o", &format!("remount,{how}")])
            .output()
            .unwrap()
    };
    std::fs::write(m.p("before"), vec![1u8; 5000]).unwrap();
    let r = remount(m.path(), "ro");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(mount_options(m.path()).starts_with("ro,"));
    let e = std::fs::write(m.p("refused"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    // Written back and clean while still mounted.
    fsck_clean(&img.path);
    assert_eq!(dumpe2fs_field(&img.path, "Filesystem state"), "clean");
    assert_eq!(debugfs_cat(&img.path, "/before"), vec![1u8; 5000]);

    let r = remount(m.path(), "rw");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(mount_options(m.path()).starts_with("rw,"));
    std::fs::write(m.p("after"), b"y").unwrap();
    assert_eq!(dumpe2fs_field(&img.path, "Filesystem state"), "not clean");
    m.unmount_and_check();

    let m = Mount::new(&img.path, "ro");
    let r = remount(m.path(), "rw");
    assert!(!r.status.success(), "a read-only image became writable");
    assert!(mount_options(m.path()).starts_with("ro,"));
    m.unmount();
    fsck_clean(&img.path);
}

/// The options /proc/mounts shows for the mount at `mnt`.
fn mount_options(mnt: &Path) -> String {
    let want = mnt.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&want))
        .map(|f| f[3].clone())
        .unwrap_or_default()
}
