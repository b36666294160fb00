#!/usr/bin/env bash
# Coffre vs restic vs borg on a synthetic VM disk image.
#
#   bench/run.sh                        # 4 GiB image, builds coffre in release mode
#   BENCH_SIZE_MIB=256 bench/run.sh     # quick run
#
# Environment:
#   BENCH_SIZE_MIB      image size in MiB (default 4096)
#   BENCH_DIR           work dir (default /tmp/coffre-bench); results.{md,json} land here
#   BENCH_SEED          generator seed (default 20261122)
#   BENCH_CHURN_PERCENT day-2 churn, percent of the image size (default 5)
#   BENCH_KEEP=1        keep images, repositories and restores at the end
#   BENCH_TOOLS         tools to run, default "coffre restic borg"
#   BENCH_SKIP_COFFRE=1 leave coffre out (peers only)
#   COFFRE_BIN          use this coffre binary instead of building one
#   COFFRE_BLOCK_SIZE   passed to `coffre vault create --block-size` (default: coffre's)
#   COFFRE_COMPRESSION_LEVEL passed to `coffre vault create --compression-level` (default: coffre's)
#
# Exit status: non-zero when a tool fails or a restore differs from its source
# (correctness); zero when only performance goals are missed.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

SIZE_MIB=${BENCH_SIZE_MIB:-4096}
W=${BENCH_DIR:-/tmp/coffre-bench}
SEED=${BENCH_SEED:-20261122}
CHURN=${BENCH_CHURN_PERCENT:-5}
TOOLS=${BENCH_TOOLS:-coffre restic borg}
if [[ "${BENCH_SKIP_COFFRE:-0}" == 1 ]]; then
  TOOLS=$(echo " $TOOLS " | sed 's/ coffre / /g')
fi
TOOLS=$(echo $TOOLS)

log() { printf '%s [bench] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

# ---------------------------------------------------------------- work dir
case "$W" in
  ""|/|/tmp|/tmp/|/root|/home|"$HOME") die "refusing to use BENCH_DIR=$W" ;;
esac
W=$(realpath -m "$W")
if [[ -e "$W" ]]; then
  if [[ -f "$W/.coffre-bench" ]] || [[ -z "$(ls -A "$W")" ]]; then
    rm -rf "$W"
  else
    die "$W exists and is not a previous benchmark dir (no .coffre-bench marker)"
  fi
fi
mkdir -p "$W"/{day1,day2,src,logs}
touch "$W/.coffre-bench"
RESULTS="$W/results.tsv"
: >"$RESULTS"

cleanup() {
  local rc=$?
  if [[ "${BENCH_KEEP:-0}" != 1 ]]; then
    # keep the small result files, drop images, repositories and restores
    rm -rf "$W"/day1 "$W"/day2 "$W"/src "$W"/repo-* "$W"/restore-* "$W"/cache-*
  else
    log "BENCH_KEEP=1: leaving everything in $W"
  fi
  exit $rc
}
trap cleanup EXIT

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg) # before this script does any work of its own

