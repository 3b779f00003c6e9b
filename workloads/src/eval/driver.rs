//! The whole evaluation: check the machine, run each part, write each
//! part's files as soon as it is done, then the index. A part that fails
//! (a harness error, not a fault outcome) is reported and the others still
//! run; the exit status says whether all parts ran.

use super::config::Availability;
use super::machine::Provenance;
use super::mount::Tools;
use super::plan::{Ctx, Part, Plan};
use super::report::{self, Figure, Section};
use super::workdir::WorkDir;
use super::{performance, placement, robustness, safety, scale, space, truncate};
use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Overrides of the plan from the command line.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub quick: bool,
    pub out: PathBuf,
    pub parts: Option<Vec<Part>>,
    pub runs: Option<usize>,
    pub safety_runs: Option<usize>,
    pub rounds: Option<usize>,
    pub seed: Option<u64>,
    pub timeout_secs: Option<u64>,
    pub truncate_max_mib: Option<u64>,
    pub scale_sizes: Option<Vec<usize>>,
    pub scale_deadline_secs: Option<u64>,
    pub bin_dir: Option<PathBuf>,
    pub workdir: PathBuf,
    pub keep_workdir: bool,
    pub verbose: bool,
}

fn need_program(p: &str, package: &str) -> Result<(), String> {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(format!("{p} not found on PATH (install {package})"))
    }
}

pub fn plan_from(o: &Options) -> Result<Plan, String> {
    let mut plan = Plan::new(o.quick);
    if let Some(p) = &o.parts {
        plan.parts = p.clone();
    }
    if let Some(n) = o.runs {
        if !(1..=999).contains(&n) {
            return Err(format!("--runs {n}: need 1 to 999"));
        }
        plan.robustness_runs = n;
    }
    if let Some(n) = o.safety_runs {
        if n == 0 {
            return Err("--safety-runs: need at least 1".into());
        }
        plan.safety_runs = n;
    }
    if let Some(n) = o.rounds {
        if n == 0 {
            return Err("--rounds: need at least 1".into());
        }
        plan.rounds = n;
    }
    if let Some(s) = o.seed {
        plan.seed = s;
    }
    if let Some(t) = o.timeout_secs {
        if t == 0 {
            return Err("--timeout: need at least 1 second".into());
        }
        plan.run_timeout = Duration::from_secs(t);
    }
    if let Some(m) = o.truncate_max_mib {
        plan.truncate_sizes_mib.retain(|&s| s <= m);
        if plan.truncate_sizes_mib.is_empty() {
            return Err(format!("--truncate-max-mib {m}: need at least 1"));
        }
    }
    if let Some(sizes) = &o.scale_sizes {
        let mut sizes = sizes.clone();
        sizes.sort_unstable();
        sizes.dedup();
        let Some(&largest) = sizes.last().filter(|_| sizes[0] > 0) else {
            return Err("--scale-sizes: need sizes of at least 1 file".into());
        };
        let sp = &mut plan.scale;
        // An inode per file and a tenth more (mkfs rounds per group), and an
        // image that holds twice their tables (256-byte inodes).
        sp.inodes = sp.inodes.max(largest as u64 + largest as u64 / 10);
        sp.image_mib = sp.image_mib.max((sp.inodes * 256 * 2) >> 20);
        sp.sizes = sizes;
    }
    if let Some(t) = o.scale_deadline_secs {
        if t == 0 {
            return Err("--scale-deadline: need at least 1 second".into());
        }
        plan.scale.deadline = Duration::from_secs(t);
    }
    Ok(plan)
}

/// Run everything; Ok(true) when every part ran.
pub fn evaluate(o: &Options, argv: &[String]) -> Result<bool, String> {
    super::proc::require_root("evaluate")?;
    need_program("mkfs.ext2", "e2fsprogs")?;
    need_program("e2fsck", "e2fsprogs")?;
    if !std::path::Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is missing (modprobe fuse; install fuse3)".into());
    }
    let plan = plan_from(o)?;
    let tools = Tools::find(o.bin_dir.as_deref())?;
    std::fs::create_dir_all(&o.out).map_err(|e| format!("--out {}: {e}", o.out.display()))?;
    if plan.parts.len() == Part::ALL.len() {
        report::clear(&o.out)?;
    }
    let mut work = WorkDir::new(&o.workdir, "evaluate")?;
    if o.keep_workdir {
        work.keep();
    }
    super::signals::clean_up_on_signal(work.path().to_path_buf());
    let ctx = Ctx {
        plan,
        tools,
        self_exe: std::env::current_exe().map_err(|e| e.to_string())?,
        work,
        prov: Provenance::now(argv),
        avail: RefCell::new(Availability::default()),
        started: Instant::now(),
        verbose: o.verbose,
    };
    ctx.say(&format!(
        "evaluate ({} mode): parts {}; results to {}; scratch in {}; daemon {}",
        ctx.plan.mode(),
        ctx.plan
            .parts
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(","),
        o.out.display(),
        ctx.work.path().display(),
        ctx.tools.ext2mfr.display()
    ));
    let mut sections = Vec::new();
    let mut all_ok = true;
    for part in ctx.plan.parts.clone() {
        let sec = run_part(&ctx, part);
        if let Some(e) = &sec.failed {
            all_ok = false;
            ctx.say(&format!("{}: FAILED: {e}", part.name()));
        }
        report::write_section(&o.out, &ctx.prov, &sec)?;
        sections.push(sec);
    }
    let elapsed = ctx.started.elapsed().as_secs_f64();
    report::write_index(&o.out, &ctx.prov, &ctx.plan, &sections, elapsed)?;
    ctx.say(&format!(
        "wrote {} in {elapsed:.0} s",
        o.out.join("README.md").display()
    ));
    Ok(all_ok)
}

