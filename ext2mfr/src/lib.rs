//! ext2mfr: an ext2 file system in user space, through FUSE.
//!
//! From the disk up (each layer uses only those below it):
//! - [`format`] (the `ext2-format` crate): the on-disk format, checked parsing;
//! - [`device`] and [`cache`]: the image file and the block cache (frames
//!   from AMA's pool, versions for recovery);
//! - [`fs`]: the ext2 operations, and `fs::gate`, which runs each one under
//!   AMA's reserve and a recovery domain;
//! - [`request`]: the typed requests a transport asks for, served through
//!   the gate; [`control`]: the daemon's own attributes on the root;
//! - [`fuse`]: the transport over fuser; [`transport`]: our own FUSE
//!   message layer, over /dev/fuse or io_uring; [`translate`]: what both
//!   translate alike; [`opcounts`]: the requests each transport received,
//!   by opcode; `main.rs` is the daemon.

/// The on-disk format, a crate of its own (`ext2mfr/format/`) that mkfs
/// shares without linking the daemon.
pub use ext2_format as format;

pub mod cache;
pub mod control;
pub mod device;
pub mod error;
pub mod faults;
pub mod fs;
pub mod fuse;
pub mod logging;
pub mod opcounts;
pub mod options;
pub mod request;
pub mod translate;
pub mod transport;
