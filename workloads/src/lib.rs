//! Workloads that run against any mount point, so the same binary measures
//! the kernel's ext2, fuse2fs and ext2mfr: [`postmark`] (PostMark 1.5's
//! model) and [`micro`] (sequential/random read/write over one file).
//! Only `std::fs` touches the file system under test.
//!
//! [`dirscale`] puts many names in one directory (and runs many threads).
//!
//! [`sort`] is an external merge sort on the mount. [`eval`] is the
//! evaluation harness (the `evaluate` binary) that fills `results/`.
//! [`fsdiff`] is the differential tester against the kernel's driver
//! (the `fs-diff` binary).

pub mod dirscale;
pub mod eval;
pub mod fsdiff;
pub mod micro;
pub mod mountpoint;
pub mod postmark;
pub mod sort;
