//! The ext2 on-disk format (revision 1 with `filetype`, `sparse_super`,
//! `large_file`; 1, 2 and 4 KiB blocks), one module per concept. Everything
//! here is plain data and checked parsing: no I/O beyond `read_image_header`.

pub mod acl;
pub mod bitmap;
pub mod block_ptr;
pub mod dirent;
pub mod dirent_index;
pub mod group_desc;
pub mod htree;
pub mod inode;
pub mod le;
pub mod superblock;
pub mod xattr;

pub use group_desc::GroupDesc;
pub use inode::Inode;
pub use superblock::Superblock;

use std::os::unix::fs::FileExt;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not an ext2 file system (magic {0:#06x}, expected 0xef53)")]
    BadMagic(u16),
    #[error("corrupt super block: {0}")]
    BadSuper(String),
    #[error("unsupported features (INCOMPAT): {0}; refusing to mount")]
    UnsupportedIncompat(String),
    #[error("corrupt group descriptor {0}: {1}")]
    BadGroup(u32, String),
    #[error("corrupt directory entry at offset {0}: {1}")]
    BadDirEntry(usize, String),
    #[error("image too small to hold the {0}")]
    TooSmall(&'static str),
    #[error("I/O error reading the image: {0}")]
    Io(#[from] std::io::Error),
}

/// Read and check the primary super block and the group descriptor table of
/// an image (file or device).
pub fn read_image_header(f: &std::fs::File) -> Result<(Superblock, Vec<GroupDesc>), FormatError> {
    let mut raw = vec![0u8; superblock::SUPERBLOCK_SIZE];
    read_exact_at(f, &mut raw, superblock::SUPERBLOCK_OFFSET, "super block")?;
    let sb = Superblock::from_bytes(&raw)?;
    sb.validate()?;
    let bs = sb.block_size() as u64;
    let len = group_desc::gdt_blocks(&sb) as u64 * bs;
    let mut gdt = vec![0u8; len as usize];
    read_exact_at(
        f,
        &mut gdt,
        group_desc::gdt_start(&sb) as u64 * bs,
        "group descriptor table",
    )?;
    let descs = GroupDesc::parse_table(&sb, &gdt)?;
    Ok((sb, descs))
}

fn read_exact_at(
    f: &std::fs::File,
    buf: &mut [u8],
    off: u64,
    what: &'static str,
) -> Result<(), FormatError> {
    match f.read_exact_at(buf, off) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FormatError::TooSmall(what)),
        Err(e) => Err(e.into()),
    }
}
