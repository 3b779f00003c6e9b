//! Anticipatory memory allocation under stress, through real mounts.
//!
//! - `zero_under_allocations_worst_cases`: a workload built to hit the worst
//!   cases of the requirement table (a directory of thousands of long names,
//!   a file mapped through triple indirect blocks and truncated in steps, a
//!   large file truncated at once, file systems filled to ENOSPC, deep paths,
//!   renames over targets, rmdir of an emptied large directory, fast and slow
//!   symlinks, hard links), with every part of AMA on and with peeking and/or
//!   recycling off, under `policy=retry` and injected reservation failures
//!   (50% for the bulk of it, then 99% on a remount). No request may see an
//!   error and no request may allocate beyond its reserve.
//! - `retry_policy_hides_failures`: at 10%, 50% and 99% injected failures a
//!   mixed workload never sees an error; its tree equals a model of it, also
//!   after a remount.
//! - `fail_fast_reports_enomem_and_stays_consistent`: the application sees
//!   ENOMEM and nothing else, a failed call changed nothing, and the file
//!   system stays usable and consistent.
//! - `baseline_meets_failures_where_they_fall`: the baseline returns ENOMEM
//!   from wherever the failure falls and does not crash (its consistency is
//!   only reported).
//! - `ama_reserves_cover_use`: without injection, every operation type's
//!   reserves cover its use, and peeking pins blocks only when it is on.
//!
//! Every test ends with an unmount and `e2fsck -fn` (clean, except for the
//! baseline's, which is printed).

mod common;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

// ---------------------------------------------------------------- helpers

/// The result, or a panic naming what failed and its errno.
#[track_caller]
fn ok<T>(r: io::Result<T>, what: impl std::fmt::Display) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e} (errno {:?})", e.raw_os_error()),
    }
}

fn is_enospc(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC)
}

/// The counters, or `None` if the daemon no longer answers.
fn try_counters(mnt: &Path) -> Option<Value> {
    std::panic::catch_unwind(|| counters(mnt)).ok()
}

/// AMA's figures, one line per operation type.
fn ama_report(c: &Value) -> String {
    let a = &c["ama"];
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let mut s = format!(
        "ama: enabled {} peek {} recycle {}; reservations {} (failed {}), pages reserved {} used {} returned {} pinned {}, \
         under-allocations {}, allocated {} bytes; alloc faults injected {}\n",
        a["enabled"],
        a["peek"],
        a["recycle"],
        n(a, "reservations"),
        n(a, "reservation_failures"),
        n(a, "reserved_pages"),
        n(a, "used_pages"),
        n(a, "returned_pages"),
        n(a, "pinned_pages"),
        n(a, "under_allocations"),
        n(a, "allocated_bytes"),
        n(&c["faults_injected"], "alloc_faults"),
    );
    s += "  op           requests  max_reserved  max_used  reserved     used   pinned  under\n";
    if let Some(ops) = a["by_op"].as_object() {
        for (op, o) in ops {
            s += &format!(
                "  {op:<12} {:>8} {:>13} {:>9} {:>9} {:>8} {:>8} {:>6}\n",
                n(o, "requests"),
                n(o, "max_reserved"),
                n(o, "max_used"),
                n(o, "reserved_pages"),
                n(o, "used_pages"),
                n(o, "pinned_pages"),
                n(o, "under_allocations"),
            );
        }
    }
    s
}

/// The daemon's under-allocation reports (op, call site, requirement).
fn under_lines(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("under-allocation"))
        .collect();
    let mut s = format!(
        "{} under-allocation line(s) in {}:\n",
        lines.len(),
        log.display()
    );
    for l in lines.iter().take(40) {
        s += l;
        s.push('\n');
    }
    s
}

/// Run `f` (a workload on `m`); if it panics, print what AMA saw before
/// passing the panic on.
fn guarded<T>(m: &Mount, label: &str, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            match try_counters(m.path()) {
                Some(c) => eprintln!("{label}: workload failed; {}", ama_report(&c)),
                None => eprintln!("{label}: workload failed and the daemon does not answer"),
            }
            eprintln!("{label}: {}", under_lines(&m.log));
            std::panic::resume_unwind(p)
        }
    }
}

/// No under-allocation (with figures if there was one), and the injection
/// really happened.
fn assert_no_under_allocations(m: &Mount, label: &str) -> Value {
    let c = counters(m.path());
    let report = ama_report(&c);
    eprintln!("{label}: {report}");
    let under = c["ama"]["under_allocations"].as_u64().unwrap();
    assert_eq!(
        under,
        0,
        "{label}: {under} under-allocation(s)\n{report}{}",
        under_lines(&m.log)
    );
    for (op, o) in c["ama"]["by_op"].as_object().unwrap() {
        assert_eq!(
            o["under_allocations"].as_u64(),
            Some(0),
            "{label}: {op}\n{report}"
        );
    }
    c
}

fn alloc_faults(c: &Value) -> u64 {
    c["faults_injected"]["alloc_faults"].as_u64().unwrap()
}

// ------------------------------------------------ worst-case stress (test 1)

/// File names of 100 to 255 bytes, unique by their numeric prefix.
fn long_name(tag: char, i: usize) -> String {
    let len = if i.is_multiple_of(7) {
        255
    } else {
        100 + (i * 37) % 156
    };
    let mut s = format!("{tag}{i:05}-");
    while s.len() < len {
        s.push((b'a' + (s.len() % 26) as u8) as char);
    }
    s
}

/// Names made by a pass are numbered from here, so that passes never
/// collide.
fn pass_base(pass: &str) -> usize {
    if pass.starts_with("heavy") {
        0
    } else {
        50_000
    }
}

/// Logical blocks where each level of the block map starts (1 KiB blocks:
/// 256 pointers per indirect block).
const SINGLE: u64 = 12;
const DOUBLE: u64 = 12 + 256;
const TRIPLE: u64 = 12 + 256 + 65536;
const KIB: u64 = 1024;

/// What a stress pass does, and how much of it.
struct Scale {
    /// Entries created in `big/` (0: it exists already).
    big_create: usize,
    /// Lookups + stats of existing `big/` entries.
    big_stat: usize,
    /// Unlinks and then new creates in `big/`.
    big_unlink: usize,
    big_recreate: usize,
    /// Entries of the large directory that is emptied and removed.
    rmdir_entries: usize,
    /// MiB of the non-sparse file truncated to 0.
    large_mib: usize,
    /// Bytes per write while filling the file system.
    fill_chunk: usize,
    /// Writes per file while filling.
    fill_file: usize,
    /// Bytes per write (4 per file) while filling the freed half again.
    refill_chunk: usize,
}

