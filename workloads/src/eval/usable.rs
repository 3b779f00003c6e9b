//! "Usable": can the file system still be used after a run? Stat and list
//! every directory (bounded), then create a directory and a file, write,
//! fsync, read back, rename and remove them. The paper's Unusable is "further
//! use of the file system was not possible after the trial".

use super::proc::within;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MAX_ENTRIES: usize = 20_000;

/// Ok, or the first thing that did not work. Runs with a deadline.
pub fn probe(mnt: &Path, limit: Duration) -> Result<(), String> {
    let mnt = mnt.to_path_buf();
    within(limit, move || check(&mnt))
        .unwrap_or_else(|| Err(format!("no answer within {} s", limit.as_secs())))
}

fn check(mnt: &Path) -> Result<(), String> {
    let e = |what: &str, p: &Path, err: std::io::Error| format!("{what} {}: {err}", p.display());
    // Walk the tree: every directory listed, every entry stat'ed.
    let mut todo: Vec<PathBuf> = vec![mnt.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = todo.pop() {
        for ent in fs::read_dir(&d).map_err(|x| e("readdir", &d, x))? {
            let ent = ent.map_err(|x| e("readdir", &d, x))?;
            let p = ent.path();
            let md = fs::symlink_metadata(&p).map_err(|x| e("stat", &p, x))?;
            seen += 1;
            if md.is_dir() && seen < MAX_ENTRIES {
                todo.push(p);
            }
        }
    }
    // And it still takes new data.
    let dir = mnt.join(format!(".usable-{}", std::process::id()));
    fs::create_dir(&dir).map_err(|x| e("mkdir", &dir, x))?;
    let f = dir.join("f");
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    {
        let mut h = fs::File::create(&f).map_err(|x| e("create", &f, x))?;
        h.write_all(&data).map_err(|x| e("write", &f, x))?;
        h.sync_all().map_err(|x| e("fsync", &f, x))?;
    }
    let g = dir.join("g");
    fs::rename(&f, &g).map_err(|x| e("rename", &f, x))?;
    let mut back = Vec::new();
    fs::File::open(&g)
        .and_then(|mut h| h.read_to_end(&mut back))
        .map_err(|x| e("read", &g, x))?;
    if back != data {
        return Err(format!("read {}: not what was written", g.display()));
    }
    fs::remove_file(&g).map_err(|x| e("unlink", &g, x))?;
    fs::remove_dir(&dir).map_err(|x| e("rmdir", &dir, x))?;
    Ok(())
}
