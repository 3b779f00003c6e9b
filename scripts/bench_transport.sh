#!/usr/bin/env bash
# Side by side: ext2mfr over /dev/fuse (fuser), ext2mfr over io_uring, and
# the kernel's ext2, on identical fresh images (mkfs.ext2, 1 GiB), runs
# alternating, each workload's wall time printed as a CSV line
#   load,fs,run,seconds
# Usage (root): scripts/bench_transport.sh [RUNS] > out.csv
# FSES="dev dev-own uring kernel" adds our own /dev/fuse loop (the message
# layer io_uring uses, without io_uring).
# Needs a release build (cargo build --release -p ext2mfr -p workloads).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
FSES=${FSES:-dev uring kernel}
BIN=target/release
WORK=$(mktemp -d /var/tmp/bench-transport.XXXXXX)
MNT=$WORK/mnt
mkdir -p "$MNT"
trap 'umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true; rm -rf "$WORK"' EXIT
if [ -w /sys/module/fuse/parameters/enable_uring ]; then
  echo Y > /sys/module/fuse/parameters/enable_uring
fi

mount_fs() { # FS IMAGE
  case $1 in
    kernel) mount -o loop -t ext2 "$2" "$MNT" ;;
    *) "$BIN/ext2mfr" "$2" "$MNT" -o "transport=$1" ;;
  esac
}

unmount_fs() { # FS IMAGE
  umount "$MNT"
  # The daemon writes back after the unmount: wait for it to exit.
  while pgrep -f "ext2mfr $2 " >/dev/null; do sleep 0.05; done
}

run_load() { # LOAD
  case $1 in
    postmark) "$BIN/postmark" --number 5000 --transactions 50000 --subdirectories 50 "$MNT" ;;
    postmark-4k) "$BIN/postmark" --number 5000 --transactions 50000 --subdirectories 50 \
      --unbuffered --write-block 4096 --read-block 4096 "$MNT" ;;
    creates-40k) python3 -c '
import os, sys
d = os.path.join(sys.argv[1], "many")
os.mkdir(d)
for i in range(40000):
    os.close(os.open(os.path.join(d, "f%05d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
' "$MNT" ;;
  esac >/dev/null
}

echo "load,fs,run,seconds"
for load in postmark postmark-4k creates-40k; do
  for run in $(seq 1 "$RUNS"); do
    for fs in $FSES; do
      img=$WORK/img
      rm -f "$img"
      truncate -s 1G "$img"
      mkfs.ext2 -q -F "$img"
      mount_fs "$fs" "$img"
      sync
      echo 3 > /proc/sys/vm/drop_caches
      t0=$(date +%s.%N)
      run_load "$load"
      t1=$(date +%s.%N)
      unmount_fs "$fs" "$img"
      e2fsck -fn "$img" >/dev/null 2>&1 || echo "e2fsck not clean after $load on $fs" >&2
      echo "$load,$fs,$run,$(echo "$t1 - $t0" | bc -l)"
    done
  done
done
