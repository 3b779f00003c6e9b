//! What a small fixed workload costs in FUSE requests, by opcode, read from
//! the daemon's own counters (`ext2mfr.stats`, `"fuse_requests"`): a bound
//! for each opcode, so that a change that brings back a round trip (a
//! LOOKUP per walk of a missing name, a READLINK per walk of a symlink, an
//! OPEN per open, a FLUSH per close) fails here, over either transport
//! (`FUSE_OPS_OPTS=transport=uring` too).
//!
//! The bounds are what the kernel (6.18) asks of this daemon for the
//! workload, each derived in `bounds` below. The one outside influence is
//! the kernel dropping dentries and inodes under us (another process
//! writing /proc/sys/vm/drop_caches, as benchmarks on a shared machine do):
//! that brings LOOKUPs (and their GETATTRs, FORGETs and READLINKs) back. A
//! workload over its bounds is therefore run once more in a fresh
//! directory, and fails if it is over them again.
//!
//! Like every `fuse_*.rs` file: each test takes `setup()`, mounts through
//! `common::fuse_suite`, and ends with a clean unmount and a strict
//! `e2fsck -fn`.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

/// Files the workload makes.
const N: u64 = 32;

fn by_opcode(mnt: &Path) -> BTreeMap<String, u64> {
    let c = counters(mnt);
    let mut m: BTreeMap<String, u64> = c["fuse_requests"]["by_opcode"]
        .as_object()
        .expect("fuse_requests.by_opcode in ext2mfr.stats")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    m.insert(
        "GETATTR with a handle".into(),
        c["fuse_requests"]["getattr_with_fh"].as_u64().unwrap(),
    );
    m
}

