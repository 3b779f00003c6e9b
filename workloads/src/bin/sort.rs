//! `sort DIR [options]`: external merge sort of generated text on DIR.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use workloads::sort::{run, Config};

#[derive(Parser)]
#[command(
    about = "External merge sort whose input, runs and output live on the file system under test"
)]
struct Args {
    dir: PathBuf,
    /// Input size in MiB.
    #[arg(long, default_value_t = 32)]
    size_mib: u64,
    /// Lines per in-memory run.
    #[arg(long, default_value_t = 100_000)]
    run_lines: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    if let Err(e) = workloads::mountpoint::check_writable_dir(&a.dir) {
        eprintln!("sort: {e}");
        return ExitCode::from(2);
    }
    let cfg = Config {
        input_bytes: a.size_mib << 20,
        run_lines: a.run_lines,
        seed: a.seed,
    };
    match run(&a.dir, &cfg) {
        Ok(r) if a.json => {
            println!("{}", serde_json::json!({"config": cfg, "report": r}));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "sorted {} lines in {} runs: generate {:.2} s, sort {:.2} s, total {:.2} s (output checked)",
                r.lines, r.runs, r.generate_secs, r.sort_secs, r.total_secs
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sort: {e}");
            ExitCode::from(1)
        }
    }
}
