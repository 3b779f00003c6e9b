//! `dirscale DIR [options]`: many names in one directory, many threads.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use workloads::dirscale::{run, Config};

#[derive(Parser)]
#[command(about = "Create, look up, list and unlink many files in one directory (or per thread)")]
struct Args {
    /// Directory on the file system under test.
    dir: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    files: usize,
    #[arg(long, default_value_t = 10_000)]
    lookups: usize,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// All threads create in one shared directory.
    #[arg(long)]
    shared: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    if let Err(e) = workloads::mountpoint::check_writable_dir(&a.dir) {
        eprintln!("dirscale: {e}");
        return ExitCode::from(2);
    }
    let cfg = Config {
        files: a.files,
        lookups: a.lookups,
        threads: a.threads,
        shared: a.shared,
        seed: a.seed,
    };
    match run(&a.dir, &cfg) {
        Ok(phases) if a.json => {
            println!("{}", serde_json::json!({"config": cfg, "phases": phases}));
            ExitCode::SUCCESS
        }
        Ok(phases) => {
            for p in phases {
                println!(
                    "{:<8} {:>9.3} s {:>10.0} ops/s",
                    p.name, p.secs, p.ops_per_sec
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dirscale: {e}");
            ExitCode::from(1)
        }
    }
}