/// The workload, in directory `dir` (relative to the mount), with the
/// requests it cost: by opcode, the counters' reading (one GETXATTR of
/// `ext2mfr.stats`) taken out.
fn run(m: &Mount, dir: &str) -> BTreeMap<String, u64> {
    let before = by_opcode(m.path());
    let p = |rel: String| m.p(&format!("{dir}/{rel}"));
    fs::create_dir(m.p(dir)).unwrap();
    // N files made: open(O_CREAT), two writes, close.
    for i in 0..N {
        let mut f = fs::File::create(p(format!("f{i}"))).unwrap();
        f.write_all(&[b'x'; 50]).unwrap();
        f.write_all(&[b'x'; 50]).unwrap();
    }
    // Each one's attributes.
    for i in 0..N {
        assert_eq!(fs::metadata(p(format!("f{i}"))).unwrap().len(), 100);
    }
    // N names that are not there, three times each.
    for _ in 0..3 {
        for i in 0..N {
            assert!(fs::metadata(p(format!("missing{i}"))).is_err());
        }
    }
    // A symlink, read through three times.
    std::os::unix::fs::symlink("f0", p("link".into())).unwrap();
    for _ in 0..3 {
        assert_eq!(fs::read(p("link".into())).unwrap(), [b'x'; 100]);
    }
    // Every file read whole.
    for i in 0..N {
        assert_eq!(fs::read(p(format!("f{i}"))).unwrap().len(), 100);
    }
    // The directory listed twice.
    for _ in 0..2 {
        assert_eq!(fs::read_dir(m.p(dir)).unwrap().count() as u64, N + 1);
    }
    // Every file removed, then looked for twice.
    for i in 0..N {
        fs::remove_file(p(format!("f{i}"))).unwrap();
    }
    for _ in 0..2 {
        for i in 0..N {
            assert!(fs::metadata(p(format!("f{i}"))).is_err());
        }
    }
    let after = by_opcode(m.path());
    let mut cost: BTreeMap<String, u64> = after
        .iter()
        .map(|(k, &v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|&(_, v)| v > 0)
        .collect();
    // (The GETXATTR that read `after`.)
    if let Some(g) = cost.get_mut("GETXATTR") {
        *g -= 1;
    }
    cost.retain(|_, v| *v > 0);
    cost
}

/// The most each opcode may cost, for a workload run after `first` (the
/// first run on the mount: the kernel has not yet learned that OPEN and
/// FLUSH are not served).
fn bounds(first: bool) -> BTreeMap<&'static str, u64> {
    let n = N;
    BTreeMap::from([
        // The directory, each new file, the symlink's name (each looked
        // up once before it is made); each missing name once (negative
        // entries: not three times), each removed name once (unlink leaves
        // a negative dentry without a lifetime: the kernel asks again,
        // once, and keeps the answer).
        ("LOOKUP", 1 + n + 1 + n + n),
        ("MKDIR", 1),
        // CREATE is answered ENOSYS once per mount; files are made by
        // MKNOD then.
        ("CREATE", u64::from(first)),
        ("MKNOD", n),
        ("WRITE", 2 * n),
        ("SYMLINK", 1),
        // The kernel keeps the target (FUSE_CACHE_SYMLINKS): not three.
        ("READLINK", 1),
        // Each file's first write asks whether it holds
        // security.capability; the kernel remembers the answer (S_NOSEC:
        // only with FUSE_HANDLE_KILLPRIV_V2, without which every write
        // asks) until it next refreshes the file's attributes.
        ("GETXATTR", n),
        // Each stat after the write (which left the size stale); the
        // directory's, for permissions, at the walk after each change in
        // it (a create, the symlink, an unlink), and the root's after the
        // mkdir; a READ or a READDIR leaves the atime stale (relatime), so
        // the fstat of the second open of f0 (through the link, then
        // directly) and of the second listing (glibc's opendir) ask again.
        ("GETATTR", n + (n + 1 + n) + 1 + 2),
        ("GETATTR with a handle", 0),
        // Files are read through the page cache: one READ each (the
        // symlink's target, f0, read already).
        ("READ", n),
        // OPEN and FLUSH are answered ENOSYS once per mount: the open
        // after the first MKNOD learns it, so no created file's close is a
        // RELEASE (a CREATE's would be, until the first OPEN).
        ("OPEN", u64::from(first)),
        ("FLUSH", u64::from(first)),
        ("RELEASE", 0),
        // Directories are opened (see ARCHITECTURE.md): twice, each
        // listing two READDIRs (the entries, then the end).
        ("OPENDIR", 2),
        ("RELEASEDIR", 2),
        ("READDIR", 4),
        ("UNLINK", n),
        // Each removed inode, once the kernel lets it go (fuser hands a
        // BATCH_FORGET over as its FORGETs; our transports count it once).
        ("FORGET", n),
        ("BATCH_FORGET", n),
    ])
}

fn over(cost: &BTreeMap<String, u64>, bounds: &BTreeMap<&str, u64>) -> Vec<String> {
    cost.iter()
        .filter(|(op, &n)| n > bounds.get(op.as_str()).copied().unwrap_or(0))
        .map(|(op, n)| {
            format!(
                "{op}: {n} > {}",
                bounds.get(op.as_str()).copied().unwrap_or(0)
            )
        })
        .collect()
}

#[test]
fn a_small_workload_costs_at_most_its_requests() {
    let _serial = setup();
    let img = mkfs_ext2mfr(32 << 20, 4096);
    let m = mount(&img.path, "");
    for (dir, first) in [("w1", true), ("w2", false)] {
        let cost = run(&m, dir);
        let bad = over(&cost, &bounds(first));
        if !bad.is_empty() {
            assert!(first, "over the bounds twice: {bad:?}; cost {cost:?}");
            eprintln!(
                "{dir}: over the bounds: {bad:?}; cost {cost:?} \
                 (once more in a fresh directory, in case the kernel dropped its caches)"
            );
            continue;
        }
        // The counters count: what must have come did.
        assert_eq!(cost.get("MKNOD"), Some(&N), "{cost:?}");
        assert_eq!(cost.get("UNLINK"), Some(&N), "{cost:?}");
        assert!(cost.get("LOOKUP").copied().unwrap_or(0) > N, "{cost:?}");
        assert_eq!(cost.get("READLINK"), Some(&1), "{cost:?}");
        if first {
            assert_eq!(cost.get("OPEN"), Some(&1), "{cost:?}");
        }
        break;
    }
    m.unmount_and_check();
}