/// One pass of the worst-case workload on a mount of a 1 KiB-block image.
/// `big` holds the names in `big/` (kept across passes and remounts).
fn stress(root: &Path, s: &Scale, big: &mut BTreeSet<String>, pass: &str) {
    let t = Instant::now();
    let lap = |what: &str| eprintln!("  {pass}: {what} done at {:.1}s", t.elapsed().as_secs_f64());
    big_directory(root, s, big, pass);
    lap("big directory");
    sparse_triple_indirect(root, pass);
    lap("triple indirect");
    large_file(root, s.large_mib, pass);
    lap("large file");
    deep_paths(root, big, pass);
    lap("deep paths");
    renames(root, big, pass);
    lap("renames");
    links(root, big, pass);
    lap("links and symlinks");
    rmdir_large(root, s.rmdir_entries, pass);
    lap("rmdir large");
    fill(root, s, pass);
    lap("fill");
    // The big directory is as the model says.
    let listed: BTreeSet<String> = ok(fs::read_dir(root.join("big")), "readdir big")
        .map(|e| {
            ok(e, "readdir big entry")
                .file_name()
                .into_string()
                .unwrap()
        })
        .collect();
    assert_eq!(listed.len(), big.len(), "{pass}: big/ entry count");
    assert!(
        listed == *big,
        "{pass}: big/ listing differs from the model"
    );
    lap("final readdir");
}

fn big_directory(root: &Path, s: &Scale, big: &mut BTreeSet<String>, pass: &str) {
    let dir = root.join("big");
    if s.big_create > 0 {
        ok(fs::create_dir(&dir), "mkdir big");
        for i in 0..s.big_create {
            let name = long_name('f', i);
            let p = dir.join(&name);
            if i % 50 == 0 {
                ok(
                    fs::write(&p, pattern(i as u64, 3000)),
                    format!("write big/{name}"),
                );
            } else {
                ok(File::create_new(&p), format!("create big/{name}"));
            }
            big.insert(name);
        }
        let n = ok(fs::read_dir(&dir), "readdir big").count();
        assert_eq!(n, big.len(), "{pass}: readdir of big/");
    }
    // Lookups and stats spread over the whole directory (on a fresh mount
    // each is a lookup scanning it).
    let names: Vec<String> = big.iter().cloned().collect();
    let step = (names.len() / s.big_stat.max(1)).max(1);
    for name in names.iter().step_by(step).take(s.big_stat) {
        let md = ok(
            fs::symlink_metadata(dir.join(name)),
            format!("stat big/{name}"),
        );
        if let Some(i) = name[1..6]
            .parse::<usize>()
            .ok()
            .filter(|_| name.starts_with('f'))
        {
            let want = if i % 50 == 0 { 3000 } else { 0 };
            assert_eq!(md.len(), want, "{pass}: size of big/{name}");
        }
    }
    // A name that is not there: a negative lookup scans every block.
    assert_eq!(
        fs::symlink_metadata(dir.join(long_name('z', 99_999)))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOENT)
    );
    // Unlinks spread over the directory, then creates that fill the holes.
    let names: Vec<String> = big.iter().cloned().collect();
    let step = (names.len() / s.big_unlink.max(1)).max(1);
    for name in names.iter().step_by(step).take(s.big_unlink) {
        ok(
            fs::remove_file(dir.join(name)),
            format!("unlink big/{name}"),
        );
        big.remove(name);
    }
    for i in 0..s.big_recreate {
        let name = long_name('r', pass_base(pass) + i);
        ok(
            File::create_new(dir.join(&name)),
            format!("create big/{name}"),
        );
        big.insert(name);
    }
    let n = ok(fs::read_dir(&dir), "readdir big").count();
    assert_eq!(n, big.len(), "{pass}: readdir of big/ after unlinks");
}

/// A sparse file with data in every level of the block map, the triple
/// indirect tree included and far beyond its start, read back, then
/// truncated in steps down to nothing.
fn sparse_triple_indirect(root: &Path, pass: &str) {
    let p = root.join("sparse");
    let f = ok(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p),
        "create sparse",
    );
    let regions: Vec<(u64, Vec<u8>)> = [
        (0, 3000),
        (SINGLE * KIB - 100, 3000),
        (DOUBLE * KIB - 100, 3000),
        (TRIPLE * KIB - 100, 3000),
        (TRIPLE * KIB + 5000, 3000),
        (TRIPLE * KIB + 257 * KIB - 10, 2000),
        (1 << 30, 3000),
        ((2 << 30) + 77, 64 * 1024),
        ((4 << 30) + 77, 3000),
        ((15 << 30) + 9, 3000),
    ]
    .iter()
    .enumerate()
    .map(|(k, &(off, len))| (off, pattern(1000 + k as u64, len)))
    .collect();
    for (off, data) in &regions {
        ok(
            f.write_all_at(data, *off),
            format!("{pass}: write sparse at {off}"),
        );
    }
    let verify = |size: u64| {
        let md = ok(f.metadata(), "fstat sparse");
        assert_eq!(md.len(), size, "{pass}: sparse size");
        for (off, data) in &regions {
            if *off >= size {
                continue;
            }
            let n = (size - off).min(data.len() as u64) as usize;
            let mut got = vec![0u8; n];
            ok(
                f.read_exact_at(&mut got, *off),
                format!("{pass}: read sparse at {off}"),
            );
            assert!(
                got == data[..n],
                "{pass}: sparse content at {off} (size {size})"
            );
        }
        // A hole in the double indirect range reads as zeros.
        if size > 30 << 20 {
            let mut got = vec![1u8; 4096];
            ok(f.read_exact_at(&mut got, 30 << 20), "read hole");
            assert!(got.iter().all(|&b| b == 0), "{pass}: hole is not zero");
        }
    };
    let end = regions
        .iter()
        .map(|(o, d)| o + d.len() as u64)
        .max()
        .unwrap();
    verify(end);
    for size in [
        8 << 30,
        (4 << 30) + 1000,
        1 << 30,
        TRIPLE * KIB + 6000,
        TRIPLE * KIB,
        DOUBLE * KIB + 10,
        SINGLE * KIB,
        5000,
        0,
    ] {
        ok(
            f.set_len(size),
            format!("{pass}: truncate sparse to {size}"),
        );
        verify(size);
    }
    assert_eq!(ok(f.metadata(), "fstat").blocks(), 0, "{pass}: blocks left");
    drop(f);
    ok(fs::remove_file(&p), "unlink sparse");
}

