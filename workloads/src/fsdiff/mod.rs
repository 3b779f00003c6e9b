//! `fs-diff`: a differential tester of ext2mfr against the kernel's driver
//! (issue 13 §5). The same seeded random sequence of system calls runs on
//! two identical fresh images, one mounted by the kernel (`mount -t ext2`)
//! and one by the ext2mfr daemon; every call's answer (value or errno) is
//! compared, the whole trees every K calls and at the end, then statfs at a
//! quiescent point, the daemon's `ama.under_allocations` (must be 0),
//! `e2fsck -fn` on both images, and the trees once more after a remount.
//! A mismatch is shrunk by delta debugging to a short reproducer.
//!
//! One file per concern: [`ops`] (the ops as data), [`gen`] (the seeded
//! generator and its model of the tree), [`apply`] (system calls),
//! [`diff`] (field-by-field comparison), [`excused`] (the one list of
//! legitimate differences), [`tree`] (snapshots), [`xattr`] (extended
//! attribute calls, for the ops and the snapshots), [`mounts`] (images and
//! the mount guards), [`runner`] (one run), [`sharing`] (xattr blocks
//! shared on an image, to explain a free-block difference), [`shrink`].

pub mod apply;
pub mod diff;
pub mod excused;
pub mod gen;
pub mod mounts;
pub mod ops;
pub mod runner;
pub mod sharing;
pub mod shrink;
pub mod tree;
pub mod xattr;

use crate::eval::mount::Tools;
use mounts::{DaemonConfig, Pristine};
use runner::{Limits, Mismatch, RunResult, Setup, Source};
use shrink::Shrunk;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Options {
    pub ops: usize,
    pub seed: u64,
    pub block_sizes: Vec<u32>,
    /// Inode size of the images (mke2fs -I): 256 leaves room for extended
    /// attributes inside the inode, 128 puts every one in an xattr block.
    pub inode_size: u32,
    pub configs: Vec<DaemonConfig>,
    pub check_every: usize,
    /// Stop a run after this many distinct mismatches (0: never).
    pub max_mismatches: usize,
    /// Shrink at most this many distinct mismatches per run, each within
    /// `shrink_budget`.
    pub shrink: usize,
    pub shrink_budget: Duration,
    /// Op kinds the generator leaves out (gen::KINDS).
    pub without: Vec<String>,
    pub keep: bool,
    pub workdir: PathBuf,
    pub tools: Tools,
}

/// The daemon's configurations by name: "default" (no options),
/// "baseline" (recovery and AMA off) and "uring" (the default over FUSE
/// over io_uring, where the kernel offers it: the mount fails otherwise).
pub fn config(name: &str) -> Option<DaemonConfig> {
    match name {
        "default" => Some(DaemonConfig {
            label: "default".into(),
            opts: String::new(),
        }),
        "baseline" => Some(DaemonConfig {
            label: "baseline".into(),
            opts: "baseline".into(),
        }),
        "uring" => Some(DaemonConfig {
            label: "uring".into(),
            opts: "transport=uring".into(),
        }),
        _ => None,
    }
}

pub struct RunSummary {
    pub block_size: u32,
    pub config: String,
    pub result: RunResult,
    pub shrunk: Vec<(Mismatch, Option<Shrunk>)>,
    pub secs: f64,
}

impl RunSummary {
    /// Failed: any unexcused mismatch (fsck and under-allocations are
    /// recorded as mismatches too).
    pub fn failed(&self) -> bool {
        !self.result.mismatches.is_empty()
    }
}

