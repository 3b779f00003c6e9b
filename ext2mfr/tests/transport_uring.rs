//! FUSE over io_uring (`transport=uring`) through real mounts: the
//! operations of every kind, writers pinned to each CPU so that every
//! queue carries requests (the kernel queues a request on its issuing
//! CPU's queue, and a queue without a served entry would hang it), e2fsck
//! clean after; an unmount by SIGTERM with requests in flight; a killed
//! daemon whose mount `umount -l` clears; and the choice `transport=`
//! makes when the kernel has io_uring off.
//!
//! The rest of the suite runs over io_uring with
//! `FUSE_OPS_OPTS=transport=uring cargo test -p ext2mfr --test 'fuse_*'`.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// io_uring on, or the reason this kernel cannot have it (then the test
/// says so and does nothing: the parameter is absent before Linux 6.14).
fn uring_or_skip() -> bool {
    if enable_fuse_uring() {
        return true;
    }
    eprintln!("skipped: this kernel has no /sys/module/fuse/parameters/enable_uring");
    false
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Run the calling thread on `cpu` only.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; cpu < CPU_SETSIZE here.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set),
            0,
            "pin to CPU {cpu}"
        );
    }
}

/// Run `f` on its own thread; fail if it does not end in `secs` seconds (a
/// queue left without entries hangs its requests forever).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what}: not done in {secs} s (a hung queue?)"))
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(2654435761).wrapping_add(seed) as u8)
        .collect()
}

