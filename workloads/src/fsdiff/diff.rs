//! Comparing the two sides' answers field by field. Every difference
//! becomes a [`Diff`]; the runner asks [`super::excused`] whether it is one
//! of the documented legitimate ones, and reports the rest as mismatches.
//! Nothing is skipped here: even atime and st_ino are compared, and excused
//! in the one list, so that list is the whole truth about what is not
//! checked.

use super::apply::{errno_name, Outcome, StatInfo, StatfsInfo, Value};
use std::collections::HashSet;

/// Where a difference was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The answer of one call (the op's kind is in `Diff::op`).
    Call,
    /// A walk of both trees while mounted.
    Tree,
    /// A walk after unmounting and mounting both again: what reached disk.
    Remount,
    /// statfs at a quiescent point (after syncfs, no open files).
    Statfs,
    /// e2fsck -fn, or the daemon's own counters.
    Check,
}

#[derive(Clone, Debug)]
pub struct Diff {
    pub scope: Scope,
    /// The op's kind for Scope::Call ("rename(EXCHANGE)"), else empty.
    pub op: String,
    /// "result", "data", "names", "target", a stat field ("mode", "mtime",
    /// …), a statfs field ("bfree", …), "missing", "e2fsck", ….
    pub field: &'static str,
    /// The path compared (relative to the mount root), if any.
    pub path: String,
    /// The file's type (ls -l's letter) on the kernel side, for stat fields.
    pub ftype: Option<char>,
    pub kernel: String,
    pub ours: String,
    /// For mtime: one side shows a value the test set explicitly with
    /// utimensat (the only mtimes that are not wall clock).
    pub explicit_time: bool,
    /// Facts about the context that excuses may test (see TAG_*).
    pub tags: Vec<&'static str>,
}

/// A fallocate on this (kernel-side) inode failed with EOPNOTSUPP earlier.
pub const TAG_KERNEL_FAILED_FALLOCATE: &str = "kernel-failed-fallocate";
/// The kernel side's mtime is a value the sequence set explicitly.
pub const TAG_KERNEL_MTIME_EXPLICIT: &str = "kernel-mtime-explicit";
/// A FIFO written through an open descriptor (pipe I/O, which the kernel's
/// pipe code serves without the file system).
pub const TAG_FIFO_WRITTEN: &str = "fifo-written";
/// The kernel's file still has security.capability, ext2mfr's has not,
/// and a write to the file failed with EFBIG (see excused.rs).
pub const TAG_CAPABILITY_KEPT_AFTER_EFBIG: &str = "capability-kept-after-efbig";
/// The kernel's file still has set-user-ID or set-group-ID, ext2mfr's has
/// not (and the modes differ in nothing else), and a write to the file
/// failed with EFBIG (see excused.rs).
pub const TAG_SETID_KEPT_AFTER_EFBIG: &str = "setid-kept-after-efbig";

impl Diff {
    /// What identifies "the same mismatch" across runs and while shrinking:
    /// where, which op kind and field, the file type, and for a call's
    /// result the two outcome classes (Ok or the errno).
    pub fn signature(&self) -> String {
        let scope = match self.scope {
            Scope::Call => self.op.clone(),
            Scope::Tree => "tree".into(),
            Scope::Remount => "tree after remount".into(),
            Scope::Statfs => "statfs (quiescent)".into(),
            Scope::Check => "check".into(),
        };
        let mut s = format!("{scope}: {}", self.field);
        if let Some(t) = self.ftype {
            s.push_str(&format!(" (type {t})"));
        }
        if self.field == "result" || self.field == "missing" {
            s.push_str(&format!(" kernel {} vs ext2mfr {}", self.kernel, self.ours));
        }
        s
    }

    pub fn describe(&self) -> String {
        let at = if self.path.is_empty() {
            String::new()
        } else {
            format!(" at {}", super::ops::show(&self.path))
        };
        if self.field == "result" || self.field == "missing" {
            // The signature already names both sides.
            return format!("{}{at}", self.signature());
        }
        format!(
            "{}{at}: kernel {} / ext2mfr {}",
            self.signature(),
            abbrev(&self.kernel),
            abbrev(&self.ours)
        )
    }

    /// One line for a companion difference: field and both values.
    pub fn brief(&self) -> String {
        format!(
            "{}: kernel {} / ext2mfr {}",
            self.field,
            abbrev(&self.kernel),
            abbrev(&self.ours)
        )
    }
}

/// Long values (symlink targets) as their start, length and hash.
fn abbrev(s: &str) -> String {
    if s.len() <= 100 {
        return s.to_string();
    }
    let mut cut = 40;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}…[{} bytes, hash {:016x}]",
        &s[..cut],
        s.len(),
        super::apply::fnv(s.as_bytes())
    )
}

/// What a comparison needs besides the two values.
pub struct Ctx<'a> {
    pub scope: Scope,
    pub op: String,
    /// Timestamps the sequence set explicitly (after the kernel's clamping).
    pub explicit_times: &'a HashSet<(i64, i64)>,
    /// Kernel-side inodes on which fallocate failed with EOPNOTSUPP.
    pub fallocated: &'a HashSet<u64>,
    /// Kernel-side FIFOs written through an open descriptor.
    pub fifo_written: &'a HashSet<u64>,
    /// Kernel-side files a write to failed with EFBIG (see excused.rs).
    pub efbig_written: &'a HashSet<u64>,
}

