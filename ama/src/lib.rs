//! Anticipatory Memory Allocation: a bounded page pool and typed object pools,
//! anticipatory allocation descriptions (AADs), per-thread reserves that serve
//! every allocation downstream of a request's entry, the fail-fast / retry /
//! retry-alternate policies, and space accounting.
//!
//! This crate knows nothing of ext2. It is not implemented yet (issue 5).
