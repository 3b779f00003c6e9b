//! Data to write and check: byte patterns (two kinds, see below), reads at
//! an offset that must succeed, the block-map arithmetic `st_blocks` is
//! checked against, and snapshots of whole trees.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Deterministic pseudo-random bytes (xorshift), different for each seed, so
/// a block read from the wrong place never matches by accident. The same
/// bytes wherever they are written (compare [`pat`]).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        let n = (len - out.len()).min(8);
        out.extend_from_slice(&b[..n]);
    }
    out
}

/// A position-dependent byte pattern (differs for every `seed`): byte `i`
/// of a file, wherever a piece of it is written or read.
pub fn pat_byte(i: u64, seed: u64) -> u8 {
    let x = (i ^ seed.wrapping_mul(0x51_7CC1_B727_220A)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8
}

/// `len` bytes of the position-dependent pattern, starting at file offset `off`.
pub fn pat(off: u64, len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64).map(|k| pat_byte(off + k, seed)).collect()
}

/// Exactly `len` bytes at `off`, or a panic.
pub fn read_at(f: &File, off: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    f.read_exact_at(&mut v, off)
        .unwrap_or_else(|e| panic!("read {len} at {off}: {e}"));
    v
}

pub fn first_diff(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Check `len` bytes at `off` hold the pattern [`pat`] (in 1 MiB pieces).
pub fn check_pattern(f: &File, off: u64, len: u64, seed: u64) {
    let mut pos = off;
    while pos < off + len {
        let n = (off + len - pos).min(1 << 20) as usize;
        let got = read_at(f, pos, n);
        let want = pat(pos, n, seed);
        if got != want {
            let d = first_diff(&got, &want);
            panic!(
                "pattern mismatch at byte {} (got {:#x}, want {:#x})",
                pos + d as u64,
                got[d],
                want[d]
            );
        }
        pos += n as u64;
    }
}

/// Check `len` bytes at `off` are zeros (a hole, or past a truncate).
pub fn check_zeros(f: &File, off: u64, len: usize) {
    let got = read_at(f, off, len);
    if let Some(i) = got.iter().position(|&b| b != 0) {
        panic!(
            "expected zeros at {off}..{}, byte {} is {:#x}",
            off + len as u64,
            off + i as u64,
            got[i]
        );
    }
}

/// Indirect blocks an ext2 block map needs for these data blocks (`p`
/// pointers per block): one per distinct indirect node on their paths.
pub fn meta_blocks(lblks: impl IntoIterator<Item = u64>, p: u64) -> u64 {
    let mut nodes = HashSet::new();
    for l in lblks {
        if l < 12 {
            continue;
        }
        let l1 = l - 12;
        if l1 < p {
            nodes.insert((1, 0, 0));
            continue;
        }
        let l2 = l1 - p;
        if l2 < p * p {
            nodes.insert((2, 0, 0));
            nodes.insert((2, 1, l2 / p));
            continue;
        }
        let l3 = l2 - p * p;
        nodes.insert((3, 0, 0));
        nodes.insert((3, 1, l3 / (p * p)));
        nodes.insert((3, 2, l3 / p));
    }
    nodes.len() as u64
}

/// `st_blocks` (512-byte sectors) of a file with no holes of `size` bytes.
pub fn dense_sectors(size: u64, bs: u64) -> u64 {
    let n = size.div_ceil(bs);
    (n + meta_blocks(0..n, bs / 4)) * (bs / 512)
}

/// Everything the recovery oracle compares, by relative path (lost+found
/// left out): kind, mode, link count, size and a checksum of the bytes.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == "lost+found" {
                continue;
            }
            let md = std::fs::symlink_metadata(&p).unwrap();
            let desc = if md.file_type().is_symlink() {
                format!("symlink -> {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                walk(root, &p, out);
                format!("dir mode {:o} nlink {}", md.mode() & 0o7777, md.nlink())
            } else {
                let data = std::fs::read(&p).unwrap();
                let sum: u64 = data
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| (i as u64 + 1) * b as u64)
                    .sum();
                format!(
                    "file mode {:o} nlink {} size {} sum {sum}",
                    md.mode() & 0o7777,
                    md.nlink(),
                    md.len()
                )
            };
            out.insert(rel, desc);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}
