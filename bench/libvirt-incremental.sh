#!/usr/bin/env bash
# Issue 6's benchmark: a libvirt guest with a 2 GiB data-filled disk, backed up in full
# through the `coffre` CLI (libvirt fabric, pull mode over NBD), then changed by 1 % inside the
# guest and backed up again (incremental from the checkpoint's dirty bitmap). Prints both
# backups' job time and bytes read, and the ratios. Goal: incremental time ≤ 5 % of the full.
#
#   bench/libvirt-incremental.sh
#   BENCH_DISK_MIB=1024 BENCH_CHANGE_MIB=10 bench/libvirt-incremental.sh
#
# Environment: BENCH_DISK_MIB (2048), BENCH_CHANGE_MIB (1 % of the disk), BENCH_DIR
# (/var/tmp/coffre-bench-libvirt), COFFRE_BIN (a coffre built with --traits Libvirt),
# BENCH_AGENT (coffre-agent: pushed at registration, the default; qga: the guest is frozen
# through qemu-guest-agent alone).
# Needs root; brings the libvirt harness up (scripts/libvirt-harness) and leaves it up.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DISK_MIB=${BENCH_DISK_MIB:-2048}
CHANGE_MIB=${BENCH_CHANGE_MIB:-$((DISK_MIB / 100))}
W=${BENCH_DIR:-/var/tmp/coffre-bench-libvirt}
DOM=coffre-bench
URI=qemu:///system
V() { virsh -q -c "$URI" "$@"; }

"$REPO/scripts/setup"
"$REPO/scripts/libvirt-harness" up >&2
eval "$("$REPO/scripts/libvirt-harness" env)"
"$REPO/scripts/build-agent" > /dev/null
if [[ -z "${COFFRE_BIN:-}" ]]; then
  (cd "$REPO" && swift build -c release --traits Libvirt --product coffre >&2)
  COFFRE_BIN="$REPO/.build/release/coffre"
fi

# A guest of its own: the harness's tiny guest with a DISK_MIB vda full of random data.
if V dominfo "$DOM" > /dev/null 2>&1; then V destroy "$DOM" > /dev/null 2>&1 || true; V undefine "$DOM" --checkpoints-metadata > /dev/null; fi
rm -rf "$W"; mkdir -p "$W/vm"
head -c "$((DISK_MIB << 20))" /dev/urandom > "$W/vm/vda.raw"
qemu-img convert -O qcow2 "$W/vm/vda.raw" "$W/vm/vda.qcow2"; rm "$W/vm/vda.raw"
truncate -s 64M "$W/vm/vdb.raw"; mkfs.ext4 -q -F "$W/vm/vdb.raw"
qemu-img convert -O qcow2 "$W/vm/vdb.raw" "$W/vm/vdb.qcow2"; rm "$W/vm/vdb.raw"
sed -e "s#<name>coffre-tiny</name>#<name>$DOM</name>#" -e '/<uuid>/d' \
    -e "s#$COFFRE_HV/vm/coffre-tiny/vda.qcow2#$W/vm/vda.qcow2#" -e "s#$COFFRE_HV/vm/coffre-tiny/vdb.qcow2#$W/vm/vdb.qcow2#" \
    -e "s#$COFFRE_HV/vm/coffre-tiny/#$W/vm/#g" "$COFFRE_HV/vm/coffre-tiny.xml" > "$W/dom.xml"
V define "$W/dom.xml" > /dev/null
V start "$DOM" > /dev/null
for _ in $(seq 1 300); do V qemu-agent-command "$DOM" '{"execute":"guest-ping"}' > /dev/null 2>&1 && break; sleep 0.2; done
guest() { /usr/bin/python3 "$REPO/scripts/libvirt-guest-shell.py" exec --domain "$DOM" "$1"; }

# Coffre on a data folder whose only fabric is this libvirt host.
export COFFRE_DATA="$W/data"
mkdir -p "$COFFRE_DATA"
agent=", \"agentBinary\": \"$REPO/.build-static/release/coffre-agent\""
[[ "${BENCH_AGENT:-coffre-agent}" == qga ]] && agent=""
echo "{\"fabrics\": [], \"libvirtFabrics\": [{\"name\": \"kvm\", \"uri\": \"$URI\"$agent}]}" > "$COFFRE_DATA/coffre.json"
coffre() { "$COFFRE_BIN" "$@"; }
coffre discover > /dev/null
coffre register "$DOM" > /dev/null
coffre policy create nightly --daily 22:00 --keep-days 7 > /dev/null
coffre protect "$DOM" --policy nightly > /dev/null

# Prints "seconds bytesRead jobID" of a backup: wall time of the whole `coffre backup` command
# (guest prepare, snapshot, transfer, commit; the CLI's start included).
backup() {
  local t0 t1 out
  t0=$(date +%s.%N)
  out=$(coffre backup "$DOM" --json --no-progress)
  t1=$(date +%s.%N)
  /usr/bin/python3 -c 'import json, sys; job = json.loads(sys.argv[3]); print(float(sys.argv[2]) - float(sys.argv[1]), job["details"]["bytesRead"], job["id"])' "$t0" "$t1" "$out"
}
read -r full_s full_read full_job <<< "$(backup)"
# 1 % of the disk rewritten with fresh random data, in 1 MiB pieces spread over the disk.
guest "i=0; while [ \$i -lt $CHANGE_MIB ]; do dd if=/dev/urandom of=/dev/vda bs=1M count=1 seek=\$(( i * $DISK_MIB / $CHANGE_MIB )) conv=notrunc 2>/dev/null; i=\$((i+1)); done; sync" > /dev/null
read -r inc_s inc_read inc_job <<< "$(backup)"
coffre job show "$full_job" >&2
coffre job show "$inc_job" >&2

/usr/bin/python3 - "$DISK_MIB" "$CHANGE_MIB" "$full_s" "$full_read" "$inc_s" "$inc_read" "${BENCH_AGENT:-coffre-agent}" <<'PY'
import sys
disk, change, fs, fr, is_, ir = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
print(f"libvirt guest (TCG), {disk} MiB disk, {change} MiB changed in the guest, guest prepared by {sys.argv[7]}")
print(f"{'backup':<12}{'wall time':>10}{'bytes read':>16}")
print(f"{'full':<12}{fs:>9.2f}s{fr:>16,}")
print(f"{'incremental':<12}{is_:>9.2f}s{ir:>16,}")
print(f"incremental/full: time {is_ / fs:.3f} (goal <= 0.05), bytes read {ir / fr:.4f}")
PY
V destroy "$DOM" > /dev/null; V undefine "$DOM" --checkpoints-metadata > /dev/null
rm -rf "$W"