fn run_part(ctx: &Ctx, part: Part) -> Section {
    match part {
        Part::Robustness => {
            let mut s = Section {
                heading: "Robustness under allocation failures".into(),
                reproduces: "AMA paper, Tables 2, 4 and 7".into(),
                ..Default::default()
            };
            match robustness::run(ctx) {
                Ok(r) => {
                    println!("== Robustness: outcomes per configuration (Error/Abort/Unusable/Inconsistent runs)\n{}", robustness::print(&r));
                    s.tables = r.tables;
                }
                Err(e) => s.failed = Some(e),
            }
            s
        }
        Part::Safety => {
            let mut s = Section {
                heading: "Memory-safety faults".into(),
                reproduces: "recovery-domains paper, section 6.2".into(),
                ..Default::default()
            };
            match safety::run(ctx) {
                Ok(r) => {
                    println!("== Memory-safety faults (inject_interval={})", r.interval);
                    for row in &r.rows {
                        println!(
                            "{:<14} {:<10} {:>4} faults, {:>4} survived, {} rolled back, {} cascaded, daemon died in {} of {} runs, e2fsck clean {}/{}",
                            row.label, row.policy, row.injected, row.survived, row.rolled_back, row.cascaded,
                            row.daemon_died, row.runs, row.fsck_clean, row.runs
                        );
                    }
                    println!();
                    s.tables = r.tables;
                }
                Err(e) => s.failed = Some(e),
            }
            s
        }
        Part::Performance => {
            let mut s = Section {
                heading: "Performance".into(),
                reproduces: "AMA paper, Table 5; recovery-domains paper, Table 4".into(),
                ..Default::default()
            };
            match performance::run(ctx) {
                Ok(p) => {
                    println!(
                        "== Overhead: seconds (median), ratio to baseline\n{}",
                        performance::print(&p)
                    );
                    s.tables = p.tables;
                }
                Err(e) => s.failed = Some(e),
            }
            s
        }
        Part::Space => {
            let mut s = Section {
                heading: "Space".into(),
                reproduces: "AMA paper, Table 6 and Figure 8".into(),
                ..Default::default()
            };
            let mut errors = Vec::new();
            match space::run(ctx) {
                Ok(sp) => s.tables = sp.tables,
                Err(e) => errors.push(format!("Table 6: {e}")),
            }
            match truncate::run(ctx) {
                Ok(t) => s.figures.push(Figure {
                    id: t.table.id.clone(),
                    title: t.table.title.clone(),
                    svg: t.svg,
                    data: t.table,
                }),
                Err(e) => errors.push(format!("Figure 8: {e}")),
            }
            if !errors.is_empty() {
                s.failed = Some(errors.join("; "));
            }
            s
        }
        Part::Scale => {
            let mut s = Section {
                heading: "Scale".into(),
                reproduces: "issue \"Scale: indexed directories, big images, many threads\"".into(),
                ..Default::default()
            };
            match scale::run(ctx) {
                Ok(sc) => {
                    println!(
                        "== Scale: seconds (ratio to the kernel's ext2)\n{}",
                        scale::print(&sc)
                    );
                    s.figures.push(Figure {
                        id: sc.table.id.clone(),
                        title: sc.table.title.clone(),
                        svg: sc.svg,
                        data: sc.table,
                    });
                    s.tables.push(sc.threads_table);
                }
                Err(e) => s.failed = Some(e),
            }
            s
        }
        Part::Placement => {
            let mut s = Section {
                heading: "Placement".into(),
                reproduces: "issue \"Close the gap to the kernel\": where the round trips go"
                    .into(),
                ..Default::default()
            };
            match placement::run(ctx) {
                Ok(p) => {
                    println!(
                        "== Placement: the application free or pinned to one CPU (seconds, median)\n{}",
                        placement::print(&p)
                    );
                    s.tables.push(p.table);
                }
                Err(e) => s.failed = Some(e),
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_sizes_get_room_for_the_largest() {
        let o = Options {
            scale_sizes: Some(vec![1_000_000, 10_000, 10_000]),
            scale_deadline_secs: Some(400),
            ..Default::default()
        };
        let plan = plan_from(&o).expect("plan");
        assert_eq!(plan.scale.sizes, vec![10_000, 1_000_000]);
        assert_eq!(plan.scale.inodes, 1_100_000);
        assert_eq!(plan.scale.image_mib, 1024);
        assert_eq!(plan.scale.deadline, Duration::from_secs(400));
        for bad in [vec![0, 10], vec![]] {
            let o = Options {
                scale_sizes: Some(bad),
                ..Default::default()
            };
            assert!(plan_from(&o).is_err());
        }
    }
}