/// A non-sparse file of `mib` MiB, read back and truncated to 0 at once;
/// then a second one removed by unlink.
fn large_file(root: &Path, mib: usize, pass: &str) {
    for (k, how) in ["truncate", "unlink"].iter().enumerate() {
        let p = root.join(format!("large-{how}"));
        let chunk = 256 * 1024;
        let mut f = ok(File::create_new(&p), "create large");
        for c in 0..mib * 4 {
            ok(
                f.write_all(&pattern((k * 1000 + c) as u64, chunk)),
                format!("{pass}: write large chunk {c}"),
            );
        }
        drop(f);
        let mut f = ok(File::open(&p), "open large");
        let mut got = vec![0u8; chunk];
        for c in 0..mib * 4 {
            ok(
                f.read_exact(&mut got),
                format!("{pass}: read large chunk {c}"),
            );
            assert!(
                got == pattern((k * 1000 + c) as u64, chunk),
                "{pass}: large chunk {c}"
            );
        }
        drop(f);
        if *how == "truncate" {
            let f = ok(OpenOptions::new().write(true).open(&p), "open large");
            ok(f.set_len(0), format!("{pass}: truncate large to 0"));
            assert_eq!(ok(f.metadata(), "fstat").blocks(), 0);
        }
        ok(fs::remove_file(&p), "unlink large");
    }
}

/// A chain of 60 directories; files created, stat'ed and renamed at the
/// bottom, also across the chain and over existing targets. The chain is
/// made by the first pass and removed by the last.
fn deep_paths(root: &Path, big: &BTreeSet<String>, pass: &str) {
    let mut bottom = root.join("deep");
    let mut chain = vec![bottom.clone()];
    for l in 0..60 {
        bottom = bottom.join(format!("level-{l:02}-{}", "d".repeat(20)));
        chain.push(bottom.clone());
    }
    if !root.join("deep").exists() {
        for d in &chain {
            ok(fs::create_dir(d), format!("{pass}: mkdir {}", d.display()));
        }
    }
    let md = ok(fs::metadata(&bottom), "stat bottom");
    assert!(md.is_dir());
    let mid = &chain[30];
    for k in 0..5 {
        let name = format!("{pass}-f{k}-{}", "x".repeat(200));
        let p = bottom.join(&name);
        ok(
            fs::write(&p, pattern(k, 1500)),
            format!("{pass}: write at the bottom"),
        );
        assert_eq!(ok(fs::metadata(&p), "stat at the bottom").len(), 1500);
        // Across half the chain and back under a new name.
        let q = mid.join(&name);
        ok(fs::rename(&p, &q), "rename up the chain");
        let r = bottom.join(format!("{name}-back"));
        ok(fs::rename(&q, &r), "rename down the chain");
        assert_eq!(ok(fs::read(&r), "read at the bottom"), pattern(k, 1500));
    }
    // Over an existing target at the bottom, and from the big directory
    // down and back.
    let a = bottom.join(format!("{pass}-f0-{}-back", "x".repeat(200)));
    let b = bottom.join(format!("{pass}-f1-{}-back", "x".repeat(200)));
    ok(fs::rename(&a, &b), "rename over at the bottom");
    assert_eq!(ok(fs::read(&b), "read"), pattern(0, 1500));
    if let Some(name) = big.iter().nth(big.len() / 2) {
        let from = root.join("big").join(name);
        let to = bottom.join(name);
        ok(fs::rename(&from, &to), "rename big -> bottom");
        ok(fs::symlink_metadata(&to), "stat moved");
        ok(fs::rename(&to, &from), "rename bottom -> big");
    }
    for e in ok(fs::read_dir(&bottom), "readdir bottom") {
        ok(
            fs::remove_file(ok(e, "entry").path()),
            "unlink at the bottom",
        );
    }
    if pass.starts_with("light") {
        for d in chain.iter().rev() {
            ok(fs::remove_dir(d), format!("{pass}: rmdir {}", d.display()));
        }
    }
}

/// Renames across directories and over existing targets, of files with
/// data and of directories.
fn renames(root: &Path, big: &mut BTreeSet<String>, pass: &str) {
    let other = root.join("other");
    ok(fs::create_dir(&other), "mkdir other");
    let bigd = root.join("big");
    // Out of the big directory and in again, over an existing entry.
    let names: Vec<String> = big
        .iter()
        .step_by((big.len() / 8).max(1))
        .cloned()
        .collect();
    for (k, name) in names.iter().enumerate() {
        let to = other.join(format!("moved-{k}"));
        ok(
            fs::rename(bigd.join(name), &to),
            format!("{pass}: rename big -> other"),
        );
        big.remove(name);
        // Back under a new long name.
        let back = long_name('m', pass_base(pass) + k);
        ok(fs::rename(&to, bigd.join(&back)), "rename other -> big");
        big.insert(back);
    }
    // A file with data over an existing file with data (the target's
    // blocks, through its indirect block, are freed).
    let src = other.join("src");
    let t = long_name('t', pass_base(pass));
    let dst = bigd.join(&t);
    ok(fs::write(&src, pattern(1, 40_000)), "write src");
    ok(fs::write(&dst, pattern(2, 300_000)), "write dst");
    big.insert(t);
    ok(fs::rename(&src, &dst), "rename over a large target");
    assert_eq!(ok(fs::read(&dst), "read renamed"), pattern(1, 40_000));
    // A directory across directories (its ".." changes), and over an
    // empty directory.
    let sub = other.join("sub");
    ok(fs::create_dir(&sub), "mkdir sub");
    ok(fs::write(sub.join("inside"), b"inside"), "write inside");
    let s_name = long_name('s', pass_base(pass));
    let sub2 = bigd.join(&s_name);
    ok(fs::rename(&sub, &sub2), "rename dir into big");
    big.insert(s_name.clone());
    assert_eq!(ok(fs::read(sub2.join("inside")), "read inside"), b"inside");
    let empty = other.join("empty");
    ok(fs::create_dir(&empty), "mkdir empty");
    ok(fs::rename(&sub2, &empty), "rename dir over empty dir");
    big.remove(&s_name);
    assert_eq!(ok(fs::read(empty.join("inside")), "read inside"), b"inside");
    assert_eq!(ok(fs::metadata(&other), "stat other").nlink(), 3);
    ok(fs::remove_file(empty.join("inside")), "unlink inside");
    ok(fs::remove_dir(&empty), "rmdir");
    ok(fs::remove_dir(&other), "rmdir other");
}

