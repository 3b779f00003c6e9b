#!/usr/bin/env bash
# The main job, on a fresh machine (as root): install what it needs, build,
# then run the evaluation (`evaluate`, see below) and print its robustness
# and overhead tables. QUICK=0 runs the full evaluation into results/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=""
  command -v e2fsck >/dev/null || need="$need e2fsprogs"
  command -v fusermount3 >/dev/null || need="$need fuse3"
  command -v fuse2fs >/dev/null || need="$need fuse2fs"
  command -v postmark >/dev/null || need="$need postmark"
  command -v valgrind >/dev/null || need="$need valgrind"
  if [ -n "$need" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
  fi
fi
modprobe fuse 2>/dev/null || true
cargo build --release --workspace
bin=target/release
grep -qw ext2 /proc/filesystems || modprobe ext2 2>/dev/null || true

# The evaluation harness: robustness under injected allocation failures
# (the AMA paper's Tables 2, 4, 7), memory-safety faults (the recovery-domains
# paper), performance side by side with the kernel's ext2 and fuse2fs
# (Table 5; also over FUSE over io_uring, and Debian's postmark and GNU sort
# beside our own loads), space (Table 6, Figure 8), and scale (directories
# of up to 160,000 files, 1-16 creating threads). It makes the images, mounts,
# runs, classifies and unmounts, prints the robustness and overhead tables,
# and writes Markdown/CSV/SVG with a README. The quick mode takes a few
# minutes and writes to target/results-quick (the committed results/ are
# the full run's: QUICK=0 regenerates them, in about an hour).
if [ "${QUICK:-1}" = 0 ]; then
  "$bin/evaluate" --out results
else
  "$bin/evaluate" --quick --out target/results-quick
fi
