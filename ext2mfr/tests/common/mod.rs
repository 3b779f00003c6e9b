//! Test support shared by every test binary under `ext2mfr/tests/`.
//!
//! A test file says `mod common; use common::*;` and gets all of it:
//!
//! | module | what is in it |
//! |---|---|
//! | [`image`] | images: our mkfs, the real mke2fs, copies, raw super block bytes |
//! | [`mount`] | the daemon mounted through FUSE ([`Mount`]), the kernel's ext2 ([`KernelMount`]), a guard for mounts made by mount(8) ([`UnmountGuard`]); every one unmounts on drop, also when a test panics |
//! | [`fuse_suite`] | the conventions of the `fuse_*.rs` files: one test at a time, a fixed umask, `FUSE_OPS_OPTS`, remount with a strict e2fsck |
//! | [`e2fsprogs`] | e2fsck (`fsck_clean`, `fsck_strict`), debugfs, dumpe2fs and their output |
//! | [`sys`] | system calls std does not offer (mknod, renameat2, utimensat, statfs...), `cpath`, `cvt`, `assert_errno!`, waiting, running as nobody |
//! | [`xattr`] | getxattr/setxattr/listxattr/removexattr, the daemon's control attributes and counters |
//! | [`data`] | byte patterns to write and check, block-map arithmetic, tree snapshots |
//!
//! Each test binary uses a subset, hence `allow(dead_code)`.
#![allow(dead_code)]
#![allow(unused_imports)]

pub mod data;
pub mod e2fsprogs;
pub mod fuse_suite;
pub mod image;
pub mod mount;
pub mod sys;
pub mod xattr;

pub use data::*;
pub use e2fsprogs::*;
pub use fuse_suite::*;
pub use image::*;
pub use mount::*;
pub use sys::*;
pub use xattr::*;
