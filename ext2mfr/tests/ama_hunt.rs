//! A systematic hunt for AMA under-allocations (issue 13 §4).
//!
//! Several threads create, write (direct, single, double and triple
//! indirect), append and fsync, truncate up and down (ftruncate and
//! `O_TRUNC`), chmod/chown/utimes, rename files and directories across a
//! directory tree many levels deep (also over existing targets, also
//! `RENAME_EXCHANGE`), link/unlink, mkdir/rmdir, make fast and slow
//! symlinks, unlink open files, set and remove extended attributes (in the
//! inode, in shared and own blocks) and ACLs (default ones inherited), on an image made by the real
//! `mkfs.ext2`, mounted with the smallest cache the daemon accepts and
//! remounted between phases, at 1 KiB and 4 KiB blocks (with resident and
//! with non-resident bitmaps).
//!
//! After every phase, the daemon's counters must show no under-allocation
//! (`ama.under_allocations`) and no fault of a request's own
//! (`requests.faulted` but the `cascaded` ones: nothing is
//! injected, so a fault is a bug, most likely a strict pool's panic on an
//! under-allocation in a debug build). Each phase ends with an *isolation
//! pass*: every operation kind alone, single-threaded, with the counters
//! read before and after, so that an under-allocation is pinned to the
//! operation (and the shape of its arguments) that caused it. The final
//! image must be `e2fsck -fn` clean.
//!
//! Seeded: `AMA_HUNT_SEED=N` reproduces a run (the seed is printed);
//! `AMA_HUNT_SECS=S` sets the length of a concurrent phase (default 6).

mod common;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKERS: usize = 4;
const PHASES: usize = 3;

// ------------------------------------------------------------- counters

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

/// The figures that matter here, one line per operation type.
fn report(c: &Value) -> String {
    let a = &c["ama"];
    let r = &c["requests"];
    let mut s = format!(
        "requests {} faulted {} (cascaded {}) retries {} failed_after_fault {}; ama \
         under-allocations {}, reservations {} (failed {}); cache hits {} misses {} evictions {}\n",
        n(r, "total"),
        n(r, "faulted"),
        n(r, "cascaded"),
        n(r, "retries"),
        n(r, "failed_after_fault"),
        n(a, "under_allocations"),
        n(a, "reservations"),
        n(a, "reservation_failures"),
        n(&c["cache"], "hits"),
        n(&c["cache"], "misses"),
        n(&c["cache"], "evictions"),
    );
    s += "    op           requests  restarts  under  max_reserved  max_used\n";
    if let Some(ops) = a["by_op"].as_object() {
        for (op, o) in ops {
            s += &format!(
                "    {op:<12} {:>8} {:>9} {:>6} {:>13} {:>9}\n",
                n(o, "requests"),
                n(o, "restarts"),
                n(o, "under_allocations"),
                n(o, "max_reserved"),
                n(o, "max_used"),
            );
        }
    }
    s
}

/// Under-allocations per operation type.
fn under_by_op(c: &Value) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    if let Some(ops) = c["ama"]["by_op"].as_object() {
        for (op, o) in ops {
            let u = n(o, "under_allocations");
            if u > 0 {
                m.insert(op.clone(), u);
            }
        }
    }
    m
}

fn restarts_by_op(c: &Value) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    if let Some(ops) = c["ama"]["by_op"].as_object() {
        for (op, o) in ops {
            m.insert(op.clone(), n(o, "restarts"));
        }
    }
    m
}

/// Requests rolled back for a fault of their own. A cascade (a request
/// that read what a rolled-back request wrote) is not counted: without
/// injection it follows a rollback that is no fault (an error result after
/// changes, or a restart on a stale estimate), by the recovery design.
fn faulted(c: &Value) -> u64 {
    n(&c["requests"], "faulted") - n(&c["requests"], "cascaded")
}

fn under(c: &Value) -> u64 {
    n(&c["ama"], "under_allocations")
}

/// The daemon's log lines about under-allocations and rolled-back
/// requests, each distinct message once with its count (in order of first
/// appearance), from byte `from` of the log on.
fn log_findings(log: &Path, from: usize) -> (Vec<(String, usize)>, usize) {
    let text = fs::read(log).unwrap_or_default();
    let end = text.len();
    let text = String::from_utf8_lossy(&text[from.min(end)..]).into_owned();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for l in text.lines() {
        // A cascade is the recovery design at work (see `faulted`).
        if l.contains("a request it depended on was rolled back") {
            continue;
        }
        let level = l.split(']').next().unwrap_or("");
        if !(l.contains("under-allocation")
            || l.contains("rolled back")
            || l.contains("panicked")
            || level.contains("ERROR")
            || level.contains("WARN"))
        {
            continue;
        }
        // Drop the logger's timestamp prefix so repeats fold.
        let msg = match l.find("] ") {
            Some(i) => l[i + 2..].to_string(),
            None => l.to_string(),
        };
        match seen.iter_mut().find(|(m, _)| *m == msg) {
            Some((_, k)) => *k += 1,
            None => seen.push((msg, 1)),
        }
    }
    (seen, end)
}

fn fmt_findings(f: &[(String, usize)]) -> String {
    let mut s = String::new();
    for (m, k) in f.iter().take(40) {
        s += &format!("      ({k}x) {m}\n");
    }
    if f.len() > 40 {
        s += &format!("      ... {} more distinct lines\n", f.len() - 40);
    }
    s
}

// ------------------------------------------------------------- the tree

/// Names are short so that deep paths stay well below PATH_MAX.
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name() != "lost+found")
        .map(|e| e.path())
        .collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "lost+found")
        .map(|e| e.path())
        .collect()
}

/// A random directory: a random walk down from the root, stopping at each
/// level with probability `stop` (small: deep directories).
fn random_dir(root: &Path, rng: &mut StdRng, stop: f64) -> PathBuf {
    let mut cur = root.to_path_buf();
    for _ in 0..200 {
        let subs = subdirs(&cur);
        if subs.is_empty() || rng.gen_bool(stop) {
            break;
        }
        cur = subs[rng.gen_range(0..subs.len())].clone();
    }
    cur
}

