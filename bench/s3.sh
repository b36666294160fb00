#!/usr/bin/env bash
# Coffre on S3 against restic's S3 backend, on the same local Ceph RADOS Gateway, in one run;
# and Coffre on a local folder in the same run, to show what the network costs.
#
#   bench/s3.sh                         # 4 GiB image, builds coffre in release mode
#   BENCH_SIZE_MIB=512 bench/s3.sh      # quick run
#
# Steps per tool: full backup (day 1), 5 % incremental (day 2), restore of day 2 — wall time,
# CPU, peak RSS, and requests sent, counted in the gateway's log ("beast:" lines, one per
# request) and printed per GiB of the image. The gateway is a fresh cluster per tool
# (scripts/s3-harness; OSD in RAM), so no tool pays for another's objects.
#
# Environment: BENCH_SIZE_MIB (4096), BENCH_DIR (/tmp/coffre-bench-s3), BENCH_SEED (20261122),
# BENCH_CHURN_PERCENT (5), COFFRE_BIN (a coffre binary; default: release build).
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
SIZE_MIB=${BENCH_SIZE_MIB:-4096}
W=${BENCH_DIR:-/tmp/coffre-bench-s3}
SEED=${BENCH_SEED:-20261122}
CHURN=${BENCH_CHURN_PERCENT:-5}
export COFFRE_S3_DIR=$W/ceph
export COFFRE_S3_MEMSTORE_BYTES=$(( (SIZE_MIB * 3 + 2048) * 1048576 ))

log() { printf '%s [bench-s3] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
case "$W" in ""|/|/tmp|/tmp/) log "refusing BENCH_DIR=$W"; exit 2 ;; esac
"$REPO_ROOT/scripts/s3-harness" down >/dev/null 2>&1 || true
rm -rf "$W"; mkdir -p "$W"/{day1,day2,src,logs}
trap '"$REPO_ROOT/scripts/s3-harness" down >/dev/null 2>&1 || true; rm -rf "$W"/day1 "$W"/day2 "$W"/src "$W"/repo-* "$W"/restore-*' EXIT

command -v restic >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q restic >/dev/null
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
python3 -c 'import numpy' 2>/dev/null || python3 -m pip install -q numpy
if [[ -z "${COFFRE_BIN:-}" ]]; then
  log "building coffre (release)"
  (cd "$REPO_ROOT" && swift build -c release --product coffre) >&2
  COFFRE_BIN="$(cd "$REPO_ROOT" && swift build -c release --product coffre --show-bin-path)/coffre"
fi

python3 "$SCRIPT_DIR/gen_image.py" create --size-mib "$SIZE_MIB" --seed "$SEED" --out "$W/day1/disk0.img" \
  --layout-json "$W/layout.json" >/dev/null
cp --sparse=always "$W/day1/disk0.img" "$W/day2/disk0.img"
python3 "$SCRIPT_DIR/gen_image.py" churn --file "$W/day2/disk0.img" --seed "$SEED" --percent "$CHURN" \
  --layout-json "$W/churn.json" >/dev/null
SRC=src/disk0.img
cd "$W"
use_day() { cp --sparse=always "day$1/disk0.img" "$SRC"; sync "$SRC"; cat "$SRC" >/dev/null; }

