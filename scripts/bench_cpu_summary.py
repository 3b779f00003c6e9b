#!/usr/bin/env python3
"""Summarise scripts/bench_cpu.sh output: per load, transport and measure,
each configuration's median, the ratio of medians to the baseline, and the
spread of the per-run ratios (each run's configurations ran back to back)."""
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin))
groups = {}
for r in rows:
    groups.setdefault((r["load"], r["transport"], r["measure"]), []).append(r)
for (load, t, m), rs in groups.items():
    runs = {}
    for r in rs:
        runs.setdefault(r["run"], {})[r["config"]] = float(r["value"])
    configs = sorted({r["config"] for r in rs}, key=["baseline", "ama", "recovery", "both"].index)
    med = {c: st.median(v[c] for v in runs.values() if c in v) for c in configs}
    print(f"{load} over {t}, {m}:")
    for c in configs:
        per_run = [v[c] / v["baseline"] for v in runs.values() if c in v and "baseline" in v]
        print(f"  {c:9} median {med[c]:>14,.0f}  ratio {med[c] / med['baseline']:.3f}"
              f"  (per-run {min(per_run):.3f}..{max(per_run):.3f}, {len(per_run)} runs)")
