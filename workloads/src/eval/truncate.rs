//! Figure 8 of the AMA paper: pages needed to truncate a file to 0, by file
//! size, for plain ext2 (ama=off: pages actually allocated during the
//! truncate, mostly indirect blocks read in to free what they point to),
//! ext2-mfr without page recycling (pages reserved: the whole indirect
//! tree) and with it (pages reserved: bounded by the tree's depth).
//!
//! Each file is written with real data (not sparse), synced, and the file
//! system remounted so its indirect blocks are not cached; then the daemon's
//! counters are read around one `ftruncate(fd, 0)` (a `setattr` request).
//! Cache peeking is off in the ama=on columns, as in the paper's figure.

use super::image;
use super::mount::{Mount, Peer};
use super::paper;
use super::plan::Ctx;
use super::stats;
use super::svg::{self, Series};
use super::table::Table;
use std::io::Write;

/// Label, mount options, and the counter that measures the truncate. With
/// AMA off there is no per-op accounting, but the truncate is the only
/// request between the two readings, so the pool's `allocated_pages` counts
/// exactly its pages.
pub const CONFIGS: [(&str, &str, &str); 3] = [
    (
        "ext2 (ama=off)",
        "ama=off,recovery=off",
        "ama.allocated_pages",
    ),
    (
        "ext2-mfr (ama=on, recycle=off)",
        "ama=on,peek=off,recycle=off,recovery=off",
        "ama.by_op.setattr.reserved_pages",
    ),
    (
        "ext2-mfr (ama=on, recycle=on)",
        "ama=on,peek=off,recycle=on,recovery=off",
        "ama.by_op.setattr.reserved_pages",
    ),
];

pub struct Truncate {
    pub sizes_mib: Vec<u64>,
    /// pages[config][size]; a configuration that could not run is None.
    pub pages: Vec<Option<Vec<u64>>>,
    pub not_run: Vec<(String, String)>,
    pub table: Table,
    pub svg: String,
}

pub fn run(ctx: &Ctx) -> Result<Truncate, String> {
    let sizes = ctx.plan.truncate_sizes_mib.clone();
    let mut pages = Vec::new();
    let mut not_run = Vec::new();
    for (label, opts, counter) in CONFIGS {
        if let Err(why) = ctx.available(opts)? {
            ctx.say(&format!("truncate: {label} not run: {why}"));
            not_run.push((format!("{label} (`-o {opts}`)"), why));
            pages.push(None);
            continue;
        }
        match series(ctx, label, opts, counter, &sizes)? {
            Ok(p) => pages.push(Some(p)),
            Err(why) => {
                ctx.say(&format!("truncate: {label} not measurable: {why}"));
                not_run.push((format!("{label} (`-o {opts}`)"), why));
                pages.push(None);
            }
        }
    }
    let table = table(ctx, &sizes, &pages, &not_run);
    let svg = figure(&sizes, &pages);
    let mut t = Truncate {
        sizes_mib: sizes,
        pages,
        not_run,
        table,
        svg,
    };
    t.table.comparison = paper::truncate(&t);
    Ok(t)
}

/// Pages for each size under one configuration (inner Err: the daemon does
/// not report the counter).
fn series(
    ctx: &Ctx,
    label: &str,
    opts: &str,
    counter: &str,
    sizes: &[u64],
) -> Result<Result<Vec<u64>, String>, String> {
    let max = sizes.iter().copied().max().unwrap_or(1);
    // Room for the largest file, its indirect blocks and the metadata.
    let img_mib = max + max / 8 + 64;
    let img = ctx.work.file("truncate.img");
    image::make(&img, img_mib)?;
    let peer = Peer::Daemon {
        label: label.into(),
        opts: opts.into(),
    };
    let mnt = ctx.work.dir("truncate-mnt");
    let log = ctx.work.file("truncate-daemon.log");
    let mount = || {
        Mount::start(&peer, &ctx.tools, &img, &mnt, Some(&log))
            .map_err(|e| format!("-o {opts}: {e}"))
    };
    let mut out = Vec::new();
    for &mib in sizes {
        let m = mount()?;
        let path = m.path().join(format!("f{mib}"));
        write_real(&path, mib).map_err(|e| format!("-o {opts}: writing {mib} MiB: {e}"))?;
        let end = m.unmount()?;
        if !end.clean() {
            return Err(format!("-o {opts}: daemon did not exit cleanly: {end:?}"));
        }
        image::quiesce();
        let m = mount()?;
        let path = m.path().join(format!("f{mib}"));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| format!("open {}: {e}", path.display()))?;
        let before = stats::read(m.path())?;
        f.set_len(0)
            .map_err(|e| format!("-o {opts}: truncate {mib} MiB: {e}"))?;
        let after = stats::read(m.path())?;
        drop(f);
        std::fs::remove_file(&path).map_err(|e| format!("unlink {}: {e}", path.display()))?;
        let end = m.unmount()?;
        if !end.clean() {
            return Err(format!("-o {opts}: daemon did not exit cleanly: {end:?}"));
        }
        let measured = match counter.strip_prefix("ama.by_op.setattr.") {
            Some(key) => stats::op_delta(&before, &after, "setattr", key),
            None => stats::delta(&before, &after, counter),
        };
        let pages = match measured {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        ctx.say(&format!(
            "truncate: {label}: {mib} MiB file -> {pages} pages ({counter})"
        ));
        out.push(pages);
    }
    let fsck = image::check(&img)?;
    let _ = std::fs::remove_file(&img);
    if !fsck.clean {
        return Err(format!(
            "-o {opts}: e2fsck -fn found problems after the truncates: {}",
            fsck.first_problem
        ));
    }
    Ok(Ok(out))
}

