//! `fs-compare`: the same postmark-style and micro loads, on the same kind of
//! image, under the kernel's ext2, fuse2fs and ext2mfr, side by side in one
//! run, with throughput ratios. Rounds rotate the peer order so a noisy
//! neighbour does not always hit the same peer; the median round counts.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use workloads::eval::compare::{self, Loads, Sample};
use workloads::eval::mount::{Peer, Tools};
use workloads::eval::workdir::WorkDir;

#[derive(Parser)]
#[command(about = "Compare kernel ext2, fuse2fs and ext2mfr on postmark and micro loads")]
struct Args {
    /// The ext2mfr daemon binary.
    #[arg(long, default_value = "target/release/ext2mfr")]
    ext2mfr: PathBuf,
    /// Peers to run, comma-separated: kernel, fuse2fs, ext2mfr, baseline
    /// (ext2mfr with recovery off: the cost of recovery is ext2mfr/baseline).
    #[arg(long, default_value = "kernel,fuse2fs,baseline,ext2mfr")]
    peers: String,
    /// Extra -o options for ext2mfr.
    #[arg(long, default_value = "")]
    ext2mfr_opts: String,
    /// Image size in MiB (4 KiB blocks, made by mkfs.ext2).
    #[arg(long, default_value_t = 1024)]
    image_mib: u64,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Small loads for a quick check.
    #[arg(long)]
    quick: bool,
    /// Where images and mount points go.
    #[arg(long, default_value = "/var/tmp")]
    workdir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = workloads::eval::proc::require_root("fs-compare") {
        eprintln!("fs-compare: {e}");
        return ExitCode::from(2);
    }
    let with_opts = |base: &str| -> String {
        match (base.is_empty(), args.ext2mfr_opts.is_empty()) {
            (_, true) => base.to_string(),
            (true, false) => args.ext2mfr_opts.clone(),
            (false, false) => format!("{},{base}", args.ext2mfr_opts),
        }
    };
    let mut peers = Vec::new();
    for p in args.peers.split(',') {
        peers.push(match p.trim() {
            "kernel" => Peer::Kernel,
            "fuse2fs" => Peer::Fuse2fs,
            "ext2mfr" => Peer::Daemon {
                label: "ext2mfr".into(),
                opts: with_opts(""),
            },
            "baseline" => Peer::Daemon {
                label: "baseline".into(),
                opts: with_opts("baseline"),
            },
            other => {
                eprintln!(
                    "fs-compare: unknown peer '{other}' (kernel, fuse2fs, baseline, ext2mfr)"
                );
                return ExitCode::from(2);
            }
        });
    }
    let tools = Tools {
        ext2mfr: args.ext2mfr.clone(),
    };
    let loads = if args.quick {
        Loads::quick()
    } else {
        Loads::full()
    };
    let (pm, mc, sc) = (&loads.postmark, &loads.micro, &loads.sort);
    let work = match WorkDir::new(&args.workdir, "fs-compare") {
        Ok(w) => w,
        Err(e) => {
            eprintln!("fs-compare: {e}");
            return ExitCode::from(1);
        }
    };
    let samples: Vec<Vec<Sample>> = match compare::rounds(
        &peers,
        &tools,
        &work,
        args.image_mib,
        &loads,
        args.rounds,
        &|m| eprintln!("{m}"),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fs-compare: {e}");
            return ExitCode::from(1);
        }
    };
    let base = peers.iter().position(|p| p.label() == "ext2mfr");
    let metric =
        |i: usize, f: &dyn Fn(&Sample) -> f64| compare::median(samples[i].iter().map(f).collect());
    println!(
        "postmark: {} files, {} transactions, {} subdirectories; micro: {} MiB file, {}-byte I/O, {} random ops; median of {} rounds",
        pm.number, pm.transactions, pm.subdirectories, mc.file_size >> 20, mc.block, mc.random_ops, args.rounds
    );
    println!(
        "sort: {} MiB input, {} lines per run",
        sc.input_bytes >> 20,
        sc.run_lines
    );
    println!(
        "{:<12} {:>14} {:>12} {:>14} {:>14} {:>15} {:>14} {:>9}",
        "peer",
        "postmark tx/s",
        "postmark s",
        "seq-write MB/s",
        "seq-read MB/s",
        "rand-write MB/s",
        "rand-read MB/s",
        "sort s"
    );
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let mut row = vec![
            metric(i, &|s| s.postmark_tps),
            metric(i, &|s| s.postmark_secs),
        ];
        for ph in 0..4 {
            row.push(metric(i, &|s: &Sample| s.micro[ph].mib_per_sec));
        }
        row.push(metric(i, &|s| s.sort_secs));
        println!(
            "{:<12} {:>14.0} {:>12.2} {:>14.1} {:>14.1} {:>15.1} {:>14.1} {:>9.2}",
            p.label(),
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6]
        );
        rows.push(row);
    }
    if let (Some(b), Some(o)) = (base, peers.iter().position(|p| p.label() == "baseline")) {
        println!(
            "\nrecovery overhead (ext2mfr time / baseline time): postmark {:.2}x, sort {:.2}x",
            rows[b][1] / rows[o][1].max(1e-9),
            rows[b][6] / rows[o][6].max(1e-9)
        );
    }
    if let Some(b) = base {
        println!("\nratios: ext2mfr throughput / peer throughput (>1 means ext2mfr is faster)");
        for (i, p) in peers.iter().enumerate() {
            if i == b {
                continue;
            }
            let r = |k: usize| rows[b][k] / rows[i][k].max(1e-9);
            println!(
                "vs {:<12} postmark {:.2}x  seq-write {:.2}x  seq-read {:.2}x  rand-write {:.2}x  rand-read {:.2}x  sort {:.2}x",
                p.label(), r(0), r(2), r(3), r(4), r(5), rows[i][6] / rows[b][6].max(1e-9)
            );
        }
    }
    ExitCode::SUCCESS
}
