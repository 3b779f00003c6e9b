//! Every fault site of every operation, in turn. For each operation type the
//! test arms the daemon to fault at its k-th fault site (block reads and
//! writes, including the lookups the kernel sends first), for k = 1, 2, ...
//! until the operation runs past all of them. Each time, under `fail-fast`
//! the call either succeeds with its full effect or fails with EIO and
//! leaves its directory exactly as before; under `retry` it always succeeds,
//! and a thread working elsewhere at the same time never sees an error.
//! The image is e2fsck-clean afterwards and the results survive a remount.

mod common;
use common::*;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

type OpFn = fn(&Path) -> io::Result<()>;

/// The state every attempt starts from.
fn base(d: &Path) {
    fs::create_dir(d).unwrap();
    fs::write(d.join("a"), vec![1u8; 5000]).unwrap();
    fs::create_dir(d.join("sub")).unwrap();
    fs::write(d.join("sub/b"), vec![2u8; 70_000]).unwrap();
    fs::create_dir(d.join("empty")).unwrap();
}

fn ops() -> Vec<(&'static str, OpFn)> {
    vec![
        ("create", |d| fs::File::create_new(d.join("new")).map(drop)),
        ("mkdir", |d| fs::create_dir(d.join("sub/newdir"))),
        ("write-extend", |d| {
            use std::os::unix::fs::FileExt;
            let f = fs::OpenOptions::new().write(true).open(d.join("a"))?;
            let n = f.write_at(&vec![9u8; 30_000], 4000)?;
            assert_eq!(n, 30_000, "a single request");
            Ok(())
        }),
        ("overwrite", |d| {
            use std::os::unix::fs::FileExt;
            let f = fs::OpenOptions::new().write(true).open(d.join("sub/b"))?;
            f.write_at(&[7u8; 3000], 1000).map(drop)
        }),
        ("truncate", |d| {
            fs::OpenOptions::new()
                .write(true)
                .open(d.join("sub/b"))?
                .set_len(100)
        }),
        ("unlink", |d| fs::remove_file(d.join("sub/b"))),
        ("rmdir", |d| fs::remove_dir(d.join("empty"))),
        ("rename-dir", |d| {
            fs::rename(d.join("sub"), d.join("empty/moved"))
        }),
        ("rename-over", |d| fs::rename(d.join("a"), d.join("sub/b"))),
        ("link", |d| fs::hard_link(d.join("a"), d.join("sub/a2"))),
        ("symlink", |d| {
            std::os::unix::fs::symlink("t".repeat(300), d.join("sl"))
        }),
        ("chmod", |d| {
            fs::set_permissions(d.join("a"), fs::Permissions::from_mode(0o600))
        }),
    ]
}

fn faults(m: &Mount) -> u64 {
    counters(m.path())["faults_injected"]["safety_faults"]
        .as_u64()
        .unwrap()
}

fn exhaust(policy: &str) {
    let img = mkfs_ext2mfr(64 << 20, 1024);
    let m = Mount::new(&img.path, &format!("policy={policy}"));
    let oracle = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Under retry, unrelated work must go on undisturbed meanwhile.
        let bystander = (policy == "retry").then(|| {
            let (dir, stop) = (m.p("bystander"), &stop);
            fs::create_dir(&dir).unwrap();
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let p = dir.join(format!("f{}", n % 20));
                    fs::write(&p, n.to_le_bytes()).expect("bystander write");
                    assert_eq!(fs::read(&p).expect("bystander read"), n.to_le_bytes());
                    n += 1;
                }
                n
            })
        });
        let mut sites_total = 0;
        for (name, op) in ops() {
            let want_dir = oracle.path().join(name);
            base(&want_dir);
            op(&want_dir).unwrap();
            let want = snapshot(&want_dir);
            let mut k = 1;
            loop {
                let d = m.p(&format!("{name}-{k}"));
                base(&d);
                let before = snapshot(&d);
                let f0 = faults(&m);
                control(m.path(), "ext2mfr.fault_after", &k.to_string());
                let r = op(&d);
                control(m.path(), "ext2mfr.fault_after", "0");
                let fired = faults(&m) > f0;
                let now = snapshot(&d);
                match &r {
                    Ok(()) => assert_eq!(
                        now, want,
                        "{name} at site {k}: succeeded but state is wrong"
                    ),
                    Err(e) if policy == "fail-fast" && e.raw_os_error() == Some(libc::EIO) => {
                        assert!(fired, "{name}: EIO without a fault");
                        assert_eq!(
                            now, before,
                            "{name} at site {k}: failed but changed the tree"
                        );
                    }
                    Err(e) => panic!("{name} at site {k} under {policy}: {e}"),
                }
                expected.push((d, if r.is_ok() { want.clone() } else { before }));
                if !fired {
                    assert!(r.is_ok(), "{name}: failed without a fault");
                    break;
                }
                k += 1;
                assert!(k < 500, "{name}: more than 500 fault sites?");
            }
            eprintln!("{policy}: {name}: {} fault sites", k - 1);
            assert!(k > 2, "{name}: the op reached hardly any fault site");
            sites_total += k - 1;
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(b) = bystander {
            let n = b.join().unwrap();
            eprintln!("{policy}: bystander did {n} write+read pairs without an error; {sites_total} sites");
        }
    });
    let c = counters(m.path());
    assert_eq!(c["recovery"]["uncommitted_now"].as_u64(), Some(0));
    let again = m.remount("");
    for (d, want) in &expected {
        let rel = d.file_name().unwrap();
        assert_eq!(
            &snapshot(&again.path().join(rel)),
            want,
            "{rel:?} after remount"
        );
    }
    again.unmount_and_check();
}

#[test]
fn every_fault_site_fail_fast() {
    exhaust("fail-fast");
}

#[test]
fn every_fault_site_retry() {
    exhaust("retry");
}
