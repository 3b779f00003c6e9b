//! CI check of the evaluation harness: a reduced quick evaluation (one run
//! per cell, one round, small truncate sizes) into a temporary directory,
//! then the shape of what it wrote: every table and figure exists, every CSV
//! parses with the expected columns, every cell holds a value that a real
//! run produced, and every configuration of the matrix is either measured or
//! named in a note saying why the daemon refused it.
//!
//! Needs root (it mounts) and the `ext2mfr` daemon built in this target
//! directory (`cargo test --workspace` builds it; alone:
//! `cargo build -p ext2mfr`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use workloads::eval::table::parse_csv;

const EVALUATE: &str = env!("CARGO_BIN_EXE_evaluate");
/// The whole reduced evaluation must finish within this.
const DEADLINE: Duration = Duration::from_secs(900);

/// The newest `ext2mfr` built in this target directory.
fn daemon_dir() -> PathBuf {
    workloads::eval::mount::newest_daemon_dir(Path::new(EVALUATE)).unwrap_or_else(|e| panic!("{e}"))
}

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn csv(dir: &Path, id: &str, columns: &[&str]) -> Vec<Vec<String>> {
    let p = dir.join(format!("{id}.csv"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    for key in [
        "# command:",
        "# date:",
        "# machine:",
        "# revision:",
        "# seeds:",
    ] {
        assert!(text.contains(key), "{id}.csv lacks provenance '{key}'");
    }
    let (header, rows) = parse_csv(&text).unwrap_or_else(|e| panic!("{id}.csv: {e}"));
    assert_eq!(header, columns, "{id}.csv columns");
    for (i, r) in rows.iter().enumerate() {
        for (c, cell) in r.iter().enumerate() {
            assert!(
                !cell.trim().is_empty() && !["?", "TODO", "not run", "-1"].contains(&cell.trim()),
                "{id}.csv row {i} column {}: placeholder '{cell}'",
                columns[c]
            );
        }
    }
    let md =
        std::fs::read_to_string(dir.join(format!("{id}.md"))).expect("markdown beside the csv");
    assert!(
        md.contains("command: `") && md.contains("machine: "),
        "{id}.md lacks provenance"
    );
    rows
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: '{s}'"))
}

#[test]
fn quick_evaluation_fills_every_table() {
    if !is_root() {
        eprintln!("skipped: the evaluation mounts file systems and needs root");
        return;
    }
    let out = tempfile::Builder::new()
        .prefix("evaluate-quick")
        .tempdir_in("/var/tmp")
        .expect("tempdir");
    let results = out.path().join("results");
    let start = Instant::now();
    let mut child = Command::new(EVALUATE)
        .args([
            "--quick",
            "--runs",
            "1",
            "--safety-runs",
            "1",
            "--rounds",
            "1",
            "--truncate-max-mib",
            "4",
        ])
        .arg("--out")
        .arg(&results)
        .arg("--bin-dir")
        .arg(daemon_dir())
        .arg("--workdir")
        .arg(out.path())
        .spawn()
        .expect("run evaluate");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!(
                "evaluate --quick did not finish within {} s",
                DEADLINE.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "evaluate exited with {status}");
    eprintln!(
        "reduced quick evaluation took {:.0} s",
        start.elapsed().as_secs_f64()
    );

    // The index and the manifest.
    let readme = std::fs::read_to_string(results.join("README.md")).expect("README.md");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    for s in manifest["sections"].as_array().expect("sections") {
        assert!(s["failed"].is_null(), "a part failed: {}", s["failed"]);
    }

    // Robustness: every (configuration, policy) is measured at every
    // probability, or named in a note with the daemon's refusal.
    let rows = csv(
        &results,
        "robustness",
        &[
            "configuration",
            "policy",
            "inject_alloc",
            "runs",
            "error",
            "abort",
            "unusable",
            "inconsistent",
            "seeds",
        ],
    );
    let robustness_md = std::fs::read_to_string(results.join("robustness.md")).unwrap();
    let matrix = [
        ("baseline", "-"),
        ("recovery only", "fail-fast"),
        ("recovery only", "retry"),
        ("ama only", "fail-fast"),
        ("ama only", "retry"),
        ("ext2-mfr", "fail-fast"),
        ("ext2-mfr", "retry"),
        ("ext2-mfr (io_uring)", "fail-fast"),
        ("ext2-mfr (io_uring)", "retry"),
    ];
    for (cfg, policy) in matrix {
        let mine: Vec<&Vec<String>> = rows
            .iter()
            .filter(|r| r[0] == cfg && r[1] == policy)
            .collect();
        if mine.is_empty() {
            assert!(
                robustness_md.contains(&format!("{cfg} with policy {policy}"))
                    && robustness_md.contains("not run, "),
                "{cfg}/{policy}: neither measured nor explained"
            );
            assert!(
                !(cfg.ends_with("(io_uring)") && uring_switch_exists()),
                "{cfg}/{policy}: not run on a kernel that has FUSE over io_uring"
            );
            continue;
        }
        let ps: Vec<&str> = mine.iter().map(|r| r[2].as_str()).collect();
        assert_eq!(
            ps,
            ["0%", "10%", "50%", "99%"],
            "{cfg}/{policy} probabilities"
        );
        for r in mine {
            assert_eq!(r[3], "1");
            for c in &r[4..8] {
                assert!(num(c) <= 1.0, "{cfg}/{policy}: count {c} > runs");
            }
            assert!(num(&r[8]) > 0.0, "seed");
        }
    }
    assert!(
        rows.iter().any(|r| r[0] == "baseline"),
        "the baseline always runs"
    );
    assert!(
        rows.iter().any(|r| r[0] == "recovery only"),
        "recovery only always runs"
    );
    let runs = csv(
        &results,
        "robustness-runs",
        &[
            "configuration",
            "policy",
            "inject_alloc",
            "run",
            "inject_seed",
            "error",
            "abort",
            "unusable",
            "inconsistent",
            "workload",
            "alloc_faults",
            "requests_faulted",
            "retries",
            "failed_after_fault",
            "secs",
            "detail",
        ],
    );
    assert_eq!(runs.len(), rows.len(), "one run per cell");
    let seeds: std::collections::BTreeSet<&str> = runs.iter().map(|r| r[4].as_str()).collect();
    assert_eq!(seeds.len(), runs.len(), "every run has its own seed");

    // Memory-safety faults.
    let safety = csv(
        &results,
        "safety",
        &[
            "configuration",
            "policy",
            "runs",
            "faults_injected",
            "faults_survived",
            "survived_pct",
            "requests_rolled_back",
            "retries",
            "cascaded_rollbacks",
            "failed_after_fault",
            "domains_rolled_back",
            "workload_errors",
            "daemon_died",
            "unusable",
            "e2fsck_clean",
            "seeds",
        ],
    );
    let base = safety
        .iter()
        .find(|r| r[0] == "baseline")
        .expect("baseline row");
    assert!(
        num(&base[3]) >= 1.0,
        "a fault was injected into the baseline"
    );
    assert!(
        safety.iter().any(|r| r[0] == "recovery only"),
        "recovery only row"
    );
    // Over FUSE over io_uring (where the kernel has it), as over /dev/fuse:
    // every injected fault survived, e2fsck clean, no error under retry.
    if uring_switch_exists() {
        for policy in ["retry", "fail-fast"] {
            let r = safety
                .iter()
                .find(|r| r[0] == "ext2-mfr (io_uring)" && r[1] == policy)
                .unwrap_or_else(|| panic!("safety: no ext2-mfr (io_uring) {policy} row"));
            assert_eq!(r[3], r[4], "{policy} over io_uring: faults survived");
            assert_eq!(r[12], "0", "{policy} over io_uring: the daemon died");
            assert_eq!(r[14], format!("{}/{}", r[2], r[2]), "e2fsck over io_uring");
            if policy == "retry" {
                assert_eq!(r[11], "0", "retry over io_uring: workload errors");
            }
        }
    }
    csv(
        &results,
        "safety-runs",
        &[
            "configuration",
            "policy",
            "run",
            "inject_seed",
            "faults_injected",
            "faults_survived",
            "requests_rolled_back",
            "retries",
            "cascaded_rollbacks",
            "failed_after_fault",
            "domains_rolled_back",
            "workload",
            "daemon_died",
            "e2fsck",
            "secs",
            "detail",
        ],
    );

    // Performance: every workload under every peer that ran, with ratios.
    let perf = csv(
        &results,
        "performance",
        &[
            "workload",
            "peer",
            "median_secs",
            "ratio_vs_baseline",
            "secs_per_round",
        ],
    );
    for w in [
        "sequential write",
        "sequential read",
        "random write",
        "random read",
        "sort",
        "postmark",
    ] {
        let mine: Vec<_> = perf.iter().filter(|r| r[0] == w).collect();
        assert!(mine.iter().any(|r| r[1] == "baseline"), "{w}: baseline");
        for r in mine {
            assert!(num(&r[2]) > 0.0 && num(&r[3]) > 0.0, "{w} {}: times", r[1]);
        }
    }

    // The independent counterparts: measured, or a note says why not.
    let perf_md = std::fs::read_to_string(results.join("performance.md")).unwrap();
    for w in ["postmark (Debian)", "GNU sort"] {
        if !perf.iter().any(|r| r[0] == w) {
            assert!(
                perf_md.contains(&format!("{w}: not run: ")),
                "{w}: neither measured nor explained"
            );
        }
    }
    // io_uring: all three configurations measured, or explained.
    for peer in [
        "baseline (io_uring)",
        "ext2-mfr (io_uring)",
        "ext2-mfr (io_uring, writeback_cache)",
    ] {
        if !perf.iter().any(|r| r[1] == peer) {
            assert!(
                perf_md.contains(&format!("{peer} (`-o ")) && perf_md.contains("not run"),
                "{peer}: neither measured nor explained"
            );
        }
    }
    // Against the kernel's ext2 (where it ran): every other peer, with the
    // issue's goals beside the table.
    if perf.iter().any(|r| r[1] == "kernel ext2") {
        let k = csv(
            &results,
            "performance-kernel",
            &[
                "workload",
                "peer",
                "median_secs",
                "ratio_vs_kernel",
                "fuse2fs_over_peer",
            ],
        );
        assert!(k.iter().all(|r| r[1] != "kernel ext2"));
        assert!(k.iter().any(|r| r[0] == "postmark" && r[1] == "ext2-mfr"));
        for r in &k {
            assert!(num(&r[3]) > 0.0, "{} {}: ratio", r[0], r[1]);
        }
        let md = std::fs::read_to_string(results.join("performance-kernel.md")).unwrap();
        assert!(md.contains("Goal: ext2mfr within 2.5x"), "the issue's goal");
    }

    // The daemon's CPU time per load, for every peer with a daemon.
    let cpu = csv(
        &results,
        "performance-cpu",
        &[
            "load",
            "peer",
            "median_cpu_secs",
            "ratio_vs_baseline",
            "cpu_secs_per_round",
        ],
    );
    for l in ["postmark", "micro (all four)", "sort"] {
        let mine: Vec<_> = cpu.iter().filter(|r| r[0] == l).collect();
        assert!(mine.iter().any(|r| r[1] == "baseline"), "{l}: baseline CPU");
        assert!(
            mine.iter().all(|r| r[1] != "kernel ext2"),
            "{l}: no daemon, no row"
        );
        for r in mine {
            assert!(num(&r[2]) > 0.0, "{l} {}: CPU seconds", r[1]);
        }
    }

    // The daemon's instructions (callgrind), where valgrind is installed;
    // otherwise the CPU table says why they are missing.
    let cpu_md = std::fs::read_to_string(results.join("performance-cpu.md")).unwrap();
    let valgrind = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("valgrind").is_file()));
    assert_eq!(
        results.join("performance-instructions.csv").exists(),
        valgrind,
        "instruction counts wherever valgrind is installed: {}",
        cpu_md
    );
    if valgrind {
        let ins = csv(
            &results,
            "performance-instructions",
            &[
                "load",
                "peer",
                "median_instructions",
                "ratio_vs_baseline",
                "fuse_requests",
                "instructions_per_request",
                "instructions_per_run",
            ],
        );
        for l in ["postmark", "sort"] {
            let mine: Vec<_> = ins.iter().filter(|r| r[0] == l).collect();
            assert!(mine.iter().any(|r| r[1] == "baseline"), "{l}: baseline");
            for r in &mine {
                assert!(num(&r[2]) > 1e6, "{l} {}: instructions", r[1]);
                // The same load makes (nearly) the same requests in every
                // configuration, or the ratios would compare unlike work.
                let (a, b) = (num(&r[4]), num(&mine[0][4]));
                assert!((a - b).abs() <= 0.01 * b + 2.0, "{l}: requests {a} vs {b}");
            }
        }
        assert!(cpu_md.contains("performance-instructions.md"));
    } else {
        assert!(cpu_md.contains("instruction counts: not run"));
    }

    // Space and Figure 8: measured, or every missing configuration explained.
    for (id, columns) in [
        (
            "space",
            &[
                "workload",
                "configuration",
                "allocated_bytes",
                "ratio_vs_ama_off",
                "under_allocations",
                "e2fsck",
            ][..],
        ),
        (
            "figure8-truncate",
            &["file_mib", "configuration", "counter", "pages"][..],
        ),
    ] {
        let rows = csv(&results, id, columns);
        let md = std::fs::read_to_string(results.join(format!("{id}.md"))).unwrap();
        if rows.is_empty() {
            assert!(md.contains("not run"), "{id}: no rows and no reason");
        }
    }
    let svg = std::fs::read_to_string(results.join("figure8-truncate.svg")).expect("figure 8 svg");
    assert!(
        svg.contains("<svg") && svg.contains("command:"),
        "svg with provenance"
    );

    // Scale: every size and phase under every peer that ran, and the plot.
    let scale = csv(
        &results,
        "scale",
        &["files", "phase", "peer", "secs", "ratio_vs_kernel", "note"],
    );
    for ph in ["create", "lookup", "list", "unlink"] {
        assert!(
            scale
                .iter()
                .any(|r| r[1] == ph && r[2] == "ext2-mfr" && r[5] == "ok"),
            "scale: {ph} measured under ext2-mfr"
        );
    }
    let threads = csv(
        &results,
        "scale-threads",
        &[
            "threads",
            "directories",
            "peer",
            "create_secs",
            "ratio_vs_kernel",
            "note",
        ],
    );
    for t in ["1", "16"] {
        for d in ["own", "one shared"] {
            assert!(
                threads
                    .iter()
                    .any(|r| r[0] == t && r[1] == d && r[2] == "ext2-mfr" && num(&r[3]) > 0.0),
                "scale-threads: {t} threads, {d}"
            );
        }
    }
    let svg = std::fs::read_to_string(results.join("scale.svg")).expect("scale svg");
    assert!(svg.contains("<circle") && svg.contains("command:"));
    let md = std::fs::read_to_string(results.join("scale.md")).unwrap();
    assert!(md.contains("The issue asks"), "scale: the issue's goals");

    // Placement: every load under the daemon, free and pinned, with times.
    let placement = csv(
        &results,
        "placement",
        &[
            "load",
            "peer",
            "free_secs",
            "pinned_secs",
            "free_over_pinned",
            "free_ratio_vs_kernel",
            "pinned_ratio_vs_kernel",
        ],
    );
    for load in ["postmark", "dirscale create", "dirscale lookup"] {
        assert!(
            placement.iter().any(|r| r[0] == load
                && r[1] == "ext2-mfr"
                && num(&r[2]) > 0.0
                && num(&r[3]) > 0.0),
            "placement: {load} under ext2-mfr, free and pinned"
        );
    }

    // The README lists every table and compares with the papers.
    for id in [
        "robustness",
        "safety",
        "performance",
        "performance-cpu",
        "space",
        "figure8-truncate",
        "scale",
        "scale-threads",
        "placement",
    ] {
        assert!(readme.contains(&format!("({id}.md)")), "README lists {id}");
    }
    assert!(
        readme.contains("Beside the paper"),
        "README compares with the papers"
    );
}

/// Whether this kernel has FUSE over io_uring (the evaluation turns its
/// switch on as root).
fn uring_switch_exists() -> bool {
    std::path::Path::new("/sys/module/fuse/parameters/enable_uring").exists()
}