/// Fast and slow symlinks, and hard links across directories.
fn links(root: &Path, big: &mut BTreeSet<String>, pass: &str) {
    let bigd = root.join("big");
    let d = root.join("links");
    ok(fs::create_dir(&d), "mkdir links");
    for (k, len) in [1usize, 30, 59, 60, 61, 200, 1000, 1023].iter().enumerate() {
        let target: String = (0..*len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let y = long_name('y', pass_base(pass) + k);
        let name = if k % 2 == 0 {
            bigd.join(&y)
        } else {
            d.join(format!("sym{k}"))
        };
        ok(
            std::os::unix::fs::symlink(&target, &name),
            format!("{pass}: symlink of {len}"),
        );
        if k % 2 == 0 {
            big.insert(y);
        }
        assert_eq!(
            ok(fs::read_link(&name), "readlink").to_str().unwrap(),
            target,
            "{pass}: symlink of {len}"
        );
    }
    // Hard links in the big directory, the link directory and the root.
    let f = d.join("file");
    ok(fs::write(&f, pattern(5, 20_000)), "write file");
    let h = long_name('h', pass_base(pass));
    let l1 = bigd.join(&h);
    let l2 = d.join("link2");
    let l3 = root.join(format!("{pass}-link3"));
    for l in [&l1, &l2, &l3] {
        ok(
            fs::hard_link(&f, l),
            format!("{pass}: link {}", l.display()),
        );
    }
    big.insert(h);
    assert_eq!(ok(fs::metadata(&f), "stat").nlink(), 4);
    ok(fs::remove_file(&f), "unlink original");
    assert_eq!(ok(fs::read(&l1), "read link"), pattern(5, 20_000));
    assert_eq!(ok(fs::metadata(&l2), "stat").nlink(), 3);
    ok(fs::remove_file(&l2), "unlink link2");
    ok(fs::remove_file(&l3), "unlink link3");
    for e in ok(fs::read_dir(&d), "readdir links") {
        ok(fs::remove_file(ok(e, "entry").path()), "unlink symlink");
    }
    ok(fs::remove_dir(&d), "rmdir links");
}

/// Entries of `emptied/`, made by the heavy pass and removed by the light
/// one (more blocks than a directory scanned through the cache may have).
const EMPTIED: usize = 60;

/// A directory of long names, emptied and removed (rmdir scans every
/// block of it): `n` entries made and removed now by the heavy pass, and
/// `emptied/` made by the heavy pass, removed on the remount by the light one.
fn rmdir_large(root: &Path, n: usize, pass: &str) {
    let d = root.join("emptied");
    if pass.starts_with("heavy") {
        ok(fs::create_dir(&d), "mkdir emptied");
        for i in 0..EMPTIED {
            ok(
                File::create_new(d.join(long_name('e', i))),
                "create in emptied",
            );
        }
        let d2 = root.join("emptied-now");
        ok(fs::create_dir(&d2), "mkdir emptied-now");
        for i in 0..n {
            ok(
                File::create_new(d2.join(long_name('e', i))),
                "create in emptied-now",
            );
        }
        for i in 0..n {
            ok(
                fs::remove_file(d2.join(long_name('e', i))),
                "unlink in emptied-now",
            );
        }
        ok(fs::remove_dir(&d2), format!("{pass}: rmdir emptied-now"));
    } else {
        for i in 0..EMPTIED {
            ok(
                fs::remove_file(d.join(long_name('e', i))),
                "unlink in emptied",
            );
        }
        ok(fs::remove_dir(&d), format!("{pass}: rmdir emptied"));
    }
}

/// Fill the file system until ENOSPC (the one error expected here), free
/// every other file, fill again with small files, check surviving data,
/// then free everything.
fn fill(root: &Path, s: &Scale, pass: &str) {
    let d = root.join("fill");
    ok(fs::create_dir(&d), "mkdir fill");
    // Files of `per_file` writes of `chunk` bytes until ENOSPC: the files
    // made, each with whether it was written completely.
    let round = |prefix: &str, chunk: usize, per_file: usize| -> Vec<(PathBuf, bool)> {
        let data = pattern(77, chunk);
        let mut files = Vec::new();
        for k in 0.. {
            let p = d.join(format!("{prefix}{k:05}"));
            let mut f = match File::create_new(&p) {
                Ok(f) => f,
                Err(e) if is_enospc(&e) => break,
                Err(e) => panic!("{pass}: create {}: {e}", p.display()),
            };
            let mut complete = true;
            for _ in 0..per_file {
                if let Err(e) = f.write_all(&data) {
                    assert!(is_enospc(&e), "{pass}: write {}: {e}", p.display());
                    complete = false;
                    break;
                }
            }
            files.push((p, complete));
            if !complete {
                break;
            }
            assert!(k < 100_000, "{pass}: the file system never filled");
        }
        files
    };
    let first = round("a", s.fill_chunk, s.fill_file);
    assert!(
        first.len() > 2,
        "{pass}: filled after {} files?",
        first.len()
    );
    // Full: more blocks cannot be had.
    let e = fs::write(d.join("one-more"), vec![1u8; 100_000]).unwrap_err();
    assert!(is_enospc(&e), "{pass}: writing to a full file system: {e}");
    let _ = fs::remove_file(d.join("one-more"));
    for (p, _) in first.iter().step_by(2) {
        ok(fs::remove_file(p), "unlink fill");
    }
    // Again, into the holes the first round left in the bitmaps.
    let second = round("b", s.refill_chunk, 4);
    assert!(
        second.len() > 2,
        "{pass}: refilled after {} files?",
        second.len()
    );
    eprintln!(
        "  {pass}: filled with {} files of {} KiB, half freed, refilled with {} files of {} KiB",
        first.len(),
        s.fill_chunk * s.fill_file / 1024,
        second.len(),
        s.refill_chunk * 4 / 1024
    );
    let data = pattern(77, s.fill_chunk);
    let mut checked = 0;
    for (p, complete) in first.iter().skip(1).step_by(2) {
        if *complete && checked < 3 {
            let got = ok(fs::read(p), "read fill");
            assert_eq!(got.len(), s.fill_chunk * s.fill_file);
            assert!(
                got.chunks(s.fill_chunk).all(|c| c == data),
                "{pass}: fill content"
            );
            checked += 1;
        }
    }
    for e in ok(fs::read_dir(&d), "readdir fill") {
        ok(fs::remove_file(ok(e, "entry").path()), "unlink fill");
    }
    ok(fs::remove_dir(&d), "rmdir fill");
}

fn worst_cases(label: &str, ama_opts: &str, seed: u64) {
    let img = mkfs_ext2mfr(72 << 20, 1024);
    let mut big = BTreeSet::new();
    // The bulk of it at 50% injected reservation failures.
    let opts = format!("{ama_opts},policy=retry,inject_alloc=0.5,inject_seed={seed}");
    let t = Instant::now();
    let m = Mount::new(&img.path, &opts);
    let heavy = Scale {
        big_create: 3000,
        big_stat: 600,
        big_unlink: 1000,
        big_recreate: 300,
        rmdir_entries: 300,
        large_mib: 4,
        fill_chunk: 256 * 1024,
        fill_file: 4,
        refill_chunk: 16 * 1024,
    };
    let pass = format!("heavy {label}");
    guarded(&m, &pass, || stress(m.path(), &heavy, &mut big, &pass));
    let c = assert_no_under_allocations(&m, &pass);
    assert!(
        alloc_faults(&c) > 0,
        "{pass}: no allocation fault was injected"
    );
    m.unmount_and_check();
    eprintln!("{pass}: {:.1}s", t.elapsed().as_secs_f64());
    // Then on a remount (nothing cached) at 99%: fewer operations, the
    // same worst cases.
    let opts = format!(
        "{ama_opts},policy=retry,inject_alloc=0.99,inject_seed={}",
        seed + 1
    );
    let t = Instant::now();
    let m = Mount::new(&img.path, &opts);
    let light = Scale {
        big_create: 0,
        big_stat: 60,
        big_unlink: 30,
        big_recreate: 20,
        rmdir_entries: 300,
        large_mib: 2,
        fill_chunk: 1 << 20,
        fill_file: 2,
        refill_chunk: 128 * 1024,
    };
    let pass = format!("light {label}");
    guarded(&m, &pass, || stress(m.path(), &light, &mut big, &pass));
    let c = assert_no_under_allocations(&m, &pass);
    let faults = alloc_faults(&c);
    let reservations = c["ama"]["reservations"].as_u64().unwrap();
    assert!(faults > 0, "{pass}: no allocation fault was injected");
    assert!(
        faults * 100 > reservations * 90,
        "{pass}: {faults} faults in {reservations} reservation attempts is not 99%"
    );
    m.unmount_and_check();
    eprintln!("{pass}: {:.1}s", t.elapsed().as_secs_f64());
}

#[test]
fn zero_under_allocations_worst_cases() {
    let configs = [
        ("peek+recycle", "ama=on,peek=on,recycle=on", 101),
        ("no-peek", "ama=on,peek=off,recycle=on", 202),
        ("no-recycle", "ama=on,peek=on,recycle=off", 303),
        ("neither", "ama=on,peek=off,recycle=off", 404),
    ];
    // Two at a time: most of a 99% run is back-off sleeping.
    for pair in configs.chunks(2) {
        std::thread::scope(|s| {
            let hs: Vec<_> = pair
                .iter()
                .map(|&(label, opts, seed)| s.spawn(move || worst_cases(label, opts, seed)))
                .collect();
            let errs: Vec<_> = hs.into_iter().filter_map(|h| h.join().err()).collect();
            if let Some(e) = errs.into_iter().next() {
                std::panic::resume_unwind(e);
            }
        });
    }
}

// -------------------------------------------- model-driven mixed workload

/// What a path holds, as the workload believes.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    File(Vec<u8>),
    Dir,
    Symlink(String),
}

