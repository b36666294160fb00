#!/usr/bin/env bash
# Restoring to qcow2: the vault's own qcow2 writer (`coffre image restore --format qcow2`)
# against the two-step alternative it replaced (a raw restore, then `qemu-img convert -O qcow2`),
# with the raw restore alone as the reference. Every result is checked with
# `qemu-img compare` against the source image, and `qemu-img check` for the qcow2 images.
#
#   bench/qcow2-restore.sh                     # 4 GiB synthetic image (bench/gen_image.py)
#   BENCH_SIZE_MIB=1024 bench/qcow2-restore.sh
#
# Environment: BENCH_SIZE_MIB (4096), BENCH_DIR (/var/tmp/coffre-bench-qcow2), BENCH_SEED
# (20261122), COFFRE_BIN (else a release build). Needs qemu-utils and python3-numpy.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${BENCH_SIZE_MIB:-4096}
W=${BENCH_DIR:-/var/tmp/coffre-bench-qcow2}
SEED=${BENCH_SEED:-20261122}

"$REPO/scripts/setup" >&2
command -v qemu-img > /dev/null || apt-get install -y qemu-utils >&2
python3 -c 'import numpy' 2> /dev/null || apt-get install -y python3-numpy >&2
if [[ -z "${COFFRE_BIN:-}" ]]; then
  (cd "$REPO" && swift build -c release --product coffre >&2)
  COFFRE_BIN="$REPO/.build/release/coffre"
fi

rm -rf "$W"; mkdir -p "$W"
python3 "$REPO/bench/gen_image.py" create --size-mib "$SIZE_MIB" --seed "$SEED" --out "$W/disk0.img" > /dev/null
"$COFFRE_BIN" vault create "$W/vault" > /dev/null
point=$("$COFFRE_BIN" image backup --vault "$W/vault" --item bench --no-progress "$W/disk0.img" | tail -n 1)

# seconds COMMAND...: wall time of a command, after flushing earlier writes.
seconds() {
  sync; echo 3 > /proc/sys/vm/drop_caches 2> /dev/null || true
  local start end
  start=$(date +%s.%N); "$@" > /dev/null; sync; end=$(date +%s.%N)
  awk "BEGIN{printf \"%.2f\", $end - $start}"
}
allocated() { du -B1 "$1" | awk '{printf "%.0f", $1 / 1048576}'; }

raw=$(seconds "$COFFRE_BIN" image restore --vault "$W/vault" --point "$point" --to "$W/raw" --no-progress)
qemu-img compare -q -f raw -F raw "$W/disk0.img" "$W/raw/disk0.img"
convert=$(seconds qemu-img convert -f raw -O qcow2 "$W/raw/disk0.img" "$W/converted.qcow2")
qemu-img compare -q -f raw -F qcow2 "$W/disk0.img" "$W/converted.qcow2"
native=$(seconds "$COFFRE_BIN" image restore --vault "$W/vault" --point "$point" --to "$W/qcow2" --format qcow2 --no-progress)
qemu-img check -q -f qcow2 "$W/qcow2/disk0.qcow2"
qemu-img compare -q -f raw -F qcow2 "$W/disk0.img" "$W/qcow2/disk0.qcow2"

twostep=$(awk "BEGIN{printf \"%.2f\", $raw + $convert}")
echo "# qcow2 restore of a $SIZE_MIB MiB image ($(allocated "$W/disk0.img") MiB allocated), every result identical to the source"
echo
echo "| restore | wall s | file allocates MiB | vs raw restore |"
echo "|---|---:|---:|---:|"
echo "| raw (coffre) | $raw | $(allocated "$W/raw/disk0.img") | 1.00 |"
echo "| qcow2, coffre's writer | $native | $(allocated "$W/qcow2/disk0.qcow2") | $(awk "BEGIN{printf \"%.2f\", $native / $raw}") |"
echo "| qcow2, raw restore + qemu-img convert | $twostep | $(allocated "$W/converted.qcow2") | $(awk "BEGIN{printf \"%.2f\", $twostep / $raw}") |"
echo
echo "coffre's qcow2 writer / two-step: $(awk "BEGIN{printf \"%.2f\", $native / $twostep}")"
rm -rf "$W"
