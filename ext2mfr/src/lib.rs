//! ext2mfr: an ext2 file system in user space, through FUSE.
//!
//! - [`format`]: the on-disk format, checked parsing.
//!
//! Later (see `../shared/DESIGN.md`): the block cache, the ext2 operations,
//! the FUSE adapter, and the gate that runs each request under AMA and a
//! recovery domain.

pub mod cache;
pub mod device;
pub mod error;
pub mod faults;
pub mod format;
pub mod fs;
pub mod fuse;
pub mod options;