/// The tree the workload believes in, by relative path.
#[derive(Default)]
struct Model {
    nodes: BTreeMap<String, Node>,
    /// Never reused: every new name is fresh.
    next: u64,
    /// Paths an op failed on (the baseline may have half-changed them):
    /// never touched again.
    tainted: BTreeSet<String>,
}

#[derive(Clone, Debug)]
enum Op {
    Create(String),
    Write(String, u64, Vec<u8>),
    Read(String),
    Truncate(String, u64),
    Unlink(String),
    Mkdir(String),
    Rmdir(String),
    Rename(String, String),
    Symlink(String, String),
}

impl Op {
    fn paths(&self) -> Vec<&str> {
        match self {
            Op::Create(p)
            | Op::Write(p, ..)
            | Op::Read(p)
            | Op::Truncate(p, _)
            | Op::Unlink(p)
            | Op::Mkdir(p)
            | Op::Rmdir(p)
            | Op::Symlink(_, p) => vec![p],
            Op::Rename(a, b) => vec![a, b],
        }
    }
}

fn parent(p: &str) -> &str {
    p.rsplit_once('/').map_or("", |(d, _)| d)
}

impl Model {
    fn files(&self) -> Vec<&String> {
        self.nodes
            .iter()
            .filter(|(p, n)| matches!(n, Node::File(_)) && !self.tainted.contains(*p))
            .map(|(p, _)| p)
            .collect()
    }
    fn dirs(&self) -> Vec<&String> {
        self.nodes
            .iter()
            .filter(|(p, n)| **n == Node::Dir && !self.tainted.contains(*p))
            .map(|(p, _)| p)
            .collect()
    }
    fn children(&self, d: &str) -> usize {
        self.nodes.keys().filter(|k| parent(k) == d).count()
            + self.tainted.iter().filter(|k| parent(k) == d).count()
    }
    fn fresh(&mut self, dir: &str) -> String {
        self.next += 1;
        let name = if self.next.is_multiple_of(5) {
            format!("n{}-{}", self.next, "l".repeat(150))
        } else {
            format!("n{}", self.next)
        };
        if dir.is_empty() {
            name
        } else {
            format!("{dir}/{name}")
        }
    }
    /// A directory (or the root, "") to put something new in.
    fn some_dir(&self, rng: &mut StdRng) -> String {
        let dirs = self.dirs();
        if dirs.is_empty() || rng.gen_bool(0.2) {
            String::new()
        } else {
            dirs[rng.gen_range(0..dirs.len())].clone()
        }
    }