fn random_file(root: &Path, rng: &mut StdRng) -> Option<PathBuf> {
    for _ in 0..6 {
        let d = random_dir(root, rng, 0.25);
        let f = files(&d);
        if !f.is_empty() {
            return Some(f[rng.gen_range(0..f.len())].clone());
        }
    }
    None
}

fn depth(root: &Path, p: &Path) -> usize {
    p.strip_prefix(root).map_or(0, |r| r.components().count())
}

/// Phase 0: four chains ten directories deep, with files and side
/// directories along the way.
fn build_tree(root: &Path, rng: &mut StdRng, bs: u64) {
    for t in 0..WORKERS {
        let mut p = root.join(format!("t{t}"));
        for level in 0..10 {
            fs::create_dir_all(&p).unwrap();
            fs::create_dir(p.join(format!("s{level}"))).unwrap();
            for f in 0..3 {
                let data = pattern(rng.gen(), rng.gen_range(0..3 * bs as usize));
                fs::write(p.join(format!("f{level}_{f}")), data).unwrap();
            }
            p = p.join(format!("n{level}"));
        }
    }
}

// ------------------------------------------------------------ operations

/// Errors the races between workers make normal.
fn expected(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENOENT
                | libc::EEXIST
                | libc::ENOTEMPTY
                | libc::EINVAL
                | libc::ENOTDIR
                | libc::EISDIR
                | libc::ENAMETOOLONG
                | libc::EMLINK
                | libc::ENOSPC
                | libc::EFBIG
                // link(2) of what a concurrent RENAME_EXCHANGE made a
                // directory
                | libc::EPERM
        )
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Create,
    WriteAt,
    AppendFsync,
    TruncDown,
    TruncUp,
    OTrunc,
    Chmod,
    Chown,
    Utimes,
    RenameFile,
    RenameFileOver,
    RenameDir,
    RenameDirOver,
    Exchange,
    RenameDirCold,
    ExchangeCold,
    Churn,
    Link,
    Unlink,
    UnlinkOpen,
    Mkdir,
    Rmdir,
    Symlink,
    Read,
    Stat,
    Xattr,
    Acl,
}

const KINDS: &[(Kind, u32)] = &[
    (Kind::Create, 10),
    (Kind::WriteAt, 12),
    (Kind::AppendFsync, 8),
    (Kind::TruncDown, 6),
    (Kind::TruncUp, 4),
    (Kind::OTrunc, 3),
    (Kind::Chmod, 3),
    (Kind::Chown, 3),
    (Kind::Utimes, 3),
    (Kind::RenameFile, 6),
    (Kind::RenameFileOver, 4),
    (Kind::RenameDir, 8),
    (Kind::RenameDirOver, 3),
    (Kind::Exchange, 3),
    (Kind::RenameDirCold, 6),
    (Kind::ExchangeCold, 3),
    (Kind::Churn, 1),
    (Kind::Link, 4),
    (Kind::Unlink, 5),
    (Kind::UnlinkOpen, 2),
    (Kind::Mkdir, 6),
    (Kind::Rmdir, 3),
    (Kind::Symlink, 4),
    (Kind::Read, 5),
    (Kind::Stat, 3),
    (Kind::Xattr, 6),
    (Kind::Acl, 3),
];

fn pick_kind(rng: &mut StdRng) -> Kind {
    let total: u32 = KINDS.iter().map(|k| k.1).sum();
    let mut x = rng.gen_range(0..total);
    for &(k, w) in KINDS {
        if x < w {
            return k;
        }
        x -= w;
    }
    unreachable!()
}

/// Where a write or a truncate lands: direct, single, double or triple
/// indirect blocks (triple only at 1 KiB blocks, where it starts at 64 MiB).
fn random_offset(rng: &mut StdRng, bs: u64) -> u64 {
    let p = bs / 4;
    let lblk = match rng.gen_range(0..100) {
        0..=34 => rng.gen_range(0..12),
        35..=59 => 12 + rng.gen_range(0..p),
        60..=92 => 12 + p + rng.gen_range(0..4 * p),
        _ if bs == 1024 => 12 + p + p * p + rng.gen_range(0..2 * p),
        _ => 12 + p + rng.gen_range(0..16 * p),
    };
    lblk * bs
        + if rng.gen_bool(0.5) {
            0
        } else {
            rng.gen_range(0..bs)
        }
}

