//! Space, the AMA paper's Table 6: memory allocated while each workload
//! runs, from AMA's own accounting (`ama.allocated_bytes` in the daemon's
//! counters: pages taken from the pool, by direct allocation or by
//! reservation), with AMA off, on without cache peeking, and on with it.
//! Recovery is off in all three so that the figures are AMA's alone, as in
//! the paper (which had no recovery domains).
//!
//! Each workload runs alone on a fresh mount; the ones that need a file
//! (reads, random writes) get it written first and then a fresh mount, so
//! their reads start from a cold cache, as the paper's 1 GB file did.

use super::image;
use super::mount::{Mount, Peer};
use super::paper;
use super::phases;
use super::plan::Ctx;
use super::stats;
use super::table::{ratio, Table};
use crate::{postmark, sort};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    SeqRead,
    SeqWrite,
    RandRead,
    RandWrite,
    PostMark,
    Sort,
}

impl Load {
    /// The paper's order.
    pub const ALL: [Load; 6] = [
        Load::SeqRead,
        Load::SeqWrite,
        Load::RandRead,
        Load::RandWrite,
        Load::PostMark,
        Load::Sort,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Load::SeqRead => "sequential read",
            Load::SeqWrite => "sequential write",
            Load::RandRead => "random read",
            Load::RandWrite => "random write",
            Load::PostMark => "postmark",
            Load::Sort => "sort",
        }
    }

    fn needs_file(self) -> bool {
        matches!(self, Load::SeqRead | Load::RandRead | Load::RandWrite)
    }
}

/// The three configurations of the table: label and mount options.
pub const CONFIGS: [(&str, &str); 3] = [
    ("ama=off", "ama=off,recovery=off"),
    ("ama=on, peek=off", "ama=on,peek=off,recovery=off"),
    ("ama=on, peek=on", "ama=on,peek=on,recovery=off"),
];

#[derive(Clone, Debug)]
pub struct Measured {
    pub allocated_bytes: u64,
    pub under_allocations: u64,
    pub fsck_clean: bool,
    /// The ops that reserved the most: (op, requests, reserved pages, used
    /// pages), to say where an overhead comes from.
    pub top_ops: Vec<(String, u64, u64, u64)>,
}

pub struct Space {
    /// bytes[load][config]: None where the configuration could not run.
    pub bytes: Vec<Vec<Option<Measured>>>,
    pub not_run: Vec<(String, String)>,
    pub tables: Vec<Table>,
}

impl Space {
    /// allocated(config) / allocated(ama=off) for a load.
    pub fn ratio(&self, load: usize, config: usize) -> Option<f64> {
        let base = self.bytes[load][0].as_ref()?.allocated_bytes as f64;
        let x = self.bytes[load][config].as_ref()?.allocated_bytes as f64;
        Some(x / base.max(1.0))
    }
}

pub fn run(ctx: &Ctx) -> Result<Space, String> {
    let mut bytes = Vec::new();
    let mut refused: Vec<Option<String>> = vec![None; CONFIGS.len()];
    for (c, (label, opts)) in CONFIGS.iter().enumerate() {
        if let Err(why) = ctx.available(opts)? {
            ctx.say(&format!("space: {label} (`-o {opts}`) not run: {why}"));
            refused[c] = Some(why);
        }
    }
    for load in Load::ALL {
        let mut row = Vec::new();
        for (c, (label, opts)) in CONFIGS.iter().enumerate() {
            if refused[c].is_some() {
                row.push(None);
                continue;
            }
            match measure(ctx, opts, load)? {
                Ok(m) => {
                    ctx.say(&format!(
                        "space: {} under {label}: {} bytes allocated, {} under-allocations",
                        load.name(),
                        m.allocated_bytes,
                        m.under_allocations
                    ));
                    row.push(Some(m));
                }
                Err(why) => {
                    ctx.say(&format!("space: {label} not measurable: {why}"));
                    refused[c] = Some(why);
                    row.push(None);
                }
            }
        }
        bytes.push(row);
    }
    let not_run: Vec<(String, String)> = CONFIGS
        .iter()
        .zip(&refused)
        .filter_map(|((label, opts), r)| {
            r.as_ref()
                .map(|why| (format!("{label} (`-o {opts}`)"), why.clone()))
        })
        .collect();
    // A configuration that failed part-way has no complete column: drop it.
    for row in bytes.iter_mut() {
        for (c, cell) in row.iter_mut().enumerate() {
            if refused[c].is_some() {
                *cell = None;
            }
        }
    }
    let mut space = Space {
        bytes,
        not_run,
        tables: Vec::new(),
    };
    let mut t = table(ctx, &space);
    t.comparison = paper::space(&space);
    space.tables.push(t);
    Ok(space)
}

