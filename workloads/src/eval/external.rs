//! Independent counterparts of our own workload models, run on the mount
//! beside them: Debian's `postmark` (Katcher's PostMark 1.5x, package
//! `postmark`), driven by its command script on stdin, and GNU `sort`
//! (coreutils) with its temporary files on the file system under test.
//! Each is timed from outside (wall time of the process), and its output is
//! checked, so a run that did not do the work cannot count.

use super::image;
use super::proc::{describe, run_for, wait_child, Finished};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's postmark: its `set` commands.
#[derive(Clone, Debug)]
pub struct Postmark {
    pub number: usize,
    pub transactions: usize,
    pub subdirectories: usize,
    /// Read and write block sizes (bytes).
    pub read: usize,
    pub write: usize,
    /// `set buffering`: false is unbuffered read(2)/write(2).
    pub buffering: bool,
    pub seed: u64,
    pub deadline: Duration,
}

/// GNU sort of a random text file: `sort -T DIR -S BUFFER -o OUT IN`.
#[derive(Clone, Debug)]
pub struct GnuSort {
    pub input_bytes: u64,
    /// `-S`: small, so that sort spills runs to its temporary directory.
    pub buffer: String,
    pub seed: u64,
    pub deadline: Duration,
}

/// Which independent loads run (both `None` in `fs-compare`).
#[derive(Clone, Debug, Default)]
pub struct External {
    pub postmark: Option<Postmark>,
    pub gnu_sort: Option<GnuSort>,
}

impl External {
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some(p) = &self.postmark {
            v.push(format!(
                "Debian postmark: {} files, {} transactions, {} subdirectories, read/write {}/{} B, buffering {}, seed {}, after sync and a cache drop",
                p.number, p.transactions, p.subdirectories, p.read, p.write, p.buffering, p.seed
            ));
        }
        if let Some(s) = &self.gnu_sort {
            v.push(format!(
                "GNU sort: {} MiB of random text, `LC_ALL=C sort -S {} -T` on the mount, seed {} (the input is written, synced and dropped from the caches first; the sort alone is timed)",
                s.input_bytes >> 20,
                s.buffer,
                s.seed
            ));
        }
        v.join("; ")
    }
}

/// The command script postmark reads on stdin.
pub fn postmark_script(location: &Path, c: &Postmark) -> String {
    format!(
        "set location {}\nset number {}\nset transactions {}\nset subdirectories {}\nset read {}\nset write {}\n\
         set buffering {}\nset seed {}\nrun\nquit\n",
        location.display(),
        c.number,
        c.transactions,
        c.subdirectories,
        c.read,
        c.write,
        c.buffering,
        c.seed
    )
}

/// postmark's own total ("Time:\n\t12 seconds total"), whole seconds; None
/// when the report is missing (the run did not finish).
pub fn postmark_total_secs(out: &str) -> Option<u64> {
    let after = &out[out.find("Time:")?..];
    after
        .lines()
        .find(|l| l.contains("seconds total"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Run Debian's postmark in `dir` (created); wall seconds.
pub fn postmark(dir: &Path, c: &Postmark) -> Result<f64, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out_path = std::env::temp_dir().join(format!("eval-postmark-{}.out", std::process::id()));
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let script = postmark_script(dir, c);
    let t = Instant::now();
    let mut child = Command::new("postmark")
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("postmark: {e}"))?;
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("postmark: writing its script: {e}"))?;
    }
    let status = wait_child(&mut child, c.deadline).map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    match status {
        None => Err(format!(
            "postmark did not finish within {} s",
            c.deadline.as_secs()
        )),
        Some(s) if !s.success() => Err(format!("postmark exited with {s}")),
        Some(_) if postmark_total_secs(&text).is_none() => Err(format!(
            "postmark printed no report: {}",
            super::proc::last_line(&text, 120)
        )),
        Some(_) => Ok(secs),
    }
}

/// Write `bytes` of random lines (10..100 lowercase letters) to `path`.
fn random_text(path: &Path, bytes: u64, seed: u64) -> Result<(), String> {
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut written = 0u64;
    let mut line = Vec::with_capacity(128);
    while written < bytes {
        line.clear();
        let len = rng.gen_range(10..100);
        line.extend((0..len).map(|_| rng.gen_range(b'a'..=b'z')));
        line.push(b'\n');
        w.write_all(&line)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        written += line.len() as u64;
    }
    w.flush().map_err(|e| format!("{}: {e}", path.display()))
}

/// GNU sort's input in `dir` (created), written, synced and dropped from
/// the caches: untimed, before [`gnu_sort`].
pub fn gnu_sort_prepare(dir: &Path, c: &GnuSort) -> Result<(), String> {
    std::fs::create_dir_all(dir.join("tmp")).map_err(|e| format!("{}: {e}", dir.display()))?;
    random_text(&dir.join("input.txt"), c.input_bytes, c.seed)?;
    image::quiesce();
    Ok(())
}

/// GNU sort of the input [`gnu_sort_prepare`] wrote in `dir`, its
/// temporary files in `dir/tmp`; only the sort is timed, and the output
/// must have the input's size. Wall seconds.
pub fn gnu_sort(dir: &Path, c: &GnuSort) -> Result<f64, String> {
    let tmp = dir.join("tmp");
    let (input, output) = (dir.join("input.txt"), dir.join("sorted.txt"));
    let mut cmd = Command::new("sort");
    cmd.env("LC_ALL", "C")
        .arg("-T")
        .arg(&tmp)
        .arg("-S")
        .arg(&c.buffer)
        .arg("-o")
        .arg(&output)
        .arg(&input);
    let t = Instant::now();
    let r = run_for(&mut cmd, c.deadline)?;
    let secs = t.elapsed().as_secs_f64();
    match r {
        Finished::TimedOut => {
            return Err(format!(
                "{} did not finish within {} s",
                describe(&cmd),
                c.deadline.as_secs()
            ))
        }
        Finished::Exited { status, stderr, .. } if !status.success() => {
            return Err(format!(
                "{} failed ({status}): {}",
                describe(&cmd),
                stderr.trim()
            ))
        }
        Finished::Exited { .. } => {}
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    if size(&output) != size(&input) {
        return Err(format!(
            "GNU sort: output has {} bytes, input {}",
            size(&output),
            size(&input)
        ));
    }
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_and_report() {
        let c = Postmark {
            number: 5000,
            transactions: 50000,
            subdirectories: 50,
            read: 4096,
            write: 4096,
            buffering: false,
            seed: 7,
            deadline: Duration::from_secs(1),
        };
        let s = postmark_script(Path::new("/mnt/x"), &c);
        assert!(s.starts_with("set location /mnt/x\nset number 5000\n"));
        assert!(s.contains("set buffering false\n"));
        assert!(s.ends_with("run\nquit\n"));
        let out = "Deleting subdirectories...Done\nTime:\n\t12 seconds total\n\t9 seconds of transactions (5555 per second)\n";
        assert_eq!(postmark_total_secs(out), Some(12));
        assert_eq!(postmark_total_secs("Creating files..."), None);
    }

    #[test]
    fn random_text_size() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t");
        random_text(&p, 10_000, 1).unwrap();
        let n = std::fs::metadata(&p).unwrap().len();
        assert!((10_000..10_101).contains(&n), "{n}");
    }
}