    /// An op that succeeds on the model's tree.
    fn random_op(&mut self, rng: &mut StdRng) -> Op {
        loop {
            let files = self.files();
            let file = (!files.is_empty()).then(|| files[rng.gen_range(0..files.len())].clone());
            let op = match rng.gen_range(0..20) {
                0..=3 => {
                    let d = self.some_dir(rng);
                    Op::Create(self.fresh(&d))
                }
                4..=6 => {
                    let Some(f) = file else { continue };
                    let len = [1usize, 100, 1000, 5000, 20_000, 70_000][rng.gen_range(0..6)];
                    let size = match &self.nodes[&f] {
                        Node::File(d) => d.len() as u64,
                        _ => 0,
                    };
                    // Inside, at the end, or past the end (a hole), files
                    // staying under about 400 KB.
                    let off = if size > 300_000 || rng.gen_bool(0.6) {
                        rng.gen_range(0..=size)
                    } else {
                        size + rng.gen_range(0..100_000)
                    };
                    Op::Write(f, off, pattern(rng.gen(), len))
                }
                7..=9 => {
                    let Some(f) = file else { continue };
                    Op::Read(f)
                }
                10 | 11 => {
                    let Some(f) = file else { continue };
                    Op::Truncate(f, rng.gen_range(0..200_000))
                }
                12 | 13 => {
                    let Some(f) = file else { continue };
                    Op::Unlink(f)
                }
                14 => {
                    // Not too deep.
                    let d = self.some_dir(rng);
                    if d.matches('/').count() >= 2 {
                        continue;
                    }
                    Op::Mkdir(self.fresh(&d))
                }
                15 => {
                    let empty: Vec<&String> = self
                        .dirs()
                        .into_iter()
                        .filter(|d| self.children(d) == 0)
                        .collect();
                    if empty.is_empty() {
                        continue;
                    }
                    Op::Rmdir(empty[rng.gen_range(0..empty.len())].clone())
                }
                16 | 17 => {
                    let Some(f) = file else { continue };
                    if rng.gen_bool(0.5) && files.len() > 1 {
                        // Over an existing file, maybe in another directory.
                        let t = files[rng.gen_range(0..files.len())].clone();
                        if t == f {
                            continue;
                        }
                        Op::Rename(f, t)
                    } else {
                        let d = self.some_dir(rng);
                        Op::Rename(f, self.fresh(&d))
                    }
                }
                18 => {
                    // A directory to a fresh name at the top.
                    let dirs = self.dirs();
                    if dirs.is_empty() {
                        continue;
                    }
                    let d = dirs[rng.gen_range(0..dirs.len())].clone();
                    Op::Rename(d, self.fresh(""))
                }
                _ => {
                    let d = self.some_dir(rng);
                    let len = [10usize, 59, 300][rng.gen_range(0..3)];
                    Op::Symlink("t".repeat(len), self.fresh(&d))
                }
            };
            return op;
        }
    }

    /// Record an op that succeeded (`n`: bytes a write really wrote).
    fn apply(&mut self, op: &Op, n: usize) {
        match op {
            Op::Create(p) => {
                self.nodes.insert(p.clone(), Node::File(Vec::new()));
            }
            Op::Write(p, off, data) => {
                let Some(Node::File(d)) = self.nodes.get_mut(p) else {
                    unreachable!()
                };
                let end = *off as usize + n;
                if d.len() < end {
                    d.resize(end, 0);
                }
                d[*off as usize..end].copy_from_slice(&data[..n]);
            }
            Op::Read(_) => {}
            Op::Truncate(p, len) => {
                let Some(Node::File(d)) = self.nodes.get_mut(p) else {
                    unreachable!()
                };
                d.resize(*len as usize, 0);
            }
            Op::Unlink(p) | Op::Rmdir(p) => {
                self.nodes.remove(p);
            }
            Op::Mkdir(p) => {
                self.nodes.insert(p.clone(), Node::Dir);
            }
            Op::Symlink(t, p) => {
                self.nodes.insert(p.clone(), Node::Symlink(t.clone()));
            }
            Op::Rename(a, b) => {
                let moved: Vec<(String, Node)> = self
                    .nodes
                    .iter()
                    .filter(|(k, _)| *k == a || k.starts_with(&format!("{a}/")))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                for (k, v) in moved {
                    self.nodes.remove(&k);
                    self.nodes.insert(format!("{b}{}", &k[a.len()..]), v);
                }
                let tainted: Vec<String> = self
                    .tainted
                    .iter()
                    .filter(|k| k.starts_with(&format!("{a}/")))
                    .cloned()
                    .collect();
                for k in tainted {
                    self.tainted.remove(&k);
                    self.tainted.insert(format!("{b}{}", &k[a.len()..]));
                }
            }
        }
    }

    /// Forget what a failed op touched (the baseline may have changed it
    /// halfway); never touch it again.
    fn taint(&mut self, op: &Op) {
        for p in op.paths() {
            let p = p.to_string();
            let under: Vec<String> = self
                .nodes
                .keys()
                .filter(|k| **k == p || k.starts_with(&format!("{p}/")))
                .cloned()
                .collect();
            for k in under {
                self.nodes.remove(&k);
                self.tainted.insert(k);
            }
            self.tainted.insert(p);
        }
    }
}

/// Run `op` on the mount. `Ok(n)`: it succeeded (`n`: bytes a write wrote);
/// a read checks the content against the model.
fn run_op(root: &Path, model: &Model, op: &Op) -> io::Result<usize> {
    let p = |n: &str| root.join(n);
    match op {
        Op::Create(n) => File::create_new(p(n)).map(|_| 0),
        Op::Write(n, off, data) => {
            let f = OpenOptions::new().write(true).open(p(n))?;
            f.write_at(data, *off)
        }
        Op::Read(n) => {
            let got = fs::read(p(n))?;
            let Some(Node::File(want)) = model.nodes.get(n) else {
                unreachable!()
            };
            assert!(
                got == *want,
                "content of {n}: {} bytes read, {} expected",
                got.len(),
                want.len()
            );
            Ok(0)
        }
        Op::Truncate(n, len) => OpenOptions::new()
            .write(true)
            .open(p(n))?
            .set_len(*len)
            .map(|_| 0),
        Op::Unlink(n) => fs::remove_file(p(n)).map(|_| 0),
        Op::Mkdir(n) => fs::create_dir(p(n)).map(|_| 0),
        Op::Rmdir(n) => fs::remove_dir(p(n)).map(|_| 0),
        Op::Rename(a, b) => fs::rename(p(a), p(b)).map(|_| 0),
        Op::Symlink(t, n) => std::os::unix::fs::symlink(t, p(n)).map(|_| 0),
    }
}

