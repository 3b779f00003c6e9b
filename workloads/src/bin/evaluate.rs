//! `evaluate`: the evaluation harness. Runs the papers' experiments against
//! the `ext2mfr` daemon (robustness under allocation failures, memory-safety
//! faults, performance, space) and writes `results/`. See `workloads::eval`.
//!
//! `evaluate workload DIR ...` is the robustness workload itself; the
//! harness runs it in a child process so a hung call cannot hang the harness.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use workloads::eval::driver::{evaluate, Options};
use workloads::eval::mixed::{self, MixedConfig};
use workloads::eval::plan::Part;

#[derive(Parser)]
#[command(
    about = "Run the ext2-mfr evaluation (robustness, memory-safety faults, performance, space, scale) into results/",
    args_conflicts_with_subcommands = true
)]
struct Args {
    /// Small matrix and loads: a few minutes instead of about an hour.
    #[arg(long)]
    quick: bool,
    /// Where tables, figures and the README go.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Parts to run, comma-separated: robustness, safety, performance, space, scale, placement (default: all).
    #[arg(long, value_delimiter = ',', value_parser = Part::parse)]
    parts: Option<Vec<Part>>,
    /// Robustness runs per cell (quick 2, full 15).
    #[arg(long)]
    runs: Option<usize>,
    /// Memory-safety runs per configuration (quick 2, full 5).
    #[arg(long)]
    safety_runs: Option<usize>,
    /// Performance rounds (median counts).
    #[arg(long)]
    rounds: Option<usize>,
    /// First seed (each run's seed follows from it and the run's place in the matrix).
    #[arg(long)]
    seed: Option<u64>,
    /// Deadline of one robustness run's workload, in seconds (then: Abort).
    #[arg(long)]
    timeout: Option<u64>,
    /// Largest file for Figure 8, in MiB.
    #[arg(long)]
    truncate_max_mib: Option<u64>,
    /// Files in one directory per scale run, comma-separated (default 10000 to 160000; the image gets inodes for the largest).
    #[arg(long, value_delimiter = ',')]
    scale_sizes: Option<Vec<usize>>,
    /// Deadline of one scale run, in seconds (default 120).
    #[arg(long)]
    scale_deadline: Option<u64>,
    /// Directory holding the ext2mfr binary (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Parent of the scratch directory (images, mount points, daemon logs).
    #[arg(long, default_value = "/var/tmp")]
    workdir: PathBuf,
    /// Keep the scratch directory (daemon logs) afterwards.
    #[arg(long)]
    keep_workdir: bool,
    /// More progress output.
    #[arg(long, short)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// The robustness workload (run by the harness in a child process).
    #[command(hide = true)]
    Workload {
        dir: PathBuf,
        #[arg(long, default_value_t = 40)]
        files: usize,
        #[arg(long, default_value_t = 100)]
        transactions: usize,
        #[arg(long, default_value_t = 3)]
        subdirectories: usize,
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let a = Args::parse();
    if let Some(Cmd::Workload {
        dir,
        files,
        transactions,
        subdirectories,
        rounds,
        seed,
    }) = a.cmd
    {
        let cfg = MixedConfig {
            files,
            transactions,
            subdirectories,
            rounds,
            seed,
        };
        return match mixed::run(&dir, &cfg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // The harness reads this last line as the failed call.
                eprintln!("{e}");
                ExitCode::from(workloads::eval::child::FAILED_CALL as u8)
            }
        };
    }
    let o = Options {
        quick: a.quick,
        out: a.out,
        parts: a.parts,
        runs: a.runs,
        safety_runs: a.safety_runs,
        rounds: a.rounds,
        seed: a.seed,
        timeout_secs: a.timeout,
        truncate_max_mib: a.truncate_max_mib,
        scale_sizes: a.scale_sizes,
        scale_deadline_secs: a.scale_deadline,
        bin_dir: a.bin_dir,
        workdir: a.workdir,
        keep_workdir: a.keep_workdir,
        verbose: a.verbose,
    };
    let argv: Vec<String> = std::env::args().collect();
    match evaluate(&o, &argv) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("evaluate: some parts failed (see above and the README)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("evaluate: {e}");
            ExitCode::from(2)
        }
    }
}
