//! Images: made by our mkfs or the real mke2fs, copied, and read or patched
//! as raw bytes (the super block at byte 1024).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary directory holding an image file.
pub struct Image {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

/// An image made by our mkfs (`bs` block size, `size` bytes).
pub fn mkfs_ext2mfr(size: u64, bs: u32) -> Image {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fs.img");
    let o = mkfs_ext2mfr::MkfsOptions {
        size: Some(size),
        block_size: Some(bs),
        ..Default::default()
    };
    mkfs_ext2mfr::mkfs(&path, &o).expect("mkfs.ext2mfr");
    Image { dir, path }
}

/// An image made by the real mke2fs (`extra` are more mkfs.ext2 arguments).
pub fn mkfs_ext2(size_kib: u64, bs: u32, extra: &[&str]) -> Image {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fs.img");
    let out = Command::new("mkfs.ext2")
        .args(["-q", "-F", "-b", &bs.to_string()])
        .args(extra)
        .arg(&path)
        .arg(size_kib.to_string())
        .output()
        .expect("run mkfs.ext2");
    assert!(
        out.status.success(),
        "mkfs.ext2 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Image { dir, path }
}

/// A copy of the image, named `name`, in the image's directory.
pub fn copy_image(img: &Image, name: &str) -> PathBuf {
    let p = img.dir.path().join(name);
    std::fs::copy(&img.path, &p).unwrap();
    p
}

/// The 1024 bytes of the primary super block.
pub fn sb_bytes(img: &Path) -> Vec<u8> {
    let f = File::open(img).unwrap();
    let mut v = vec![0u8; 1024];
    f.read_exact_at(&mut v, 1024)
        .unwrap_or_else(|e| panic!("read the super block of {}: {e}", img.display()));
    v
}

pub fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

pub fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// OR `bits` into the little-endian u32 at byte `off` of the image.
pub fn or_u32_at(img: &Path, off: u64, bits: u32) {
    let f = OpenOptions::new().read(true).write(true).open(img).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, off).unwrap();
    let v = u32::from_le_bytes(b) | bits;
    f.write_all_at(&v.to_le_bytes(), off).unwrap();
}
