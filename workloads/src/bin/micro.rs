//! `micro DIR [options]`: sequential and random reads and writes over one file.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use workloads::micro::{run, Config};

#[derive(Parser)]
#[command(about = "Sequential/random read/write micro benchmarks over one large file")]
struct Args {
    /// Directory on the file system under test.
    dir: PathBuf,
    /// File size in MiB.
    #[arg(long, default_value_t = 64)]
    size_mib: u64,
    /// Bytes per read/write call.
    #[arg(long, default_value_t = 4096)]
    block: usize,
    /// Random reads and random writes (each).
    #[arg(long, default_value_t = 4096)]
    random_ops: usize,
    /// Keep the page cache between phases.
    #[arg(long)]
    no_drop_caches: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    if let Err(e) = workloads::mountpoint::check_writable_dir(&a.dir) {
        eprintln!("micro: {e}");
        return ExitCode::from(2);
    }
    let cfg = Config {
        file_size: a.size_mib << 20,
        block: a.block,
        random_ops: a.random_ops,
        drop_caches: !a.no_drop_caches,
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
                    "{:<10} {:>8.3} s {:>9.1} MiB/s",
                    p.name, p.secs, p.mib_per_sec
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("micro: {e}");
            ExitCode::from(1)
        }
    }
}
