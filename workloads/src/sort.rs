//! The sort workload: generate a text file of random lines on the file
//! system under test, sort it with an external merge sort whose runs are
//! temporary files on the same file system, and check that the output is
//! sorted and a permutation of the input.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Input size in bytes.
    pub input_bytes: u64,
    /// Lines held in memory per run (then written out as a temporary file).
    pub run_lines: usize,
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            input_bytes: 32 << 20,
            run_lines: 100_000,
            seed: 42,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub generate_secs: f64,
    pub sort_secs: f64,
    pub lines: u64,
    pub runs: usize,
    pub total_secs: f64,
}

/// Order-independent digest of the lines (to check the output is a permutation).
fn digest(acc: &mut (u64, u64), line: &str) {
    let mut h = DefaultHasher::new();
    line.hash(&mut h);
    let v = h.finish();
    acc.0 = acc.0.wrapping_add(v);
    acc.1 ^= v.rotate_left(17);
}

pub fn run(dir: &Path, cfg: &Config) -> std::io::Result<Report> {
    let start = Instant::now();
    let input = dir.join("sort-input.txt");
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut in_digest = (0u64, 0u64);
    let mut lines = 0u64;
    {
        let mut w = BufWriter::new(File::create(&input)?);
        let mut written = 0u64;
        while written < cfg.input_bytes {
            let len = rng.gen_range(10..100);
            let line: String = (0..len)
                .map(|_| rng.gen_range(b'a'..=b'z') as char)
                .collect();
            writeln!(w, "{line}")?;
            digest(&mut in_digest, &line);
            written += len as u64 + 1;
            lines += 1;
        }
        w.flush()?;
    }
    let generate_secs = start.elapsed().as_secs_f64();
    let t = Instant::now();
    // Phase 1: sorted runs as temporary files.
    let mut runs: Vec<PathBuf> = Vec::new();
    {
        let r = BufReader::new(File::open(&input)?);
        let mut buf: Vec<String> = Vec::with_capacity(cfg.run_lines);
        let flush = |buf: &mut Vec<String>, runs: &mut Vec<PathBuf>| -> std::io::Result<()> {
            buf.sort_unstable();
            let p = dir.join(format!("sort-run-{}.tmp", runs.len()));
            let mut w = BufWriter::new(File::create(&p)?);
            for l in buf.drain(..) {
                writeln!(w, "{l}")?;
            }
            w.flush()?;
            runs.push(p);
            Ok(())
        };
        for line in r.lines() {
            buf.push(line?);
            if buf.len() >= cfg.run_lines.max(1) {
                flush(&mut buf, &mut runs)?;
            }
        }
        if !buf.is_empty() {
            flush(&mut buf, &mut runs)?;
        }
    }
    // Phase 2: k-way merge into the output.
    let output = dir.join("sort-output.txt");
    {
        let mut readers: Vec<_> = runs
            .iter()
            .map(|p| File::open(p).map(|f| BufReader::new(f).lines()))
            .collect::<Result<_, _>>()?;
        let mut heads: Vec<Option<String>> = readers
            .iter_mut()
            .map(|r| r.next().transpose())
            .collect::<Result<_, _>>()?;
        let mut w = BufWriter::new(File::create(&output)?);
        loop {
            let best = heads
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.as_ref().map(|s| (i, s)))
                .min_by(|a, b| a.1.cmp(b.1))
                .map(|(i, _)| i);
            let Some(i) = best else { break };
            writeln!(w, "{}", heads[i].as_ref().expect("head"))?;
            heads[i] = readers[i].next().transpose()?;
        }
        w.flush()?;
    }
    let sort_secs = t.elapsed().as_secs_f64();
    // Check: sorted, same multiset of lines.
    let mut out_digest = (0u64, 0u64);
    let mut prev: Option<String> = None;
    let mut out_lines = 0u64;
    for line in BufReader::new(File::open(&output)?).lines() {
        let line = line?;
        if prev.as_ref().is_some_and(|p| *p > line) {
            return Err(std::io::Error::other("output is not sorted"));
        }
        digest(&mut out_digest, &line);
        out_lines += 1;
        prev = Some(line);
    }
    if out_lines != lines || out_digest != in_digest {
        return Err(std::io::Error::other(
            "output is not a permutation of the input",
        ));
    }
    for p in runs.iter().chain([&input, &output]) {
        std::fs::remove_file(p)?;
    }
    Ok(Report {
        generate_secs,
        sort_secs,
        lines,
        runs: runs.len(),
        total_secs: start.elapsed().as_secs_f64(),
    })
}