/// Run one operation; `Ok(description)` or the error with the description.
fn run_op(
    root: &Path,
    rng: &mut StdRng,
    bs: u64,
    tid: usize,
    ctr: &mut u64,
    k: Kind,
    deep: &Mutex<Vec<PathBuf>>,
) -> Result<String, (String, io::Error)> {
    *ctr += 1;
    let uniq = format!("{tid}x{ctr}");
    macro_rules! t {
        ($what:expr, $e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Err(($what, e)),
            }
        };
    }
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    // "VERB a (depth N) -> b (depth M)": renames are told by how deep they reach.
    let pair = |verb: &str, a: &Path, arrow: &str, b: &Path| {
        format!(
            "{verb} {} (depth {}) {arrow} {} (depth {})",
            rel(a),
            depth(root, a),
            rel(b),
            depth(root, b)
        )
    };
    match k {
        Kind::Create => {
            let d = random_dir(root, rng, 0.2);
            let p = d.join(format!("f{uniq}"));
            let len = rng.gen_range(0..4 * bs as usize);
            let what = format!(
                "create {} ({len} bytes, depth {})",
                rel(&p),
                depth(root, &p)
            );
            t!(what.clone(), fs::write(&p, pattern(rng.gen(), len)));
            Ok(what)
        }
        Kind::WriteAt => {
            let Some(p) = random_file(root, rng) else {
                return Ok("write: no file".into());
            };
            let off = random_offset(rng, bs);
            let len = rng.gen_range(1..3 * bs as usize);
            let what = format!("pwrite {} at {off} len {len}", rel(&p));
            let f = t!(what.clone(), OpenOptions::new().write(true).open(&p));
            t!(what.clone(), f.write_all_at(&pattern(rng.gen(), len), off));
            if rng.gen_bool(0.3) {
                t!(what.clone(), f.sync_all());
            }
            Ok(what)
        }
        Kind::AppendFsync => {
            let Some(p) = random_file(root, rng) else {
                return Ok("append: no file".into());
            };
            let len = if rng.gen_bool(0.5) {
                bs as usize * rng.gen_range(1..3)
            } else {
                rng.gen_range(1..2 * bs as usize)
            };
            let what = format!("append+fsync {} len {len}", rel(&p));
            let mut f = t!(what.clone(), OpenOptions::new().append(true).open(&p));
            t!(what.clone(), f.write_all(&pattern(rng.gen(), len)));
            if rng.gen_bool(0.5) {
                t!(what.clone(), f.sync_data());
            } else {
                t!(what.clone(), f.sync_all());
            }
            Ok(what)
        }
        Kind::TruncDown | Kind::TruncUp => {
            let Some(p) = random_file(root, rng) else {
                return Ok("truncate: no file".into());
            };
            let size = t!(format!("stat {}", rel(&p)), fs::metadata(&p)).len();
            let new = if k == Kind::TruncDown {
                match rng.gen_range(0..4) {
                    0 => 0,
                    // block-aligned
                    1 => (rng.gen_range(0..=size) / bs) * bs,
                    // unaligned, within the last block or anywhere
                    2 => size.saturating_sub(rng.gen_range(1..bs)),
                    _ => rng.gen_range(0..=size),
                }
            } else if rng.gen_bool(0.5) {
                size + rng.gen_range(1..4 * bs)
            } else {
                random_offset(rng, bs).max(size)
            };
            let what = format!("ftruncate {} {size} -> {new}", rel(&p));
            let f = t!(what.clone(), OpenOptions::new().write(true).open(&p));
            t!(what.clone(), f.set_len(new));
            if rng.gen_bool(0.3) {
                t!(what.clone(), f.sync_all());
            }
            Ok(what)
        }
        Kind::OTrunc => {
            let Some(p) = random_file(root, rng) else {
                return Ok("O_TRUNC: no file".into());
            };
            let len = rng.gen_range(0..2 * bs as usize);
            let what = format!("open O_TRUNC {} then write {len}", rel(&p));
            let mut f = t!(
                what.clone(),
                OpenOptions::new().write(true).truncate(true).open(&p)
            );
            t!(what.clone(), f.write_all(&pattern(rng.gen(), len)));
            Ok(what)
        }
        Kind::Chmod => {
            let p = if rng.gen_bool(0.7) {
                random_file(root, rng).unwrap_or_else(|| root.join("t0"))
            } else {
                random_dir(root, rng, 0.3)
            };
            let mode = if p.is_dir() {
                0o755
            } else {
                rng.gen_range(0o600..0o7777) | 0o600
            };
            let what = format!("chmod {} {mode:o}", rel(&p));
            t!(
                what.clone(),
                fs::set_permissions(&p, fs::Permissions::from_mode(mode))
            );
            Ok(what)
        }
        Kind::Chown => {
            let p = random_file(root, rng).unwrap_or_else(|| root.join("t0"));
            let (u, g): (u32, u32) = match rng.gen_range(0..3) {
                0 => (u32::MAX, u32::MAX), // chown(-1, -1)
                1 => (rng.gen_range(0..3), u32::MAX),
                _ => (rng.gen_range(0..3), rng.gen_range(0..3)),
            };
            let what = format!("chown {} {u} {g}", rel(&p));
            t!(what.clone(), chown(&p, u, g));
            Ok(what)
        }
        Kind::Utimes => {
            let p = if rng.gen_bool(0.7) {
                random_file(root, rng).unwrap_or_else(|| root.join("t0"))
            } else {
                random_dir(root, rng, 0.3)
            };
            let atime = (
                rng.gen_range(0..2_000_000_000),
                rng.gen_range(0..1_000_000_000),
            );
            let what = format!("utimensat {}", rel(&p));
            t!(what.clone(), utimens(&p, atime, (0, libc::UTIME_NOW)));
            Ok(what)
        }
        Kind::RenameFile | Kind::RenameFileOver => {
            let Some(src) = random_file(root, rng) else {
                return Ok("rename file: no file".into());
            };
            let d = random_dir(root, rng, 0.15);
            let dst = if k == Kind::RenameFileOver {
                let f = files(&d);
                if f.is_empty() {
                    d.join(format!("r{uniq}"))
                } else {
                    f[rng.gen_range(0..f.len())].clone()
                }
            } else {
                d.join(format!("r{uniq}"))
            };
            let what = format!(
                "rename file {} -> {} (target depth {})",
                rel(&src),
                rel(&dst),
                depth(root, &dst)
            );
            t!(what.clone(), fs::rename(&src, &dst));
            Ok(what)
        }
        Kind::RenameDir | Kind::RenameDirOver => {
            // A shallow directory (a big subtree) into a deep one: the
            // check that it does not go into itself walks up the target's
            // ancestors.
            let src = random_dir(root, rng, 0.4);
            if src == root {
                return Ok("rename dir: root".into());
            }
            let d = random_dir(root, rng, 0.08);
            let dst = if k == Kind::RenameDirOver {
                // Over an existing (perhaps empty) directory.
                let s = subdirs(&d);
                let empty: Vec<&PathBuf> = s.iter().filter(|x| entries(x).is_empty()).collect();
                if empty.is_empty() {
                    d.join(format!("e{uniq}"))
                } else {
                    empty[rng.gen_range(0..empty.len())].clone()
                }
            } else {
                d.join(format!("m{uniq}"))
            };
            let what = pair("rename dir", &src, "->", &dst);
            t!(what.clone(), fs::rename(&src, &dst));
            Ok(what)
        }
        Kind::Exchange => {
            let a = random_dir(root, rng, 0.3);
            let b = random_dir(root, rng, 0.1);
            let b = if rng.gen_bool(0.3) {
                random_file(root, rng).unwrap_or(b)
            } else {
                b
            };
            if a == root || b == root {
                return Ok("exchange: root".into());
            }
            let what = pair("renameat2 EXCHANGE", &a, "<->", &b);
            t!(what.clone(), rename2(&a, &b, libc::RENAME_EXCHANGE));
            Ok(what)
        }
        Kind::RenameDirCold | Kind::ExchangeCold => {
            // Deep directories whose paths the kernel resolved a while ago
            // (its dentries live an hour): the rename reaches the daemon
            // without a lookup or readdir of their ancestors having made
            // them cached there.
            let pick = |rng: &mut StdRng| {
                let d = deep.lock().unwrap();
                (!d.is_empty()).then(|| d[rng.gen_range(0..d.len())].clone())
            };
            let Some(dst_dir) = pick(rng) else {
                return Ok("cold rename: no deep directory yet".into());
            };
            if k == Kind::RenameDirCold {
                let src = random_dir(root, rng, 0.5);
                if src == root {
                    return Ok("cold rename: root".into());
                }
                let dst = dst_dir.join(format!("c{uniq}"));
                let what = pair("cold rename dir", &src, "->", &dst);
                t!(what.clone(), fs::rename(&src, &dst));
                Ok(what)
            } else {
                let Some(b) = pick(rng) else {
                    return Ok("cold exchange: nothing".into());
                };
                let what = pair("cold renameat2 EXCHANGE", &dst_dir, "<->", &b);
                t!(what.clone(), rename2(&dst_dir, &b, libc::RENAME_EXCHANGE));
                Ok(what)
            }
        }
        Kind::Churn => {
            let what = "churn the cache".to_string();
            t!(
                what.clone(),
                churn(root, bs, &format!("churn{uniq}"), 1 << 20)
            );
            Ok(what)
        }
        Kind::Link => {
            let Some(src) = random_file(root, rng) else {
                return Ok("link: no file".into());
            };
            let d = random_dir(root, rng, 0.2);
            let dst = d.join(format!("l{uniq}"));
            let what = format!("link {} -> {}", rel(&src), rel(&dst));
            t!(what.clone(), fs::hard_link(&src, &dst));
            Ok(what)
        }
        Kind::Unlink => {
            let d = random_dir(root, rng, 0.2);
            let e: Vec<PathBuf> = entries(&d)
                .into_iter()
                .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()))
                .collect();
            if e.is_empty() {
                return Ok("unlink: nothing".into());
            }
            let p = e[rng.gen_range(0..e.len())].clone();
            let what = format!("unlink {}", rel(&p));
            t!(what.clone(), fs::remove_file(&p));
            Ok(what)
        }
        Kind::UnlinkOpen => {
            let d = random_dir(root, rng, 0.2);
            let p = d.join(format!("o{uniq}"));
            let what = format!("unlink-while-open {}", rel(&p));
            let mut f = t!(
                what.clone(),
                OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .read(true)
                    .write(true)
                    .open(&p)
            );
            t!(
                what.clone(),
                f.write_all(&pattern(rng.gen(), 2 * bs as usize))
            );
            t!(what.clone(), fs::remove_file(&p));
            t!(
                what.clone(),
                f.write_all_at(&pattern(rng.gen(), bs as usize), random_offset(rng, bs))
            );
            let mut b = [0u8; 16];
            t!(what.clone(), f.seek(SeekFrom::Start(0)).map(|_| ()));
            t!(what.clone(), f.read(&mut b).map(|_| ()));
            drop(f);
            Ok(what)
        }
        Kind::Mkdir => {
            let mut d = random_dir(root, rng, 0.1);
            let levels = rng.gen_range(1..=3);
            let what = format!(
                "mkdir {levels} levels under {} (depth {})",
                rel(&d),
                depth(root, &d)
            );
            for l in 0..levels {
                d = d.join(format!("d{uniq}_{l}"));
                t!(what.clone(), fs::create_dir(&d));
                if rng.gen_bool(0.3) {
                    t!(
                        what.clone(),
                        fs::write(d.join("x"), pattern(rng.gen(), 100))
                    );
                }
            }
            Ok(what)
        }
        Kind::Rmdir => {
            let d = random_dir(root, rng, 0.2);
            let s = subdirs(&d);
            if s.is_empty() {
                return Ok("rmdir: nothing".into());
            }
            let p = s[rng.gen_range(0..s.len())].clone();
            // Empty it of files first, sometimes (making rmdir succeed).
            if rng.gen_bool(0.5) {
                for e in entries(&p) {
                    if fs::symlink_metadata(&e).is_ok_and(|m| !m.is_dir()) {
                        let _ = fs::remove_file(&e);
                    }
                }
            }
            let what = format!("rmdir {}", rel(&p));
            t!(what.clone(), fs::remove_dir(&p));
            Ok(what)
        }
        Kind::Symlink => {
            let d = random_dir(root, rng, 0.2);
            let p = d.join(format!("s{uniq}"));
            let len = if rng.gen_bool(0.5) {
                rng.gen_range(1..60)
            } else {
                rng.gen_range(60..bs as usize)
            };
            let target: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let what = format!("symlink {} ({len} bytes)", rel(&p));
            t!(what.clone(), std::os::unix::fs::symlink(&target, &p));
            t!(what.clone(), fs::read_link(&p).map(|_| ()));
            Ok(what)
        }
        Kind::Read => {
            let Some(p) = random_file(root, rng) else {
                return Ok("read: no file".into());
            };
            let off = random_offset(rng, bs);
            let mut buf = vec![0u8; rng.gen_range(1..4 * bs as usize)];
            let what = format!("pread {} at {off}", rel(&p));
            let f = t!(what.clone(), fs::File::open(&p));
            t!(what.clone(), f.read_at(&mut buf, off).map(|_| ()));
            Ok(what)
        }
        Kind::Stat => {
            let d = random_dir(root, rng, 0.2);
            for e in entries(&d) {
                let _ = fs::symlink_metadata(&e);
            }
            Ok(format!("stat all in {}", rel(&d)))
        }
        Kind::Xattr => {
            let p = if rng.gen_bool(0.7) {
                random_file(root, rng).unwrap_or_else(|| root.join("t0"))
            } else {
                random_dir(root, rng, 0.3)
            };
            // Small ones fit in a large inode; large ones take a block, and
            // few distinct values make equal blocks that are shared.
            let name = format!("user.k{}", rng.gen_range(0..4));
            let len = match rng.gen_range(0..3) {
                0 => rng.gen_range(0..40),
                1 => rng.gen_range(100..bs as usize / 2),
                _ => 300,
            };
            let value = vec![b'a' + rng.gen_range(0..3u8); len];
            if rng.gen_bool(0.25) {
                let what = format!("removexattr {} {name}", rel(&p));
                match removexattr(&p, &name) {
                    Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
                    r => t!(what.clone(), r),
                }
                return Ok(what);
            }
            let what = format!("setxattr {} {name} ({len} bytes)", rel(&p));
            t!(what.clone(), setxattr(&p, &name, &value));
            Ok(what)
        }
        Kind::Acl => {
            let d = rng.gen_bool(0.4);
            let p = if d {
                random_dir(root, rng, 0.3)
            } else {
                random_file(root, rng).unwrap_or_else(|| root.join("t0"))
            };
            let id = rng.gen_range(1000..1004);
            let acl = acl_xattr(&[(1, 7, 0), (2, 5, id), (4, 5, 0), (0x10, 7, 0), (0x20, 5, 0)]);
            // A default ACL makes what is created in the directory inherit.
            let name = if d && rng.gen_bool(0.5) {
                "system.posix_acl_default"
            } else {
                "system.posix_acl_access"
            };
            let what = format!("setfacl {} {name} u:{id}", rel(&p));
            match setxattr(&p, name, &acl) {
                // A default ACL on what a concurrent rename or exchange
                // has just made a file: the kernel refuses it with EACCES
                // (as it does on any non-directory).
                Err(e)
                    if name == "system.posix_acl_default"
                        && e.raw_os_error() == Some(libc::EACCES) => {}
                r => t!(what.clone(), r),
            }
            Ok(what)
        }
    }
}

