//! Recovery, judged by an oracle. Several threads issue random requests,
//! each in its own directory, while memory-safety faults strike at random
//! fault sites inside requests. Every request that reports success is
//! replayed, in the same thread and order, on an ordinary directory of the
//! host (the oracle); requests that fail are not. Afterwards the mounted tree
//! (names, types, sizes, contents, permissions, link counts, symlink targets)
//! must equal the oracle's, before and after a remount, and `e2fsck -fn` must
//! be clean.

mod common;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One state-changing request, applied the same way to the mount and to the
/// oracle. Each is a single changing system call (a preceding open changes
/// nothing), so a failed call means nothing happened.
#[derive(Clone, Debug)]
enum Op {
    Create(String),
    Write(String, u64, Vec<u8>),
    Truncate(String, u64),
    Unlink(String),
    Mkdir(String),
    Rmdir(String),
    Rename(String, String),
    Symlink(String, String),
    Link(String, String),
    Chmod(String, u32),
}

fn apply(root: &Path, op: &Op) -> io::Result<()> {
    let p = |n: &str| root.join(n);
    match op {
        Op::Create(n) => fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p(n))
            .map(drop),
        Op::Write(n, off, data) => {
            // One pwrite: the kernel may split it into several requests, so a
            // fault can leave it short; `apply_write` reports how much landed.
            apply_write(root, n, *off, data).map(drop)
        }
        Op::Truncate(n, len) => fs::OpenOptions::new().write(true).open(p(n))?.set_len(*len),
        Op::Unlink(n) => fs::remove_file(p(n)),
        Op::Mkdir(n) => fs::create_dir(p(n)),
        Op::Rmdir(n) => fs::remove_dir(p(n)),
        Op::Rename(a, b) => fs::rename(p(a), p(b)),
        Op::Symlink(target, n) => std::os::unix::fs::symlink(target, p(n)),
        Op::Link(a, b) => fs::hard_link(p(a), p(b)),
        Op::Chmod(n, mode) => fs::set_permissions(p(n), fs::Permissions::from_mode(*mode)),
    }
}

fn apply_write(root: &Path, n: &str, off: u64, data: &[u8]) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new().write(true).open(root.join(n))?;
    f.write_at(data, off)
}

fn random_op(rng: &mut StdRng, names: &[&str]) -> Op {
    let name = |rng: &mut StdRng| names[rng.gen_range(0..names.len())].to_string();
    let data = |rng: &mut StdRng| {
        let len = *[0usize, 10, 1000, 5000, 70_000]
            .get(rng.gen_range(0..5))
            .unwrap();
        let byte: u8 = rng.gen();
        vec![byte; len]
    };
    match rng.gen_range(0..10) {
        0 => Op::Create(name(rng)),
        1 => Op::Write(name(rng), rng.gen_range(0..300_000), data(rng)),
        2 => Op::Truncate(name(rng), rng.gen_range(0..200_000)),
        3 => Op::Unlink(name(rng)),
        4 => Op::Mkdir(name(rng)),
        5 => Op::Rmdir(name(rng)),
        6 => Op::Rename(name(rng), name(rng)),
        7 => Op::Symlink("x".repeat(rng.gen_range(1..100)), name(rng)),
        8 => Op::Link(name(rng), name(rng)),
        _ => Op::Chmod(name(rng), rng.gen_range(0o400..0o777)),
    }
}

