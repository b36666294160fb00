#!/usr/bin/env bash
# A point's disk read through `coffre image mount` (FUSE, blocks fetched and verified on
# demand) against a raw restore of the same point, in one run, repeated.
#
#   bench/mount.sh                        # 2 GiB image, 3 runs, builds coffre in release mode
#   BENCH_SIZE_MIB=512 BENCH_RUNS=1 bench/mount.sh
#
# Per run: `coffre image restore` (sparse raw file, every block verified) and a sequential read
# of the mounted disk file (`dd bs=1M` of DIR/disk0.img to /dev/null, the same blocks verified
# by the mount). Page caches are dropped before each step when the kernel lets us, so neither
# reads the other's cached pages. Prints wall times, MiB/s, and the ratio mount / restore.
#
# Environment: BENCH_SIZE_MIB (2048), BENCH_RUNS (3), BENCH_DIR (/tmp/coffre-bench-mount),
# BENCH_SEED (20261203), COFFRE_BIN (a coffre binary; default: release build). Needs root (FUSE).
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
SIZE_MIB=${BENCH_SIZE_MIB:-2048}
RUNS=${BENCH_RUNS:-3}
W=${BENCH_DIR:-/tmp/coffre-bench-mount}
SEED=${BENCH_SEED:-20261203}

log() { printf '%s [bench-mount] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
case "$W" in ""|/|/tmp|/tmp/) log "refusing BENCH_DIR=$W"; exit 2 ;; esac
[[ $(id -u) == 0 ]] || { log "needs root (FUSE)"; exit 2; }
"$REPO_ROOT/scripts/setup"
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
python3 -c 'import numpy' 2>/dev/null || python3 -m pip install -q numpy
if [[ -z "${COFFRE_BIN:-}" ]]; then
  log "building coffre (release)"
  (cd "$REPO_ROOT" && swift build -c release --product coffre) >&2
  COFFRE_BIN="$(cd "$REPO_ROOT" && swift build -c release --product coffre --show-bin-path)/coffre"
fi
rm -rf "$W"; mkdir -p "$W"/{src,mnt,logs}
cleanup() { "$COFFRE_BIN" unmount --lazy "$W/mnt" >/dev/null 2>&1 || true; rm -rf "$W"/src "$W"/vault "$W"/restore; }
trap cleanup EXIT

python3 "$SCRIPT_DIR/gen_image.py" create --size-mib "$SIZE_MIB" --seed "$SEED" --out "$W/src/disk0.img" >/dev/null
"$COFFRE_BIN" vault create "$W/vault" >/dev/null
POINT=$("$COFFRE_BIN" image backup --vault "$W/vault" --item bench --no-progress "$W/src/disk0.img")
log "point $POINT of a $SIZE_MIB MiB image"

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
RESULTS=$W/results.tsv
: >"$RESULTS"
measure() { # RUN STEP -- command…
  local run=$1 step=$2; shift 3
  drop_caches
  /usr/bin/time -f '%e %U %S %M' -o "$W/logs/$step.$run.time" "$@" >"$W/logs/$step.$run.out" 2>"$W/logs/$step.$run.err" \
    || { log "$step FAILED"; tail -5 "$W/logs/$step.$run.err" >&2; exit 1; }
  read -r wall usr sys rss < <(tail -n 1 "$W/logs/$step.$run.time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$step" "$wall" "$usr" "$sys" "$rss" >>"$RESULTS"
  log "run $run $step: ${wall}s wall, $(awk "BEGIN{printf \"%.0f\", $SIZE_MIB/$wall}") MiB/s, $((rss / 1024)) MiB RSS (of the command)"
}

for run in $(seq 1 "$RUNS"); do
  rm -rf "$W/restore"
  measure "$run" restore -- "$COFFRE_BIN" image restore --vault "$W/vault" --point "$POINT" --to "$W/restore" --no-progress
  cmp "$W/restore/disk0.img" "$W/src/disk0.img" || { log "restore DIFFERS"; exit 1; }
  rm -rf "$W/restore"

  "$COFFRE_BIN" image mount --vault "$W/vault" --point "$POINT" "$W/mnt" >"$W/logs/mount.$run.log" 2>&1 &
  mounter=$!
  for _ in $(seq 1 300); do [[ -r "$W/mnt/disk0.img" ]] && break; sleep 0.1; done
  [[ -r "$W/mnt/disk0.img" ]] || { log "the mount did not come up"; cat "$W/logs/mount.$run.log" >&2; exit 1; }
  measure "$run" mount-read -- dd if="$W/mnt/disk0.img" of=/dev/null bs=1M
  # The mount's own CPU and memory are the mount process's: read them before it ends.
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$mounter/status")
  cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$mounter/stat")
  printf '%s\t%s\t0\t%s\t0\t%s\n' "$run" mount-process "$cpu" "$rss" >>"$RESULTS"
  log "run $run mount process: ${cpu}s CPU, $((rss / 1024)) MiB peak RSS"
  drop_caches
  cmp "$W/mnt/disk0.img" "$W/src/disk0.img" || { log "the mounted disk DIFFERS"; exit 1; }
  "$COFFRE_BIN" unmount "$W/mnt" >/dev/null
  wait "$mounter"
done

python3 - "$RESULTS" "$SIZE_MIB" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
mib = int(sys.argv[2])
by = {}
for run, step, wall, usr, sys_, rss in rows:
    by.setdefault(step, []).append((float(wall), float(usr) + float(sys_), int(rss) // 1024))
print("| step | runs | wall s (min–max) | MiB/s (median) | CPU s (median) | peak RSS MiB (max) |")
print("|---|---|---|---|---|---|")
for step in ("restore", "mount-read", "mount-process"):
    if step not in by:
        continue
    walls = [w for w, _, _ in by[step]]
    cpus = [c for _, c, _ in by[step]]
    rss = max(m for _, _, m in by[step])
    if step == "mount-process":
        print(f"| {step} | {len(cpus)} | - | - | {statistics.median(cpus):.2f} | {rss} |")
    else:
        print(f"| {step} | {len(walls)} | {min(walls):.2f}–{max(walls):.2f} | {mib / statistics.median(walls):.0f} | "
              f"{statistics.median(cpus):.2f} | {rss} |")
ratios = [m[0] / r[0] for r, m in zip(by["restore"], by["mount-read"])]
print()
print(f"mount-read / restore, wall time per run: " + ", ".join(f"{x:.2f}x" for x in ratios)
      + f" (median {statistics.median(ratios):.2f}x)")
PY
