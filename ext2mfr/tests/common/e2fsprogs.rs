//! e2fsprogs as the judge: e2fsck on an unmounted image, debugfs to read
//! (and write) an image the way e2fsprogs sees it, dumpe2fs's super block
//! fields.

use super::image::{le32, sb_bytes};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `e2fsck -fn IMAGE`, its output whatever it finds.
pub fn e2fsck_fn(image: &Path) -> Output {
    Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .output()
        .expect("run e2fsck")
}

/// Run `e2fsck -fn` and panic with its report unless the image is clean.
pub fn fsck_clean(image: &Path) {
    let out = e2fsck_fn(image);
    assert!(
        out.status.success(),
        "e2fsck -fn found problems (exit {:?}):\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `e2fsck -fn` must not even ask a question: some findings (feature flags
/// on a revision 0 super block, for one) leave its exit status at 0.
pub fn fsck_strict(img: &Path) {
    let out = e2fsck_fn(img);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.lines().any(|l| l.trim_end().ends_with("? no")),
        "e2fsck -fn has findings:\n{text}"
    );
}

/// `e2fsck -fyD`: rebuild (htree-index) the directories; exit 0 or 1
/// (1: it changed something, as it does when it indexes).
pub fn fsck_index_directories(image: &Path) {
    let out = Command::new("e2fsck")
        .arg("-fyD")
        .arg(image)
        .output()
        .expect("run e2fsck");
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "e2fsck -fyD: {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `debugfs -R CMD IMAGE` (read-only): its stdout; debugfs must succeed.
pub fn debugfs(img: &Path, cmd: &str) -> String {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(cmd)
        .arg(img)
        .output()
        .expect("run debugfs");
    assert!(
        out.status.success(),
        "debugfs {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `debugfs -w -R CMD IMAGE`: change the image; any complaint fails.
pub fn debugfs_w(img: &Path, cmd: &str) {
    let out = Command::new("debugfs")
        .arg("-w")
        .arg("-R")
        .arg(cmd)
        .arg(img)
        .output()
        .expect("run debugfs");
    let err = String::from_utf8_lossy(&out.stderr);
    // debugfs prints its banner on stderr and exits 0 even when a command fails.
    let problems: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && problems.is_empty(),
        "debugfs -w {cmd}: {err}"
    );
}

/// `debugfs -R "cat PATH"`: the file's bytes as e2fsprogs reads them.
pub fn debugfs_cat(image: &Path, path: &str) -> Vec<u8> {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(image)
        .stderr(Stdio::null())
        .output()
        .expect("run debugfs");
    assert!(out.status.success());
    out.stdout
}

/// `debugfs -R "stat PATH"`: the inode report.
pub fn debugfs_stat(image: &Path, path: &str) -> String {
    debugfs(image, &format!("stat {path}"))
}

/// The word after `key` in a `debugfs stat` report (`"Size:"`, `"Flags:"`).
pub fn stat_field(stat: &str, key: &str) -> String {
    let i = stat
        .find(key)
        .unwrap_or_else(|| panic!("no '{key}' in debugfs stat output:\n{stat}"));
    stat[i + key.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The inode number debugfs finds at `path` (following ".." entries on disk).
pub fn debugfs_ino(img: &Path, path: &str) -> u32 {
    let s = debugfs_stat(img, path);
    let rest = s
        .strip_prefix("Inode: ")
        .unwrap_or_else(|| panic!("debugfs stat {path}: {s}"));
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// `dumpe2fs -h IMAGE`: the super block report.
pub fn dumpe2fs_h(img: &Path) -> String {
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(img)
        .output()
        .expect("run dumpe2fs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `name` (`"Mount count"`, `"Filesystem state"`...) in a
/// `dumpe2fs -h` report.
pub fn dump_field<'a>(dump: &'a str, name: &str) -> &'a str {
    dump.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_else(|| panic!("no '{name}' in dumpe2fs output"))
        .trim()
}

/// One field of the image's `dumpe2fs -h` report.
pub fn dumpe2fs_field(img: &Path, name: &str) -> String {
    dump_field(&dumpe2fs_h(img), name).to_string()
}

/// The xattr block of `path` in an image, and its reference count.
pub fn xattr_block(img: &Path, path: &str) -> (u64, u32) {
    let blk: u64 = stat_field(&debugfs_stat(img, path), "File ACL:")
        .parse()
        .unwrap();
    assert_ne!(blk, 0, "{path} has no xattr block");
    let bs = le32(&sb_bytes(img), 24);
    let mut hdr = [0u8; 8];
    std::fs::File::open(img)
        .unwrap()
        .read_exact_at(&mut hdr, blk * (1024u64 << bs))
        .unwrap();
    (blk, le32(&hdr, 4))
}
