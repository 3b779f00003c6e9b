//! AMA estimates overtaken by a concurrent request, through real mounts.
//!
//! Estimates carry no margins for races: a request whose reserve runs dry
//! is restarted on a fresh estimate (with recovery on after a rollback,
//! without only before its first change). Races that overtake an estimate
//! are rare on two cores, so `ext2mfr.short_estimates` makes every N-th
//! reservation one page short, as such a race would. Each test checks that
//! restarts happened, that no allocation went beyond a reserve, that the
//! application saw no error and the data is right, and ends with a clean
//! unmount and `e2fsck -fn`.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;

/// Stop the short reservations; some requests must have restarted, none
/// allocated beyond its reserve.
fn stop_short_and_check_restarts(m: &Mount) {
    let a = counters(m.path())["ama"].clone();
    control(m.path(), "ext2mfr.short_estimates", "0");
    eprintln!(
        "restarts {}, reservations {}, under-allocations {}",
        a["restarts"], a["reservations"], a["under_allocations"]
    );
    assert!(
        a["restarts"].as_u64().unwrap() > 0,
        "no restart happened: {a}"
    );
    assert_eq!(a["under_allocations"], 0, "{a}");
}

/// Files of 0 to 300 KiB (direct, single and double indirect blocks on 1 KiB
/// blocks) in a few directories: their expected contents by path.
fn write_tree(m: &Mount, files: usize) -> BTreeMap<String, Vec<u8>> {
    let mut want = BTreeMap::new();
    for d in 0..4 {
        fs::create_dir(m.p(&format!("d{d}"))).expect("mkdir");
    }
    for k in 0..files {
        let rel = format!("d{}/file-{k:03}-{}", k % 4, "n".repeat(k % 40));
        let data = pattern(k as u64, (k * 7919) % (300 << 10));
        fs::write(m.p(&rel), &data).expect("write");
        want.insert(rel, data);
    }
    want
}

fn check_tree(m: &Mount, want: &BTreeMap<String, Vec<u8>>) {
    for (rel, data) in want {
        assert_eq!(&fs::read(m.p(rel)).expect("read"), data, "{rel}");
    }
    for d in 0..4 {
        let n = fs::read_dir(m.p(&format!("d{d}")))
            .expect("readdir")
            .count();
        let expect = want
            .keys()
            .filter(|k| k.starts_with(&format!("d{d}/")))
            .count();
        assert_eq!(n, expect, "entries of d{d}");
    }
}

#[test]
fn with_recovery_every_kind_of_request_restarts_after_a_rollback() {
    let img = mkfs_ext2mfr(64 << 20, 1024);
    let m = Mount::new(&img.path, "cache=2M");
    control(m.path(), "ext2mfr.short_estimates", "3");
    let mut want = write_tree(&m, 120);
    // Appends, renames across directories, links, symlinks, unlinks,
    // truncation: every one may meet a short reservation.
    for k in (0..120).step_by(3) {
        let rel = want.keys().nth(k % want.len()).unwrap().clone();
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(m.p(&rel))
            .expect("open");
        let more = pattern(1000 + k as u64, 5000);
        f.write_all(&more).expect("append");
        want.get_mut(&rel).unwrap().extend_from_slice(&more);
    }
    let names: Vec<String> = want.keys().cloned().collect();
    for (k, rel) in names.iter().enumerate() {
        match k % 5 {
            0 => {
                let to = format!("d{}/moved-{k}", (k + 1) % 4);
                fs::rename(m.p(rel), m.p(&to)).expect("rename");
                let v = want.remove(rel).unwrap();
                want.insert(to, v);
            }
            1 => {
                fs::remove_file(m.p(rel)).expect("unlink");
                want.remove(rel);
            }
            2 => {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(m.p(rel))
                    .expect("open");
                f.set_len(1000).expect("truncate");
                want.get_mut(rel).unwrap().truncate(1000);
                want.get_mut(rel).unwrap().resize(1000, 0);
            }
            3 => {
                let to = format!("d{}/link-{k}", k % 4);
                fs::hard_link(m.p(rel), m.p(&to)).expect("link");
                let v = want[rel].clone();
                want.insert(to, v);
            }
            _ => {
                let to = format!("d{}/sym-{k}", k % 4);
                std::os::unix::fs::symlink("x".repeat(100 + k), m.p(&to)).expect("symlink");
                assert_eq!(fs::read_link(m.p(&to)).unwrap().as_os_str().len(), 100 + k);
                fs::remove_file(m.p(&to)).expect("unlink symlink");
            }
        }
    }
    check_tree(&m, &want);
    stop_short_and_check_restarts(&m);
    let requests = counters(m.path())["requests"].clone();
    assert_eq!(
        requests["faulted"], 0,
        "a restart is not a fault: {requests}"
    );
    let again = m.remount("");
    check_tree(&again, &want);
    again.unmount_and_check();
}