// ------------------------------------------------------------- the hunt

struct Cfg {
    label: &'static str,
    bs: u32,
    size_kib: u64,
    mkfs_extra: &'static [&'static str],
    opts: &'static str,
}

#[derive(Default)]
struct Unexpected {
    /// (description, error), the first few.
    first: Vec<String>,
    count: u64,
}

/// What one phase found.
struct Finding {
    where_: String,
    what: String,
}

fn phase_secs() -> f64 {
    std::env::var("AMA_HUNT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6.0)
}

/// The concurrent stress: `WORKERS` threads for `secs` seconds.
fn stress(root: &Path, bs: u64, seed: u64, secs: f64) -> (u64, Unexpected, BTreeMap<Kind, u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(Mutex::new(Unexpected::default()));
    let mix = Arc::new(Mutex::new(BTreeMap::new()));
    let deep: Arc<Mutex<Vec<PathBuf>>> = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    std::thread::scope(|s| {
        for tid in 0..WORKERS {
            let (stop, ops, bad, mix, deep) = (
                stop.clone(),
                ops.clone(),
                bad.clone(),
                mix.clone(),
                deep.clone(),
            );
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed ^ ((tid as u64 + 1) * 0x9E37_79B9));
                let mut ctr = 0u64;
                let mut local: BTreeMap<Kind, u64> = BTreeMap::new();
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let k = pick_kind(&mut rng);
                    *local.entry(k).or_default() += 1;
                    if rng.gen_bool(0.05) {
                        // Remember a deep directory (its path is resolved
                        // now) for the cold renames.
                        let d = random_dir(root, &mut rng, 0.03);
                        if depth(root, &d) >= 12 {
                            let _ = fs::metadata(&d);
                            let mut l = deep.lock().unwrap();
                            if l.len() >= 64 {
                                let i = rng.gen_range(0..l.len());
                                l[i] = d;
                            } else {
                                l.push(d);
                            }
                        }
                    }
                    if let Err((what, e)) = run_op(root, &mut rng, bs, tid, &mut ctr, k, &deep) {
                        if !expected(&e) {
                            let mut b = bad.lock().unwrap();
                            b.count += 1;
                            if b.first.len() < 20 {
                                b.first.push(format!("{what}: {e}"));
                            }
                        }
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                }
                let mut m = mix.lock().unwrap();
                for (k, v) in local {
                    *m.entry(k).or_default() += v;
                }
            });
        }
    });
    stop.store(true, Ordering::Relaxed);
    let bad = std::mem::take(&mut *bad.lock().unwrap());
    let mix = std::mem::take(&mut *mix.lock().unwrap());
    (ops.load(Ordering::Relaxed), bad, mix)
}