RESULTS=$W/results.tsv
: >"$RESULTS"
gateway_up() {
  "$REPO_ROOT/scripts/s3-harness" up >&2
  . "$COFFRE_S3_DIR/env"
  export AWS_ACCESS_KEY_ID=$COFFRE_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$COFFRE_S3_SECRET_KEY
  GWLOG=$COFFRE_S3_DIR/log/client.rgw.a.log
}
requests() { if [[ -n "${GWLOG:-}" && -f "$GWLOG" ]]; then grep -c ' beast: ' "$GWLOG" || true; else echo 0; fi; }
# measure TOOL STEP -- command…: one row (tool, step, wall, user, sys, rss KiB, requests)
measure() {
  local tool=$1 step=$2; shift 3
  sync
  local r0; r0=$(requests)
  /usr/bin/time -f '%e %U %S %M' -o "$W/logs/$tool.$step.time" "$@" >"$W/logs/$tool.$step.out" 2>"$W/logs/$tool.$step.err" \
    || { log "$tool $step FAILED"; tail -5 "$W/logs/$tool.$step.err" >&2; exit 1; }
  local r1; r1=$(requests)
  read -r wall usr sys rss < <(tail -n 1 "$W/logs/$tool.$step.time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$wall" "$usr" "$sys" "$rss" "$((r1 - r0))" >>"$RESULTS"
  log "$tool $step: ${wall}s wall, $(awk "BEGIN{print $usr+$sys}")s CPU, $((rss / 1024)) MiB RSS, $((r1 - r0)) requests"
}
check() { cmp -s "$1" "$SRC" || { log "$2: restore DIFFERS"; exit 1; }; }

run_coffre() { # $1: local | s3
  local where=$1 V tool="coffre-$1" opts=()
  if [[ $where == s3 ]]; then
    gateway_up
    "$COFFRE_BIN" vault create s3://bench/coffre --endpoint "$COFFRE_S3_ENDPOINT" --create-bucket >/dev/null
    V=s3://bench/coffre; opts=(--endpoint "$COFFRE_S3_ENDPOINT")
  else
    V=$W/repo-coffre; "$COFFRE_BIN" vault create "$V" >/dev/null; GWLOG=
  fi
  local bk=("$COFFRE_BIN" image backup --vault "$V" "${opts[@]}" --item bench --no-progress "$SRC")
  use_day 1; measure "$tool" full -- "${bk[@]}"
  use_day 2; measure "$tool" incremental -- "${bk[@]}"
  local id; id=$(tail -n 1 "$W/logs/$tool.incremental.out" | tr -d '[:space:]')
  rm -rf "$W/restore-$tool"
  measure "$tool" restore -- "$COFFRE_BIN" image restore --vault "$V" "${opts[@]}" --point "$id" --to "$W/restore-$tool" --no-progress
  check "$W/restore-$tool/disk0.img" "$tool"
  "$COFFRE_BIN" vault stats --vault "$V" "${opts[@]}" >"$W/logs/$tool.stats" 2>&1 || true
  rm -rf "$W/restore-$tool" "$W/repo-coffre"
  [[ $where == s3 ]] && "$REPO_ROOT/scripts/s3-harness" down >/dev/null
  return 0
}

run_restic() {
  gateway_up
  export RESTIC_REPOSITORY="s3:$COFFRE_S3_ENDPOINT/bench-restic/repo" RESTIC_PASSWORD=coffre-bench RESTIC_CACHE_DIR=$W/cache-restic
  restic init >"$W/logs/restic.init" 2>&1
  use_day 1; measure restic-s3 full -- restic backup "$SRC"
  use_day 2; measure restic-s3 incremental -- restic backup "$SRC"
  rm -rf "$W/restore-restic"
  measure restic-s3 restore -- restic restore latest --target "$W/restore-restic"
  check "$(find "$W/restore-restic" -name disk0.img -type f | head -n 1)" restic
  rm -rf "$W/restore-restic" "$W/cache-restic"
  "$REPO_ROOT/scripts/s3-harness" down >/dev/null
}

run_coffre local
run_coffre s3
run_restic

python3 - "$RESULTS" "$SIZE_MIB" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
gib = int(sys.argv[2]) / 1024
r = {(t, s): (float(w), float(u) + float(y), int(m) // 1024, int(q)) for t, s, w, u, y, m, q in rows}
print(f"| step | tool | wall s | CPU s | peak RSS MiB | requests | requests/GiB |")
print("|---|---|---|---|---|---|---|")
for step in ("full", "incremental", "restore"):
    for tool in ("coffre-local", "coffre-s3", "restic-s3"):
        if (tool, step) in r:
            w, c, m, q = r[(tool, step)]
            print(f"| {step} | {tool} | {w:.2f} | {c:.2f} | {m} | {q if tool != 'coffre-local' else '-'} | "
                  f"{q / gib:.1f} |" if tool != "coffre-local" else f"| {step} | {tool} | {w:.2f} | {c:.2f} | {m} | - | - |")
print()
for step in ("full", "incremental", "restore"):
    a, b = r.get(("coffre-s3", step)), r.get(("restic-s3", step))
    if a and b:
        print(f"{step}: coffre-s3 / restic-s3 wall {a[0] / b[0]:.3f}x, requests {a[3] / max(b[3], 1):.3f}x; "
              f"coffre-s3 / coffre-local wall {a[0] / r[('coffre-local', step)][0]:.2f}x")
PY