/// Outer Err: the harness failed. Inner Err: the daemon does not report
/// AMA's accounting (a build without it).
fn measure(ctx: &Ctx, opts: &str, load: Load) -> Result<Result<Measured, String>, String> {
    let plan = &ctx.plan;
    let img = ctx.work.file("space.img");
    image::make(&img, plan.perf_image_mib)?;
    image::quiesce();
    let peer = Peer::Daemon {
        label: opts.into(),
        opts: opts.into(),
    };
    let mnt = ctx.work.dir("space-mnt");
    let log = ctx.work.file("space-daemon.log");
    let mount = || {
        Mount::start(&peer, &ctx.tools, &img, &mnt, Some(&log))
            .map_err(|e| format!("-o {opts}: {e}"))
    };
    let mc = &plan.loads.micro;
    let file = |m: &Mount| m.path().join("work").join("micro.dat");
    let mut m = mount()?;
    std::fs::create_dir(m.path().join("work")).map_err(|e| format!("mkdir: {e}"))?;
    if load.needs_file() {
        phases::seq_write(&file(&m), mc.file_size, mc.block)
            .map_err(|e| format!("-o {opts}: setup: {e}"))?;
        let end = m.unmount()?;
        if !end.clean() {
            return Err(format!("-o {opts}: daemon did not exit cleanly: {end:?}"));
        }
        image::quiesce();
        m = mount()?;
    }
    let before = stats::read(m.path())?;
    run_load(m.path(), load, ctx).map_err(|e| format!("-o {opts}: {}: {e}", load.name()))?;
    let after = stats::read(m.path())?;
    let end = m.unmount()?;
    if !end.clean() {
        return Err(format!("-o {opts}: daemon did not exit cleanly: {end:?}"));
    }
    let fsck = image::check(&img)?;
    let _ = std::fs::remove_file(&img);
    let allocated = match stats::delta(&before, &after, "ama.allocated_bytes") {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let under = match stats::delta(&before, &after, "ama.under_allocations") {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let mut top_ops = stats::op_deltas(&before, &after);
    top_ops.truncate(3);
    Ok(Ok(Measured {
        allocated_bytes: allocated,
        under_allocations: under,
        fsck_clean: fsck.clean,
        top_ops,
    }))
}

fn run_load(mnt: &Path, load: Load, ctx: &Ctx) -> Result<(), String> {
    let l = &ctx.plan.loads;
    let mc = &l.micro;
    let w = mnt.join("work");
    let f = w.join("micro.dat");
    let e = |x: std::io::Error| x.to_string();
    match load {
        Load::SeqRead => phases::seq_read(&f, mc.block).map(|_| ()).map_err(e),
        Load::SeqWrite => phases::seq_write(&f, mc.file_size, mc.block).map_err(e),
        Load::RandRead => {
            phases::rand_read(&f, mc.file_size, mc.block, mc.random_ops, mc.seed).map_err(e)
        }
        Load::RandWrite => {
            phases::rand_write(&f, mc.file_size, mc.block, mc.random_ops, mc.seed).map_err(e)
        }
        Load::PostMark => postmark::run(&w, &l.postmark).map(|_| ()).map_err(e),
        Load::Sort => sort::run(&w, &l.sort).map(|_| ()).map_err(e),
    }
}

fn mib(b: u64) -> String {
    format!("{:.2}", b as f64 / (1u64 << 20) as f64)
}

fn table(ctx: &Ctx, s: &Space) -> Table {
    let mut t = Table::new(
        "space",
        "Space (AMA paper, Table 6)",
        &[
            "workload",
            "configuration",
            "allocated_bytes",
            "ratio_vs_ama_off",
            "under_allocations",
            "e2fsck",
        ],
    );
    t.caption = format!(
        "Memory allocated while each workload ran (MiB; `ama.allocated_bytes` of the daemon's counters before and \
         after the workload: pages taken from AMA's pool by direct allocation or reservation), and in brackets the \
         ratio to ama=off. Recovery is off in all three columns (`recovery=off`), so the figures are AMA's alone. \
         Each workload runs alone on a fresh {} MiB image; reads and random writes first get their file written \
         and the file system remounted, so they start from a cold cache. Loads: {}. `under_allocations` counts \
         requests that needed more than their reservation (the paper found none; each is a bug).",
        ctx.plan.perf_image_mib,
        ctx.plan.loads.describe()
    );
    // Only configurations that ran get a column.
    let ran: Vec<usize> = (0..CONFIGS.len())
        .filter(|&c| s.bytes.iter().all(|row| row[c].is_some()))
        .collect();
    if ran.is_empty() {
        for (what, why) in &s.not_run {
            t.notes.push(format!("{what}: not run: {why}"));
        }
        return t;
    }
    t.md_columns = std::iter::once("workload".to_string())
        .chain(ran.iter().map(|&c| format!("{} (MiB)", CONFIGS[c].0)))
        .chain(std::iter::once("under-allocations".to_string()))
        .collect();
    for (li, load) in Load::ALL.iter().enumerate() {
        let mut md = vec![load.name().to_string()];
        let mut under = 0;
        for &c in &ran {
            let label = CONFIGS[c].0;
            match &s.bytes[li][c] {
                Some(m) => {
                    let r = s.ratio(li, c);
                    under += m.under_allocations;
                    md.push(if c == 0 {
                        mib(m.allocated_bytes)
                    } else {
                        format!(
                            "{} ({})",
                            mib(m.allocated_bytes),
                            r.map_or("n/a".into(), ratio)
                        )
                    });
                    t.push(vec![
                        load.name().into(),
                        label.to_string(),
                        m.allocated_bytes.to_string(),
                        r.map_or("n/a".into(), |r| format!("{r:.3}")),
                        m.under_allocations.to_string(),
                        if m.fsck_clean {
                            "clean".into()
                        } else {
                            "problems".into()
                        },
                    ]);
                    if !m.fsck_clean {
                        t.notes.push(format!(
                            "{} under {label}: e2fsck -fn found problems afterwards",
                            load.name()
                        ));
                    }
                }
                None => unreachable!("only configurations that ran have a column"),
            }
        }
        md.push(under.to_string());
        t.md_rows.push(md);
    }
    for (what, why) in &s.not_run {
        t.notes.push(format!("{what}: not run: {why}"));
    }
    t.seeds = format!(
        "postmark {}, micro {}, sort {}",
        ctx.plan.loads.postmark.seed, ctx.plan.loads.micro.seed, ctx.plan.loads.sort.seed
    );
    t
}