/// Write `bytes` of a new file in 64 KiB writes, fsync (the whole file
/// system: the daemon's fsync syncs it all, so dirty blocks become clean and
/// evictable), and unlink it: the daemon's block cache then holds little of
/// what was there before.
fn churn(root: &Path, bs: u64, name: &str, bytes: usize) -> io::Result<()> {
    let p = root.join(name);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&p)?;
    let chunk = pattern(bs, 64 << 10);
    let mut done = 0;
    while done < bytes {
        f.write_all(&chunk)?;
        done += chunk.len();
    }
    f.sync_all()?;
    drop(f);
    fs::remove_file(&p)
}

/// Free space on the file system at `root`, in bytes.
fn free_bytes(root: &Path) -> u64 {
    let c = std::ffi::CString::new(root.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs writes into the zeroed struct; `c` is a valid path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0, "statvfs");
    st.f_bavail as u64 * st.f_frsize as u64
}

/// Remove the largest regular files under `root` until `want` bytes are
/// free (or none are left to remove).
fn make_room(root: &Path, want: u64) {
    if free_bytes(root) >= want {
        return;
    }
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(md) if md.is_dir() => stack.push(e.path()),
                Ok(md) if md.is_file() => files.push((md.len(), e.path())),
                _ => {}
            }
        }
    }
    files.sort();
    while free_bytes(root) < want {
        let Some((_, p)) = files.pop() else { break };
        let _ = fs::remove_file(p);
    }
}

