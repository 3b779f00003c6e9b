//! POSIX ACLs through a real FUSE mount, side by side with the kernel's
//! ext2 on an identical image: an access ACL sets the mode and is enforced
//! (the kernel checks it: FUSE_POSIX_ACL), chmod moves the mask, an ACL the
//! mode says all of is not stored, a directory's default ACL is inherited
//! by what is created in it in place of the umask, and each driver reads
//! the ACLs the other wrote.

mod common;
use common::*;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

const ACCESS: &str = "system.posix_acl_access";
const DEFAULT: &str = "system.posix_acl_default";
const NOBODY: u32 = 65534;

fn sh(script: &str) {
    let st = Command::new("sh").arg("-c").arg(script).status().unwrap();
    assert!(st.success(), "{script}");
}

/// Mode, owner, blocks and both ACLs (in the xattr form) of each path.
fn describe(root: &Path, t: &mut Vec<String>) {
    let mut paths: Vec<_> = walk(root);
    paths.sort();
    for p in paths {
        let md = fs::symlink_metadata(&p).unwrap();
        let acl = |n| getxattr(&p, n, 4096).map_err(|e| e.raw_os_error());
        // The names in listxattr's order: a new directory's inherited
        // ACLs are stored default first (ext4_init_acl), which listing shows.
        t.push(format!(
            "{} mode {:o} uid {} blocks {} access {:?} default {:?} names {:?}",
            p.strip_prefix(root).unwrap().display(),
            md.mode(),
            md.uid(),
            md.blocks(),
            acl(ACCESS),
            acl(DEFAULT),
            xattr_names(&p)
        ));
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() == "lost+found" {
            continue;
        }
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// What users do with ACLs (setfacl's system calls), with every answer.
fn acl_transcript(root: &Path) -> Vec<String> {
    let mut t = Vec::new();
    let r = |p: &str| root.join(p);
    let path = |p: &str| r(p).display().to_string();
    for f in ["f", "g"] {
        fs::write(r(f), b"secret").unwrap();
        fs::set_permissions(r(f), fs::Permissions::from_mode(0o640)).unwrap();
    }
    fs::create_dir(r("d")).unwrap();
    fs::create_dir(r("e")).unwrap();
    let can_read = |f: &str| sh_as_nobody(&format!("cat {} >/dev/null 2>&1", path(f)));

    // u::rw-, u:nobody:r--, g::r--, m::r--, o::---
    let named = acl_xattr(&[
        (1, 6, 0),
        (2, 4, NOBODY),
        (4, 4, 0),
        (0x10, 4, 0),
        (0x20, 0, 0),
    ]);
    t.push(format!(
        "set named: {:?}",
        errno_of_unit(setxattr(&r("f"), ACCESS, &named))
    ));
    t.push(format!(
        "nobody reads f {} g {}",
        can_read("f"),
        can_read("g")
    ));
    fs::set_permissions(r("f"), fs::Permissions::from_mode(0o600)).unwrap();
    t.push(format!("after chmod 600 nobody reads f {}", can_read("f")));
    fs::set_permissions(r("f"), fs::Permissions::from_mode(0o640)).unwrap();
    t.push(format!("after chmod 640 nobody reads f {}", can_read("f")));
    // An ACL the mode says all of: the mode changes, nothing is stored.
    let plain = acl_xattr(&[(1, 6, 0), (4, 4, 0), (0x20, 4, 0)]);
    t.push(format!(
        "set equivalent: {:?}",
        errno_of_unit(setxattr(&r("g"), ACCESS, &plain))
    ));
    t.push(format!("g names {:?}", xattr_names(&r("g"))));
    t.push(format!(
        "default on a file: {:?}",
        errno_of_unit(setxattr(&r("f"), DEFAULT, &plain))
    ));
    t.push(format!(
        "remove absent: {:?}",
        errno_of_unit(removexattr(&r("g"), ACCESS))
    ));
    let bad = acl_xattr(&[(1, 6, 0), (2, 4, NOBODY), (4, 4, 0), (0x20, 0, 0)]);
    t.push(format!(
        "no mask: {:?}",
        errno_of_unit(setxattr(&r("g"), ACCESS, &bad))
    ));
    // Named ids out of order and repeated: the kernel's posix_acl_valid
    // takes them (it has not compared ids since kuids), and stores them as
    // given; describe() below shows what each side read back.
    let unsorted = acl_xattr(&[
        (1, 6, 0),
        (2, 4, NOBODY),
        (2, 4, 1000),
        (2, 6, 1000),
        (4, 4, 0),
        (0x10, 6, 0),
        (0x20, 0, 0),
    ]);
    t.push(format!(
        "unsorted ids: {:?}",
        errno_of_unit(setxattr(&r("g"), ACCESS, &unsorted))
    ));

    // d: nobody may create in it, and what is created inherits.
    let rwx = acl_xattr(&[
        (1, 7, 0),
        (2, 7, NOBODY),
        (4, 5, 0),
        (0x10, 7, 0),
        (0x20, 5, 0),
    ]);
    t.push(format!(
        "access on d: {:?}",
        errno_of_unit(setxattr(&r("d"), ACCESS, &rwx))
    ));
    t.push(format!(
        "default on d: {:?}",
        errno_of_unit(setxattr(&r("d"), DEFAULT, &rwx))
    ));
    sh(&format!(
        "umask 077; touch {0}/x; mkdir {0}/y; mkfifo {0}/p; mkdir {0}/y/z; ln -s x {0}/l",
        path("d")
    ));
    t.push(format!(
        "nobody creates in d {}",
        sh_as_nobody(&format!("touch {}/n", path("d")))
    ));
    t.push(format!(
        "nobody creates in e {}",
        sh_as_nobody(&format!("touch {}/n", path("e")))
    ));
    sh(&format!("umask 027; touch {0}/x; mkdir {0}/y", path("e")));
    // Removing the default ACL: creates take the umask again.
    t.push(format!(
        "remove default: {:?}",
        errno_of_unit(removexattr(&r("d"), DEFAULT))
    ));
    sh(&format!("umask 077; touch {0}/after", path("d")));
    describe(root, &mut t);
    t
}

fn errno_of_unit(r: std::io::Result<()>) -> Option<i32> {
    r.err().map(|e| e.raw_os_error().unwrap_or(-1))
}

#[test]
fn acls_answer_and_enforce_as_the_kernels() {
    let _serial = setup();
    for (bs, isize) in [(1024, "256"), (4096, "128")] {
        let img = mkfs_ext2(16384, bs, &["-I", isize]);
        let theirs = copy_image(&img, "kernel.img");
        // (allow_other: others than the mounter reach the mount at all.)
        let m = mount(&img.path, "allow_other");
        let ours = acl_transcript(m.path());
        m.unmount_and_check();
        let k = KernelMount::new(&theirs);
        let kernel = acl_transcript(k.path());
        k.unmount();
        for (n, (a, b)) in ours.iter().zip(&kernel).enumerate() {
            assert_eq!(a, b, "{bs}-byte blocks, {isize}-byte inodes, line {n}");
        }
        assert_eq!(ours.len(), kernel.len());
        // What the transcript shows, so that agreeing means something.
        for line in [
            "nobody reads f true g false",
            "after chmod 600 nobody reads f false",
            "after chmod 640 nobody reads f true",
            "g names []",
            "default on a file: Some(13)",
            "unsorted ids: None",
            "nobody creates in d true",
            "nobody creates in e false",
        ] {
            assert!(ours.iter().any(|l| l == line), "{line}: {ours:#?}");
        }
        // The default ACL, not the umask (077), masks d/x; e/x takes the
        // umask (027).
        assert!(
            ours.iter().any(|l| l.starts_with("d/x mode 100664")),
            "{ours:#?}"
        );
        assert!(
            ours.iter().any(|l| l.starts_with("e/x mode 100640")),
            "{ours:#?}"
        );
        fsck_strict(&img.path);
        fsck_strict(&theirs);

        // Each reads what the other wrote, as its writer did.
        let mut by_kernel = Vec::new();
        let k = KernelMount::new(&img.path);
        describe(k.path(), &mut by_kernel);
        k.unmount();
        let mut ours_of_theirs = Vec::new();
        let m = mount(&theirs, "allow_other");
        describe(m.path(), &mut ours_of_theirs);
        let nobody_reads = sh_as_nobody(&format!("cat {}/f >/dev/null", m.path().display()));
        m.unmount_and_check();
        let tail = |t: &[String]| t[t.len() - by_kernel.len()..].to_vec();
        assert_eq!(by_kernel, tail(&ours), "the kernel reads our ACLs");
        assert_eq!(ours_of_theirs, tail(&kernel), "we read the kernel's ACLs");
        assert!(nobody_reads, "the kernel's ACL enforced here");
    }
}

/// Setting an access ACL keeps set-group-ID for a caller in the file's
/// group, also through a supplementary group (posix_acl_update_mode, as
/// the kernel's driver), and drops it for a caller outside the group.
#[test]
fn an_acl_set_by_a_member_through_a_supplementary_group_keeps_set_group_id() {
    let _serial = setup();
    let img = mkfs_ext2mfr(16 << 20, 1024);
    let m = mount(&img.path, "allow_other");
    // u::rwx, g::rwx, o::---
    let acl = acl_xattr(&[(1, 7, 0), (4, 7, 0), (0x20, 0, 0)]);
    for (name, groups, want) in [
        ("member", &[4321u32][..], 0o2770),
        ("outsider", &[][..], 0o0770),
    ] {
        let p = m.p(name);
        fs::write(&p, b"").unwrap();
        chown(&p, 1000, 4321).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o2770)).unwrap();
        on_thread_as(1000, 1000, groups, || {
            setxattr(&p, "system.posix_acl_access", &acl)
        })
        .unwrap();
        let mode = fs::metadata(&p).unwrap().mode() & 0o7777;
        assert_eq!(mode, want, "{name}");
    }
    m.unmount_and_check();
}
