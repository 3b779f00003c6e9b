//! The micro benchmark's four phases one at a time, for the space
//! experiment: it reads the daemon's counters before and after each phase,
//! which `micro::run` (all four in one call, timing only) does not allow.
//! Same I/O pattern as `micro`: `block`-sized calls, fsync after writes,
//! random offsets from a seeded generator.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

fn block_data(block: usize) -> Vec<u8> {
    (0..block).map(|i| (i * 7 % 256) as u8).collect()
}

/// Create `path` and write `size` bytes sequentially, then fsync.
pub fn seq_write(path: &Path, size: u64, block: usize) -> std::io::Result<()> {
    let buf = block_data(block);
    let mut f = File::create(path)?;
    let mut left = size;
    while left > 0 {
        let n = left.min(block as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

/// Read `path` to the end; the byte count.
pub fn seq_read(path: &Path, block: usize) -> std::io::Result<u64> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; block];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

/// `ops` block writes at random block offsets of a `size`-byte file, then fsync.
pub fn rand_write(
    path: &Path,
    size: u64,
    block: usize,
    ops: usize,
    seed: u64,
) -> std::io::Result<()> {
    let buf = block_data(block);
    let blocks = (size / block as u64).max(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let f = OpenOptions::new().write(true).open(path)?;
    for _ in 0..ops {
        f.write_all_at(&buf, rng.gen_range(0..blocks) * block as u64)?;
    }
    f.sync_all()
}

/// `ops` block reads at random block offsets.
pub fn rand_read(
    path: &Path,
    size: u64,
    block: usize,
    ops: usize,
    seed: u64,
) -> std::io::Result<()> {
    let blocks = (size / block as u64).max(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let f = File::open(path)?;
    let mut buf = vec![0u8; block];
    for _ in 0..ops {
        f.read_exact_at(&mut buf, rng.gen_range(0..blocks) * block as u64)?;
    }
    Ok(())
}