fn sync_fs(root: &Path) {
    let f = fs::File::open(root).unwrap();
    f.sync_all().unwrap();
}

fn mkchain(base: &Path, n: usize) -> PathBuf {
    let mut p = base.to_path_buf();
    for i in 0..n {
        p = p.join(format!("c{i}"));
    }
    fs::create_dir_all(&p).unwrap();
    p
}

/// Targeted probes: the shapes of request the issue suspects, each set up
/// so that what it touches is not cached in the daemon (the kernel still
/// knows the paths: no lookups warm the daemon's cache), with the counters
/// read around the one call that matters.
fn probes(m: &Mount, bs: u64, tag: &str, log_pos: &mut usize) -> Vec<String> {
    let root = m.path();
    let cold = 4 << 20; // four times the cache
                        // The stress may have filled the image (how far depends on how many
                        // operations its seconds allow): the probes' own files and churn need
                        // room, or their setup fails with ENOSPC.
    make_room(root, 2 * cold as u64);
    let mut out = Vec::new();
    let mut summary = Vec::new();
    let mut measure = |name: &str, f: &mut dyn FnMut() -> io::Result<()>| {
        let before = counters(root);
        let r = f();
        let after = counters(root);
        let du = under(&after) - under(&before);
        let df = faulted(&after) - faulted(&before);
        let (lines, pos) = log_findings(&m.log, *log_pos);
        *log_pos = pos;
        let rs: Vec<String> = {
            let (a, b) = (restarts_by_op(&after), restarts_by_op(&before));
            a.iter()
                .filter(|(op, v)| b.get(*op).copied().unwrap_or(0) < **v)
                .map(|(op, v)| format!("{op} +{}", v - b.get(op).copied().unwrap_or(0)))
                .collect()
        };
        summary.push(format!("{name}: under +{du} faulted +{df}"));
        if du > 0 || df > 0 || r.as_ref().is_err_and(|e| !expected(e)) {
            out.push(format!(
                "  probe {name}: {:?}: under +{du} {:?}, faulted +{df}, restarts {rs:?}\n{}",
                r.as_ref().map_err(|e| e.to_string()),
                under_by_op(&after),
                fmt_findings(&lines)
            ));
        }
    };

    // setattr: a file of whole blocks (cached: just written) truncated to
    // a size inside its last kept block, whose tail is then zeroed.
    let f1 = root.join(format!("pt{tag}a"));
    fs::write(&f1, pattern(1, 3 * bs as usize)).unwrap();
    measure(
        "truncate 3 whole blocks -> unaligned (tail cached)",
        &mut || {
            OpenOptions::new()
                .write(true)
                .open(&f1)?
                .set_len(2 * bs + 100)
        },
    );
    // ... the same with the tail block not cached.
    let f2 = root.join(format!("pt{tag}b"));
    fs::write(&f2, pattern(2, 3 * bs as usize)).unwrap();
    sync_fs(root);
    churn(root, bs, &format!("pch{tag}0"), cold).unwrap();
    let f2h = OpenOptions::new().write(true).open(&f2).unwrap();
    measure(
        "truncate 3 whole blocks -> unaligned (tail not cached)",
        &mut || f2h.set_len(bs + 1),
    );
    // ... appended and fsynced after a cold start (the report's setting).
    let f3 = root.join(format!("pt{tag}c"));
    fs::write(&f3, pattern(3, 100)).unwrap();
    measure(
        "append + fsync + ftruncate to the middle of the last block",
        &mut || {
            let mut f = OpenOptions::new().append(true).open(&f3)?;
            f.write_all(&pattern(4, 2 * bs as usize - 100))?;
            f.sync_all()?;
            f.set_len(bs + bs / 2)
        },
    );
    // ... a file with an indirect tree (the boundary path is reserved).
    let f4 = root.join(format!("pt{tag}d"));
    fs::write(&f4, pattern(5, 20 * bs as usize)).unwrap();
    measure("truncate 20 whole blocks -> unaligned", &mut || {
        OpenOptions::new()
            .write(true)
            .open(&f4)?
            .set_len(13 * bs + 7)
    });
    measure("truncate unaligned -> unaligned, same block", &mut || {
        OpenOptions::new()
            .write(true)
            .open(&f4)?
            .set_len(13 * bs + 3)
    });

    // rename: a directory moved into a deep one whose ancestors are cold.
    for (n, d) in [(10usize, 'a'), (40, 'b'), (120, 'c')] {
        let chain = root.join(format!("pr{tag}{d}"));
        let deep = mkchain(&chain, n);
        let mover = root.join(format!("pm{tag}{d}"));
        fs::create_dir(&mover).unwrap();
        fs::write(mover.join("x"), b"x").unwrap();
        let _ = fs::metadata(&deep);
        sync_fs(root);
        churn(root, bs, &format!("pch{tag}{d}"), cold).unwrap();
        measure(
            &format!("rename dir from the root into a cold chain {n} deep"),
            &mut || fs::rename(&mover, deep.join("moved")),
        );
        // ... and over an existing empty directory there.
        let over = deep.join("empty");
        fs::create_dir(&over).unwrap();
        let mover2 = root.join(format!("pn{tag}{d}"));
        fs::create_dir(&mover2).unwrap();
        sync_fs(root);
        churn(root, bs, &format!("pci{tag}{d}"), cold).unwrap();
        measure(
            &format!("rename dir over an empty directory in a cold chain {n} deep"),
            &mut || fs::rename(&mover2, &over),
        );
        // a file (no walk: the control)
        let file = root.join(format!("pf{tag}{d}"));
        fs::write(&file, b"f").unwrap();
        sync_fs(root);
        churn(root, bs, &format!("pcj{tag}{d}"), cold).unwrap();
        measure(
            &format!("rename file into a cold chain {n} deep"),
            &mut || fs::rename(&file, deep.join("file")),
        );
    }
    // RENAME_EXCHANGE of two directories in two cold chains: two ".."
    // blocks, two walks.
    {
        let a = mkchain(&root.join(format!("px{tag}a")), 30).join("xa");
        let b = mkchain(&root.join(format!("px{tag}b")), 30).join("xb");
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        let _ = (fs::metadata(&a), fs::metadata(&b));
        sync_fs(root);
        churn(root, bs, &format!("pck{tag}"), cold).unwrap();
        measure(
            "RENAME_EXCHANGE of two directories in two cold chains 30 deep",
            &mut || rename2(&a, &b, libc::RENAME_EXCHANGE),
        );
        // ... warm (control).
        measure(
            "RENAME_EXCHANGE of the same two directories, warm",
            &mut || rename2(&a, &b, libc::RENAME_EXCHANGE),
        );
    }
    eprintln!("    probes: {}", summary.join("; "));
    out
}

