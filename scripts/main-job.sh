#!/usr/bin/env bash
# The main job, on a fresh machine (as root): install what it needs, build,
# then (1) run the postmark, micro and sort loads on the same kind of image
# under the kernel's ext2, fuse2fs, ext2mfr with recovery off (baseline) and
# ext2mfr, side by side; (2) run postmark while memory-safety faults are
# injected into requests, under baseline and ext2mfr (retry and fail-fast),
# and report what the application saw and what e2fsck says afterwards.
# QUICK=0 runs the larger loads.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=""
  command -v e2fsck >/dev/null || need="$need e2fsprogs"
  command -v fusermount3 >/dev/null || need="$need fuse3"
  command -v fuse2fs >/dev/null || need="$need fuse2fs"
  if [ -n "$need" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
  fi
fi
modprobe fuse 2>/dev/null || true
cargo build --release --workspace
bin=target/release
quick=--quick
[ "${QUICK:-1}" = 0 ] && quick=
peers=baseline,ext2mfr
grep -qw ext2 /proc/filesystems || modprobe ext2 2>/dev/null || true
peers=kernel,$peers
command -v fuse2fs >/dev/null && peers=fuse2fs,$peers

echo "== Performance: the same loads, side by side (median of 3 rounds)"
"$bin/fs-compare" $quick --rounds 3 --peers "$peers" --image-mib 512

echo
echo "== Robustness: postmark while memory-safety faults strike inside requests"
echo "   (inject_safety=0.002: each fault site in a request fails with probability 0.2%)"
work=$(mktemp -d /var/tmp/ext2mfr-main.XXXXXX)
trap 'umount -l "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/mnt"
printf '%-22s %-36s %-10s %s\n' configuration "application saw" "daemon" "e2fsck -fn after unmount"
for cfg in baseline policy=retry policy=fail-fast; do
  rm -f "$work/fs.img"
  "$bin/mkfs-ext2mfr" -q -b 4096 "$work/fs.img" 256M
  # (A subshell, so that the baseline's abort is reported in the table,
  # not by the shell.)
  ( exec "$bin/ext2mfr" "$work/fs.img" "$work/mnt" -f -o "inject_safety=0.002,inject_seed=7,$cfg" 2>"$work/daemon.log" ) &
  pid=$!
  for _ in $(seq 100); do grep -q " $work/mnt " /proc/mounts && break; sleep 0.05; done
  mkdir -p "$work/mnt/w" 2>/dev/null || true
  if out=$(timeout 300 "$bin/postmark" "$work/mnt/w" --number 500 --transactions 2000 --subdirectories 5 2>&1); then
    saw="no error"
  else
    saw="error: $(echo "$out" | tail -1 | sed 's/.*: //' | cut -c1-40)"
  fi
  umount "$work/mnt" 2>/dev/null || umount -l "$work/mnt" 2>/dev/null || true
  if wait $pid; then daemon="exited ok"; else daemon="died"; fi
  if e2fsck -fn "$work/fs.img" >"$work/fsck.out" 2>&1; then fsck=clean; else fsck="problems (exit $?)"; fi
  printf '%-22s %-36s %-10s %s\n' "$cfg" "$saw" "$daemon" "$fsck"
done
