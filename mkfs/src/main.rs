//! `mkfs.ext2mfr [options] DEVICE [SIZE]`: the options a user of mke2fs expects.

use clap::Parser;
use mkfs_ext2mfr::{mkfs, parse_uuid, MkfsOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "mkfs.ext2mfr",
    version,
    about = "Make an ext2 file system (revision 1) for ext2mfr and the kernel's ext2"
)]
struct Args {
    /// Block size in bytes: 1024, 2048 or 4096.
    #[arg(short = 'b')]
    block_size: Option<u32>,
    /// Bytes per inode (one inode for every this many bytes).
    #[arg(short = 'i')]
    bytes_per_inode: Option<u64>,
    /// Number of inodes (overrides -i).
    #[arg(short = 'N')]
    inodes: Option<u64>,
    /// Inode size in bytes (128 or 256).
    #[arg(short = 'I')]
    inode_size: Option<u32>,
    /// Volume label (at most 16 bytes).
    #[arg(short = 'L', default_value = "")]
    label: String,
    /// UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, random, or clear).
    #[arg(short = 'U')]
    uuid: Option<String>,
    /// Percentage of blocks reserved for the super user.
    #[arg(short = 'm', default_value_t = 5.0)]
    reserved_percent: f64,
    /// Quiet: print nothing on success.
    #[arg(short = 'q')]
    quiet: bool,
    /// Force: overwrite an existing file system.
    #[arg(short = 'F')]
    force: bool,
    /// File system type; only ext2 is made.
    #[arg(short = 't')]
    fs_type: Option<String>,
    /// Image file or block device.
    device: PathBuf,
    /// Size: a number with K, M, G or T suffix; without a suffix, blocks if -b
    /// is given, else KiB (as mke2fs reads it). Default: the whole file/device.
    size: Option<String>,
}

fn parse_size(s: &str, block_size: Option<u32>) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'S' => 512,
                _ => return Err(format!("invalid size '{s}': unknown suffix '{c}'")),
            };
            (&s[..i], m)
        }
        _ => (s, block_size.map_or(1024, u64::from)),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid size '{s}'"))?;
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("invalid size '{s}'"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkfs.ext2mfr: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: &Args) -> Result<(), String> {
    if let Some(t) = &a.fs_type {
        if t != "ext2" && t != "ext2mfr" {
            return Err(format!("file system type '{t}' not supported (only ext2)"));
        }
    }
    let size = a
        .size
        .as_deref()
        .map(|s| parse_size(s, a.block_size))
        .transpose()?;
    let uuid = a
        .uuid
        .as_deref()
        .map(parse_uuid)
        .transpose()
        .map_err(|e| e.to_string())?;
    let opts = MkfsOptions {
        size,
        block_size: a.block_size,
        bytes_per_inode: a.bytes_per_inode,
        inode_count: a.inodes,
        inode_size: a.inode_size,
        label: a.label.clone(),
        uuid,
        reserved_percent: a.reserved_percent,
        force: a.force,
    };
    let s = mkfs(&a.device, &opts).map_err(|e| e.to_string())?;
    if !a.quiet {
        let u = s.uuid;
        println!(
            "{}: {} blocks of {} bytes, {} inodes, {} groups ({} inodes per group)",
            a.device.display(),
            s.blocks,
            s.block_size,
            s.inodes,
            s.groups,
            s.inodes_per_group
        );
        println!(
            "UUID {:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}",
            u[0],
            u[1],
            u[2],
            u[3],
            u[4],
            u[5],
            u[6],
            u[7],
            u[8],
            u[9],
            u[10..]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M", None), Ok(64 << 20));
        assert_eq!(parse_size("100", None), Ok(100 << 10));
        assert_eq!(parse_size("100", Some(4096)), Ok(409600));
        assert!(parse_size("12X", None).is_err());
        assert!(parse_size("0", None).is_err());
        assert!(parse_size("-5M", None).is_err());
    }
}
