//! PostMark 1.5's model of a mail/news server: a pool of small files in
//! subdirectories, then transactions that each pair a read-or-append with a
//! create-or-delete, then deletion of everything. Parameters and report
//! sections follow the original.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Files in the initial pool (`set number`).
    pub number: usize,
    /// File sizes are uniform in [low, high] bytes (`set size`).
    pub size_low: usize,
    pub size_high: usize,
    /// `set transactions`.
    pub transactions: usize,
    /// `set subdirectories` (0 = all files in the base directory).
    pub subdirectories: usize,
    /// `set read` / `set write`: I/O block sizes.
    pub read_block: usize,
    pub write_block: usize,
    /// Out of 10: read rather than append; create rather than delete.
    pub read_bias: u32,
    pub create_bias: u32,
    /// `set buffering`: buffered (std::io::BufWriter) or one syscall per block.
    pub buffered: bool,
    pub seed: u64,
}

impl Default for Config {
    /// PostMark 1.5's defaults.
    fn default() -> Self {
        Config {
            number: 500,
            size_low: 500,
            size_high: 10_000,
            transactions: 500,
            subdirectories: 0,
            read_block: 512,
            write_block: 512,
            read_bias: 5,
            create_bias: 5,
            buffered: true,
            seed: 42,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub total_secs: f64,
    pub transaction_secs: f64,
    pub transactions_per_sec: f64,
    pub created: u64,
    pub created_alone: u64,
    pub created_in_transactions: u64,
    pub read: u64,
    pub appended: u64,
    pub deleted: u64,
    pub deleted_alone: u64,
    pub deleted_in_transactions: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub read_bytes_per_sec: f64,
    pub write_bytes_per_sec: f64,
}

struct Pool {
    files: Vec<PathBuf>,
}

struct Run<'a> {
    cfg: &'a Config,
    base: PathBuf,
    rng: StdRng,
    next_name: u64,
    r: Report,
    buf: Vec<u8>,
}

impl Run<'_> {
    fn new_name(&mut self) -> PathBuf {
        self.next_name += 1;
        let dir = if self.cfg.subdirectories > 0 {
            self.base.join(format!(
                "s{}",
                self.rng.gen_range(0..self.cfg.subdirectories)
            ))
        } else {
            self.base.clone()
        };
        dir.join(format!("pm{}_{:x}", self.next_name, self.rng.gen::<u32>()))
    }

    fn write_data(&mut self, f: &mut File, mut n: usize) -> std::io::Result<()> {
        let bs = self.cfg.write_block;
        if self.cfg.buffered {
            let mut w = std::io::BufWriter::new(f);
            while n > 0 {
                let k = n.min(bs);
                w.write_all(&self.buf[..k])?;
                n -= k;
                self.r.bytes_written += k as u64;
            }
            w.flush()
        } else {
            while n > 0 {
                let k = n.min(bs);
                f.write_all(&self.buf[..k])?;
                n -= k;
                self.r.bytes_written += k as u64;
            }
            Ok(())
        }
    }

    fn create(&mut self, pool: &mut Pool) -> std::io::Result<()> {
        let path = self.new_name();
        let size = self.rng.gen_range(self.cfg.size_low..=self.cfg.size_high);
        let mut f = File::create(&path).map_err(|e| ctx(e, &path))?;
        self.write_data(&mut f, size).map_err(|e| ctx(e, &path))?;
        pool.files.push(path);
        self.r.created += 1;
        Ok(())
    }

    fn delete(&mut self, pool: &mut Pool) -> std::io::Result<()> {
        if pool.files.is_empty() {
            return Ok(());
        }
        let i = self.rng.gen_range(0..pool.files.len());
        let path = pool.files.swap_remove(i);
        std::fs::remove_file(&path).map_err(|e| ctx(e, &path))?;
        self.r.deleted += 1;
        Ok(())
    }

    fn read(&mut self, pool: &Pool) -> std::io::Result<()> {
        if pool.files.is_empty() {
            return Ok(());
        }
        let path = &pool.files[self.rng.gen_range(0..pool.files.len())];
        let mut f = File::open(path).map_err(|e| ctx(e, path))?;
        let bs = self.cfg.read_block;
        let mut chunk = vec![0u8; bs];
        loop {
            let n = f.read(&mut chunk).map_err(|e| ctx(e, path))?;
            if n == 0 {
                break;
            }
            self.r.bytes_read += n as u64;
        }
        self.r.read += 1;
        Ok(())
    }

