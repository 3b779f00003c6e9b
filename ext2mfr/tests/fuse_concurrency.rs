//! Concurrency and resource exhaustion through real mounts: many threads
//! changing one directory, large concurrent writers, directory renames
//! racing across two parents (with a deadlock timeout), a full disk, an
//! exhausted inode table, and the reserved blocks kept from non-root users.

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

fn errname(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

/// Accept success or one of the `allowed` errnos; anything else fails the test.
fn allow<T>(r: std::io::Result<T>, allowed: &[i32], what: &str) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) if allowed.contains(&errno(&e)) => None,
        Err(e) => panic!("{what}: unexpected error {e}"),
    }
}

/// Run `f` on its own thread and fail if it does not finish in `secs`
/// seconds (a deadlock in the daemon would otherwise hang the test).
fn run_with_timeout<F: FnOnce() + Send + 'static>(secs: u64, what: &str, f: F) {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(())) => h.join().unwrap(),
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("{what}: did not finish within {secs} s (deadlock in the daemon?)"),
    }
}

/// statvfs once `ok` holds of it. An unlinked inode is freed when the
/// kernel forgets it (a FORGET the kernel queues when it evicts the inode,
/// which the daemon may handle just after a statfs sent meanwhile), so the
/// free counts may lag an unlink briefly; a count that never catches up
/// within 3 s is a leak.
fn statvfs_when(p: &Path, what: &str, ok: impl Fn(&libc::statvfs) -> bool) -> libc::statvfs {
    let start = std::time::Instant::now();
    loop {
        let s = statvfs(p);
        if ok(&s) {
            return s;
        }
        if start.elapsed() > Duration::from_secs(3) {
            panic!(
                "{what}: statfs shows {} free blocks, {} free inodes",
                s.f_bfree, s.f_ffree
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn create_new(p: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(p)
}

// ---------------------------------------------------------------------------
// Many threads in one directory.
// ---------------------------------------------------------------------------

const WORKERS: u64 = 8;
const ITERS: u64 = 600;
const SHARED: u64 = 6;
const STABLE: u64 = 40;

fn own_content(t: u64, i: u64) -> Vec<u8> {
    pattern(t * 10_000 + i, ((i * 997 + t * 131) % 9000) as usize + 1)
}

fn shared_content(t: u64) -> Vec<u8> {
    pattern(900_000 + t, 3000)
}

fn stable_content(i: u64) -> Vec<u8> {
    pattern(800_000 + i, 500 + i as usize * 10)
}

/// One worker: its own names go through create, write, rename, delete and
/// rename-over; shared names collide with the other workers (EEXIST and
/// ENOENT are the only acceptable failures there).
fn worker(d: &Path, t: u64) {
    for i in 0..ITERS {
        let f = d.join(format!("t{t}_f{i}"));
        let r = d.join(format!("t{t}_r{i}"));
        let mut fh = create_new(&f).unwrap_or_else(|e| panic!("create {}: {e}", f.display()));
        fh.write_all(&own_content(t, i)).unwrap();
        drop(fh);
        std::fs::rename(&f, &r).unwrap_or_else(|e| panic!("rename {}: {e}", f.display()));
        if i % 3 == 0 {
            std::fs::remove_file(&r).unwrap_or_else(|e| panic!("unlink {}: {e}", r.display()));
        } else if i % 5 == 1 {
            std::fs::rename(&r, d.join(format!("t{t}_keep"))).unwrap();
        }

        let k = (t + i) % SHARED;
        let s = d.join(format!("shared_{k}"));
        let what = format!("thread {t} op {} on {}", i % 4, s.display());
        match i % 4 {
            0 => {
                if let Some(mut fh) = allow(create_new(&s), &[libc::EEXIST], &what) {
                    fh.write_all(&shared_content(t)).unwrap();
                }
            }
            1 => {
                allow(std::fs::remove_file(&s), &[libc::ENOENT], &what);
            }
            2 => {
                let to = d.join(format!("shared_{}", (k + 1) % SHARED));
                allow(std::fs::rename(&s, &to), &[libc::ENOENT], &what);
            }
            _ => {
                let to = d.join(format!("shared_{}", (k + 3) % SHARED));
                allow(
                    std::fs::hard_link(&s, &to),
                    &[libc::ENOENT, libc::EEXIST],
                    &what,
                );
            }
        }
    }
}

/// What each worker leaves behind under its own names.
fn expected_own() -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for t in 0..WORKERS {
        let mut keep = None;
        for i in 0..ITERS {
            if i % 3 == 0 {
                continue;
            }
            if i % 5 == 1 {
                keep = Some(i);
            } else {
                m.insert(format!("t{t}_r{i}"), own_content(t, i));
            }
        }
        if let Some(i) = keep {
            m.insert(format!("t{t}_keep"), own_content(t, i));
        }
    }
    for i in 0..STABLE {
        m.insert(format!("stable_{i:02}"), stable_content(i));
    }
    m
}

/// Check the directory after the workers: exactly the expected own and
/// stable names with their contents; shared names hold one worker's complete
/// contents; every inode's link count equals the names it has here.
fn check_one_directory(d: &Path, label: &str) {
    let want = expected_own();
    let mut got: BTreeSet<String> = names_of(d).into_iter().collect();
    let shared: Vec<String> = got
        .iter()
        .filter(|n| n.starts_with("shared_"))
        .cloned()
        .collect();
    for s in &shared {
        got.remove(s);
    }
    let want_names: BTreeSet<String> = want.keys().cloned().collect();
    if got != want_names {
        panic!(
            "{label}: missing {:?}, unexpected {:?}",
            want_names.difference(&got).collect::<Vec<_>>(),
            got.difference(&want_names).collect::<Vec<_>>()
        );
    }
    for (n, c) in &want {
        assert!(
            std::fs::read(d.join(n)).unwrap() == *c,
            "{label}: contents of {n}"
        );
        assert_eq!(
            std::fs::metadata(d.join(n)).unwrap().nlink(),
            1,
            "{label}: nlink of {n}"
        );
    }
    let mut names_of: HashMap<u64, u64> = HashMap::new();
    for s in &shared {
        let md = std::fs::metadata(d.join(s)).unwrap();
        *names_of.entry(md.ino()).or_default() += 1;
        let c = std::fs::read(d.join(s)).unwrap();
        assert!(
            (0..WORKERS).any(|t| c == shared_content(t)),
            "{label}: {s} holds no worker's complete contents ({} bytes)",
            c.len()
        );
    }
    for s in &shared {
        let md = std::fs::metadata(d.join(s)).unwrap();
        assert_eq!(
            md.nlink(),
            names_of[&md.ino()],
            "{label}: nlink of {s} vs. its names"
        );
    }
}

#[test]
fn one_directory_many_threads() {
    let img = mkfs_ext2mfr(64 << 20, 1024);
    let m = Mount::new(&img.path, "threads=8");
    let d = m.p("d");
    std::fs::create_dir(&d).unwrap();
    for i in 0..STABLE {
        std::fs::write(d.join(format!("stable_{i:02}")), stable_content(i)).unwrap();
    }
    let dd = d.clone();
    run_with_timeout(90, "one directory, many threads", move || {
        let done = Arc::new(AtomicBool::new(false));
        let passes = Arc::new(AtomicU64::new(0));
        let mut readers = Vec::new();
        for r in 0..3 {
            let (d, done, passes) = (dd.clone(), done.clone(), passes.clone());
            readers.push(std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    // Every stable name is listed exactly once in every pass,
                    // whatever else changes meanwhile.
                    let list = names_of(&d);
                    for i in 0..STABLE {
                        let n = format!("stable_{i:02}");
                        let c = list.iter().filter(|x| **x == n).count();
                        assert_eq!(c, 1, "reader {r}: {n} listed {c} times");
                    }
                    // No name shows up twice, but a shared one: it may be
                    // removed and made again further on while we list.
                    let mut seen = BTreeSet::new();
                    for n in list.iter().filter(|n| !n.starts_with("shared_")) {
                        assert!(seen.insert(n), "reader {r}: {n} listed twice");
                    }
                    for n in &list {
                        let p = d.join(n);
                        match std::fs::symlink_metadata(&p) {
                            Ok(md) => {
                                assert!(md.is_file(), "reader {r}: {n} is not a regular file")
                            }
                            Err(e) => {
                                assert_eq!(errno(&e), libc::ENOENT, "reader {r}: stat {n}: {e}")
                            }
                        }
                        if let Some(i) = n.strip_prefix("stable_") {
                            let i: u64 = i.parse().unwrap();
                            assert!(
                                std::fs::read(&p).unwrap() == stable_content(i),
                                "reader {r}: contents of {n}"
                            );
                        }
                    }
                    passes.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let workers: Vec<_> = (0..WORKERS)
            .map(|t| {
                let d = dd.clone();
                std::thread::spawn(move || worker(&d, t))
            })
            .collect();
        let mut failed = None;
        for w in workers {
            if let Err(p) = w.join() {
                failed.get_or_insert(p);
            }
        }
        done.store(true, Ordering::Relaxed);
        for r in readers {
            if let Err(p) = r.join() {
                failed.get_or_insert(p);
            }
        }
        if let Some(p) = failed {
            std::panic::resume_unwind(p);
        }
        assert!(
            passes.load(Ordering::Relaxed) >= 3,
            "the readers hardly ran"
        );
    });
    check_one_directory(&d, "after the workers");
    let m = m.remount("ro");
    check_one_directory(&m.p("d"), "after a remount");
    m.unmount_and_check();
}

// ---------------------------------------------------------------------------
// Large concurrent writers.
// ---------------------------------------------------------------------------

const BIG: usize = 12 << 20;
const REC: usize = 8192;

fn big_expected(t: u64) -> Vec<u8> {
    let mut v = pattern(700 + t, BIG);
    // The overwrites each writer does after the sequential pass.
    for k in 0..40u64 {
        let off = ((k * 7_919_993 + t * 104_729) % (BIG as u64 - 20_000)) as usize;
        let p = pattern(5000 + t * 100 + k, 10_000 + k as usize);
        v[off..off + p.len()].copy_from_slice(&p);
    }
    v
}

fn record(t: u64, seq: u64) -> Vec<u8> {
    let mut r = pattern(t << 32 | seq, REC);
    r[..8].copy_from_slice(&t.to_le_bytes());
    r[8..16].copy_from_slice(&seq.to_le_bytes());
    r
}

#[test]
fn concurrent_large_writers() {
    const WRITERS: u64 = 6;
    const APPENDERS: u64 = 4;
    const RECORDS: u64 = 150;
    let img = mkfs_ext2mfr(256 << 20, 4096);
    // A block cache (16 MiB) much smaller than what is written (77 MiB):
    // dirty blocks must be written back to make room, also during fsyncs.
    let m = Mount::new(&img.path, "threads=8,cache=16M");
    let root = m.path().to_path_buf();
    run_with_timeout(90, "large concurrent writers", move || {
        let mut hs = Vec::new();
        for t in 0..WRITERS {
            let p = root.join(format!("big_{t}"));
            hs.push(std::thread::spawn(move || {
                let data = pattern(700 + t, BIG);
                let mut f = File::create(&p).unwrap_or_else(|e| panic!("big_{t}: create: {e}"));
                for c in data.chunks(1 << 20) {
                    f.write_all(c)
                        .unwrap_or_else(|e| panic!("big_{t}: sequential write: {e}"));
                }
                for k in 0..40u64 {
                    let off = (k * 7_919_993 + t * 104_729) % (BIG as u64 - 20_000);
                    f.write_all_at(&pattern(5000 + t * 100 + k, 10_000 + k as usize), off)
                        .unwrap_or_else(|e| panic!("big_{t}: overwrite: {e}"));
                }
                // fsync while the others go on writing.
                f.sync_all()
                    .unwrap_or_else(|e| panic!("big_{t}: fsync: {e}"));
            }));
        }
        for t in 0..APPENDERS {
            let p = root.join("log");
            hs.push(std::thread::spawn(move || {
                let mut f = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&p)
                    .unwrap();
                for seq in 0..RECORDS {
                    f.write_all(&record(t, seq))
                        .unwrap_or_else(|e| panic!("appender {t}: write: {e}"));
                }
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
    });
    let check = |root: &Path, label: &str| {
        for t in 0..WRITERS {
            let got = std::fs::read(root.join(format!("big_{t}"))).unwrap();
            assert!(got == big_expected(t), "{label}: big_{t} contents differ");
        }
        let log = std::fs::read(root.join("log")).unwrap();
        assert_eq!(
            log.len(),
            (APPENDERS * RECORDS) as usize * REC,
            "{label}: log size"
        );
        let mut next = vec![0u64; APPENDERS as usize];
        for r in log.chunks(REC) {
            let t = u64::from_le_bytes(r[..8].try_into().unwrap());
            let seq = u64::from_le_bytes(r[8..16].try_into().unwrap());
            assert!(t < APPENDERS, "{label}: torn or foreign log record");
            assert_eq!(
                seq, next[t as usize],
                "{label}: appender {t}'s records out of order or lost"
            );
            assert!(
                r == record(t, seq),
                "{label}: log record ({t}, {seq}) damaged"
            );
            next[t as usize] += 1;
        }
    };
    check(m.path(), "through the mount");
    m.unmount_and_check();
    for t in 0..WRITERS {
        assert!(
            debugfs_cat(&img.path, &format!("/big_{t}")) == big_expected(t),
            "debugfs: big_{t} contents differ"
        );
    }
    let m = Mount::new(&img.path, "ro");
    check(m.path(), "after a remount");
    m.unmount_and_check();
}

// ---------------------------------------------------------------------------
// Directory renames racing across two parents.
// ---------------------------------------------------------------------------

#[test]
fn directory_renames_across_two_parents() {
    const MOVERS: u64 = 4;
    const ROUNDS: u64 = 400;
    let img = mkfs_ext2mfr(64 << 20, 1024);
    let m = Mount::new(&img.path, "threads=8");
    let (a, b) = (m.p("A"), m.p("B"));
    for p in [&a, &b] {
        std::fs::create_dir(p).unwrap();
    }
    std::fs::create_dir(a.join("n1")).unwrap();
    std::fs::create_dir(b.join("n2")).unwrap();
    std::fs::create_dir(a.join("sx")).unwrap();
    std::fs::create_dir(b.join("sy")).unwrap();
    std::fs::write(a.join("sx/inside"), b"sx").unwrap();
    let (a2, b2) = (a.clone(), b.clone());
    run_with_timeout(60, "directory renames across two parents", move || {
        let (a, b) = (a2, b2);
        let mut hs = Vec::new();
        // Movers: their own directories, made in A, moved to B and back,
        // some removed; the end state is known.
        for t in 0..MOVERS {
            let (a, b) = (a.clone(), b.clone());
            hs.push(std::thread::spawn(move || {
                for i in 0..ROUNDS {
                    let n = format!("t{t}_{i}");
                    std::fs::create_dir(a.join(&n)).unwrap();
                    std::fs::write(a.join(&n).join("f"), n.as_bytes()).unwrap();
                    std::fs::create_dir(a.join(&n).join("sub")).unwrap();
                    std::fs::rename(a.join(&n), b.join(&n)).unwrap();
                    if i % 2 == 0 {
                        std::fs::rename(b.join(&n), a.join(&n)).unwrap();
                    }
                    if i % 3 == 0 {
                        let p = if i % 2 == 0 { a.join(&n) } else { b.join(&n) };
                        std::fs::remove_file(p.join("f")).unwrap();
                        std::fs::remove_dir(p.join("sub")).unwrap();
                        std::fs::remove_dir(&p).unwrap();
                    }
                }
            }));
        }
        // Opposite cross-directory renames at the same time (A->B and B->A).
        for (from, to, name) in [(a.clone(), b.clone(), "sx"), (b.clone(), a.clone(), "sy")] {
            hs.push(std::thread::spawn(move || {
                for _ in 0..ROUNDS * 2 {
                    std::fs::rename(from.join(name), to.join(name)).unwrap();
                    std::fs::rename(to.join(name), from.join(name)).unwrap();
                }
            }));
        }
        // Moving n1 into n2 while moving n2 into n1: at most one may win
        // (the other gets EINVAL or ENOENT), and each undoes its own move.
        for (x, y, nx, ny) in [
            (a.clone(), b.clone(), "n1", "n2"),
            (b.clone(), a.clone(), "n2", "n1"),
        ] {
            hs.push(std::thread::spawn(move || {
                for _ in 0..ROUNDS * 2 {
                    let src = x.join(nx);
                    let dst = y.join(ny).join(nx);
                    let what = format!("rename {} -> {}", src.display(), dst.display());
                    if allow(
                        std::fs::rename(&src, &dst),
                        &[libc::ENOENT, libc::EINVAL],
                        &what,
                    )
                    .is_some()
                    {
                        std::fs::rename(&dst, &src)
                            .unwrap_or_else(|e| panic!("moving {nx} back: {e}"));
                    }
                }
            }));
        }
        // Walkers: list and stat both trees meanwhile.
        let stop = Arc::new(AtomicBool::new(false));
        let mut walkers = Vec::new();
        for _ in 0..2 {
            let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
            walkers.push(std::thread::spawn(move || {
                fn walk(p: &Path, depth: usize) {
                    assert!(
                        depth < 10,
                        "directory tree too deep at {}: a loop?",
                        p.display()
                    );
                    let Some(rd) = allow(std::fs::read_dir(p), &[libc::ENOENT], "readdir") else {
                        return;
                    };
                    for e in rd {
                        let Some(e) = allow(e, &[libc::ENOENT], "readdir entry") else {
                            continue;
                        };
                        let q = e.path();
                        if let Some(md) =
                            allow(std::fs::symlink_metadata(&q), &[libc::ENOENT], "stat")
                        {
                            if md.is_dir() {
                                walk(&q, depth + 1);
                            }
                        }
                    }
                }
                while !stop.load(Ordering::Relaxed) {
                    walk(&a, 0);
                    walk(&b, 0);
                }
            }));
        }
        let mut failed = None;
        for h in hs {
            if let Err(p) = h.join() {
                failed.get_or_insert(p);
            }
        }
        stop.store(true, Ordering::Relaxed);
        for w in walkers {
            if let Err(p) = w.join() {
                failed.get_or_insert(p);
            }
        }
        if let Some(p) = failed {
            std::panic::resume_unwind(p);
        }
    });
    let check = |a: &Path, b: &Path, label: &str| {
        let mut want_a: BTreeSet<String> = ["n1", "sx"].map(String::from).into();
        let mut want_b: BTreeSet<String> = ["n2", "sy"].map(String::from).into();
        for t in 0..MOVERS {
            for i in 0..ROUNDS {
                if i % 3 != 0 {
                    if i % 2 == 0 { &mut want_a } else { &mut want_b }.insert(format!("t{t}_{i}"));
                }
            }
        }
        assert_eq!(
            names_of(a).into_iter().collect::<BTreeSet<_>>(),
            want_a,
            "{label}: A"
        );
        assert_eq!(
            names_of(b).into_iter().collect::<BTreeSet<_>>(),
            want_b,
            "{label}: B"
        );
        for (dir, set) in [(a, &want_a), (b, &want_b)] {
            let subdirs = set.len() as u64;
            assert_eq!(
                std::fs::metadata(dir).unwrap().nlink(),
                2 + subdirs,
                "{label}: nlink of {}",
                dir.display()
            );
            for n in set.iter().filter(|n| n.starts_with('t')) {
                assert_eq!(
                    std::fs::read(dir.join(n).join("f")).unwrap(),
                    n.as_bytes(),
                    "{label}: {n}/f"
                );
                assert_eq!(
                    std::fs::metadata(dir.join(n)).unwrap().nlink(),
                    3,
                    "{label}: nlink of {n}"
                );
            }
        }
        assert_eq!(
            names_of(&a.join("n1")),
            Vec::<String>::new(),
            "{label}: n1 not empty"
        );
        assert_eq!(std::fs::read(a.join("sx/inside")).unwrap(), b"sx");
    };
    check(&a, &b, "after the renames");
    let m = m.remount("ro");
    check(&m.p("A"), &m.p("B"), "after a remount");
    m.unmount_and_check();
}

// ---------------------------------------------------------------------------
// Running out of blocks and inodes.
// ---------------------------------------------------------------------------

/// Write `chunk`-sized pieces to `f` until a write fails; returns the bytes
/// written and the error.
fn write_until_error(f: &mut File, seed: u64, chunk: usize, out: &mut Vec<u8>) -> std::io::Error {
    loop {
        let data = pattern(seed + out.len() as u64, chunk);
        let mut off = 0;
        while off < data.len() {
            match f.write(&data[off..]) {
                Ok(0) => panic!("write returned 0"),
                Ok(n) => {
                    out.extend_from_slice(&data[off..off + n]);
                    off += n;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return e,
            }
        }
    }
}

#[test]
fn full_disk_enospc() {
    let img = mkfs_ext2mfr(4 << 20, 1024);
    let m = Mount::new(&img.path, "");
    let before = statvfs(m.path());
    assert!(
        before.f_bavail < before.f_bfree,
        "the image should reserve blocks"
    );

    let mut f = File::create(m.p("fill")).unwrap();
    let mut written = Vec::new();
    let e = write_until_error(&mut f, 1, 64 << 10, &mut written);
    assert_eq!(errno(&e), libc::ENOSPC, "first failing write: {e}");
    assert!(
        written.len() as u64 > before.f_bfree * before.f_bsize * 9 / 10,
        "only {} bytes fit",
        written.len()
    );
    // Fill the last blocks one at a time: root may use every block, also the reserved ones.
    let e = write_until_error(&mut f, 2, 1024, &mut written);
    assert_eq!(errno(&e), libc::ENOSPC, "small write on a full disk: {e}");
    f.sync_all().unwrap();
    drop(f);
    let full = statvfs(m.path());
    assert_eq!(full.f_bavail, 0, "statfs available on a full disk");
    assert_eq!(
        full.f_bfree, 0,
        "statfs free on a full disk (root may use the reserve)"
    );
    assert_eq!(
        std::fs::metadata(m.p("fill")).unwrap().len(),
        written.len() as u64
    );
    assert!(
        std::fs::read(m.p("fill")).unwrap() == written,
        "contents of the file that filled the disk"
    );

    // What needs no block still works; what needs one fails with ENOSPC and leaves nothing behind.
    File::create(m.p("empty")).unwrap();
    std::os::unix::fs::symlink("fast", m.p("fast_link")).unwrap();
    let e = std::fs::create_dir(m.p("newdir")).unwrap_err();
    assert_eq!(errno(&e), libc::ENOSPC, "mkdir on a full disk: {e}");
    let e = std::os::unix::fs::symlink("s".repeat(200), m.p("slow_link")).unwrap_err();
    assert_eq!(errno(&e), libc::ENOSPC, "slow symlink on a full disk: {e}");
    let e = std::fs::write(m.p("empty"), b"x").unwrap_err();
    assert_eq!(errno(&e), libc::ENOSPC, "write on a full disk: {e}");
    for gone in ["newdir", "slow_link"] {
        assert_eq!(
            errno(&std::fs::symlink_metadata(m.p(gone)).unwrap_err()),
            libc::ENOENT,
            "{gone} left behind"
        );
    }
    assert_eq!(std::fs::metadata(m.p("empty")).unwrap().len(), 0);
    // fill, empty and fast_link hold inodes; the failed creations must give theirs back.
    assert_eq!(
        statvfs(m.path()).f_ffree,
        before.f_ffree - 3,
        "inodes leaked by failed creations"
    );

    // Delete: every block comes back, and writing works again.
    std::fs::remove_file(m.p("fill")).unwrap();
    statvfs_when(m.path(), "blocks leaked by the failed operations", |s| {
        s.f_bfree == before.f_bfree
    });
    let data = pattern(3, 1 << 20);
    std::fs::write(m.p("again"), &data).unwrap();
    std::fs::create_dir(m.p("newdir")).unwrap();
    assert!(std::fs::read(m.p("again")).unwrap() == data);
    m.unmount_and_check();
    assert!(debugfs_cat(&img.path, "/again") == data);
}

#[test]
fn inode_table_exhausted() {
    let img = mkfs_ext2(8 << 10, 1024, &["-N", "64"]);
    let m = Mount::new(&img.path, "");
    let before = statvfs(m.path());
    assert!(
        before.f_ffree > 0 && before.f_ffree < 100,
        "{} free inodes",
        before.f_ffree
    );
    let mut created = 0u64;
    let e = loop {
        match std::fs::write(m.p(&format!("i_{created:03}")), created.to_string()) {
            Ok(()) => created += 1,
            Err(e) => break e,
        }
        assert!(
            created <= before.f_ffree,
            "created more files than there were free inodes"
        );
    };
    assert_eq!(errno(&e), libc::ENOSPC, "create with no free inode: {e}");
    assert_eq!(created, before.f_ffree, "every free inode should be usable");
    assert_eq!(statvfs(m.path()).f_ffree, 0);
    assert!(
        statvfs(m.path()).f_bavail > 0,
        "blocks are not the limit here"
    );
    let failed = m.p(&format!("i_{created:03}"));
    assert_eq!(
        errno(&std::fs::metadata(&failed).unwrap_err()),
        libc::ENOENT,
        "failed create left a name"
    );
    for (what, r) in [
        ("mkdir", std::fs::create_dir(m.p("d"))),
        ("symlink", std::os::unix::fs::symlink("t", m.p("l"))),
        ("mkfifo", {
            // SAFETY: valid C string.
            cvt(unsafe { libc::mkfifo(cpath(&m.p("fifo")).as_ptr(), 0o644) })
        }),
    ] {
        let e = r.expect_err(what);
        assert_eq!(
            errno(&e),
            libc::ENOSPC,
            "{what} with no free inode: {}",
            errname(errno(&e))
        );
    }
    // A hard link needs no inode.
    std::fs::hard_link(m.p("i_020"), m.p("link_to_20")).unwrap();
    // Free ten inodes (unlinking i_020 alone frees none: it has another name).
    std::fs::remove_file(m.p("i_020")).unwrap();
    assert_eq!(statvfs(m.path()).f_ffree, 0);
    for n in 0..10 {
        std::fs::remove_file(m.p(&format!("i_{n:03}"))).unwrap();
    }
    statvfs_when(m.path(), "ten inodes freed", |s| s.f_ffree == 10);
    std::fs::create_dir(m.p("d")).unwrap();
    for n in 0..9 {
        std::fs::write(m.p(&format!("d/again_{n}")), pattern(n, 3000)).unwrap();
    }
    let e = std::fs::write(m.p("one_too_many"), b"x").unwrap_err();
    assert_eq!(errno(&e), libc::ENOSPC);
    assert_eq!(std::fs::read(m.p("link_to_20")).unwrap(), b"20");
    for n in 0..9 {
        assert!(std::fs::read(m.p(&format!("d/again_{n}"))).unwrap() == pattern(n, 3000));
    }
    m.unmount_and_check();
}

/// Blocks reserved for root (`mkfs -m 10`) stay out of reach of uid 65534:
/// its writes end with ENOSPC while the reserve is still free, and root can
/// then still write.
#[test]
fn reserved_blocks_not_for_unprivileged() {
    let img = mkfs_ext2(8 << 10, 1024, &["-m", "10"]);
    let m = Mount::new(&img.path, "allow_other");
    std::fs::set_permissions(m.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = statvfs(m.path());
    let reserve = before.f_bfree - before.f_bavail;
    assert!(reserve > 500, "reserve of {reserve} blocks");

    let target: PathBuf = m.p("user_file");
    let out = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", target.display()))
        .arg("bs=65536")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run dd as uid 65534");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("No space left on device"),
        "dd as uid 65534: {err}"
    );
    let md = std::fs::metadata(&target).unwrap();
    assert_eq!(md.uid(), 65534);
    let after = statvfs(m.path());
    assert_eq!(
        after.f_bavail, 0,
        "available blocks after the unprivileged fill"
    );
    assert_eq!(
        after.f_bfree, reserve,
        "the unprivileged writer must leave exactly the reserve free"
    );
    assert!(
        md.len() > (before.f_bavail - 100) * 1024,
        "uid 65534 only wrote {} bytes",
        md.len()
    );

    // Also no new directory for the user now, but root may still use the reserve.
    let mkdir = Command::new("mkdir")
        .arg(m.p("user_dir"))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        !mkdir.status.success(),
        "unprivileged mkdir on a disk full but for the reserve"
    );
    let data = pattern(9, 200 << 10);
    std::fs::write(m.p("root_file"), &data).unwrap();
    std::fs::create_dir(m.p("root_dir")).unwrap();
    assert!(std::fs::read(m.p("root_file")).unwrap() == data);
    assert!(statvfs(m.path()).f_bfree < reserve - 200);
    m.unmount_and_check();
}
