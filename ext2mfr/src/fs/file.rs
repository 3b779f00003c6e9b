//! File data: read, write and a change of size, as fs/ext2's file.c and
//! the truncate half of inode.c.

use super::attr::Ctx;
use super::inode::{kill_suidgid, Kill};
use super::Ext2;
use crate::error::{FsError, Result};
use crate::format::inode::{max_file_size, Inode, Timestamp};

impl Ext2 {
    pub fn read(&self, ino: u32, offset: u64, size: u32) -> Result<Vec<u8>> {
        let i = {
            let _g = self.locks.read(ino);
            let i = self.live_inode(ino)?;
            if i.is_dir() {
                return Err(FsError::IsDir);
            }
            let fsize = i.size();
            if offset >= fsize {
                return Ok(Vec::new());
            }
            let end = (offset + size as u64).min(fsize);
            let bs = self.geo.block_size as u64;
            // Filled in order, block by block (not zeroed first: only
            // holes are).
            let mut out = Vec::with_capacity((end - offset) as usize);
            let mut pos = offset;
            while pos < end {
                let lblk = pos / bs;
                let in_blk = (pos % bs) as usize;
                let n = ((bs - pos % bs).min(end - pos)) as usize;
                match self.map(&i, lblk)? {
                    // (Through the scratch page when AMA's alternate
                    // requirement recycles pages for reads.)
                    Some(b) => self.cache.read_with(b as u64, |d| {
                        out.extend_from_slice(&d[in_blk..in_blk + n]);
                        Ok(())
                    })?,
                    None => out.resize(out.len() + n, 0),
                }
                pos += n as u64;
            }
            (i, out)
        };
        let (inode, out) = i;
        self.touch_atime(ino, &inode);
        Ok(out)
    }

    /// relatime: update atime when it is older than mtime/ctime or a day old.
    fn touch_atime(&self, ino: u32, i: &Inode) {
        if !self.config.atime || self.read_only() || super::flags::no_atime(i) {
            return;
        }
        let t = Timestamp::now();
        let a = i.atime();
        if a > i.mtime() && a > i.ctime() && t.secs.saturating_sub(a.secs) < 86400 {
            return;
        }
        // atime does not change what the file system means: a Transparent
        // domain, committed on its own and simply skipped after a fault.
        let _ = self.rt.domain(
            recovery_rt::Kind::Transparent,
            || {
                let _g = self.locks.write_all(&[ino]);
                if let Ok(mut i) = self.read_inode(ino) {
                    i.set_atime(t);
                    let _ = self.write_inode(ino, &i);
                }
            },
            |_| None,
        );
    }

    /// Write `data` at `offset`. `append`: the descriptor was opened with
    /// O_APPEND (all an append-only file takes). `kill`: the
    /// writer lacks CAP_FSETID (FUSE_WRITE_KILL_SUIDGID), so set-user-ID
    /// and set-group-ID go as the kernel's VFS kills them before a write
    /// (see [`kill_suidgid`]). (A capability the kernel removes itself, by
    /// a removexattr before the write.)
    pub fn write(
        &self,
        ctx: &Ctx,
        ino: u32,
        offset: u64,
        data: &[u8],
        kill: bool,
        append: bool,
    ) -> Result<usize> {
        self.check_writable()?;
        let _g = self.locks.write_all(&[ino]);
        let mut i = self.live_inode(ino)?;
        if i.is_dir() {
            return Err(FsError::IsDir);
        }
        super::flags::check_write(&i, append)?;
        // As the kernel's generic_write_check_limits: EFBIG at or past the
        // largest file size, else a short write up to it.
        let max = max_file_size(self.geo.block_size);
        if offset >= max {
            return Err(FsError::TooBig);
        }
        let data = &data[..data.len().min((max - offset) as usize)];
        if kill && !data.is_empty() {
            kill_suidgid(&mut i, ctx, Kill::Modify);
        }
        let end = offset + data.len() as u64;
        let bs = self.geo.block_size as u64;
        let mut pos = offset;
        let mut goal = self
            .geo
            .group_first_block((ino - 1) / self.geo.inodes_per_group);
        if offset >= bs {
            if let Some(prev) = self.map_if_cached(&i, offset / bs - 1) {
                goal = prev + 1;
            }
        }
        let mut result = Ok(());
        while pos < end {
            let lblk = pos / bs;
            let in_blk = (pos % bs) as usize;
            let n = ((bs - pos % bs).min(end - pos)) as usize;
            let src = &data[(pos - offset) as usize..(pos - offset) as usize + n];
            let step = (|| -> Result<()> {
                let (b, is_new) = self.map_alloc(&mut i, lblk, goal, ctx.privileged())?;
                goal = b + 1;
                // Only a block just allocated may skip reading its old
                // contents: a rolled-back overwrite must restore them.
                if is_new {
                    self.cache.get_new_with(b as u64, in_blk, src)?;
                } else {
                    let buf = self.cache.get(b as u64)?;
                    buf.write_range(in_blk..in_blk + n)[in_blk..in_blk + n].copy_from_slice(src);
                }
                Ok(())
            })();
            if let Err(e) = step {
                result = Err(e);
                break;
            }
            pos += n as u64;
        }
        let written = (pos - offset) as usize;
        if written > 0 {
            if pos > i.size() {
                self.note_large_file(pos);
                i.set_size(pos);
            }
            let t = Timestamp::now();
            i.set_mtime(t);
            i.set_ctime(t);
        }
        // Blocks allocated before a failure are recorded in the inode either way.
        self.write_inode(ino, &i)?;
        match result {
            Err(e) if written == 0 => Err(e),
            _ => Ok(written),
        }
    }

    /// Truncate or extend (with a hole) a regular file.
    pub(super) fn set_size(&self, i: &mut Inode, size: u64) -> Result<()> {
        if size > max_file_size(self.geo.block_size) {
            return Err(FsError::TooBig);
        }
        let bs = self.geo.block_size as u64;
        let old = i.size();
        if size < old {
            self.truncate_blocks(i, size.div_ceil(bs))?;
            // Zero the tail of the new last block so a later extension reads zeros.
            if !size.is_multiple_of(bs) {
                if let Some(b) = self.map(i, size / bs)? {
                    let buf = self.cache.get(b as u64)?;
                    buf.write()[(size % bs) as usize..].fill(0);
                }
            }
        }
        self.note_large_file(size);
        i.set_size(size);
        Ok(())
    }
}