/// Run `f`, with the default panic message silenced (for panics the
/// caller catches and reports itself).
fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    r
}

/// Every operation kind alone, `reps` times, single-threaded, with the
/// counters read around each: what under-allocates or faults, and on which
/// arguments. Returns one line per offending instance (the first few).
fn isolation(
    m: &Mount,
    rng: &mut StdRng,
    bs: u64,
    reps: usize,
    log_pos: &mut usize,
) -> Vec<String> {
    let root = m.path();
    let mut out = Vec::new();
    let mut ctr = 1_000_000u64;
    let mut per_kind: BTreeMap<Kind, (u64, u64)> = BTreeMap::new();
    let deep = Mutex::new(Vec::new());
    for &(k, _) in KINDS {
        if k == Kind::Churn || k == Kind::RenameDirCold || k == Kind::ExchangeCold {
            continue; // (the probes do these deliberately)
        }
        for _ in 0..reps {
            let before = counters(root);
            let r = run_op(root, rng, bs, 9, &mut ctr, k, &deep);
            let after = counters(root);
            let du = under(&after) - under(&before);
            let df = faulted(&after) - faulted(&before);
            let (lines, pos) = log_findings(&m.log, *log_pos);
            *log_pos = pos;
            let e = per_kind.entry(k).or_default();
            e.0 += du;
            e.1 += df;
            let bad_err = matches!(&r, Err((_, e)) if !expected(e));
            if du > 0 || df > 0 || bad_err {
                let ops: Vec<String> = {
                    let (a, b) = (under_by_op(&after), under_by_op(&before));
                    a.iter()
                        .filter(|(op, v)| b.get(*op) != Some(*v))
                        .map(|(op, v)| format!("{op}+{}", v - b.get(op).copied().unwrap_or(0)))
                        .collect()
                };
                let desc = match &r {
                    Ok(w) => w.clone(),
                    Err((w, e)) => format!("{w} -> {e}"),
                };
                if out.len() < 30 {
                    out.push(format!(
                        "  {k:?}: {desc}: under +{du} {ops:?}, faulted +{df}\n{}",
                        fmt_findings(&lines)
                    ));
                }
            }
        }
    }
    let summary: Vec<String> = per_kind
        .iter()
        .filter(|(_, v)| v.0 > 0 || v.1 > 0)
        .map(|(k, v)| format!("{k:?}: under {} faulted {}", v.0, v.1))
        .collect();
    eprintln!(
        "    isolation pass: {}",
        if summary.is_empty() {
            "clean".into()
        } else {
            summary.join("; ")
        }
    );
    out
}

/// For an unclean image: keep a copy, and show the inodes e2fsck named in
/// "Inode bitmap differences" as debugfs sees them.
fn post_mortem(img: &Path, fsck: &str, label: &str) -> String {
    let keep = std::env::temp_dir().join(format!("ama_hunt-{}.img", label.replace(' ', "-")));
    let _ = fs::copy(img, &keep);
    let mut s = format!("    image kept as {}\n", keep.display());
    for line in fsck
        .lines()
        .filter(|l| l.contains("Inode bitmap differences"))
    {
        for tok in line
            .split_whitespace()
            .filter(|t| t.starts_with('-'))
            .take(4)
        {
            let ino = tok.trim_start_matches("-(").trim_start_matches('-');
            let ino = ino.split("--").next().unwrap_or("").trim_end_matches(')');
            if let Ok(out) = std::process::Command::new("debugfs")
                .arg("-R")
                .arg(format!("stat <{ino}>"))
                .arg(img)
                .output()
            {
                s += &format!("    debugfs stat <{ino}>:\n");
                for l in String::from_utf8_lossy(&out.stdout).lines().take(14) {
                    s += &format!("      {l}\n");
                }
            }
        }
    }
    s
}

