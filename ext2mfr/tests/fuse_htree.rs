//! Indexed directories (htree) through a real FUSE mount, side by side
//! with the kernel's ext2 on identical images: names hashed as e2fsprogs
//! hashes them, the same index and the same leaves after the same creates
//! (so the same directory sizes), each driver continuing the other's
//! index, listings that neither repeat nor skip a name while leaves split,
//! and changes under injected faults; e2fsck -fn clean throughout.

mod common;
use common::*;

use ext2mfr::format::htree::Hasher;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

/// The index and the leaves as debugfs dumps them, without what the two
/// allocators choose differently (physical blocks, inode numbers).
fn index_shape(img: &Path, dir: &str) -> Vec<String> {
    debugfs(img, &format!("htree_dump {dir}"))
        .lines()
        .filter(|l| {
            l.starts_with("Entry")
                || l.contains("count")
                || l.contains("limit")
                || l.contains("levels")
                || l.starts_with("Reading")
                || l.chars().next().is_some_and(|c| c.is_ascii_digit())
        })
        .map(|l| {
            let l = match l.find(", phys") {
                Some(i) => &l[..i],
                None => l,
            };
            // "<inode> 0x<hash>-<minor> (<rec_len>) <name>": drop the inode.
            match l.split_once(' ') {
                Some((ino, rest)) if ino.chars().all(|c| c.is_ascii_digit()) => rest.to_string(),
                _ => l.to_string(),
            }
        })
        .collect()
}

