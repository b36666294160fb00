#!/usr/bin/env bash
# Instant restore against a full restore then boot, on the libvirt harness's host, for disks
# of 2 GiB and 4 GiB, in one run, repeated.
#
#   bench/instant-restore.sh                          # 2048 and 4096 MiB, 3 runs each
#   BENCH_SIZES_MIB="512" BENCH_RUNS=1 bench/instant-restore.sh
#
# A clone of the harness's tiny guest (kernel and initramfs from files, qemu-guest-agent) gets a
# data disk vda of the size measured (bench/gen_image.py: ~40 % holes, ~25 % random, ~35 %
# text), is protected and backed up with `coffre` (local mode, a data folder of its own whose
# only fabric is the libvirt host). Then, per run and size:
#   instant  `coffre restore VM --point P --as-new-vm NAME --instant`: seconds until the new
#            domain runs (virsh domstate; and the job's own count from its start, without the
#            command's start-up), until its guest agent answers, and until the job ends (its
#            disks copied and pivoted to);
#   full     `coffre restore VM --point P --as-new-vm NAME` then `virsh start NAME`: seconds
#            until the domain runs, and until its guest agent answers.
# Prints each run, the medians and spreads, and the ratios instant / full.
#
# Environment: BENCH_SIZES_MIB ("2048 4096"), BENCH_RUNS (3), BENCH_DIR (/var/tmp/coffre-bench-instant),
# BENCH_SEED (20261205), COFFRE_BIN (a coffre built with --traits Libvirt; default: release build).
# Needs root and `scripts/libvirt-harness up` (run here when the harness is not up).
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
SIZES=${BENCH_SIZES_MIB:-2048 4096}
RUNS=${BENCH_RUNS:-3}
W=${BENCH_DIR:-/var/tmp/coffre-bench-instant}
SEED=${BENCH_SEED:-20261205}
URI=${COFFRE_LIBVIRT_URI:-qemu:///system}
PY=python3

log() { printf '%s [bench-instant] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
case "$W" in ""|/|/tmp|/tmp/|/var/tmp|/var/tmp/) log "refusing BENCH_DIR=$W"; exit 2 ;; esac
[[ $(id -u) == 0 ]] || { log "needs root (libvirt, qemu-nbd)"; exit 2; }
V() { virsh -q -c "$URI" "$@"; }
V domstate coffre-tiny >/dev/null 2>&1 || "$REPO_ROOT/scripts/libvirt-harness" up >&2
$PY -c 'import numpy' 2>/dev/null || $PY -m pip install -q numpy
if [[ -z "${COFFRE_BIN:-}" ]]; then
  log "building coffre (release, --traits Libvirt)"
  (cd "$REPO_ROOT" && swift build -c release --traits Libvirt --product coffre) >&2
  COFFRE_BIN="$(cd "$REPO_ROOT" && swift build -c release --traits Libvirt --product coffre --show-bin-path)/coffre"
fi
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
agent_answers() { V qemu-agent-command --timeout 2 "$1" '{"execute":"guest-ping"}' >/dev/null 2>&1; }
remove_domain() { V destroy "$1" >/dev/null 2>&1 || true; V undefine "$1" --nvram --checkpoints-metadata >/dev/null 2>&1 || true; }
bench_domains() { V list --all --name 2>/dev/null | grep '^coffre-bench-' || true; }
cleanup() { for d in $(bench_domains); do remove_domain "$d"; done; rm -rf "$W"; }
trap cleanup EXIT
cleanup
mkdir -p "$W"
RESULTS=$W/results.tsv
: >"$RESULTS"

# A clone of coffre-tiny: vda a qcow2 image of SIZE MiB made from gen_image.py, vdb a small ext4.
make_guest() { # NAME SIZE_MIB FOLDER
  local name=$1 size=$2 folder=$3
  mkdir -p "$folder"
  $PY "$SCRIPT_DIR/gen_image.py" create --size-mib "$size" --seed "$SEED" --out "$folder/vda.raw" >/dev/null
  qemu-img convert -q -f raw -O qcow2 "$folder/vda.raw" "$folder/vda.qcow2"; rm -f "$folder/vda.raw"
  truncate -s 64M "$folder/vdb.raw"; mkfs.ext4 -q -F "$folder/vdb.raw"
  qemu-img convert -q -f raw -O qcow2 "$folder/vdb.raw" "$folder/vdb.qcow2"; rm -f "$folder/vdb.raw"
  V dumpxml --inactive coffre-tiny >"$folder/tiny.xml"
  $PY - "$name" "$folder" "$folder/tiny.xml" >"$folder/domain.xml" <<'EDIT'
import re, sys
name, folder = sys.argv[1], sys.argv[2]
xml = open(sys.argv[3]).read()
xml = re.sub(r"<uuid>.*?</uuid>", "", xml)
xml = re.sub(r"<name>.*?</name>", f"<name>{name}</name>", xml, count=1)
xml = re.sub(r"<mac [^>]*/>", "", xml)
disks = re.findall(r"<disk .*?</disk>", xml, re.S)
for disk, target in zip(disks, ["vda", "vdb"]):
    xml = xml.replace(disk, f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                            f"<source file='{folder}/{target}.qcow2'/><target dev='{target}' bus='virtio'/></disk>")
xml = re.sub(r"<serial .*?</serial>", "", xml, flags=re.S)
xml = re.sub(r"<console .*?</console>", "", xml, flags=re.S)
xml = re.sub(r"path='[^']*/(qga\.sock)'", f"path='{folder}/\\1'", xml)
print(xml)
EDIT
  V define "$folder/domain.xml" >/dev/null
  V start "$name" >/dev/null
  for _ in $(seq 1 300); do agent_answers "$name" && return 0; sleep 0.2; done
  log "$name: the guest agent does not answer"; exit 1
}

for size in $SIZES; do
  data=$W/data-$size
  vm=coffre-bench-$size
  mkdir -p "$data"
  log "size $size MiB: making $vm"
  make_guest "$vm" "$size" "$W/vm-$size"
  cat >"$data/coffre.json" <<JSON
{"region": "local", "fabrics": [],
 "libvirtFabrics": [{"name": "kvm", "uri": "$URI", "scratchDirectory": "$W/scratch-$size", "restoreDirectory": "$W/restored-$size"}]}
JSON
  C() { "$COFFRE_BIN" "$@" --data "$data"; }
  C discover >/dev/null
  key=$(C vm list --json | $PY -c "
import json, sys
def find(o):
    if isinstance(o, dict):
        if o.get('name') == '$vm' and 'cloudService' in o: return o['cloudService'] + '/' + o['name']
        return next((k for k in map(find, o.values()) if k), None)
    if isinstance(o, list): return next((k for k in map(find, o) if k), None)
print(find(json.load(sys.stdin)))")
  C register "$key" >/dev/null
  C policy create bench --daily 23:00 --keep-days 7 >/dev/null
  C protect "$key" --policy bench >/dev/null
  t=$(now); C backup "$key" --no-progress >/dev/null
  log "size $size MiB: backed up in $(since "$t") s"
  point=$(C points "$key" --json | $PY -c "import json,sys; print(json.load(sys.stdin)['points'][-1]['point']['id'])")
  V destroy "$vm" >/dev/null  # the original is not running during the measurements

  for run in $(seq 1 "$RUNS"); do
    # Instant restore: running, agent, job done.
    name=coffre-bench-i$size-$run
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    t=$(now)
    C restore "$key" --point "$point" --as-new-vm "$name" --instant --no-progress >"$W/instant-$size-$run.log" 2>&1 &
    restorer=$!
    running=""; agent=""; done_s=""
    # The job may end (disks copied, pivoted) before the guest has booted: both are watched.
    while [[ -z "$agent" || -z "$done_s" ]]; do
      [[ -z "$running" && "$(V domstate "$name" 2>/dev/null)" == running ]] && running=$(since "$t")
      [[ -n "$running" && -z "$agent" ]] && agent_answers "$name" && agent=$(since "$t")
      if [[ -z "$done_s" ]] && ! kill -0 "$restorer" 2>/dev/null; then
        wait "$restorer" || { log "instant restore FAILED"; cat "$W/instant-$size-$run.log" >&2; exit 1; }
        done_s=$(since "$t")
      fi
      awk -v s="$(since "$t")" 'BEGIN { exit !(s > 600) }' && { log "no running guest after 600 s"; exit 1; }
      sleep 0.05
    done
    # The job's own measure, from its start to the running domain (without the command's start-up).
    in_job=$(sed -n 's/.*runningAfterSeconds=\([0-9.]*\).*/\1/p' "$W/instant-$size-$run.log" | tail -1)
    printf '%s\t%s\tinstant\t%s\t%s\t%s\t%s\n' "$size" "$run" "$running" "$agent" "$done_s" "$in_job" >>"$RESULTS"
    log "size $size run $run instant: running ${running}s (${in_job}s from the job's start), agent ${agent}s, copied and pivoted ${done_s}s"
    remove_domain "$name"; rm -rf "$W/restored-$size/$name"

    # Full restore, then boot.
    name=coffre-bench-f$size-$run
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    t=$(now)
    C restore "$key" --point "$point" --as-new-vm "$name" --no-progress >"$W/full-$size-$run.log" 2>&1 \
      || { log "full restore FAILED"; cat "$W/full-$size-$run.log" >&2; exit 1; }
    restored=$(since "$t")
    V start "$name" >/dev/null
    running=$(since "$t")
    until agent_answers "$name"; do sleep 0.05; done
    agent=$(since "$t")
    printf '%s\t%s\tfull\t%s\t%s\t%s\t-\n' "$size" "$run" "$running" "$agent" "$restored" >>"$RESULTS"
    log "size $size run $run full: restored ${restored}s, running ${running}s, agent ${agent}s"
    remove_domain "$name"; rm -rf "$W/restored-$size/$name"
  done
  remove_domain "$vm"
done

$PY - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
sizes = sorted({int(r[0]) for r in rows})
def series(size, kind, column):
    return [float(r[column]) for r in rows if int(r[0]) == size and r[2] == kind]
def fmt(values):
    return f"{statistics.median(values):6.2f} s ({min(values):.2f}–{max(values):.2f})"
print("\nsize      | instant: running     | (in the job)         | instant: agent       | instant: copied      | full: running        | full: agent          | running inst/full | agent inst/full")
for size in sizes:
    ir, ij, ia, idone = (series(size, "instant", c) for c in (3, 6, 4, 5))
    fr, fa = series(size, "full", 3), series(size, "full", 4)
    print(f"{size:5d} MiB | {fmt(ir)} | {fmt(ij)} | {fmt(ia)} | {fmt(idone)} | {fmt(fr)} | {fmt(fa)} |"
          f" {statistics.median(ir) / statistics.median(fr):17.3f} | {statistics.median(ia) / statistics.median(fa):15.3f}")
if len(sizes) > 1:
    small, large = sizes[0], sizes[-1]
    print(f"\ninstant time to running, {large} MiB / {small} MiB: "
          f"{statistics.median(series(large, 'instant', 3)) / statistics.median(series(small, 'instant', 3)):.2f}"
          f" (full restore then boot: {statistics.median(series(large, 'full', 3)) / statistics.median(series(small, 'full', 3)):.2f})")
PY
