//! Seeded, reproducible fault injection: allocation failures with a given
//! probability and memory-safety faults at `fault_point!()` sites.
//!
//! This crate knows nothing of ext2. It is not implemented yet (issue 5).