# ---------------------------------------------------------------- prerequisites
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
need=()
[[ " $TOOLS " == *" restic "* ]] && ! command -v restic >/dev/null && need+=(restic)
[[ " $TOOLS " == *" borg "* ]] && ! command -v borg >/dev/null && need+=(borgbackup)
[[ -x /usr/bin/time ]] || need+=(time)
dpkg -s libzstd-dev >/dev/null 2>&1 || need+=(libzstd-dev)
if ((${#need[@]})); then
  log "installing: ${need[*]}"
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
fi
if ! python3 -c 'import numpy' 2>/dev/null; then
  log "installing numpy"
  python3 -m pip install numpy
fi

# ---------------------------------------------------------------- coffre binary
if [[ " $TOOLS " == *" coffre "* ]]; then
  if [[ -n "${COFFRE_BIN:-}" ]]; then
    [[ -x "$COFFRE_BIN" ]] || die "COFFRE_BIN=$COFFRE_BIN is not executable"
  else
    log "building coffre (release) in $REPO_ROOT"
    (cd "$REPO_ROOT" && swift build -c release --product coffre) >&2
    COFFRE_BIN="$(cd "$REPO_ROOT" && swift build -c release --product coffre --show-bin-path)/coffre"
  fi
  COFFRE_BIN=$(realpath "$COFFRE_BIN")
fi

# ---------------------------------------------------------------- images
GEN="$SCRIPT_DIR/gen_image.py"
log "generating day-1 image: $SIZE_MIB MiB, seed $SEED"
python3 "$GEN" create --size-mib "$SIZE_MIB" --seed "$SEED" --out "$W/day1/disk0.img" \
  --layout-json "$W/layout.json" >/dev/null
log "making day-2 image: copy + ${CHURN}% churn"
cp --sparse=always "$W/day1/disk0.img" "$W/day2/disk0.img"
python3 "$GEN" churn --file "$W/day2/disk0.img" --seed "$SEED" --percent "$CHURN" \
  --layout-json "$W/churn.json" >/dev/null
log "day1: $(du -B1 "$W/day1/disk0.img" | cut -f1) bytes allocated of $(stat -c %s "$W/day1/disk0.img");" \
    "day2: $(du -B1 "$W/day2/disk0.img" | cut -f1) allocated"

SRC=src/disk0.img # every tool backs up this same relative path, from cwd $W
cd "$W"

use_day() { # copy day N into src/disk0.img (same path, same inode) and warm the page cache
  cp --sparse=always "day$1/disk0.img" "$SRC"
  sync "$SRC" # its writeback must not land inside the next measurement
  cat "$SRC" >/dev/null
}

FAILED=0
# measure TOOL PHASE REPO_DIR NOTES -- command...
# Runs the command under GNU time; appends one row to results.tsv.
measure() {
  local tool=$1 phase=$2 repo=$3 notes=$4
  shift 5
  local tf="$W/logs/$tool.$phase.time" out="$W/logs/$tool.$phase.out" err="$W/logs/$tool.$phase.err"
  local status=ok
  sync # flush earlier phases' writes so they do not land inside this measurement
  if ! /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >"$out" 2>"$err"; then
    status=failed
    log "$tool $phase FAILED: $*"
    tail -n 5 "$err" >&2 || true
    FAILED=1
  fi
  local wall usr sys rss
  read -r wall usr sys rss < <(tail -n 1 "$tf")
  local stored=-
  [[ -d "$repo" ]] && stored=$(du -sb "$repo" | cut -f1)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$phase" "$status" "$wall" "$usr" "$sys" \
    "$rss" "$stored" "$notes" >>"$RESULTS"
  log "$tool $phase: $status, ${wall}s wall, $(awk "BEGIN{print $usr+$sys}")s CPU," \
      "$((rss / 1024)) MiB RSS, repo $stored bytes"
  [[ $status == ok ]]
}

# note_last TEXT: appends TEXT to the notes of the last results row
note_last() {
  local last
  last=$(tail -n 1 "$RESULTS")
  sed -i '$d' "$RESULTS"
  if [[ "$last" == *$'\t' ]]; then printf '%s%s\n' "$last" "$1"; else printf '%s; %s\n' "$last" "$1"; fi >>"$RESULTS"
}

# check_restore TOOL FILE: compares a restored file with the source; records the verdict
check_restore() {
  local tool=$1 file=$2 verdict
  if [[ -n "$file" && -f "$file" ]] && cmp -s "$file" "$SRC"; then
    verdict="identical"
  else
    verdict="DIFFERS"
    FAILED=1
    log "$tool restore DIFFERS from the source ($file)"
  fi
  local alloc=-
  [[ -n "$file" && -f "$file" ]] && alloc=$(( $(du -B1 "$file" | cut -f1) / 1048576 ))
  note_last "cmp $verdict; restored file allocates $alloc MiB"
  if [[ $verdict == DIFFERS ]]; then
    sed -i '$s/\tok\t/\tmismatch\t/' "$RESULTS"
  fi
}

# ---------------------------------------------------------------- coffre
run_coffre() {
  local V="$W/repo-coffre" R="$W/restore-coffre" id
  local bs=()
  [[ -n "${COFFRE_BLOCK_SIZE:-}" ]] && bs=(--block-size "$COFFRE_BLOCK_SIZE")
  [[ -n "${COFFRE_COMPRESSION_LEVEL:-}" ]] && bs+=("--compression-level=$COFFRE_COMPRESSION_LEVEL")
  "$COFFRE_BIN" vault create "$V" "${bs[@]}" --json >"$W/logs/coffre.create.out" 2>&1 \
    || { cat "$W/logs/coffre.create.out" >&2; FAILED=1; return 0; }
  local bk=("$COFFRE_BIN" image backup --vault "$V" --item bench --no-progress "$SRC")
  use_day 1
  measure coffre full "$V" "" -- "${bk[@]}" || return 0
  use_day 2
  measure coffre incremental "$V" "" -- "${bk[@]}" || return 0
  measure coffre nochange "$V" "" -- "${bk[@]}" || return 0
  id=$(grep -v '^[[:space:]]*$' "$W/logs/coffre.nochange.out" | tail -n 1 | tr -d '[:space:]')
  mkdir -p "$R"
  measure coffre restore "$V" "point $id" -- \
    "$COFFRE_BIN" image restore --vault "$V" --point "$id" --to "$R" --no-progress || return 0
  check_restore coffre "$R/disk0.img"
  "$COFFRE_BIN" vault stats --vault "$V" --json >"$W/logs/coffre.stats.json" 2>&1 || true
  rm -rf "$R"
}

# ---------------------------------------------------------------- restic
run_restic() {
  export RESTIC_REPOSITORY="$W/repo-restic" RESTIC_PASSWORD=coffre-bench RESTIC_CACHE_DIR="$W/cache-restic"
  local R="$W/restore-restic"
  restic init >"$W/logs/restic.init.out" 2>&1 || { cat "$W/logs/restic.init.out" >&2; FAILED=1; return 0; }
  local ph
  for ph in full incremental nochange; do
    [[ $ph == full ]] && use_day 1
    [[ $ph == incremental ]] && use_day 2
    measure restic $ph "$RESTIC_REPOSITORY" "" -- restic backup "$SRC" || return 0
    # "Files: 0 new, 0 changed, 1 unmodified" (unmodified = skipped via the parent snapshot's metadata)
    note_last "$(grep -m1 '^Files:' "$W/logs/restic.$ph.out" | sed 's/  */ /g')" || true
  done
  measure restic restore "$RESTIC_REPOSITORY" "no --sparse in restic $RESTIC_VERSION" -- \
    restic restore latest --target "$R" || return 0
  check_restore restic "$(find "$R" -name disk0.img -type f | head -n 1)"
  restic cat config >"$W/logs/restic.config.json" 2>/dev/null || true
  rm -rf "$R"
  unset RESTIC_REPOSITORY RESTIC_PASSWORD RESTIC_CACHE_DIR
}

# ---------------------------------------------------------------- borg
run_borg() {
  export BORG_REPO="$W/repo-borg" BORG_BASE_DIR="$W/cache-borg"
  export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
  local R="$W/restore-borg"
  borg init -e none >"$W/logs/borg.init.out" 2>&1 || { cat "$W/logs/borg.init.out" >&2; FAILED=1; return 0; }
  local ph
  for ph in full incremental nochange; do
    [[ $ph == full ]] && use_day 1
    [[ $ph == incremental ]] && use_day 2
    measure borg $ph "$BORG_REPO" "" -- borg create --stats --list ::$ph "$SRC" || return 0
    # --list prints the file's status: A = added, M = modified (read + chunked), U = unchanged (files cache hit)
    note_last "file status $(awk -v f="$SRC" '$2 == f {print $1}' "$W/logs/borg.$ph.err" | head -n 1)"
  done
  mkdir -p "$R"
  measure borg restore "$BORG_REPO" "extract --sparse" -- env -C "$R" borg extract --sparse ::nochange || return 0
  check_restore borg "$R/$SRC"
  rm -rf "$R"
  unset BORG_REPO BORG_BASE_DIR
}

# ---------------------------------------------------------------- run
RESTIC_VERSION=$(restic version 2>/dev/null | awk '{print $2}' || echo none)
# Each tool starts from the same state: earlier tools' repositories gone, page cache dropped
# (where the kernel lets us), then its source warmed by use_day. Without this, 4 GiB images and
# three repositories fill the page cache and later tools read their source from disk.
drop_caches() {
  sync
  if [[ -w /proc/sys/vm/drop_caches ]] && echo 1 >/proc/sys/vm/drop_caches 2>/dev/null; then
    CACHES_DROPPED=yes
  fi
}
export CACHES_DROPPED=no
# This VM's memory is expensive the first time the guest touches a page (the host backs it then:
# a 1 GiB buffered write cost 4.4 s of kernel time on cold memory, 0.26 s on warm). Whichever tool
# ran first paid for it alone. Touch twice the image's size once, untimed, in tmpfs (no disk I/O),
# so every tool's page cache lands on memory that was touched before.
warm_memory() {
  local shm=/dev/shm
  [[ -d "$shm" && -w "$shm" ]] || return 0
  dd if=/dev/zero of="$shm/coffre-bench-warm" bs=1M count=$((SIZE_MIB * 2)) status=none 2>/dev/null || true
  rm -f "$shm/coffre-bench-warm"
  MEMORY_WARMED=yes
}
export MEMORY_WARMED=no
log "warming memory (${SIZE_MIB} MiB x 2, tmpfs)"
warm_memory
for tool in $TOOLS; do
  log "=== $tool ==="
  drop_caches
  "run_$tool"
  rm -rf "$W/repo-$tool" "$W/cache-$tool"
done

# ---------------------------------------------------------------- report
versions="{}"
ver_json() { python3 -c 'import json,sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' "$@"; }
cv=-
if [[ " $TOOLS " == *" coffre "* ]]; then
  cv=$("$COFFRE_BIN" --version 2>/dev/null | head -n 1 || true)
  [[ -n "$cv" ]] || cv="git $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(
    [[ -n "$(git -C "$REPO_ROOT" status --porcelain -- Sources Package.swift 2>/dev/null)" ]] && echo '+dirty' || true)"
fi
versions=$(ver_json coffre "$cv" \
  restic "$(restic version 2>/dev/null | awk '{print $2}' || echo -)" \
  borg "$(borg --version 2>/dev/null | awk '{print $2}' || echo -)" \
  swift "$(swift --version 2>/dev/null | grep -o 'Swift version [0-9.]*' | awk '{print $3}' || echo -)" \
  zstd-lib "$(dpkg-query -W -f '${Version}' libzstd-dev 2>/dev/null || echo -)")
machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), \
$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), \
$(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r), work dir on $(df -T "$W" | awk 'NR==2{print $2}')"