fn hunt(cfg: &Cfg, seed: u64, findings: &mut Vec<Finding>) {
    let secs = phase_secs();
    eprintln!(
        "== {}: mkfs.ext2 -b {} {} KiB {:?}, -o {}",
        cfg.label, cfg.bs, cfg.size_kib, cfg.mkfs_extra, cfg.opts
    );
    let img = mkfs_ext2(cfg.size_kib, cfg.bs, cfg.mkfs_extra);
    let bs = cfg.bs as u64;
    let mut rng = StdRng::seed_from_u64(seed ^ cfg.bs as u64 ^ cfg.size_kib);
    for phase in 0..PHASES {
        let where_ = format!("{} phase {phase}", cfg.label);
        let m = Mount::new(&img.path, cfg.opts);
        let mut log_pos = 0usize;
        let t0 = Instant::now();
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if phase == 0 {
                build_tree(m.path(), &mut rng, bs);
            }
            let c0 = counters(m.path());
            let (ops, bad, mix) = stress(m.path(), bs, rng.gen(), secs);
            let c1 = counters(m.path());
            let (lines, pos) = log_findings(&m.log, log_pos);
            log_pos = pos;
            let deepest = {
                let mut d = 0;
                let mut stack = vec![m.path().to_path_buf()];
                while let Some(p) = stack.pop() {
                    d = d.max(depth(m.path(), &p));
                    stack.extend(subdirs(&p));
                }
                d
            };
            eprintln!(
                "  {where_}: {ops} ops by {WORKERS} threads in {:.1}s, deepest directory {deepest}, \
                 unexpected errors {}\n    mix {:?}\n  {}",
                t0.elapsed().as_secs_f64(),
                bad.count,
                mix,
                report(&c1)
            );
            let restarts0 = restarts_by_op(&c0);
            let restarts: Vec<String> = restarts_by_op(&c1)
                .into_iter()
                .filter(|(op, v)| *v > restarts0.get(op).copied().unwrap_or(0))
                .map(|(op, v)| format!("{op} {}", v - restarts0.get(&op).copied().unwrap_or(0)))
                .collect();
            eprintln!("    restarts in the stress: {restarts:?}");
            if under(&c1) > under(&c0)
                || faulted(&c1) > faulted(&c0)
                || bad.count > 0
                || !lines.is_empty()
            {
                findings.push(Finding {
                    where_: format!("{where_} (concurrent stress)"),
                    what: format!(
                        "under-allocations +{} {:?}, faulted +{}, unexpected errors {}: {:#?}\n    daemon log:\n{}",
                        under(&c1) - under(&c0),
                        under_by_op(&c1),
                        faulted(&c1) - faulted(&c0),
                        bad.count,
                        bad.first,
                        fmt_findings(&lines)
                    ),
                });
            }
            let iso = isolation(&m, &mut rng, bs, 8, &mut log_pos);
            if !iso.is_empty() {
                findings.push(Finding {
                    where_: format!("{where_} (isolation pass)"),
                    what: iso.join(""),
                });
            }
            let pr = probes(&m, bs, &format!("{phase}"), &mut log_pos);
            if !pr.is_empty() {
                findings.push(Finding {
                    where_: format!("{where_} (probes)"),
                    what: pr.join(""),
                });
            }
        }));
        let (lines, _) = log_findings(&m.log, log_pos);
        if let Err(p) = r {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            findings.push(Finding {
                where_: where_.clone(),
                what: format!("the workload panicked: {msg}\n{}", fmt_findings(&lines)),
            });
            drop(m);
            return;
        }
        // (unmount checks the final counters too: catch that, it is
        // already recorded above.)
        // The log is removed by a clean unmount: hold it open to read what
        // the daemon said while unmounting (releasing orphans, writing back).
        let mut log_fd = fs::File::open(&m.log).ok();
        let u = quietly(|| m.unmount());
        if let Some(f) = log_fd.as_mut() {
            let mut rest = Vec::new();
            if f.seek(SeekFrom::Start(log_pos as u64)).is_ok() && f.read_to_end(&mut rest).is_ok() {
                let text = String::from_utf8_lossy(&rest);
                let bad: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        let level = l.split(']').next().unwrap_or("");
                        level.contains("ERROR")
                            || level.contains("WARN")
                            || l.contains("under-allocation")
                    })
                    .take(20)
                    .collect();
                if !bad.is_empty() {
                    eprintln!(
                        "  {where_}: the daemon while unmounting:\n      {}",
                        bad.join("\n      ")
                    );
                    findings.push(Finding {
                        where_: format!("{where_} (unmount log)"),
                        what: bad.join("\n"),
                    });
                }
            }
        }
        if let Err(p) = u {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            eprintln!("  {where_}: unmount: {}", msg.lines().next().unwrap_or(""));
            if !msg.contains("under-allocations") {
                findings.push(Finding {
                    where_: format!("{where_} (unmount)"),
                    what: msg,
                });
                return;
            }
        }
        // Each phase leaves a consistent image (so that an inconsistency
        // is pinned to a phase); the next one goes on regardless.
        if phase + 1 < PHASES {
            if let Err(p) = quietly(|| fsck_clean(&img.path)) {
                let mut msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
                msg += &post_mortem(&img.path, &msg, &where_);
                eprintln!("  {where_}: e2fsck -fn NOT clean");
                findings.push(Finding {
                    where_: format!("{where_} e2fsck after the unmount"),
                    what: msg,
                });
            } else {
                eprintln!("  {where_}: e2fsck -fn clean");
            }
        }
    }
    let fsck = quietly(|| fsck_clean(&img.path));
    if let Err(p) = fsck {
        let mut msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
        msg += &post_mortem(&img.path, &msg, &format!("{} final", cfg.label));
        findings.push(Finding {
            where_: format!("{} final e2fsck", cfg.label),
            what: msg,
        });
    } else {
        eprintln!("  {}: e2fsck -fn clean", cfg.label);
    }
}

#[test]
fn ama_hunt_under_allocations() {
    let seed: u64 = std::env::var("AMA_HUNT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("ama_hunt: seed {seed} (AMA_HUNT_SEED={seed} reproduces the operation sequence of each thread)");
    let cfgs = [
        Cfg {
            label: "1k-resident",
            bs: 1024,
            size_kib: 64 * 1024,
            mkfs_extra: &[],
            opts: "cache=1M,threads=4",
        },
        Cfg {
            label: "4k-resident",
            bs: 4096,
            size_kib: 128 * 1024,
            mkfs_extra: &[],
            opts: "cache=1M,threads=4",
        },
        // Many small groups: bitmaps are not resident in the cache.
        Cfg {
            label: "1k-small-groups",
            bs: 1024,
            size_kib: 96 * 1024,
            mkfs_extra: &["-g", "1024"],
            opts: "cache=1M,threads=4",
        },
        Cfg {
            label: "4k-small-groups",
            bs: 4096,
            size_kib: 256 * 1024,
            mkfs_extra: &["-g", "2048"],
            opts: "cache=1M,threads=4",
        },
    ];
    let only = std::env::var("AMA_HUNT_ONLY").ok();
    let t0 = Instant::now();
    let mut findings = Vec::new();
    for cfg in &cfgs {
        if only.as_deref().is_some_and(|o| !cfg.label.contains(o)) {
            continue;
        }
        hunt(cfg, seed, &mut findings);
    }
    eprintln!(
        "ama_hunt: done in {:.0}s, seed {seed}",
        t0.elapsed().as_secs_f64()
    );
    if !findings.is_empty() {
        let mut s = format!("{} finding(s), seed {seed}:\n", findings.len());
        for f in &findings {
            s += &format!("--- {}:\n{}\n", f.where_, f.what);
        }
        eprintln!("{s}");
        panic!("{s}");
    }
}