fn create_files(dir: &Path, range: std::ops::Range<usize>) {
    for i in range {
        fs::write(dir.join(format!("file_with_a_longish_name_{i}")), b"").unwrap();
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Our hashes are e2fsprogs' (debugfs dx_hash) for every version, signed
/// and unsigned, with the default and a given seed, for names short and
/// long and with bytes above 0x7f.
#[test]
fn name_hashes_match_e2fsprogs() {
    let img = mkfs_ext2(1024, 1024, &[]);
    let mut names: Vec<Vec<u8>> = vec![b"a".to_vec(), b"hello".to_vec()];
    names.push((0..70).map(|i| b'a' + (i % 26) as u8).collect());
    names.push(vec![0xe9, b'x', 0xff, 0x80, b'y']);
    names.push((0..40).map(|i| 0x80 + i as u8).collect());
    let seeds: [(&str, [u32; 4]); 2] = [
        ("", [0; 4]),
        (
            "01234567-89ab-cdef-0123-456789abcdef",
            [0x6745_2301, 0xefcd_ab89, 0x6745_2301, 0xefcd_ab89],
        ),
    ];
    for version in 0..6u8 {
        for (uuid, seed) in seeds {
            for name in &names {
                let mut cmd = format!("dx_hash -h {version} ").into_bytes();
                if !uuid.is_empty() {
                    cmd.extend_from_slice(format!("-s {uuid} ").as_bytes());
                }
                cmd.extend_from_slice(name);
                let out = Command::new("debugfs")
                    .arg("-R")
                    .arg(std::ffi::OsStr::from_bytes(&cmd))
                    .arg(&img.path)
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                let line = text
                    .lines()
                    .find(|l| l.starts_with("Hash of"))
                    .unwrap_or_else(|| {
                        panic!(
                            "no hash from debugfs: {text} {}",
                            String::from_utf8_lossy(&out.stderr)
                        )
                    });
                // "Hash of NAME is 0x... (minor 0x...)"
                let hex = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
                let mut words = line.rsplit(' ');
                let minor = hex(words.next().unwrap().trim_end_matches(')'));
                words.next();
                let major = hex(words.next().unwrap());
                // Versions 3-5 are the unsigned ones, as the flag selects.
                let h = if version >= 3 {
                    Hasher::new(version - 3, seed, 0x2).hash(name)
                } else {
                    Hasher::new(version, seed, 0x1).hash(name)
                };
                assert_eq!(
                    (h.major, h.minor),
                    (major, minor),
                    "version {version}, seed {uuid:?}, name {name:?}"
                );
            }
        }
    }
}

/// The same creates on identical images give the same index and leaves on
/// both drivers (two index levels at 1 KiB blocks), and each continues,
/// shrinks and reads what the other built.
#[test]
fn indexed_directories_as_the_kernel_builds_them() {
    let _serial = setup();
    for (bs, n) in [(1024usize, 3000usize), (2048, 1500), (4096, 1500)] {
        let img = mkfs_ext2(65536, bs as u32, &[]);
        let theirs = copy_image(&img, "kernel.img");
        let m = mount(&img.path, "");
        fs::create_dir(m.p("d")).unwrap();
        create_files(&m.p("d"), 0..n);
        assert_eq!(names(&m.p("d")).len(), n);
        m.unmount_and_check();
        let k = KernelMount::new(&theirs);
        fs::create_dir(k.path().join("d")).unwrap();
        create_files(&k.path().join("d"), 0..n);
        k.unmount();
        fsck_strict(&img.path);
        fsck_strict(&theirs);
        let ours = index_shape(&img.path, "/d");
        assert!(
            ours.iter().any(|l| l.contains("count")),
            "{bs}: no index: {ours:?}"
        );
        assert_eq!(ours, index_shape(&theirs, "/d"), "{bs}-byte blocks");
        if bs == 1024 {
            assert!(
                ours.iter().any(|l| l.contains("Indirect levels: 1")),
                "two levels expected at 1 KiB"
            );
        }

        // The kernel continues ours; we continue the kernel's.
        let k = KernelMount::new(&img.path);
        let kd = k.path().join("d");
        create_files(&kd, n..n + 500);
        for i in (0..n).step_by(3) {
            fs::remove_file(kd.join(format!("file_with_a_longish_name_{i}"))).unwrap();
        }
        let want = names(&kd);
        k.unmount();
        fsck_strict(&img.path);
        let m = mount(&img.path, "");
        assert_eq!(names(&m.p("d")), want);
        create_files(&m.p("d"), n + 500..n + 1000);
        for i in (1..n).step_by(3) {
            fs::remove_file(m.p(&format!("d/file_with_a_longish_name_{i}"))).unwrap();
        }
        let want = names(&m.p("d"));
        m.unmount_and_check();
        fsck_strict(&img.path);
        let k = KernelMount::new(&img.path);
        assert_eq!(names(&k.path().join("d")), want);
        for name in want.iter().take(50) {
            assert!(k.path().join("d").join(name).exists());
        }
        k.unmount();
    }
}

/// A listing that goes on while its directory's leaves split (names added
/// between reads) returns every name that was there before exactly once,
/// as the kernel's hash-ordered listing does.
#[test]
fn listing_while_leaves_split_sees_each_name_once() {
    let _serial = setup();
    let img = mkfs_ext2(65536, 1024, &[]);
    let m = mount(&img.path, "");
    let d = m.p("d");
    fs::create_dir(&d).unwrap();
    create_files(&d, 0..2000);
    let before = names(&d);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut it = fs::read_dir(&d).unwrap();
    let mut next_new = 2000;
    let mut count = 0;
    for e in it.by_ref() {
        *seen
            .entry(e.unwrap().file_name().to_string_lossy().into_owned())
            .or_default() += 1;
        count += 1;
        if count % 200 == 0 {
            // Enough new names to split many leaves.
            create_files(&d, next_new..next_new + 300);
            next_new += 300;
        }
    }
    for name in &before {
        assert_eq!(
            seen.get(name),
            Some(&1),
            "{name} listed {:?} times",
            seen.get(name)
        );
    }
    assert!(seen.values().all(|&n| n == 1), "a name listed twice");
    drop(it);
    m.unmount_and_check();
    fsck_strict(&img.path);
}

fn name_set(range: impl Iterator<Item = usize>) -> BTreeSet<String> {
    range
        .map(|i| format!("file_with_a_longish_name_{i}"))
        .collect()
}

fn remove_files(dir: &Path, range: impl Iterator<Item = usize>) {
    for i in range {
        fs::remove_file(dir.join(format!("file_with_a_longish_name_{i}"))).unwrap();
    }
}

/// Index interop both ways under injected allocation failures and
/// memory-safety faults (retry), at 1, 2 and 4 KiB blocks: ext2mfr builds
/// an index from nothing (`m`) and continues one the kernel built (`k`);
/// the kernel then changes both, and ext2mfr, under faults again, reads
/// and changes what the kernel left. Every call succeeds, the names are
/// exactly those asked for, no under-allocation, something was injected,
/// and e2fsck is clean (the index too) after every mount of either driver.
#[test]
fn indexed_directory_under_injected_faults() {
    let _serial = setup();
    for bs in [1024u32, 2048, 4096] {
        for opts in [
            "policy=retry,inject_alloc=0.2,inject_seed=5",
            "policy=retry,inject_safety=0.01,inject_seed=9",
        ] {
            let what = format!("{bs}-byte blocks, {opts}");
            let img = mkfs_ext2(65536, bs, &[]);
            let k = KernelMount::new(&img.path);
            fs::create_dir(k.path().join("k")).unwrap();
            create_files(&k.path().join("k"), 0..1500);
            k.unmount();
            fsck_strict(&img.path);
            let injected = |m: &Mount| {
                let c = counters(m.path());
                assert_eq!(c["ama"]["under_allocations"], 0, "{what}");
                let f = &c["faults_injected"];
                f["alloc_faults"].as_u64().unwrap() + f["safety_faults"].as_u64().unwrap()
            };

            let m = mount(&img.path, opts);
            let (md, kd) = (m.p("m"), m.p("k"));
            fs::create_dir(&md).unwrap();
            create_files(&md, 0..1500);
            remove_files(&md, (0..1500).step_by(2));
            create_files(&md, 1500..2000);
            remove_files(&kd, (0..1500).step_by(2));
            create_files(&kd, 1500..2500);
            let want_m = name_set((1..1500).step_by(2).chain(1500..2000));
            let want_k = name_set((1..1500).step_by(2).chain(1500..2500));
            assert_eq!(names(&md), want_m, "{what}");
            assert_eq!(names(&kd), want_k, "{what}");
            assert!(injected(&m) > 0, "{what}: nothing injected");
            m.unmount_and_check();
            fsck_strict(&img.path);
            for d in ["/m", "/k"] {
                let shape = index_shape(&img.path, d);
                assert!(
                    shape.iter().any(|l| l.contains("count")),
                    "{what}: {d} has no index"
                );
            }

            // The kernel reads and changes both indexes.
            let k = KernelMount::new(&img.path);
            for (d, want) in [("m", &want_m), ("k", &want_k)] {
                let kd = k.path().join(d);
                assert_eq!(&names(&kd), want, "{what}: the kernel's view of {d}");
                remove_files(&kd, (1..1500).step_by(4));
                create_files(&kd, 3000..3300);
            }
            k.unmount();
            fsck_strict(&img.path);

            // And ext2mfr, under faults again, what the kernel left.
            let m = mount(&img.path, opts);
            for (d, want) in [(m.p("m"), &want_m), (m.p("k"), &want_k)] {
                let want: BTreeSet<String> = want
                    .difference(&name_set((1..1500).step_by(4)))
                    .cloned()
                    .chain(name_set(3000..3300))
                    .collect();
                assert_eq!(names(&d), want, "{what}: after the kernel");
                remove_files(&d, 3000..3300);
                create_files(&d, 4000..4200);
            }
            assert!(injected(&m) > 0, "{what}: nothing injected");
            m.unmount_and_check();
            fsck_strict(&img.path);
            let k = KernelMount::new(&img.path);
            assert!(k.path().join("k/file_with_a_longish_name_4199").exists());
            assert!(!k.path().join("m/file_with_a_longish_name_3000").exists());
            k.unmount();
        }
    }
}
