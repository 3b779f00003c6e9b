//! Whole-tree snapshots of a mount and their comparison: every path's
//! lstat, which paths share an inode (hard-link structure, since inode
//! numbers themselves legitimately differ), regular files' contents,
//! symlink targets, extended attributes (ACLs among them: names and
//! values). A directory's listing is covered by comparing the set of paths
//! (a name present on one side only is a "missing" difference).
//!
//! Contents: files up to [`FULL_READ`] are read whole. Larger files are
//! sparse files the sequence wrote far out (offsets of GiB, up to the
//! largest file size); reading them whole through FUSE would take minutes,
//! so for them only windows are read: the first and last MiB and
//! [`WINDOW`] bytes either side of every offset the sequence wrote at or
//! truncated to. st_blocks (compared too) catches blocks allocated outside
//! the windows.

use super::apply::{fnv, read_link, StatInfo};
use super::diff::{self, Ctx, Diff};
use super::xattr::{self, Xattrs};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::FileExt;
use std::path::Path;

const FULL_READ: u64 = 8 << 20;
const WINDOW: u64 = 64 << 10;
const EDGE: u64 = 1 << 20;

pub struct Entry {
    pub stat: StatInfo,
    /// The first path (in walk order) with this entry's inode: equal for
    /// all names of a hard-linked file.
    pub link: String,
    /// Hash of the contents (regular files), or the errno reading failed with.
    pub content: Option<Result<u64, i32>>,
    pub target: Option<Result<String, i32>>,
    /// Every extended attribute, names sorted (llistxattr, lgetxattr).
    pub xattrs: Xattrs,
}

/// Path relative to the mount root ("." for the root itself) → entry.
pub type Snapshot = BTreeMap<String, Entry>;

