//! The image file (or block device) under the file system: positioned block
//! I/O and an exclusive lock so the image cannot be mounted twice.

use crate::error::{FsError, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub struct Device {
    file: File,
    block_size: u64,
    read_only: bool,
}

impl Device {
    /// Open and lock the image. A second mount of the same image fails here.
    pub fn open(path: &Path, read_only: bool) -> std::io::Result<Device> {
        let file = OpenOptions::new().read(true).write(!read_only).open(path)?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!("{} is in use (already mounted?)", path.display()),
                ));
            }
            return Err(e);
        }
        Ok(Device {
            file,
            block_size: 1024,
            read_only,
        })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn set_block_size(&mut self, bs: u32) {
        self.block_size = bs as u64;
    }

    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    pub fn read_block(&self, blk: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, blk * self.block_size)
            .map_err(FsError::Io)
    }

    /// Bytes at a byte offset (AMA's peek at an inode not in the cache).
    pub fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        self.file.read_exact_at(buf, off).map_err(FsError::Io)
    }

    /// Ask the host to start reading blocks `blocks` into its page cache
    /// (read-ahead: the reads that follow find them there). A hint only:
    /// an error changes nothing and is ignored.
    pub fn will_need(&self, blocks: std::ops::Range<u64>) {
        let (off, len) = (
            blocks.start * self.block_size,
            (blocks.end - blocks.start) * self.block_size,
        );
        // SAFETY: posix_fadvise on a descriptor we own; no memory is involved.
        unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                off as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_WILLNEED,
            )
        };
    }

    pub fn write_block(&self, blk: u64, buf: &[u8]) -> Result<()> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        self.file
            .write_all_at(buf, blk * self.block_size)
            .map_err(FsError::Io)
    }

    pub fn write_at(&self, off: u64, buf: &[u8]) -> Result<()> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        self.file.write_all_at(buf, off).map_err(FsError::Io)
    }

    pub fn sync(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.file.sync_data().map_err(FsError::Io)
    }
}