/// Every block size × configuration, one run each, printing as it goes.
/// Err only when a run could not be set up at all.
pub fn campaign(o: &Options, out: &mut dyn Write) -> Result<Vec<RunSummary>, String> {
    let mut all = Vec::new();
    for &bs in &o.block_sizes {
        let pristine = Pristine::make(&o.workdir, bs, o.inode_size)?;
        for cfg in &o.configs {
            let setup = Setup {
                parent: &o.workdir,
                pristine: &pristine,
                tools: &o.tools,
                daemon: cfg,
            };
            let t = Instant::now();
            let _ = writeln!(
                out,
                "== block size {bs}, inode size {}, ext2mfr {} (-o '{}'), seed {}, {} ops ==",
                o.inode_size, cfg.label, cfg.opts, o.seed, o.ops
            );
            let mut g = gen::Generator::new(o.seed, bs, &o.without);
            let limits = Limits {
                check_every: o.check_every,
                max_mismatches: o.max_mismatches,
                target: None,
                keep: o.keep,
            };
            let result = runner::run(&setup, Source::Generate(&mut g, o.ops), &limits)?;
            print_result(out, &result);
            let mut shrunk = Vec::new();
            for m in result.mismatches.iter().take(o.shrink) {
                let s = shrink::shrink(&setup, &result.ops, m, o.shrink_budget);
                match &s {
                    Ok(s) => print_shrunk(out, m, s),
                    Err(e) => {
                        let _ = writeln!(out, "  shrinking '{}' failed: {e}", m.diff.signature());
                    }
                }
                shrunk.push((m.clone(), s.ok()));
            }
            let secs = t.elapsed().as_secs_f64();
            let _ = writeln!(out, "  ({secs:.1} s)\n");
            all.push(RunSummary {
                block_size: bs,
                config: cfg.label.clone(),
                result,
                shrunk,
                secs,
            });
        }
    }
    Ok(all)
}

fn verdict(f: &crate::eval::image::Fsck) -> String {
    if f.clean {
        "clean".into()
    } else {
        format!("NOT CLEAN (exit {:?}: {})", f.exit, f.first_problem)
    }
}

pub fn print_result(out: &mut dyn Write, r: &RunResult) {
    let _ = writeln!(
        out,
        "  ops applied: {} (and {} tree checks)",
        r.calls(),
        r.ops.len() - r.calls()
    );
    let _ = writeln!(
        out,
        "  mismatches: {} distinct{}",
        r.mismatches.len(),
        if r.repeats > 0 {
            format!(" ({} more of the same signatures)", r.repeats)
        } else {
            String::new()
        }
    );
    match &r.fsck {
        Some((k, m)) => {
            let _ = writeln!(
                out,
                "  e2fsck -fn: kernel image {}, ext2mfr image {}",
                verdict(k),
                verdict(m)
            );
        }
        None => {
            let _ = writeln!(out, "  e2fsck -fn: not reached");
        }
    }
    let _ = writeln!(
        out,
        "  ext2mfr ama.under_allocations: {}",
        r.under_allocations
            .map_or("not reported".into(), |n| n.to_string())
    );
    let ex: Vec<String> = r.excused.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        out,
        "  excused differences: {}",
        if ex.is_empty() {
            "none".into()
        } else {
            ex.join(", ")
        }
    );
    if let Some(k) = &r.kept {
        let _ = writeln!(out, "  images kept in {}", k.display());
    }
    for (n, m) in r.mismatches.iter().enumerate() {
        let at = m.index.map_or("end checks".into(), |i| format!("op {i}"));
        let _ = writeln!(out, "  MISMATCH {} at {at}: {}", n + 1, m.diff.describe());
        for d in &m.also {
            let _ = writeln!(out, "      also {}", d.brief());
        }
        if !m.detail.is_empty() && m.detail != m.diff.describe() {
            let _ = writeln!(out, "      {}", m.detail);
        }
    }
}

pub fn print_shrunk(out: &mut dyn Write, m: &Mismatch, s: &Shrunk) {
    let _ = writeln!(out, "  shrinking '{}':", m.diff.signature());
    match &s.mismatch {
        None => {
            let _ = writeln!(out, "    did not reproduce on replay ({} trials)", s.trials);
        }
        Some(mm) => {
            let _ = writeln!(
                out,
                "    shortest failing sequence ({} ops, {} trials{}):",
                s.ops.len(),
                s.trials,
                if s.incomplete {
                    ", time budget ran out"
                } else {
                    ""
                }
            );
            for (i, op) in s.ops.iter().enumerate() {
                let _ = writeln!(out, "      {i}: {op}");
            }
            let _ = writeln!(out, "    shows: {}", mm.diff.describe());
            if mm.detail != mm.diff.describe() {
                let _ = writeln!(out, "      {}", mm.detail);
            }
        }
    }
}