/// The mounted tree, in the model's terms (lost+found left out).
fn tree(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for e in ok(fs::read_dir(dir), "readdir") {
            let p = ok(e, "entry").path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == "lost+found" {
                continue;
            }
            let md = ok(fs::symlink_metadata(&p), "lstat");
            let node = if md.file_type().is_symlink() {
                Node::Symlink(
                    ok(fs::read_link(&p), "readlink")
                        .to_string_lossy()
                        .into_owned(),
                )
            } else if md.is_dir() {
                walk(root, &p, out);
                Node::Dir
            } else {
                Node::File(ok(fs::read(&p), "read"))
            };
            out.insert(rel, node);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn assert_tree_is_model(root: &Path, model: &Model, what: &str) {
    let got = tree(root);
    if got != model.nodes {
        for (k, v) in &got {
            match model.nodes.get(k) {
                None => eprintln!("{what}: {k} on the mount, not in the model"),
                Some(w) if w != v => eprintln!("{what}: {k} differs"),
                _ => {}
            }
        }
        for k in model.nodes.keys() {
            if !got.contains_key(k) {
                eprintln!("{what}: {k} in the model, not on the mount");
            }
        }
        panic!("{what}: the tree differs from the model");
    }
}

/// Errors seen, by errno.
type Errors = BTreeMap<i32, Vec<String>>;

/// How the mixed workload treats a failed op.
#[derive(Clone, Copy, PartialEq)]
enum OnError {
    /// Record it (retry: there should be none).
    Record,
    /// Record it and check at once that it changed nothing (fail-fast).
    CheckAtomic,
    /// Record it and never touch what it touched again (the baseline may
    /// have changed it halfway).
    Taint,
}

/// Whether `p` exists, asking again while the lookup itself fails with
/// ENOMEM (a failed lookup changes nothing).
fn exists_retrying(p: &Path) -> bool {
    for _ in 0..10_000 {
        match fs::symlink_metadata(p) {
            Ok(_) => return true,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return false,
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => continue,
            Err(e) => panic!("lstat {}: {e}", p.display()),
        }
    }
    panic!("lstat {} kept failing with ENOMEM", p.display())
}

/// The content of `p`, reading again while a read fails with ENOMEM.
fn read_retrying(p: &Path) -> Vec<u8> {
    for _ in 0..10_000 {
        match fs::read(p) {
            Ok(d) => return d,
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => continue,
            Err(e) => panic!("read {}: {e}", p.display()),
        }
    }
    panic!("read {} kept failing with ENOMEM", p.display())
}

/// A failed op left the tree as the model has it (the parts it touched).
/// Returns the kind of op checked.
fn check_unchanged(root: &Path, model: &Model, op: &Op) -> &'static str {
    let file_is_model = |n: &str| {
        let Some(Node::File(want)) = model.nodes.get(n) else {
            unreachable!()
        };
        let got = read_retrying(&root.join(n));
        assert!(
            got == *want,
            "failed {op:?}: {n} changed ({} bytes, {} before)",
            got.len(),
            want.len()
        );
    };
    match op {
        Op::Create(n) | Op::Mkdir(n) | Op::Symlink(_, n) => {
            assert!(
                !exists_retrying(&root.join(n)),
                "failed {op:?} left {n} behind"
            );
            "create"
        }
        Op::Unlink(n) | Op::Rmdir(n) => {
            assert!(exists_retrying(&root.join(n)), "failed {op:?} removed {n}");
            "remove"
        }
        Op::Rename(a, b) => {
            assert!(
                exists_retrying(&root.join(a)),
                "failed {op:?}: the old name is gone"
            );
            match model.nodes.get(b) {
                None => assert!(
                    !exists_retrying(&root.join(b)),
                    "failed {op:?}: the new name exists"
                ),
                Some(Node::File(_)) => file_is_model(b),
                Some(_) => {}
            }
            if matches!(model.nodes.get(a), Some(Node::File(_))) {
                file_is_model(a);
            }
            "rename"
        }
        Op::Write(n, ..) | Op::Truncate(n, _) => {
            file_is_model(n);
            "write"
        }
        Op::Read(_) => "read",
    }
}

/// `ops` random valid ops; successes go into the model, failures into the
/// returned errors (the model is left as it was).
fn mixed(root: &Path, model: &mut Model, seed: u64, ops: usize, on_error: OnError) -> Errors {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut errors = Errors::new();
    let mut checked: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..ops {
        let op = model.random_op(&mut rng);
        match run_op(root, model, &op) {
            Ok(n) => model.apply(&op, n),
            Err(e) => {
                let what: String = format!("{op:?}").chars().take(100).collect();
                errors
                    .entry(e.raw_os_error().unwrap_or(-1))
                    .or_default()
                    .push(what);
                match on_error {
                    OnError::Record => {}
                    OnError::CheckAtomic => {
                        *checked
                            .entry(check_unchanged(root, model, &op))
                            .or_default() += 1
                    }
                    OnError::Taint => model.taint(&op),
                }
            }
        }
    }
    if on_error == OnError::CheckAtomic {
        eprintln!("failed ops checked to have changed nothing, by kind: {checked:?}");
        for kind in ["create", "rename", "write"] {
            assert!(
                checked.get(kind).is_some_and(|&n| n > 0),
                "no failed {kind} was seen: atomicity of {kind} unchecked"
            );
        }
    }
    errors
}

fn errors_summary(errors: &Errors) -> String {
    errors
        .iter()
        .map(|(e, v)| {
            format!(
                "errno {e} ({}) x{}: e.g. {}",
                io::Error::from_raw_os_error(*e),
                v.len(),
                v[0]
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

// ----------------------------------------------------- policies (tests 2-4)

#[test]
fn retry_policy_hides_failures() {
    for (p, ops, seed) in [(0.10, 800, 11u64), (0.50, 800, 12), (0.99, 300, 13)] {
        let img = mkfs_ext2mfr(32 << 20, 1024);
        let t = Instant::now();
        let m = Mount::new(
            &img.path,
            &format!("policy=retry,inject_alloc={p},inject_seed={seed}"),
        );
        let mut model = Model::default();
        let errors = guarded(&m, &format!("retry {p}"), || {
            mixed(m.path(), &mut model, seed, ops, OnError::Record)
        });
        assert!(
            errors.is_empty(),
            "retry at {p}: the application saw errors: {}",
            errors_summary(&errors)
        );
        // Nothing is injected while the tree is compared.
        control(m.path(), "ext2mfr.inject", "0");
        let c = counters(m.path());
        eprintln!(
            "retry {p}: {ops} ops, {} paths, {:.1}s; {}",
            model.nodes.len(),
            t.elapsed().as_secs_f64(),
            ama_report(&c)
        );
        assert!(alloc_faults(&c) > 0, "retry {p}: nothing was injected");
        assert_eq!(
            c["ama"]["under_allocations"].as_u64(),
            Some(0),
            "{}",
            under_lines(&m.log)
        );
        assert_tree_is_model(m.path(), &model, &format!("retry {p}"));
        let again = m.remount("");
        assert_tree_is_model(again.path(), &model, &format!("retry {p} after remount"));
        again.unmount_and_check();
    }
}

/// After faults: the file system still creates, writes, reads and unlinks.
fn usable(root: &Path) {
    let p = root.join("usable-check");
    ok(fs::write(&p, pattern(9, 100_000)), "write after faults");
    assert_eq!(ok(fs::read(&p), "read after faults"), pattern(9, 100_000));
    ok(
        fs::create_dir(root.join("usable-dir")),
        "mkdir after faults",
    );
    ok(
        fs::rename(&p, root.join("usable-dir/moved")),
        "rename after faults",
    );
    ok(
        fs::remove_file(root.join("usable-dir/moved")),
        "unlink after faults",
    );
    ok(
        fs::remove_dir(root.join("usable-dir")),
        "rmdir after faults",
    );
}

#[test]
fn fail_fast_reports_enomem_and_stays_consistent() {
    let img = mkfs_ext2mfr(32 << 20, 1024);
    let m = Mount::new(
        &img.path,
        "policy=fail-fast,inject_alloc=0.5,inject_seed=21",
    );
    let mut model = Model::default();
    let errors = guarded(&m, "fail-fast", || {
        mixed(m.path(), &mut model, 21, 1200, OnError::CheckAtomic)
    });
    eprintln!("fail-fast: errors: {}", errors_summary(&errors));
    let others: Vec<_> = errors.iter().filter(|(e, _)| **e != libc::ENOMEM).collect();
    assert!(
        others.is_empty(),
        "fail-fast: errors other than ENOMEM: {:?}",
        others
    );
    let enomem = errors.get(&libc::ENOMEM).map_or(0, Vec::len);
    assert!(enomem > 0, "fail-fast: no ENOMEM seen");
    control(m.path(), "ext2mfr.inject", "0");
    let c = counters(m.path());
    eprintln!("fail-fast: {enomem} ENOMEM; {}", ama_report(&c));
    assert!(alloc_faults(&c) > 0);
    assert_eq!(
        c["ama"]["under_allocations"].as_u64(),
        Some(0),
        "{}",
        under_lines(&m.log)
    );
    // Every failed call changed nothing: the tree is exactly the model of
    // the successful ones (a create that failed left no file, a rename that
    // failed left the old name, a write that failed left the old bytes).
    assert_tree_is_model(m.path(), &model, "fail-fast");
    usable(m.path());
    let again = m.remount("");
    assert_tree_is_model(again.path(), &model, "fail-fast after remount");
    usable(again.path());
    again.unmount_and_check();
}

#[test]
fn baseline_meets_failures_where_they_fall() {
    let img = mkfs_ext2mfr(32 << 20, 1024);
    let m = Mount::new(&img.path, "baseline,inject_alloc=0.2,inject_seed=31");
    let mut model = Model::default();
    let errors = guarded(&m, "baseline", || {
        mixed(m.path(), &mut model, 31, 2000, OnError::Taint)
    });
    eprintln!("baseline: errors: {}", errors_summary(&errors));
    // Alive: the daemon still answers.
    let c = try_counters(m.path()).expect("the baseline daemon died (a panic aborts it)");
    control(m.path(), "ext2mfr.inject", "0");
    eprintln!(
        "baseline: {} tainted paths; faults injected {}; {}",
        model.tainted.len(),
        alloc_faults(&c),
        ama_report(&c)
    );
    assert!(alloc_faults(&c) > 0, "baseline: nothing was injected");
    assert_eq!(c["ama"]["enabled"], Value::Bool(false));
    let others: Vec<_> = errors.iter().filter(|(e, _)| **e != libc::ENOMEM).collect();
    assert!(
        others.is_empty(),
        "baseline: errors other than ENOMEM: {:?}",
        others
    );
    ok(fs::metadata(m.path()), "stat the root after the workload");
    let image = img.path.clone();
    m.unmount();
    let out = e2fsck_fn(&image);
    eprintln!(
        "baseline: e2fsck -fn exit {:?} ({}):\n{}{}",
        out.status.code(),
        if out.status.success() {
            "clean"
        } else {
            "NOT clean"
        },
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------- coverage (test 5)

/// A small postmark: a pool of files in a few directories, transactions of
/// (read or append) and (create or delete), then everything deleted.
fn postmark(root: &Path, seed: u64, files: usize, transactions: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dirs = 5;
    for d in 0..dirs {
        ok(fs::create_dir(root.join(format!("s{d}"))), "mkdir");
    }
    let mut live: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut next = 0;
    let mut create = |rng: &mut StdRng, live: &mut BTreeMap<String, Vec<u8>>| {
        let name = format!("s{}/pm{next:06}", rng.gen_range(0..dirs));
        next += 1;
        let data = pattern(rng.gen(), rng.gen_range(512..16 * 1024));
        ok(fs::write(root.join(&name), &data), format!("create {name}"));
        live.insert(name, data);
    };
    for _ in 0..files {
        create(&mut rng, &mut live);
    }
    for _ in 0..transactions {
        let names: Vec<String> = live.keys().cloned().collect();
        let name = &names[rng.gen_range(0..names.len())];
        if rng.gen_bool(0.5) {
            assert_eq!(
                &ok(fs::read(root.join(name)), "read"),
                &live[name],
                "{name}"
            );
        } else {
            let more = pattern(rng.gen(), rng.gen_range(1..8 * 1024));
            let mut f = ok(
                OpenOptions::new().append(true).open(root.join(name)),
                "open",
            );
            ok(f.write_all(&more), "append");
            live.get_mut(name).unwrap().extend_from_slice(&more);
        }
        if rng.gen_bool(0.5) || live.len() < 10 {
            create(&mut rng, &mut live);
        } else {
            let victim = names[rng.gen_range(0..names.len())].clone();
            if live.remove(&victim).is_some() {
                ok(fs::remove_file(root.join(&victim)), "delete");
            }
        }
    }
    for name in live.keys() {
        ok(fs::remove_file(root.join(name)), "delete");
    }
    for d in 0..dirs {
        ok(fs::remove_dir(root.join(format!("s{d}"))), "rmdir");
    }
}

#[test]
fn ama_reserves_cover_use() {
    for (peek, seed) in [("on", 51u64), ("off", 52)] {
        let img = mkfs_ext2mfr(32 << 20, 1024);
        let m = Mount::new(&img.path, &format!("ama=on,peek={peek}"));
        let label = format!("postmark peek={peek}");
        guarded(&m, &label, || postmark(m.path(), seed, 300, 1000));
        let c = assert_no_under_allocations(&m, &label);
        let a = &c["ama"];
        let by_op = a["by_op"].as_object().unwrap();
        // (Files are made by MKNOD: the daemon refuses CREATE.)
        for op in ["lookup", "mknod", "write", "read", "unlink"] {
            assert!(
                by_op
                    .get(op)
                    .is_some_and(|o| o["requests"].as_u64() > Some(0)),
                "{label}: no {op} request measured"
            );
        }
        for (op, o) in by_op {
            let (r, u) = (
                o["max_reserved"].as_u64().unwrap(),
                o["max_used"].as_u64().unwrap(),
            );
            assert!(
                u <= r,
                "{label}: {op} used {u} pages at most but reserved {r} at most"
            );
        }
        let pinned = a["pinned_pages"].as_u64().unwrap();
        if peek == "on" {
            assert!(pinned > 0, "{label}: peeking pinned nothing");
        } else {
            assert_eq!(pinned, 0, "{label}: pinned without peeking");
        }
        m.unmount_and_check();
    }
}
