#!/usr/bin/env bash
# pjdfstest, a POSIX suite none of us wrote, run on the kernel's ext2 and on
# ext2mfr, each on a fresh image made by the same mkfs.ext2 command: the
# suite's output must be the same line for line (the kernel is the oracle:
# a test the kernel fails must fail here too), and every image must pass
# e2fsck -fn afterwards. Exits non-zero on any difference.
#
# The suite is not vendored (it is not ours) and CI has no way to fetch it:
# this is a check to run by hand, as root, with a built checkout:
#   git clone https://github.com/pjd/pjdfstest && cd pjdfstest &&
#   autoreconf -ifs && ./configure && make pjdfstest
# Usage: scripts/posix_suite.sh PJDFSTEST_DIR [mkfs.ext2 options...]
# CONFIGS: the daemon's -o options, one run each (default: both transports;
# e.g. "transport=uring,policy=retry,inject_alloc=0.2,inject_safety=0.01").
# Needs prove (perl) and a release build (cargo build --release -p ext2mfr).
set -euo pipefail
cd "$(dirname "$0")/.."
SUITE=$(realpath "${1:?usage: scripts/posix_suite.sh PJDFSTEST_DIR [mkfs options]}")
shift
[ -x "$SUITE/pjdfstest" ] || { echo "no built pjdfstest in $SUITE" >&2; exit 2; }
CONFIGS=${CONFIGS:-transport=dev transport=uring}
BIN=$PWD/target/release
WORK=$(mktemp -d /var/tmp/posix-suite.XXXXXX)
MNT=$WORK/mnt
mkdir -p "$MNT"
trap 'umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true' EXIT
if [ -w /sys/module/fuse/parameters/enable_uring ]; then
  echo Y > /sys/module/fuse/parameters/enable_uring
fi

# run NAME OPTS [mkfs options]: the suite on a fresh image, mounted by the
# kernel (OPTS "kernel") or by ext2mfr with -o allow_other,OPTS (the suite
# acts as other users too); its output, less the timing line, in
# $WORK/NAME.out.
run() {
  local name=$1 opts=$2 img=$WORK/$1.img pid=
  shift 2
  truncate -s 1G "$img"
  mkfs.ext2 -q -F "$@" "$img"
  if [ "$opts" = kernel ]; then
    mount -o loop -t ext2 "$img" "$MNT"
  else
    "$BIN/ext2mfr" "$img" "$MNT" -f -o "allow_other,$opts" 2>"$WORK/$name.log" &
    pid=$!
    for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
    mountpoint -q "$MNT" || { echo "$name: the mount did not come up" >&2; exit 1; }
  fi
  mkdir "$MNT/t"
  chmod 777 "$MNT/t"
  (cd "$MNT/t" && prove -r "$SUITE/tests" 2>&1 || true) | grep -v wallclock > "$WORK/$name.out"
  umount "$MNT"
  if [ -n "$pid" ]; then wait "$pid"; fi
  if e2fsck -fn "$img" > "$WORK/$name.fsck" 2>&1; then
    echo "$name: $(tail -1 "$WORK/$name.out"), e2fsck clean"
  else
    echo "$name: $(tail -1 "$WORK/$name.out"), e2fsck FAILED (see $WORK/$name.fsck)"
    status=1
  fi
  rm -f "$img"
}

status=0
run kernel kernel "$@"
n=0
for opts in $CONFIGS; do
  n=$((n + 1))
  run "ext2mfr-$n" "$opts" "$@"
  if diff -u "$WORK/kernel.out" "$WORK/ext2mfr-$n.out" > "$WORK/ext2mfr-$n.diff"; then
    echo "ext2mfr -o $opts: the same output as the kernel's ext2"
  else
    echo "ext2mfr -o $opts: differs from the kernel's ext2 (see $WORK/ext2mfr-$n.diff)"
    status=1
  fi
done
echo "outputs in $WORK"
exit $status
