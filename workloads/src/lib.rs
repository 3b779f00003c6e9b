//! Workloads that run against any mount point (postmark, sort, micro
//! benchmarks) and the evaluation harness that fills `results/`.
//!
//! Only std::fs and the binaries it launches. Not implemented yet (issue 6).