/// The byte ranges of a file of `size` bytes that are compared.
pub fn windows(size: u64, offsets: &[u64]) -> Vec<(u64, u64)> {
    if size <= FULL_READ {
        return vec![(0, size)];
    }
    let mut w = vec![(0, EDGE), (size - EDGE, size)];
    for &o in offsets {
        if o < size + WINDOW {
            w.push((o.saturating_sub(WINDOW), (o + WINDOW).min(size)));
        }
    }
    w.sort();
    // Merge overlaps so no byte is read twice.
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, b) in w {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

fn read_windows(p: &Path, w: &[(u64, u64)]) -> Result<Vec<u8>, i32> {
    let f = std::fs::File::open(p).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    let mut out = Vec::new();
    for &(a, b) in w {
        let mut buf = vec![0u8; (b - a) as usize];
        let mut done = 0;
        while done < buf.len() {
            match f.read_at(&mut buf[done..], a + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
            }
        }
        buf.truncate(done);
        out.extend_from_slice(&buf);
    }
    Ok(out)
}

/// Walk the tree under `root`. `offsets`: see the module comment.
pub fn snapshot(root: &Path, offsets: &[u64]) -> Snapshot {
    let mut snap = Snapshot::new();
    let mut first_of_ino: HashMap<u64, String> = HashMap::new();
    let mut stack = vec![".".to_string()];
    while let Some(rel) = stack.pop() {
        let p = if rel == "." {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let Ok(stat) = StatInfo::lstat(&p) else {
            continue;
        };
        let link = first_of_ino
            .entry(stat.ino)
            .or_insert_with(|| rel.clone())
            .clone();
        let mut e = Entry {
            link,
            content: None,
            target: None,
            xattrs: xattr::read_all(&p),
            stat,
        };
        match e.stat.ftype {
            '-' => {
                e.content = Some(read_windows(&p, &windows(e.stat.size, offsets)).map(|b| fnv(&b)))
            }
            'l' => e.target = Some(read_link(&p)),
            'd' => {
                if let Ok(names) = super::apply::read_names(&p) {
                    // Reverse, so the stack pops them in sorted order.
                    for n in names.into_iter().rev() {
                        stack.push(if rel == "." { n } else { format!("{rel}/{n}") });
                    }
                }
            }
            _ => {}
        }
        snap.insert(rel, e);
    }
    snap
}

/// Compare two snapshots; `roots` (kernel, ours) are used to find the first
/// differing byte when contents differ.
pub fn compare(
    ctx: &Ctx,
    k: &Snapshot,
    o: &Snapshot,
    roots: (&Path, &Path),
    offsets: &[u64],
) -> Vec<Diff> {
    let mut out = Vec::new();
    let missing = |path: &str, kernel: &str, ours: &str, ftype: char| Diff {
        scope: ctx.scope,
        op: String::new(),
        field: "missing",
        path: path.to_string(),
        ftype: Some(ftype),
        kernel: kernel.into(),
        ours: ours.into(),
        explicit_time: false,
        tags: Vec::new(),
    };
    for (path, ke) in k {
        let Some(oe) = o.get(path) else {
            out.push(missing(path, "present", "absent", ke.stat.ftype));
            continue;
        };
        let mut field = |name: &'static str, a: String, b: String| {
            if a != b {
                out.push(Diff {
                    scope: ctx.scope,
                    op: String::new(),
                    field: name,
                    path: path.clone(),
                    ftype: Some(ke.stat.ftype),
                    kernel: a,
                    ours: b,
                    explicit_time: false,
                    tags: Vec::new(),
                });
            }
        };
        field("hard links", ke.link.clone(), oe.link.clone());
        field(
            "target",
            format!("{:?}", ke.target),
            format!("{:?}", oe.target),
        );
        if ke.content != oe.content {
            let at = first_difference(roots, path, ke.stat.size.max(oe.stat.size), offsets);
            field(
                "data",
                format!("{:?}{at}", ke.content),
                format!("{:?}", oe.content),
            );
        }
        let kept_cap = ctx.efbig_written.contains(&ke.stat.ino)
            && only_capability_more(&ke.xattrs, &oe.xattrs);
        for (name, k, o) in xattr_diffs(&ke.xattrs, &oe.xattrs) {
            field(name, k, o);
        }
        if kept_cap {
            for d in out.iter_mut().filter(|d| d.path == *path) {
                if d.field == "xattr names" {
                    d.tags.push(diff::TAG_CAPABILITY_KEPT_AFTER_EFBIG);
                }
            }
        }
        out.extend(diff::stats(ctx, path, &ke.stat, &oe.stat));
    }
    for (path, oe) in o {
        if !k.contains_key(path) {
            out.push(missing(path, "absent", "present", oe.stat.ftype));
        }
    }
    out
}

/// The differences between two nodes' attributes: ("xattr names", …) when
/// the sets of names differ, then ("xattr value", …) for each name both
/// have with different values.
fn xattr_diffs(k: &Xattrs, o: &Xattrs) -> Vec<(&'static str, String, String)> {
    let (k, o) = match (k, o) {
        (Ok(k), Ok(o)) => (k, o),
        (k, o) => {
            let err = |x: &Xattrs| match x {
                Ok(_) => "Ok".to_string(),
                Err(e) => super::apply::errno_name(*e),
            };
            return if err(k) == err(o) {
                Vec::new()
            } else {
                vec![("xattr names", err(k), err(o))]
            };
        }
    };
    let mut out = Vec::new();
    let names =
        |x: &[(String, Result<Vec<u8>, i32>)]| x.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if names(k) != names(o) {
        out.push((
            "xattr names",
            format!("{:?}", names(k)),
            format!("{:?}", names(o)),
        ));
    }
    for (n, kv) in k {
        if let Some((_, ov)) = o.iter().find(|(m, _)| m == n) {
            if kv != ov {
                out.push((
                    "xattr value",
                    format!("{n} = {}", xattr::describe(n, kv)),
                    format!("{n} = {}", xattr::describe(n, ov)),
                ));
            }
        }
    }
    out
}

/// Whether the kernel's names are ext2mfr's plus security.capability.
fn only_capability_more(k: &Xattrs, o: &Xattrs) -> bool {
    let (Ok(k), Ok(o)) = (k, o) else {
        return false;
    };
    let kn: Vec<&String> = k
        .iter()
        .map(|(n, _)| n)
        .filter(|n| *n != "security.capability")
        .collect();
    let on: Vec<&String> = o.iter().map(|(n, _)| n).collect();
    kn.len() < k.len() && kn == on
}

/// For a call's answers on `rel`: the kernel's file still has
/// security.capability and ext2mfr's has not, after a write to it failed
/// with EFBIG (see excused.rs).
pub fn capability_kept_after_efbig(
    roots: (&Path, &Path),
    rel: &str,
    efbig_written: &std::collections::HashSet<u64>,
) -> bool {
    let (kp, op) = (roots.0.join(rel), roots.1.join(rel));
    let Ok(st) = StatInfo::lstat(&kp) else {
        return false;
    };
    efbig_written.contains(&st.ino)
        && only_capability_more(&xattr::read_all(&kp), &xattr::read_all(&op))
}

/// " (first difference at byte N)", for a reader of a data mismatch.
fn first_difference(roots: (&Path, &Path), rel: &str, size: u64, offsets: &[u64]) -> String {
    let w = windows(size, offsets);
    let (Ok(a), Ok(b)) = (
        read_windows(&roots.0.join(rel), &w),
        read_windows(&roots.1.join(rel), &w),
    ) else {
        return String::new();
    };
    // Map an index in the concatenated windows back to a file offset.
    let pos = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let mut left = pos as u64;
    for (s, e) in w {
        if left < e - s {
            return format!(" (first difference at byte {})", s + left);
        }
        left -= e - s;
    }
    format!(
        " (one side is shorter: {} vs {} bytes read)",
        a.len(),
        b.len()
    )
}