/// A file of `mib` MiB written with data (every block allocated).
fn write_real(path: &std::path::Path, mib: u64) -> std::io::Result<()> {
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 249) as u8 | 1).collect();
    let mut f = std::fs::File::create(path)?;
    for _ in 0..mib {
        f.write_all(&chunk)?;
    }
    f.sync_all()
}

fn table(
    ctx: &Ctx,
    sizes: &[u64],
    pages: &[Option<Vec<u64>>],
    not_run: &[(String, String)],
) -> Table {
    let mut t = Table::new(
        "figure8-truncate",
        "Pages needed to truncate a file (AMA paper, Figure 8)",
        &["file_mib", "configuration", "counter", "pages"],
    );
    t.caption = format!(
        "Pages needed by one truncate to 0 of a file of the given size (written with real data, synced, and \
         the file system remounted so its indirect blocks are not cached). ext2 (ama=off): \
         `ama.allocated_pages` (pages actually allocated; the truncate is the only request between the two \
         readings of the counters); ext2-mfr: \
         `ama.by_op.setattr.reserved_pages` (pages reserved before the call), without and with page recycling, \
         cache peeking off. Plot: [figure8-truncate.svg](figure8-truncate.svg). Sizes ({} mode): {} MiB.",
        ctx.plan.mode(),
        sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    );
    let ran: Vec<usize> = (0..CONFIGS.len()).filter(|&c| pages[c].is_some()).collect();
    if !ran.is_empty() {
        t.md_columns = std::iter::once("file size".to_string())
            .chain(ran.iter().map(|&c| format!("{} pages", CONFIGS[c].0)))
            .collect();
        for (si, mib) in sizes.iter().enumerate() {
            let mut md = vec![size_label(*mib)];
            for &c in &ran {
                let p = pages[c].as_ref().expect("ran")[si];
                md.push(p.to_string());
                t.push(vec![
                    mib.to_string(),
                    CONFIGS[c].0.into(),
                    CONFIGS[c].2.into(),
                    p.to_string(),
                ]);
            }
            t.md_rows.push(md);
        }
    }
    for (what, why) in not_run {
        t.notes.push(format!("{what}: not run: {why}"));
    }
    t.seeds = "none (no randomness: fixed data, one truncate per size)".into();
    t
}

pub fn size_label(mib: u64) -> String {
    if mib >= 1024 && mib.is_multiple_of(1024) {
        format!("{} GiB", mib / 1024)
    } else {
        format!("{mib} MiB")
    }
}

fn figure(sizes: &[u64], pages: &[Option<Vec<u64>>]) -> String {
    let series: Vec<Series> = CONFIGS
        .iter()
        .zip(pages)
        .filter_map(|((label, _, _), p)| {
            p.as_ref().map(|p| Series {
                label: label.to_string(),
                points: sizes
                    .iter()
                    .zip(p)
                    .map(|(&s, &v)| (s as f64, v as f64))
                    .collect(),
            })
        })
        .collect();
    svg::log_log(
        "Pages needed to truncate a file to 0 (Figure 8)",
        "file size (MiB, log)",
        "pages (log)",
        &series,
    )
}
