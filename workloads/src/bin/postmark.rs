//! `postmark DIR [options]`: PostMark 1.5's workload against any directory.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use workloads::postmark::{format_report, run, Config};

#[derive(Parser)]
#[command(about = "PostMark 1.5 workload (small-file create/read/append/delete)")]
struct Args {
    /// Directory on the file system under test.
    dir: PathBuf,
    #[arg(long, default_value_t = 500)]
    number: usize,
    #[arg(long, default_value_t = 500)]
    size_low: usize,
    #[arg(long, default_value_t = 10000)]
    size_high: usize,
    #[arg(long, default_value_t = 500)]
    transactions: usize,
    #[arg(long, default_value_t = 0)]
    subdirectories: usize,
    #[arg(long, default_value_t = 512)]
    read_block: usize,
    #[arg(long, default_value_t = 512)]
    write_block: usize,
    /// Out of 10: reads rather than appends.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=10))]
    read_bias: u32,
    /// Out of 10: creates rather than deletes.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=10))]
    create_bias: u32,
    /// One write call per block instead of buffered I/O.
    #[arg(long)]
    unbuffered: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    if let Err(e) = workloads::mountpoint::check_writable_dir(&a.dir) {
        eprintln!("postmark: {e}");
        return ExitCode::from(2);
    }
    if a.size_low > a.size_high || a.read_block == 0 || a.write_block == 0 {
        eprintln!("postmark: need size-low <= size-high and non-zero block sizes");
        return ExitCode::from(2);
    }
    let cfg = Config {
        number: a.number,
        size_low: a.size_low,
        size_high: a.size_high,
        transactions: a.transactions,
        subdirectories: a.subdirectories,
        read_block: a.read_block,
        write_block: a.write_block,
        read_bias: a.read_bias,
        create_bias: a.create_bias,
        buffered: !a.unbuffered,
        seed: a.seed,
    };
    match run(&a.dir, &cfg) {
        Ok(r) if a.json => {
            println!("{}", serde_json::json!({"config": cfg, "report": r}));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            print!("{}", format_report(&r, &cfg));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postmark: {e}");
            ExitCode::from(1)
        }
    }
}
