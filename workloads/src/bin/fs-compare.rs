//! `fs-compare`: the same postmark-style and micro loads, on the same kind of
//! image, under the kernel's ext2, fuse2fs and ext2mfr, side by side in one
//! run, with throughput ratios. Rounds rotate the peer order so a noisy
//! neighbour does not always hit the same peer; the median round counts.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use workloads::{micro, postmark, sort};

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

#[derive(Clone, Copy, PartialEq, Debug)]
enum Peer {
    Kernel,
    Fuse2fs,
    Ext2mfr,
    Baseline,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Kernel => "kernel ext2",
            Peer::Fuse2fs => "fuse2fs",
            Peer::Ext2mfr => "ext2mfr",
            Peer::Baseline => "baseline",
        }
    }
}

struct Mounted {
    mnt: PathBuf,
    daemon: Option<Child>,
}

fn mounted(mnt: &Path) -> bool {
    let m = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let want = mnt.to_string_lossy();
    m.lines().any(|l| l.split(' ').nth(1) == Some(&*want))
}

fn run_ok(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

impl Mounted {
    fn mount(peer: Peer, img: &Path, mnt: &Path, args: &Args) -> Result<Mounted, String> {
        std::fs::create_dir_all(mnt).map_err(|e| e.to_string())?;
        let daemon = match peer {
            Peer::Kernel => {
                run_ok(
                    Command::new("mount")
                        .args(["-o", "loop", "-t", "ext2"])
                        .arg(img)
                        .arg(mnt),
                )?;
                None
            }
            Peer::Fuse2fs => Some(
                Command::new("fuse2fs")
                    .arg(img)
                    .arg(mnt)
                    .arg("-f")
                    // libfuse otherwise renames a file unlinked while a
                    // release is still in flight to .fuse_hidden*, which
                    // makes a later rmdir fail with ENOTEMPTY.
                    .args(["-o", "hard_remove"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("fuse2fs: {e}"))?,
            ),
            Peer::Ext2mfr | Peer::Baseline => {
                let mut c = Command::new(&args.ext2mfr);
                c.arg(img).arg(mnt).arg("-f");
                let mut opts = args.ext2mfr_opts.clone();
                if peer == Peer::Baseline {
                    opts = if opts.is_empty() {
                        "baseline".into()
                    } else {
                        format!("{opts},baseline")
                    };
                }
                if !opts.is_empty() {
                    c.arg("-o").arg(opts);
                }
                Some(
                    c.stdout(Stdio::null())
                        .spawn()
                        .map_err(|e| format!("{}: {e}", args.ext2mfr.display()))?,
                )
            }
        };
        let m = Mounted {
            mnt: mnt.to_path_buf(),
            daemon,
        };
        let t = Instant::now();
        while !mounted(mnt) {
            if t.elapsed() > Duration::from_secs(10) {
                return Err(format!("{} did not mount", peer.name()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(m)
    }

    /// Unmount and wait for a daemon to finish writing back.
    fn unmount(mut self) -> Result<(), String> {
        run_ok(Command::new("umount").arg(&self.mnt))?;
        if let Some(mut d) = self.daemon.take() {
            d.wait().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

struct Sample {
    postmark_tps: f64,
    postmark_secs: f64,
    sort_secs: f64,
    micro: Vec<micro::Phase>,
}

fn one_run(
    peer: Peer,
    args: &Args,
    pm: &postmark::Config,
    mc: &micro::Config,
    sc: &sort::Config,
) -> Result<Sample, String> {
    let dir = args
        .workdir
        .join(format!("fs-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let img = dir.join("fs.img");
    let _ = std::fs::remove_file(&img);
    run_ok(
        Command::new("mkfs.ext2")
            .args(["-q", "-F", "-b", "4096"])
            .arg(&img)
            .arg(format!("{}M", args.image_mib)),
    )?;
    // Start every run quiet: the previous run's dirty pages (its image
    // file) would otherwise be written back during this one.
    let _ = Command::new("sync").status();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    let mnt = dir.join("mnt");
    let m = Mounted::mount(peer, &img, &mnt, args)?;
    let work = mnt.join("work");
    std::fs::create_dir(&work).map_err(|e| e.to_string())?;
    let r = postmark::run(&work, pm).map_err(|e| format!("{}: postmark: {e}", peer.name()))?;
    let phases = micro::run(&work, mc).map_err(|e| format!("{}: micro: {e}", peer.name()))?;
    let sr = sort::run(&work, sc).map_err(|e| format!("{}: sort: {e}", peer.name()))?;
    m.unmount()?;
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(&img)
        .output()
        .map_err(|e| e.to_string())?;
    if !fsck.status.success() {
        return Err(format!(
            "{}: e2fsck -fn not clean:\n{}",
            peer.name(),
            String::from_utf8_lossy(&fsck.stdout)
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Sample {
        postmark_tps: r.transactions_per_sec,
        postmark_secs: r.total_secs,
        sort_secs: sr.total_secs,
        micro: phases,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut peers = Vec::new();
    for p in args.peers.split(',') {
        peers.push(match p.trim() {
            "kernel" => Peer::Kernel,
            "fuse2fs" => Peer::Fuse2fs,
            "ext2mfr" => Peer::Ext2mfr,
            "baseline" => Peer::Baseline,
            other => {
                eprintln!(
                    "fs-compare: unknown peer '{other}' (kernel, fuse2fs, baseline, ext2mfr)"
                );
                return ExitCode::from(2);
            }
        });
    }
    let (pm, mc, sc) = if args.quick {
        (
            postmark::Config {
                number: 500,
                transactions: 1000,
                subdirectories: 10,
                ..Default::default()
            },
            micro::Config {
                file_size: 16 << 20,
                random_ops: 1024,
                ..Default::default()
            },
            sort::Config {
                input_bytes: 4 << 20,
                run_lines: 20_000,
                ..Default::default()
            },
        )
    } else {
        (
            postmark::Config {
                number: 2000,
                transactions: 10000,
                subdirectories: 20,
                ..Default::default()
            },
            micro::Config {
                file_size: 256 << 20,
                random_ops: 8192,
                ..Default::default()
            },
            sort::Config {
                input_bytes: 32 << 20,
                run_lines: 100_000,
                ..Default::default()
            },
        )
    };
    let mut samples: Vec<Vec<Sample>> = peers.iter().map(|_| Vec::new()).collect();
    for round in 0..args.rounds.max(1) {
        for k in 0..peers.len() {
            let i = (k + round) % peers.len();
            eprintln!("round {}/{}: {}", round + 1, args.rounds, peers[i].name());
            match one_run(peers[i], &args, &pm, &mc, &sc) {
                Ok(s) => samples[i].push(s),
                Err(e) => {
                    eprintln!("fs-compare: {e}");
                    return ExitCode::from(1);
                }
            }
        }
    }
    let base = peers.iter().position(|&p| p == Peer::Ext2mfr);
    let metric = |i: usize, f: &dyn Fn(&Sample) -> f64| median(samples[i].iter().map(f).collect());
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
            p.name(),
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
    if let (Some(b), Some(o)) = (base, peers.iter().position(|&p| p == Peer::Baseline)) {
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
                p.name(), r(0), r(2), r(3), r(4), r(5), rows[i][6] / rows[b][6].max(1e-9)
            );
        }
    }
    ExitCode::SUCCESS
}