fn run_oracle(policy: &str, seed: u64) {
    let img = mkfs_ext2mfr(64 << 20, 1024);
    let opts = format!("inject_safety=0.004,inject_seed={seed},policy={policy}");
    let m = Mount::new(&img.path, &opts);
    let oracle = tempfile::tempdir().unwrap();
    let threads = 4;
    for t in 0..threads {
        fs::create_dir(oracle.path().join(format!("t{t}"))).unwrap();
        // Setup may itself meet a fault: retry it until it succeeds.
        while fs::create_dir(m.p(&format!("t{t}"))).is_err() && !m.p(&format!("t{t}")).exists() {}
    }
    let logs: Vec<std::sync::Mutex<Vec<String>>> =
        (0..threads).map(|_| Default::default()).collect();
    let logs = &logs;
    let results: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (mnt, orc) = (m.p(&format!("t{t}")), oracle.path().join(format!("t{t}")));
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(seed * 100 + t as u64);
                    let names = ["a", "b", "c", "d", "sub", "sub/e", "sub/f", "g"];
                    let (mut ok, mut failed) = (0, 0);
                    for _ in 0..250 {
                        let mut op = random_op(&mut rng, &names);
                        let got = match &op {
                            Op::Write(n, off, data) => match apply_write(&mnt, n, *off, data) {
                                // A short write: replay exactly what landed.
                                Ok(k) => {
                                    op = Op::Write(n.clone(), *off, data[..k].to_vec());
                                    Ok(())
                                }
                                Err(e) => Err(e),
                            },
                            _ => apply(&mnt, &op),
                        };
                        logs[t].lock().unwrap().push(
                            format!(
                                "{:?} <- {:?}",
                                got.as_ref().map_err(|e| e.raw_os_error()),
                                op
                            )
                            .chars()
                            .take(90)
                            .collect(),
                        );
                        match &got {
                            Ok(()) => {
                                ok += 1;
                                if let Err(e) = apply(&orc, &op) {
                                    panic!(
                                        "{op:?} succeeded on the mount but not on the oracle: {e}"
                                    );
                                }
                            }
                            // A fault (or a rollback of a request this one
                            // depended on): nothing may have happened.
                            Err(e) if e.raw_os_error() == Some(libc::EIO) => failed += 1,
                            // An ordinary error must be the oracle's error too.
                            Err(e) => {
                                let want = apply(&orc, &op);
                                assert_eq!(
                                    want.as_ref().err().map(|w| w.raw_os_error()),
                                    Some(e.raw_os_error()),
                                    "{op:?}: mount said {e}, oracle said {want:?}"
                                );
                            }
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    control(m.path(), "ext2mfr.inject", "0");
    let c = counters(m.path());
    let faults = c["faults_injected"]["safety_faults"].as_u64().unwrap();
    let rolled_back = c["recovery"]["rolled_back"].as_u64().unwrap();
    eprintln!("policy {policy}: per thread (ok, failed) {results:?}; counters {c}");
    assert!(
        faults > 0,
        "no fault was injected: the test would prove nothing"
    );
    assert!(rolled_back >= faults.min(1));
    assert_eq!(c["recovery"]["uncommitted_now"].as_u64(), Some(0));
    if policy == "retry" {
        assert!(
            results.iter().all(|&(_, failed)| failed == 0),
            "retry hid every fault"
        );
    } else {
        assert!(
            results.iter().map(|&(_, f)| f).sum::<usize>() > 0,
            "fail-fast reported the faults"
        );
    }
    let (got, want) = (snapshot(m.path()), snapshot(oracle.path()));
    if got != want {
        for (k, v) in &got {
            if want.get(k) != Some(v) {
                eprintln!("differs: {k}: mount {v} oracle {:?}", want.get(k));
                let t: usize = k[1..2].parse().unwrap();
                for l in logs[t].lock().unwrap().iter() {
                    eprintln!("  t{t}: {l}");
                }
            }
        }
    }
    if got != want {
        control(m.path(), "ext2mfr.inject", "0");
        // Is it the daemon's state, or the kernel's caches? Look again after a remount.
        let img_path = img.path.clone();
        m.unmount();
        let again = Mount::new(&img_path, "");
        let after = snapshot(again.path());
        for (k, v) in &after {
            if want.get(k) != Some(v) {
                eprintln!(
                    "after remount differs: {k}: mount {v} oracle {:?}",
                    want.get(k)
                );
            }
        }
        panic!("tree differs from the oracle");
    }
    let again = m.remount("");
    assert_eq!(
        snapshot(again.path()),
        snapshot(oracle.path()),
        "tree differs after remount"
    );
    again.unmount_and_check();
    let _ = io::stderr().flush();
}

#[test]
fn oracle_fail_fast() {
    run_oracle("fail-fast", 7);
}

#[test]
fn oracle_retry() {
    run_oracle("retry", 11);
}