impl Ctx<'_> {
    fn diff(&self, field: &'static str, path: &str, kernel: String, ours: String) -> Diff {
        Diff {
            scope: self.scope,
            op: self.op.clone(),
            field,
            path: path.to_string(),
            ftype: None,
            kernel,
            ours,
            explicit_time: false,
            tags: Vec::new(),
        }
    }
}

fn class(o: &Outcome) -> String {
    match o {
        Ok(_) => "Ok".into(),
        Err(e) => errno_name(*e),
    }
}

/// One call's two answers.
pub fn outcomes(ctx: &Ctx, path: &str, k: &Outcome, o: &Outcome) -> Vec<Diff> {
    match (k, o) {
        (Err(a), Err(b)) if a == b => Vec::new(),
        (Ok(a), Ok(b)) => values(ctx, path, a, b),
        _ => vec![ctx.diff("result", path, class(k), class(o))],
    }
}

fn values(ctx: &Ctx, path: &str, k: &Value, o: &Value) -> Vec<Diff> {
    match (k, o) {
        (Value::Stat(a), Value::Stat(b)) => stats(ctx, path, a, b),
        (Value::Statfs(a), Value::Statfs(b)) => statfs(ctx, a, b),
        (a, b) if a == b => Vec::new(),
        (a, b) => {
            let field = match a {
                Value::Data { .. } => "data",
                Value::Names(_) => "names",
                Value::Target(_) => "target",
                _ => "value",
            };
            vec![ctx.diff(field, path, a.to_string(), b.to_string())]
        }
    }
}

fn time(t: (i64, i64)) -> String {
    format!("{}.{:09}", t.0, t.1)
}

/// Two stats of the same path.
pub fn stats(ctx: &Ctx, path: &str, k: &StatInfo, o: &StatInfo) -> Vec<Diff> {
    let mut out = Vec::new();
    let mut field = |name: &'static str, a: String, b: String, explicit: bool| {
        if a != b {
            let mut d = ctx.diff(name, path, a, b);
            d.ftype = Some(k.ftype);
            d.explicit_time = explicit;
            if name == "mtime" && ctx.fallocated.contains(&k.ino) {
                d.tags.push(TAG_KERNEL_FAILED_FALLOCATE);
            }
            if name == "mtime" && ctx.explicit_times.contains(&k.mtime) {
                d.tags.push(TAG_KERNEL_MTIME_EXPLICIT);
            }
            if name == "mtime" && ctx.fifo_written.contains(&k.ino) {
                d.tags.push(TAG_FIFO_WRITTEN);
            }
            // Bits only the kernel's mode has: some, all of them set-ID.
            let more = k.perm & !o.perm;
            let only_setid_more = more != 0 && more & !0o6000 == 0 && o.perm & !k.perm == 0;
            if name == "mode" && ctx.efbig_written.contains(&k.ino) && only_setid_more {
                d.tags.push(TAG_SETID_KEPT_AFTER_EFBIG);
            }
            out.push(d);
        }
    };
    field("type", k.ftype.to_string(), o.ftype.to_string(), false);
    field(
        "mode",
        format!("{:04o}", k.perm),
        format!("{:04o}", o.perm),
        false,
    );
    field("uid", k.uid.to_string(), o.uid.to_string(), false);
    field("gid", k.gid.to_string(), o.gid.to_string(), false);
    field("size", k.size.to_string(), o.size.to_string(), false);
    field("nlink", k.nlink.to_string(), o.nlink.to_string(), false);
    field(
        "rdev",
        format!("{:?}", k.rdev),
        format!("{:?}", o.rdev),
        false,
    );
    field("blocks", k.blocks.to_string(), o.blocks.to_string(), false);
    field("ino", k.ino.to_string(), o.ino.to_string(), false);
    field("atime", time(k.atime), time(o.atime), false);
    let explicit = ctx.explicit_times.contains(&k.mtime) || ctx.explicit_times.contains(&o.mtime);
    field("mtime", time(k.mtime), time(o.mtime), explicit);
    field("ctime", time(k.ctime), time(o.ctime), false);
    out
}

pub fn statfs(ctx: &Ctx, k: &StatfsInfo, o: &StatfsInfo) -> Vec<Diff> {
    let mut out = Vec::new();
    let pairs: [(&'static str, u64, u64); 8] = [
        ("f_bsize", k.bsize, o.bsize),
        ("f_frsize", k.frsize, o.frsize),
        ("f_blocks", k.blocks, o.blocks),
        ("f_bfree", k.bfree, o.bfree),
        ("f_bavail", k.bavail, o.bavail),
        ("f_files", k.files, o.files),
        ("f_ffree", k.ffree, o.ffree),
        ("f_namemax", k.namemax, o.namemax),
    ];
    for (name, a, b) in pairs {
        if a != b {
            out.push(ctx.diff(name, "", a.to_string(), b.to_string()));
        }
    }
    out
}