/// `threads` writers, thread k pinned to CPU k mod CPUs, each writing
/// `files` files of `size` bytes under `dir` and reading them back.
fn pinned_writers(dir: &Path, threads: usize, files: usize, size: usize) {
    let n = cpus();
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let dir = dir.to_path_buf();
            std::thread::spawn(move || {
                pin(k % n);
                for i in 0..files {
                    let p = dir.join(format!("w{k}-{i}"));
                    let data = pattern((k * 1000 + i) as u64, size);
                    fs::write(&p, &data).unwrap();
                    assert_eq!(fs::read(&p).unwrap(), data, "{}", p.display());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer");
    }
}

#[test]
fn operations_over_uring_on_every_queue() {
    let _serial = setup();
    if !uring_or_skip() {
        return;
    }
    let img = mkfs_ext2(128 * 1024, 4096, &[]);
    let m = Mount::new(&img.path, "transport=uring,allow_other");
    assert_eq!(counters(m.path())["transport"], "uring");
    let root = m.path().to_path_buf();
    let p = |s: &str| root.join(s);

    // create, write, read (more than one request's worth), fsync
    let data = pattern(7, 3 << 20);
    {
        let mut f = File::create(p("f")).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
    }
    let mut back = Vec::new();
    File::open(p("f")).unwrap().read_to_end(&mut back).unwrap();
    assert!(back == data, "3 MiB read back differs");
    // rename, hard link, symlink, chmod
    fs::rename(p("f"), p("g")).unwrap();
    assert!(!p("f").exists());
    fs::hard_link(p("g"), p("h")).unwrap();
    assert_eq!(fs::metadata(p("g")).unwrap().nlink(), 2);
    std::os::unix::fs::symlink("g", p("s")).unwrap();
    assert_eq!(fs::read_link(p("s")).unwrap(), PathBuf::from("g"));
    assert_eq!(fs::read(p("s")).unwrap().len(), data.len());
    fs::set_permissions(p("g"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(fs::metadata(p("h")).unwrap().mode() & 0o7777, 0o600);
    // xattrs: set, get (size first), list, remove
    setxattr(&p("g"), "user.colour", b"blue").unwrap();
    assert_eq!(getxattr(&p("g"), "user.colour", 0).unwrap().len(), 4);
    assert_eq!(getxattr(&p("g"), "user.colour", 64).unwrap(), b"blue");
    assert!(xattr_names(&p("g")).contains(&"user.colour".to_string()));
    removexattr(&p("g"), "user.colour").unwrap();
    assert_eq!(
        errno_of(getxattr(&p("g"), "user.colour", 64)),
        libc::ENODATA
    );
    // ACL: nobody may read a 0600 file only through a named entry.
    let nobody_reads = || sh_as_nobody(&format!("cat {} >/dev/null 2>&1", p("g").display()));
    assert!(!nobody_reads());
    let acl = acl_xattr(&[
        (1, 6, 0),
        (2, 4, 65534),
        (4, 0, 0),
        (0x10, 4, 0),
        (0x20, 0, 0),
    ]);
    setxattr(&p("g"), "system.posix_acl_access", &acl).unwrap();
    assert!(nobody_reads(), "a named ACL entry lets nobody read");
    // a directory larger than one readdir reply, listed whole
    fs::create_dir(p("big")).unwrap();
    let names: BTreeSet<String> = (0..3000).map(|i| format!("entry-{i:05}")).collect();
    for n in &names {
        File::create(p("big").join(n)).unwrap();
    }
    let listed: BTreeSet<String> = fs::read_dir(p("big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(listed, names);
    // statfs
    let st = statvfs(&root);
    assert_eq!(st.f_bsize, 4096);
    assert!(st.f_blocks > 0 && st.f_bfree < st.f_blocks);
    // unlink, rmdir
    fs::remove_file(p("h")).unwrap();
    assert_eq!(fs::metadata(p("g")).unwrap().nlink(), 1);
    for n in names.iter().take(100) {
        fs::remove_file(p("big").join(n)).unwrap();
    }
    fs::create_dir(p("empty")).unwrap();
    fs::remove_dir(p("empty")).unwrap();
    // Writers on every CPU, so every queue serves requests.
    fs::create_dir(p("conc")).unwrap();
    let conc = p("conc");
    within(120, "pinned writers", move || {
        pinned_writers(&conc, 2 * cpus(), 60, 40 << 10)
    });
    assert_eq!(fs::read_dir(p("conc")).unwrap().count(), 2 * cpus() * 60);
    m.unmount_and_check();
}

/// Idle-policy queue threads (`queue_policy=idle`, the default over
/// io_uring) beside a busy process on every CPU: without the watchdog a
/// queue thread would run only when its CPU has nothing else to do, and
/// these 3,000 files (about 12,000 requests) would take minutes (measured
/// before the watchdog: postmark 500/2000 beside one busy loop, 115 s
/// instead of 0.38 s). With it, the starving queue is given the normal
/// policy within a window, the files are done well inside the bound, the
/// counters show the watchdog acted, and e2fsck is clean. The same load
/// with `queue_policy=normal` measures what the bound is compared with.
#[test]
fn idle_queue_threads_do_not_starve_behind_busy_processes() {
    let _serial = setup();
    if !uring_or_skip() {
        return;
    }
    let img = mkfs_ext2(64 * 1024, 4096, &[]);
    let load = |root: PathBuf, tag: &'static str| {
        move || {
            // On CPU 0, so every request goes to queue 0, whose CPU is busy.
            pin(0);
            let start = Instant::now();
            let d = root.join(tag);
            fs::create_dir(&d).unwrap();
            for i in 0..3000 {
                let p = d.join(format!("f{i}"));
                fs::write(&p, pattern(i, 100)).unwrap();
                if i % 2 == 0 {
                    fs::remove_file(&p).unwrap();
                }
            }
            start.elapsed()
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..cpus())
        .map(|cpu| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                pin(cpu);
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            })
        })
        .collect();
    let mut took = Vec::new();
    for policy in ["normal", "idle"] {
        let m = Mount::new(&img.path, &format!("transport=uring,queue_policy={policy}"));
        let c = counters(m.path());
        assert_eq!(c["queue_policy"], policy);
        let t = within(
            120,
            &format!("3,000 files, queue_policy={policy}"),
            load(m.path().to_path_buf(), policy),
        );
        let c = counters(m.path());
        if policy == "idle" {
            assert!(
                c["queue_promotions"].as_u64().unwrap() > 0,
                "the watchdog never acted: {c}"
            );
        }
        took.push(t);
        m.unmount_and_check();
        fsck_strict(&img.path);
    }
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        h.join().unwrap();
    }
    // Starving, the idle run would take minutes; bounded, it stays within
    // a few times the normal run (and a few seconds on any machine that
    // runs the normal one in one).
    let (normal, idle) = (took[0], took[1]);
    eprintln!("beside busy loops: normal {normal:?}, idle {idle:?}");
    assert!(
        idle < normal * 4 + Duration::from_secs(5),
        "idle queue threads starved: {idle:?} against {normal:?} with normal ones"
    );
}

#[test]
fn sigterm_unmounts_with_requests_in_flight_on_every_queue() {
    let _serial = setup();
    if !uring_or_skip() {
        return;
    }
    let img = mkfs_ext2(64 * 1024, 1024, &[]);
    let mut m = Mount::new(&img.path, "transport=uring");
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let n = cpus();
    let workers: Vec<_> = (0..2 * n)
        .map(|k| {
            let (stop, done) = (stop.clone(), done.clone());
            let dir = m.path().to_path_buf();
            std::thread::spawn(move || {
                pin(k % n);
                let mut i = 0u64;
                // Until the mount goes away under us: then the calls fail
                // (or reach the empty directory beneath), and we stop.
                while !stop.load(Ordering::Relaxed) {
                    let p = dir.join(format!("t{k}-{}", i % 50));
                    let ok = OpenOptions::new()
                        .create(true)
                        .write(true)
                        .truncate(true)
                        .open(&p)
                        .and_then(|mut f| f.write_all(&pattern(i, 8192)))
                        .is_ok();
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    // Requests flowing on every queue, then SIGTERM.
    let start = Instant::now();
    while done.load(Ordering::Relaxed) < 400 {
        assert!(start.elapsed() < Duration::from_secs(60), "writers stalled");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signals the daemon this test started.
    assert_eq!(unsafe { libc::kill(m.pid() as i32, libc::SIGTERM) }, 0);
    wait_until("the mount to go", || !mount::is_mounted(m.path()));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("writer");
    }
    let status = m.wait_exit(60).expect("the daemon exits after SIGTERM");
    assert!(status.success(), "daemon exited with {status}");
    fsck_clean(&img.path);
}

#[test]
fn killed_daemon_leaves_a_mount_umount_l_clears() {
    let _serial = setup();
    if !uring_or_skip() {
        return;
    }
    let img = mkfs_ext2(64 * 1024, 1024, &[]);
    let mut m = Mount::new(&img.path, "transport=uring");
    fs::write(m.p("a"), b"x").unwrap();
    let dir = m.path().to_path_buf();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let worker = std::thread::spawn(move || {
        let mut i = 0;
        while !s2.load(Ordering::Relaxed) {
            let _ = fs::write(dir.join(format!("k{}", i % 20)), pattern(i, 4096));
            i += 1;
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kills the daemon this test started.
    assert_eq!(unsafe { libc::kill(m.pid() as i32, libc::SIGKILL) }, 0);
    assert!(m.wait_exit(10).is_some(), "the daemon dies");
    stop.store(true, Ordering::Relaxed);
    // Nothing waits on the dead daemon: calls in flight fail and end.
    within(30, "the writer after the kill", move || {
        worker.join().unwrap()
    });
    let dir = m.path().to_path_buf();
    let e = within(30, "stat of the dead mount", move || {
        errno_of(fs::metadata(dir.join("a")))
    });
    // ENOTCONN once the connection is gone; ECONNABORTED for a request
    // the ring teardown ended.
    assert!(
        [libc::ENOTCONN, libc::ECONNABORTED].contains(&e),
        "a dead daemon's mount answers ENOTCONN or ECONNABORTED, not errno {e}"
    );
    let out = std::process::Command::new("umount")
        .arg("-l")
        .arg(m.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "umount -l: {:?}", out);
    assert!(!mount::is_mounted(m.path()));
}

/// `transport=uring` is refused with the reason where the kernel has it
/// off; `auto` then uses /dev/fuse, and io_uring once it is on.
#[test]
fn transport_choice_follows_the_kernel() {
    let _serial = setup();
    if !uring_or_skip() {
        return;
    }
    let img = mkfs_ext2(16 * 1024, 1024, &[]);
    fs::write("/sys/module/fuse/parameters/enable_uring", "N").unwrap();
    let refused = Mount::try_new(&img.path, "transport=uring");
    let auto = Mount::try_new(&img.path, "transport=auto");
    // (Back on before asserting: the other tests need it.)
    assert!(enable_fuse_uring());
    let e = refused
        .err()
        .expect("transport=uring refused while io_uring is off");
    assert!(e.contains("enable_uring"), "the refusal says why: {e}");
    let auto = auto.expect("transport=auto mounts");
    assert_eq!(counters(auto.path())["transport"], "dev");
    auto.unmount_and_check();
    let auto = Mount::new(&img.path, "transport=auto");
    assert_eq!(counters(auto.path())["transport"], "uring");
    fs::write(auto.p("x"), b"over the ring").unwrap();
    auto.unmount_and_check();
    let dev = Mount::new(&img.path, "");
    assert_eq!(counters(dev.path())["transport"], "dev");
    assert_eq!(fs::read(dev.p("x")).unwrap(), b"over the ring");
    dev.unmount_and_check();
}
