//! `fs-diff`: the same seeded random system calls on two identical images,
//! one mounted by the kernel's ext2 driver and one by ext2mfr; compares
//! every answer, the trees, e2fsck's verdicts and the daemon's
//! under-allocation counter, and shrinks any mismatch to a short
//! reproducer. See workloads/src/fsdiff/mod.rs. Needs root.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use workloads::eval::mount::Tools;
use workloads::eval::signals;
use workloads::eval::workdir::WorkDir;
use workloads::fsdiff::{self, Options};

#[derive(Parser)]
#[command(about = "Differential test of ext2mfr against the kernel's ext2 driver")]
struct Args {
    /// Ops per run.
    #[arg(long, default_value_t = 2000)]
    ops: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// 1024, 2048, 4096 or all.
    #[arg(long, default_value = "all")]
    block_size: String,
    /// Inode size of the images: 256 (room for extended attributes inside
    /// the inode) or 128 (every attribute in an xattr block).
    #[arg(long, default_value_t = 256)]
    inode_size: u32,
    /// default, baseline, uring (the default over FUSE over io_uring) or
    /// all (default and baseline).
    #[arg(long, default_value = "all")]
    config: String,
    /// Compare the whole trees every K ops (0: only at the end).
    #[arg(long, default_value_t = 250)]
    check_every: usize,
    /// Stop a run after this many distinct mismatches (0: never). Later
    /// ones are often consequences of the first.
    #[arg(long, default_value_t = 1)]
    max_mismatches: usize,
    /// Shrink at most this many distinct mismatches per run (0: none).
    #[arg(long, default_value_t = 1)]
    shrink: usize,
    /// Time budget for shrinking one mismatch, in seconds.
    #[arg(long, default_value_t = 300)]
    shrink_secs: u64,
    /// Op kinds to leave out, comma-separated (write, mknod, mkdir, rmdir,
    /// unlink, link, symlink, rename, truncate, fallocate, chmod, chown,
    /// utimens, stat, read, readlink, readdir, statfs, fd, xattr, acl; and
    /// users: no op as another user than root), e.g. to look past a known
    /// bug.
    #[arg(long, default_value = "")]
    without: String,
    /// Keep the images and the daemon log of each run.
    #[arg(long)]
    keep: bool,
    /// Where the ext2mfr binary is (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where images and mount points go.
    #[arg(long, default_value = "/var/tmp")]
    workdir: PathBuf,
}

fn main() -> ExitCode {
    let a = Args::parse();
    if let Err(e) = workloads::eval::proc::require_root("fs-diff") {
        eprintln!("fs-diff: {e}");
        return ExitCode::from(2);
    }
    let block_sizes = match a.block_size.as_str() {
        "all" => vec![1024, 2048, 4096],
        s => match s.parse::<u32>() {
            Ok(b @ (1024 | 2048 | 4096)) => vec![b],
            _ => {
                eprintln!("fs-diff: --block-size must be 1024, 2048, 4096 or all");
                return ExitCode::from(2);
            }
        },
    };
    if a.inode_size != 128 && a.inode_size != 256 {
        eprintln!("fs-diff: --inode-size must be 128 or 256");
        return ExitCode::from(2);
    }
    let names: Vec<&str> = match a.config.as_str() {
        "all" => vec!["default", "baseline"],
        s => vec![s],
    };
    let mut configs = Vec::new();
    for n in names {
        match fsdiff::config(n) {
            Some(c) => configs.push(c),
            None => {
                eprintln!("fs-diff: --config must be default, baseline, uring or all");
                return ExitCode::from(2);
            }
        }
    }
    let without: Vec<String> = a
        .without
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if let Some(w) = without
        .iter()
        .find(|w| !fsdiff::gen::KINDS.contains(&w.as_str()))
    {
        eprintln!("fs-diff: unknown op kind '{w}' in --without");
        return ExitCode::from(2);
    }
    let tools = match Tools::find(a.bin_dir.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fs-diff: {e}");
            return ExitCode::from(2);
        }
    };
    // All scratch directories under one, which a signal handler cleans
    // (Ctrl-C must not leave the kernel's loop mount behind).
    let mut scratch = match WorkDir::new(&a.workdir, "fs-diff-session") {
        Ok(w) => w,
        Err(e) => {
            eprintln!("fs-diff: {e}");
            return ExitCode::from(2);
        }
    };
    if a.keep {
        scratch.keep();
    }
    signals::clean_up_on_signal(scratch.path().to_path_buf());
    let o = Options {
        ops: a.ops,
        seed: a.seed,
        block_sizes,
        inode_size: a.inode_size,
        configs,
        check_every: a.check_every,
        max_mismatches: a.max_mismatches,
        shrink: a.shrink,
        shrink_budget: Duration::from_secs(a.shrink_secs),
        without,
        keep: a.keep,
        workdir: scratch.path().to_path_buf(),
        tools,
    };
    let mut out = std::io::stdout();
    match fsdiff::campaign(&o, &mut out) {
        Ok(runs) => {
            let failed: Vec<String> = runs
                .iter()
                .filter(|r| r.failed())
                .map(|r| format!("{}/{}", r.block_size, r.config))
                .collect();
            if failed.is_empty() {
                println!("fs-diff: all {} runs agree with the kernel", runs.len());
                ExitCode::SUCCESS
            } else {
                println!("fs-diff: FAILED runs: {}", failed.join(", "));
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("fs-diff: {e}");
            ExitCode::from(2)
        }
    }
}