#[test]
fn without_recovery_a_request_restarts_before_it_changes_anything() {
    let img = mkfs_ext2mfr(64 << 20, 1024);
    let m = Mount::new(&img.path, "recovery=off,cache=1M");
    let want = write_tree(&m, 80);
    m.unmount_and_check();
    // A cold cache, then reads, lookups and listings (which change nothing
    // before their reads) on short reservations.
    let m = Mount::new(&img.path, "recovery=off,cache=1M");
    control(m.path(), "ext2mfr.short_estimates", "2");
    check_tree(&m, &want);
    for rel in want.keys() {
        let md = fs::metadata(m.p(rel)).expect("stat");
        assert_eq!(md.len(), want[rel].len() as u64, "{rel}");
    }
    stop_short_and_check_restarts(&m);
    m.unmount_and_check();
}

/// A first estimate does not scan directories: it assumes the directory
/// has room for a new entry and a looked-up inode's block is cached, and
/// the request checks both under its locks. Here both are false again and
/// again (a directory growing block by block; lookups on a cold cache):
/// each such request restarts on a full estimate before it changes
/// anything, and nothing is allocated beyond a reserve.
#[test]
fn wrong_assumptions_of_a_first_estimate_restart_the_request() {
    for opts in ["recovery=off,cache=1M", "cache=1M"] {
        let img = mkfs_ext2mfr(64 << 20, 1024);
        let m = Mount::new(&img.path, opts);
        fs::create_dir(m.p("big")).expect("mkdir");
        // 60-byte names: 15 entries per 1 KiB block, so the directory grows
        // by a block every 15 creates.
        let name = |k: usize| format!("big/{k:04}-{}", "x".repeat(55));
        for k in 0..200 {
            fs::write(m.p(&name(k)), pattern(k as u64, 100)).expect("create");
        }
        let a = counters(m.path())["ama"].clone();
        // (Files are made by MKNOD: the daemon refuses CREATE.)
        let creates = &a["by_op"]["mknod"];
        eprintln!("{opts}: create {creates}");
        assert!(creates["restarts"].as_u64().unwrap() >= 10, "{creates}");
        assert_eq!(a["under_allocations"], 0, "{a}");
        let m = m.remount(opts);
        for k in 0..200 {
            assert_eq!(
                fs::read(m.p(&name(k))).expect("read"),
                pattern(k as u64, 100)
            );
        }
        let a = counters(m.path())["ama"].clone();
        let lookups = &a["by_op"]["lookup"];
        eprintln!("{opts}: lookup {lookups}");
        assert!(lookups["restarts"].as_u64().unwrap() > 0, "{lookups}");
        assert_eq!(a["under_allocations"], 0, "{a}");
        let requests = counters(m.path())["requests"].clone();
        assert_eq!(
            requests["faulted"], 0,
            "a restart is not a fault: {requests}"
        );
        m.unmount_and_check();
    }
}