python3 - "$W/meta.json" "$SIZE_MIB" "$SEED" "$CHURN" "$machine" "$versions" "$TOOLS" \
  "${COFFRE_BLOCK_SIZE:-default}" "$W/layout.json" "$W/churn.json" "$W/logs/restic.config.json" \
  "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'EOF'
import json, sys, os, datetime
out, size, seed, churn, machine, versions, tools, bs, layout, churnf, rcfg, l0, l1 = sys.argv[1:14]
def rd(p):
    try:
        with open(p) as f: return json.load(f)
    except Exception: return None
rc = rd(rcfg) or {}
notes = [
    "Page cache: dropped before each tool's runs (" + ("done" if os.environ.get("CACHES_DROPPED") == "yes" else "not permitted here") + ") and each tool's repository removed after it, so every tool starts alike; the source image is read once right before each backup, so every backup reads a warm source.",
    "Memory: twice the image's size written once to tmpfs and removed before the first tool (" + ("done" if os.environ.get("MEMORY_WARMED") == "yes" else "not possible here") + "): this VM charges the first touch of a memory page, which otherwise fell on whichever tool ran first.",
    "Same bytes, same path for every tool: src/disk0.img is overwritten (cp --sparse=always) with day 1 before the full backup and with day 2 before the incremental; the no-change backup reruns on the untouched day-2 file.",
    "restic always encrypts (AES-256 + Poly1305); borg runs with -e none; coffre vault created without --encryption-key.",
    f"restic repository version {rc.get('version', '?')} (compression 'auto' = zstd when version 2); borg 1.2 defaults: buzhash 19,23,21,4095 chunker, lz4 compression.",
    "No-change run: restic skips the unchanged file via the parent snapshot's metadata (notes: 'unmodified'). borg 1.2 never keeps this file in its files cache: it drops cache entries whose ctime/mtime equals the newest one seen in the run (cache.py _newest_cmtime, against timestamp-granularity races), and with a single file that is always the file itself, so borg re-reads and re-chunks the whole image on every run (notes: status A = not found in the files cache). Reported as measured.",
    "restic 0.14 restore has no --sparse option, so its restore writes the holes out as zeros; borg extract uses --sparse.",
    "`sync` runs (untimed) before every measured command, so earlier writes are not billed to it. Coffre fsyncs each restored file before renaming it into place (whole blocks are written with O_DIRECT); restic and borg do not fsync restored files, so their writes are not waited for. The restored file is compared with cmp (not timed).",
    "Repo size is du -sb of the repository directory (apparent bytes) after each phase.",
]
notes.append(f"Load average (1/5/15 min) before the script started: {l0} (other work on the machine; "
             f"should be near 0 for clean numbers); at the end: {l1} (includes the benchmark itself).")
if bs != "default":
    notes.append(f"coffre vault block size: {bs}")
meta = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "machine": machine,
    "versions": json.loads(versions),
    "tools": tools.split(),
    "imageSizeMiB": int(size),
    "seed": int(seed),
    "coffreBlockSize": bs,
    "imageRecipe": (f"{size} MiB raw sparse image (bench/gen_image.py, seed {seed}): ~40% holes, ~25% random, "
                    f"~35% text-like (zstd -3 ~3x) in 4 KiB-aligned extents of 64 KiB-64 MiB; day 2 = day 1 + "
                    f"{churn}% churn as scattered 4 KiB-1 MiB writes (half random, half text)"),
    "layout": rd(layout),
    "churn": rd(churnf),
    "notes": notes,
}
with open(out, "w") as f:
    json.dump(meta, f, indent=2)
EOF

python3 "$SCRIPT_DIR/report.py" "$RESULTS" "$W/meta.json" "$W/results.md" "$W/results.json"
echo
echo "results: $W/results.md, $W/results.json (logs in $W/logs)"
if ((FAILED)); then
  log "CORRECTNESS FAILURE: a tool failed or a restore differs from its source"
  exit 1
fi
