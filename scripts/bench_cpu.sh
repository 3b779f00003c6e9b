#!/usr/bin/env bash
# The mechanisms' own cost in the daemon's CPU (issue 18): for each
# configuration, a fresh identical image (mkfs.ext2, 1 GiB), the daemon
# mounted in the foreground under `perf stat` (task-clock of all its
# threads: user + system CPU), one load, unmount. Configurations
# alternate within each run, so drift on this shared machine hits all.
# COUNT=callgrind runs the daemon under valgrind's callgrind instead and
# gives the user-space instructions it executed (this machine's perf has
# no hardware counters; valgrind cannot run the io_uring transport).
# Prints CSV: load,transport,config,run,measure,value,wall_s
# Usage (root): scripts/bench_cpu.sh [RUNS] > out.csv
# LOADS picks loads (postmark micro sort), TRANSPORTS (dev uring),
# CONFIGS (baseline ama recovery both).
# Needs perf (or valgrind) and a release build
# (cargo build --release -p ext2mfr -p workloads).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
LOADS=${LOADS:-postmark}
TRANSPORTS=${TRANSPORTS:-dev}
CONFIGS=${CONFIGS:-baseline ama recovery both}
BIN=$PWD/target/release
WORK=$(mktemp -d /var/tmp/bench-cpu.XXXXXX)
MNT=$WORK/mnt
mkdir -p "$MNT"
trap 'umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true; rm -rf "$WORK"' EXIT
if [ -w /sys/module/fuse/parameters/enable_uring ]; then
  echo Y > /sys/module/fuse/parameters/enable_uring
fi

opts_of() { # CONFIG
  case $1 in
    baseline) echo baseline ;;
    ama) echo ama=on,recovery=off ;;
    recovery) echo ama=off,recovery=on ;;
    both) echo ama=on,recovery=on ;;
  esac
}

run_load() { # LOAD
  case $1 in
    postmark) "$BIN/postmark" --number 2000 --transactions 20000 --subdirectories 20 "$MNT" ;;
    micro) "$BIN/micro" "$MNT" ;;
    sort) "$BIN/sort" "$MNT" ;;
  esac >/dev/null
}

COUNT=${COUNT:-perf}
echo load,transport,config,run,measure,value,wall_s
for run in $(seq 1 "$RUNS"); do
  for load in $LOADS; do
    for t in $TRANSPORTS; do
      for c in $CONFIGS; do
        img=$WORK/img
        mkfs.ext2 -F -q "$img" 1G >/dev/null
        daemon=("$BIN/ext2mfr" "$img" "$MNT" -f -o "$(opts_of "$c"),transport=$t")
        if [ "$COUNT" = callgrind ]; then
          valgrind --tool=callgrind --callgrind-out-file=/dev/null "${daemon[@]}" 2>"$WORK/log" &
        else
          perf stat -x, -e task-clock -o "$WORK/perf" "${daemon[@]}" 2>"$WORK/log" &
        fi
        pid=$!
        for _ in $(seq 400); do
          grep -q " $MNT " /proc/mounts && break
          sleep 0.05
        done
        start=$(date +%s.%N)
        run_load "$load"
        end=$(date +%s.%N)
        umount "$MNT"
        wait $pid
        if [ "$COUNT" = callgrind ]; then
          what=instructions
          value=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$WORK/log")
        else
          what=task_clock_ms
          value=$(awk -F, '/task-clock/ {print $1}' "$WORK/perf")
        fi
        echo "$load,$t,$c,$run,$what,$value,$(echo "$end - $start" | bc)"
      done
    done
  done
done