    fn append(&mut self, pool: &Pool) -> std::io::Result<()> {
        if pool.files.is_empty() {
            return Ok(());
        }
        let path = pool.files[self.rng.gen_range(0..pool.files.len())].clone();
        let n = self.rng.gen_range(self.cfg.size_low..=self.cfg.size_high);
        let mut f = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| ctx(e, &path))?;
        self.write_data(&mut f, n).map_err(|e| ctx(e, &path))?;
        self.r.appended += 1;
        Ok(())
    }
}

fn ctx(e: std::io::Error, p: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

/// Run PostMark in `base` (which must exist). Every failed system call ends
/// the run with that error, as the original does.
pub fn run(base: &Path, cfg: &Config) -> std::io::Result<Report> {
    if cfg.size_low > cfg.size_high || cfg.read_block == 0 || cfg.write_block == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "bad postmark parameters",
        ));
    }
    let mut run = Run {
        cfg,
        base: base.to_path_buf(),
        rng: StdRng::seed_from_u64(cfg.seed),
        next_name: 0,
        r: Report::default(),
        buf: (0..cfg.write_block.max(1))
            .map(|i| (i % 251) as u8)
            .collect(),
    };
    let start = Instant::now();
    for s in 0..cfg.subdirectories {
        let d = base.join(format!("s{s}"));
        std::fs::create_dir(&d).map_err(|e| ctx(e, &d))?;
    }
    let mut pool = Pool {
        files: Vec::with_capacity(cfg.number),
    };
    for _ in 0..cfg.number {
        run.create(&mut pool)?;
    }
    run.r.created_alone = run.r.created;
    let t0 = Instant::now();
    for _ in 0..cfg.transactions {
        if run.rng.gen_range(0..10) < cfg.read_bias {
            run.read(&pool)?;
        } else {
            run.append(&pool)?;
        }
        if run.rng.gen_range(0..10) < cfg.create_bias {
            run.create(&mut pool)?;
        } else {
            run.delete(&mut pool)?;
        }
    }
    run.r.transaction_secs = t0.elapsed().as_secs_f64();
    run.r.created_in_transactions = run.r.created - run.r.created_alone;
    run.r.deleted_in_transactions = run.r.deleted;
    while let Some(p) = pool.files.pop() {
        std::fs::remove_file(&p).map_err(|e| ctx(e, &p))?;
        run.r.deleted += 1;
    }
    run.r.deleted_alone = run.r.deleted - run.r.deleted_in_transactions;
    for s in 0..cfg.subdirectories {
        let d = base.join(format!("s{s}"));
        std::fs::remove_dir(&d).map_err(|e| ctx(e, &d))?;
    }
    let mut r = run.r;
    r.total_secs = start.elapsed().as_secs_f64();
    r.transactions_per_sec = cfg.transactions as f64 / r.transaction_secs.max(1e-9);
    r.read_bytes_per_sec = r.bytes_read as f64 / r.total_secs.max(1e-9);
    r.write_bytes_per_sec = r.bytes_written as f64 / r.total_secs.max(1e-9);
    Ok(r)
}

/// The report in PostMark's sections.
pub fn format_report(r: &Report, cfg: &Config) -> String {
    let mib = |b: f64| b / (1024.0 * 1024.0);
    format!(
        "Time:\n\t{:.2} seconds total\n\t{:.2} seconds of transactions ({:.0} per second)\n\n\
         Files:\n\t{} created ({} alone, {} mixed with transactions)\n\t{} read\n\t{} appended\n\
         \t{} deleted ({} alone, {} mixed with transactions)\n\n\
         Data:\n\t{:.2} MiB read ({:.2} MiB/s)\n\t{:.2} MiB written ({:.2} MiB/s)\n\
         (number {}, size {}..{}, transactions {}, subdirectories {}, seed {})\n",
        r.total_secs,
        r.transaction_secs,
        r.transactions_per_sec,
        r.created,
        r.created_alone,
        r.created_in_transactions,
        r.read,
        r.appended,
        r.deleted,
        r.deleted_alone,
        r.deleted_in_transactions,
        mib(r.bytes_read as f64),
        mib(r.read_bytes_per_sec),
        mib(r.bytes_written as f64),
        mib(r.write_bytes_per_sec),
        cfg.number,
        cfg.size_low,
        cfg.size_high,
        cfg.transactions,
        cfg.subdirectories,
        cfg.seed
    )
}
