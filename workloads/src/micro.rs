//! Micro benchmarks over one large file (the AMA paper's Table 5 set):
//! sequential write, sequential read, random write, random read. Writes end
//! with fsync so their cost includes reaching the file system's storage.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// File size in bytes.
    pub file_size: u64,
    /// I/O size of each call.
    pub block: usize,
    /// Number of random reads and of random writes.
    pub random_ops: usize,
    /// Drop the kernel's page cache before each read phase (needs root), so
    /// reads reach the file system instead of the page cache.
    pub drop_caches: bool,
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            file_size: 64 << 20,
            block: 4096,
            random_ops: 4096,
            drop_caches: true,
            seed: 42,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub secs: f64,
    pub bytes: u64,
    pub mib_per_sec: f64,
}

fn phase(name: &'static str, secs: f64, bytes: u64) -> Phase {
    Phase {
        name,
        secs,
        bytes,
        mib_per_sec: bytes as f64 / (1 << 20) as f64 / secs.max(1e-9),
    }
}

fn drop_caches() {
    // Best effort: without root this fails and reads may come from the page cache.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

pub fn run(dir: &Path, cfg: &Config) -> std::io::Result<Vec<Phase>> {
    if cfg.block == 0 || cfg.file_size < cfg.block as u64 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "bad micro parameters",
        ));
    }
    let path = dir.join("micro.dat");
    let blocks = cfg.file_size / cfg.block as u64;
    let buf: Vec<u8> = (0..cfg.block).map(|i| (i * 7 % 256) as u8).collect();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut out = Vec::new();

    let t = Instant::now();
    {
        let mut f = File::create(&path)?;
        for _ in 0..blocks {
            f.write_all(&buf)?;
        }
        f.sync_all()?;
    }
    out.push(phase(
        "seq-write",
        t.elapsed().as_secs_f64(),
        blocks * cfg.block as u64,
    ));

    if cfg.drop_caches {
        drop_caches();
    }
    let t = Instant::now();
    {
        let mut f = File::open(&path)?;
        let mut rb = vec![0u8; cfg.block];
        let mut total = 0u64;
        loop {
            let n = f.read(&mut rb)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        if total != blocks * cfg.block as u64 {
            return Err(std::io::Error::other(format!(
                "read back {total} bytes, wrote {}",
                blocks * cfg.block as u64
            )));
        }
    }
    out.push(phase(
        "seq-read",
        t.elapsed().as_secs_f64(),
        blocks * cfg.block as u64,
    ));

    let t = Instant::now();
    {
        let f = OpenOptions::new().write(true).open(&path)?;
        for _ in 0..cfg.random_ops {
            let b = rng.gen_range(0..blocks);
            f.write_all_at(&buf, b * cfg.block as u64)?;
        }
        f.sync_all()?;
    }
    out.push(phase(
        "rand-write",
        t.elapsed().as_secs_f64(),
        (cfg.random_ops * cfg.block) as u64,
    ));

    if cfg.drop_caches {
        drop_caches();
    }
    let t = Instant::now();
    {
        let f = File::open(&path)?;
        let mut rb = vec![0u8; cfg.block];
        for _ in 0..cfg.random_ops {
            let b = rng.gen_range(0..blocks);
            f.read_exact_at(&mut rb, b * cfg.block as u64)?;
            if rb != buf {
                return Err(std::io::Error::other(format!("block {b} read back wrong")));
            }
        }
    }
    out.push(phase(
        "rand-read",
        t.elapsed().as_secs_f64(),
        (cfg.random_ops * cfg.block) as u64,
    ));
    std::fs::remove_file(&path)?;
    Ok(out)
}
