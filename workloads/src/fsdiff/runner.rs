//! One run: fresh copies of the pristine image mounted by both drivers,
//! the ops applied to both and their answers compared call by call, the
//! trees compared every K ops and at the end, then the end checks: statfs
//! at a quiescent point, the daemon's under-allocation counter, e2fsck -fn
//! of both images, and a remount of both with a last tree comparison (what
//! reached the disk).

use super::apply::{self, show_outcome, sync_mount, Fds, StatInfo};
use super::diff::{self, Ctx, Diff, Scope};
use super::excused;
use super::gen::{clamp_time, Generator};
use super::mounts::{DaemonConfig, Pair, Pristine, Watchdog};
use super::ops::{Op, Time};
use super::sharing;
use super::tree;
use crate::eval::image::Fsck;
use crate::eval::mount::Tools;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// No op (or tree walk) takes this long unless the daemon hangs
/// (FS_DIFF_HANG_SECS overrides it, to test the watchdog).
fn hang_limit() -> Duration {
    let secs = std::env::var("FS_DIFF_HANG_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}

/// What a run needs to start.
pub struct Setup<'a> {
    /// Where scratch directories (images, mount points) go.
    pub parent: &'a Path,
    pub pristine: &'a Pristine,
    pub tools: &'a Tools,
    pub daemon: &'a DaemonConfig,
}

pub struct Limits {
    /// Generating: compare the trees every this many ops (0: only at the
    /// end). The checks go into the recorded sequence as Op::CheckTrees.
    pub check_every: usize,
    /// Stop applying ops once this many distinct mismatches were seen (0: never).
    pub max_mismatches: usize,
    /// Shrinking: stop as soon as a mismatch with this signature shows.
    pub target: Option<String>,
    /// Keep the scratch directory (images, daemon log).
    pub keep: bool,
}

/// Where the ops come from.
pub enum Source<'a> {
    Generate(&'a mut Generator, usize),
    Replay(&'a [Op]),
}

#[derive(Clone, Debug)]
pub struct Mismatch {
    /// The index of the op that showed it (or after which the tree check
    /// showed it); None for the end checks.
    pub index: Option<usize>,
    pub diff: Diff,
    /// Other differences the same event showed (other fields of the same
    /// stat, say): reported with it, not shrunk on their own.
    pub also: Vec<Diff>,
    /// For a call: the op and both full answers.
    pub detail: String,
}

#[derive(Default)]
pub struct RunResult {
    /// The sequence applied, tree checks included.
    pub ops: Vec<Op>,
    /// The first mismatch of each signature, in order.
    pub mismatches: Vec<Mismatch>,
    /// Later mismatches with a signature already seen.
    pub repeats: usize,
    /// How many differences each excuse forgave.
    pub excused: BTreeMap<&'static str, u64>,
    /// (kernel image, ext2mfr image).
    pub fsck: Option<(Fsck, Fsck)>,
    pub under_allocations: Option<u64>,
    /// Where the images are, when kept.
    pub kept: Option<PathBuf>,
}

impl RunResult {
    /// How many system-call ops were applied (tree checks not counted).
    pub fn calls(&self) -> usize {
        self.ops.iter().filter(|o| **o != Op::CheckTrees).count()
    }

    /// Whether a mismatch (or one of its companions) has this signature.
    pub fn has(&self, sig: &str) -> bool {
        self.mismatches.iter().any(|m| {
            std::iter::once(&m.diff)
                .chain(&m.also)
                .any(|d| d.signature() == sig)
        })
    }

    /// Record what one event (a call, one path of a tree walk, a check)
    /// showed, minus what is excused: one mismatch, unless every
    /// difference in it was seen before (then it counts as a repeat).
    fn record(&mut self, index: Option<usize>, diffs: Vec<Diff>, detail: String) {
        let mut fresh = Vec::new();
        for d in diffs {
            match excused::excuse(&d) {
                Some(e) => *self.excused.entry(e.id).or_default() += 1,
                None => fresh.push(d),
            }
        }
        if fresh.is_empty() {
            return;
        }
        if fresh.iter().all(|d| self.has(&d.signature())) {
            self.repeats += 1;
            return;
        }
        // The first new signature leads (it is what shrinking keeps).
        let lead = fresh
            .iter()
            .position(|d| !self.has(&d.signature()))
            .unwrap_or(0);
        let diff = fresh.remove(lead);
        let detail = if detail.is_empty() {
            diff.describe()
        } else {
            detail
        };
        self.mismatches.push(Mismatch {
            index,
            diff,
            also: fresh,
            detail,
        });
    }

    /// Stop applying ops: the target showed (shrinking), or enough
    /// distinct mismatches were seen.
    fn done(&self, limits: &Limits) -> bool {
        match &limits.target {
            Some(t) => self.has(t),
            None => limits.max_mismatches > 0 && self.mismatches.len() >= limits.max_mismatches,
        }
    }

    /// Skip the rest of the checks too: only when shrinking (a generated
    /// run that stopped early still gets its end checks, e2fsck included).
    fn finished(&self, limits: &Limits) -> bool {
        limits.target.as_ref().is_some_and(|t| self.has(t))
    }
}

fn check_diff(field: &'static str, kernel: String, ours: String) -> Diff {
    Diff {
        scope: Scope::Check,
        op: String::new(),
        field,
        path: String::new(),
        ftype: None,
        kernel,
        ours,
        explicit_time: false,
        tags: Vec::new(),
    }
}

/// What the sequence so far makes comparable: explicitly set times and the
/// offsets that matter for sparse files.
#[derive(Default)]
struct Known {
    times: HashSet<(i64, i64)>,
    offsets: Vec<u64>,
    /// Kernel-side inodes where fallocate failed (see excused.rs).
    fallocated: HashSet<u64>,
    /// Kernel-side FIFOs written through an open descriptor (see excused.rs).
    fifo_written: HashSet<u64>,
    /// Kernel-side files a write to failed with EFBIG (see excused.rs).
    efbig_written: HashSet<u64>,
}

impl Known {
    fn learn(&mut self, op: &Op) {
        if let Op::Utimens { atime, mtime, .. } = op.inner() {
            for t in [atime, mtime] {
                if let Time::At(s, ns) = t {
                    self.times.insert(clamp_time((*s, *ns)));
                }
            }
        }
        self.offsets.extend(op.offsets());
    }

    fn ctx(&self, scope: Scope, op: String) -> Ctx<'_> {
        Ctx {
            scope,
            op,
            explicit_times: &self.times,
            fallocated: &self.fallocated,
            fifo_written: &self.fifo_written,
            efbig_written: &self.efbig_written,
        }
    }
}

/// What a tree walk learnt that explains statfs differences.
#[derive(Default)]
struct Walked {
    /// (kernel, ext2mfr) inode numbers of the nodes with extended
    /// attributes (see sharing.rs).
    xattr_inos: (Vec<u64>, Vec<u64>),
}

fn xattr_inos(s: &tree::Snapshot) -> Vec<u64> {
    let mut v: Vec<u64> = s
        .values()
        .filter(|e| e.xattrs.as_ref().is_ok_and(|x| !x.is_empty()))
        .map(|e| e.stat.ino)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Sync both, walk both, compare.
fn compare_trees(
    res: &mut RunResult,
    scope: Scope,
    index: Option<usize>,
    roots: (&Path, &Path),
    known: &Known,
) -> Walked {
    sync_mount(roots.0);
    sync_mount(roots.1);
    let k = tree::snapshot(roots.0, &known.offsets);
    let o = tree::snapshot(roots.1, &known.offsets);
    let ctx = known.ctx(scope, String::new());
    let mut by_path: BTreeMap<String, Vec<Diff>> = BTreeMap::new();
    for d in tree::compare(&ctx, &k, &o, roots, &known.offsets) {
        by_path.entry(d.path.clone()).or_default().push(d);
    }
    for (_, diffs) in by_path {
        res.record(index, diffs, String::new());
    }
    Walked {
        xattr_inos: (xattr_inos(&k), xattr_inos(&o)),
    }
}

/// To the detail of a quiescent statfs mismatch in free blocks: how many
/// blocks each image saves by sharing xattr blocks (both share identical
/// ones, each as far as its memory of recent blocks goes), so a reader sees
/// at once whether that is the whole difference. It stays a mismatch.
fn explain_free_blocks(res: &mut RunResult, pair: &Pair, walked: &Walked) {
    let Some(m) = res
        .mismatches
        .iter_mut()
        .find(|m| m.diff.scope == Scope::Statfs && m.diff.field == "f_bfree")
    else {
        return;
    };
    let (kimg, oimg) = pair.images();
    let note = match (
        sharing::count(kimg, &walked.xattr_inos.0),
        sharing::count(oimg, &walked.xattr_inos.1),
    ) {
        (Ok(k), Ok(o)) => {
            let kv: i64 = m.diff.kernel.parse().unwrap_or(0);
            let ov: i64 = m.diff.ours.parse().unwrap_or(0);
            let exact = kv - ov == k.saved() as i64 - o.saved() as i64;
            format!(
                "xattr blocks: the kernel's image has {} references to {} blocks (sharing saves \
                 {}), ext2mfr's {} to {} (saves {}){}",
                k.references,
                k.blocks,
                k.saved(),
                o.references,
                o.blocks,
                o.saved(),
                if exact {
                    ": sharing explains the whole free-block difference"
                } else {
                    ""
                }
            )
        }
        (Err(e), _) | (_, Err(e)) => format!("xattr blocks not counted: {e}"),
    };
    if m.detail.is_empty() || m.detail == m.diff.describe() {
        m.detail = note;
    } else {
        m.detail = format!("{}\n      {note}", m.detail);
    }
}

/// Apply a sequence to both sides and check them. Err only when the run
/// itself could not be made (images, mounts); everything the file systems
/// do wrong is in the result.
pub fn run(setup: &Setup, mut source: Source, limits: &Limits) -> Result<RunResult, String> {
    let mut pair = Pair::new(setup.parent, setup.pristine, setup.tools, setup.daemon)?;
    let mut res = RunResult::default();
    if limits.keep {
        res.kept = Some(pair.keep());
    }
    let (kroot, oroot) = {
        let (k, o) = pair.roots();
        (k.to_path_buf(), o.to_path_buf())
    };
    let roots = (kroot.as_path(), oroot.as_path());
    // Declared after the pair: dropped (closed) before it unmounts.
    let mut kfds = Fds::default();
    let mut ofds = Fds::default();
    let mut known = Known::default();
    let watchdog = Watchdog::start(roots.1, hang_limit());
    // FS_DIFF_TRACE=1 prints every op with both answers (stderr).
    let trace = std::env::var_os("FS_DIFF_TRACE").is_some();

    // Syscall ops generated so far (the recorded list also holds the
    // tree checks, as ops, so a replay walks the trees at the same points).
    let mut generated = 0;
    loop {
        watchdog.tick();
        let i = res.ops.len();
        let op = match &mut source {
            Source::Generate(g, n) => {
                if generated >= *n {
                    break;
                }
                if generated > 0
                    && limits.check_every > 0
                    && generated % limits.check_every == 0
                    && res.ops.last() != Some(&Op::CheckTrees)
                {
                    Op::CheckTrees
                } else {
                    generated += 1;
                    g.next(roots.0)
                }
            }
            Source::Replay(ops) => match ops.get(i) {
                Some(op) => op.clone(),
                None => break,
            },
        };
        if op == Op::CheckTrees {
            res.ops.push(op);
            compare_trees(&mut res, Scope::Tree, Some(i), roots, &known);
            if res.done(limits) {
                break;
            }
            continue;
        }
        known.learn(&op);
        let k = apply::apply(&op, roots.0, &mut kfds);
        let o = apply::apply(&op, roots.1, &mut ofds);
        if trace {
            eprintln!(
                "{i}: {op}\n    kernel {} / ext2mfr {}",
                show_outcome(&k),
                show_outcome(&o)
            );
        }
        if let Source::Generate(g, _) = &mut source {
            g.observe(&op, k.is_ok());
        }
        if let (Op::Fallocate { path, .. }, Err(libc::EOPNOTSUPP)) = (op.inner(), &k) {
            if let Ok(st) = StatInfo::lstat(&roots.0.join(path)) {
                known.fallocated.insert(st.ino);
            }
        }
        if let (Op::FdWrite { slot, .. }, Ok(_)) = (op.inner(), &k) {
            known.fifo_written.extend(kfds.fifo_ino(*slot));
        }
        match (op.inner(), &k) {
            (Op::WriteFile { path, .. }, Err(libc::EFBIG)) => {
                if let Ok(st) = StatInfo::lstat(&roots.0.join(path)) {
                    known.efbig_written.insert(st.ino);
                }
            }
            (Op::FdWrite { slot, .. }, Err(libc::EFBIG)) => {
                known.efbig_written.extend(kfds.ino(*slot));
            }
            _ => {}
        }
        let ctx = known.ctx(Scope::Call, op.kind());
        let mut diffs = diff::outcomes(&ctx, "", &k, &o);
        if let Op::GetXattr { path, .. } | Op::ListXattr { path, .. } = op.inner() {
            let capability_get = match op.inner() {
                Op::GetXattr { name, .. } => name == "security.capability",
                _ => true,
            };
            if capability_get
                && tree::capability_kept_after_efbig(roots, path, &known.efbig_written)
            {
                for d in &mut diffs {
                    d.tags.push(diff::TAG_CAPABILITY_KEPT_AFTER_EFBIG);
                }
            }
        }
        if !diffs.is_empty() {
            let detail = format!(
                "{op}\n      kernel:  {}\n      ext2mfr: {}",
                show_outcome(&k),
                show_outcome(&o)
            );
            res.record(Some(i), diffs, detail);
        }
        res.ops.push(op);
        if res.done(limits) {
            break;
        }
    }

    if res.finished(limits) {
        return Ok(res);
    }
    // The end: no open files, everything synced: a quiescent point.
    kfds.close_all();
    ofds.close_all();
    let last = res.ops.len().checked_sub(1);
    let walked = compare_trees(&mut res, Scope::Tree, last, roots, &known);
    if let (Ok(k), Ok(o)) = (apply::statfs(roots.0), apply::statfs(roots.1)) {
        let ctx = known.ctx(Scope::Statfs, String::new());
        let diffs = diff::statfs(&ctx, &k, &o);
        res.record(None, diffs, String::new());
    }
    match pair.under_allocations() {
        Ok(Some(n)) => {
            res.under_allocations = Some(n);
            if n > 0 {
                let d = check_diff("ama.under_allocations", "0".into(), n.to_string());
                res.record(
                    None,
                    vec![d],
                    format!("ext2mfr's ama.under_allocations is {n}"),
                );
            }
        }
        Ok(None) if setup.daemon.ama_on() => {
            let d = check_diff("ama.under_allocations", "0".into(), "not reported".into());
            res.record(
                None,
                vec![d],
                "ext2mfr.stats has no ama.under_allocations".into(),
            );
        }
        Ok(None) => {}
        Err(e) => {
            let d = check_diff("ext2mfr.stats", "-".into(), e.clone());
            res.record(None, vec![d], e);
        }
    }
    if res.finished(limits) {
        return Ok(res);
    }
    drop(watchdog);
    if let Err(e) = pair.unmount() {
        let d = check_diff("unmount", "ok".into(), e.clone());
        let detail = format!("{e}\n{}", pair.daemon_log_tail());
        res.record(None, vec![d], detail);
        return Ok(res);
    }
    explain_free_blocks(&mut res, &pair, &walked);
    let (kf, of) = pair.fsck()?;
    for (field, f) in [
        ("e2fsck (kernel image)", &kf),
        ("e2fsck (ext2mfr image)", &of),
    ] {
        if !f.clean {
            let d = check_diff(field, "clean".into(), f.first_problem.clone());
            let detail = format!("e2fsck -fn exit {:?}: {}", f.exit, f.first_problem);
            res.record(None, vec![d], detail);
        }
    }
    res.fsck = Some((kf, of));
    if res.finished(limits) {
        return Ok(res);
    }
    // What reached the disk: mount both again and compare once more.
    pair.mount()?;
    let watchdog = Watchdog::start(roots.1, hang_limit());
    compare_trees(&mut res, Scope::Remount, None, roots, &known);
    drop(watchdog);
    if let Err(e) = pair.unmount() {
        let d = check_diff("unmount", "ok".into(), e.clone());
        res.record(None, vec![d], e);
    }
    Ok(res)
}
