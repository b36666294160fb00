#!/usr/bin/env bash
# Seed 004's churn table (SPEC K6), scaled down: three VMs with four data disks each and the
# same total churn, placed differently —
#   VM1: all of it on one disk (A1)
#   VM2: spread evenly over the four disks (B1..B4)
#   VM3: on two disks (C1, C4)
# Each round rewrites the churn with fresh random data, then backs up each VM (incremental)
# through the `coffre` CLI on the local fabric and times it. Prints medians and ratios.
#
#   bench/churn.sh                       # 4 × 128 MiB data disks per VM, 3 rounds
#   CHURN_DISK_MIB=64 CHURN_ROUNDS=5 bench/churn.sh
#
# Environment: CHURN_DISK_MIB (default 128), CHURN_ROUNDS (3), CHURN_DIR (/tmp/coffre-churn),
# COFFRE_BIN (use this binary instead of a release build), COFFRE_WORKERS (passed through).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DISK_MIB=${CHURN_DISK_MIB:-128}
ROUNDS=${CHURN_ROUNDS:-3}
W=${CHURN_DIR:-/tmp/coffre-churn}
if [[ -z "${COFFRE_BIN:-}" ]]; then
  "$REPO/scripts/setup"
  (cd "$REPO" && swift build -c release --product coffre >&2 && swift build -c release --product coffre-agent >&2)
  COFFRE_BIN="$REPO/.build/release/coffre"
fi
rm -rf "$W"; mkdir -p "$W"
export COFFRE_DATA="$W/data"
coffre() { "$COFFRE_BIN" "$@"; }

# Fills MiB [from, from+count) of a disk file with random bytes.
fill() { dd if=/dev/urandom of="$1" bs=1M seek="$2" count="$3" conv=notrunc status=none; }

make_vm() {  # name
  local d="$COFFRE_DATA/fabric/bench/$1"
  mkdir -p "$d"
  truncate -s 16M "$d/os.img"
  for n in 1 2 3 4; do truncate -s "${DISK_MIB}M" "$d/data$n.img"; fill "$d/data$n.img" 0 "$DISK_MIB"; done
  printf '{"name":"%s","powerState":"running","agentVersion":"2.0","disks":["os.img","data1.img","data2.img","data3.img","data4.img"]}\n' "$1" > "$d/vm.json"
}

set_power() {  # name state
  sed -i "s/\"powerState\":\"[a-z]*\"/\"powerState\":\"$2\"/" "$COFFRE_DATA/fabric/bench/$1/vm.json"
}

churn() {  # round
  local q=$((DISK_MIB / 4)) h=$((DISK_MIB / 2)) d="$COFFRE_DATA/fabric/bench"
  fill "$d/VM1/data1.img" 0 "$DISK_MIB"
  for n in 1 2 3 4; do fill "$d/VM2/data$n.img" 0 "$q"; done
  fill "$d/VM3/data1.img" 0 "$h"; fill "$d/VM3/data4.img" 0 "$h"
}

echo "creating 3 VMs × 4 data disks × $DISK_MIB MiB in $W" >&2
for vm in VM1 VM2 VM3; do make_vm $vm; done
coffre discover >/dev/null
coffre register VM1 VM2 VM3 >/dev/null
coffre policy create bench --daily 23:00 --keep-days 30 >/dev/null
coffre protect VM1 VM2 VM3 --policy bench >/dev/null
# Stopped VMs are read in place: the timing is the backup's, not the snapshot copy's.
for vm in VM1 VM2 VM3; do set_power $vm stopped; coffre backup $vm --no-progress >/dev/null; done

declare -A times
for round in $(seq 1 "$ROUNDS"); do
  churn "$round"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  # Rotate the order so that no VM always runs on a warmer machine.
  order=(VM1 VM2 VM3); order=("${order[@]:$((round % 3))}" "${order[@]:0:$((round % 3))}")
  for vm in "${order[@]}"; do
    start=$(date +%s.%N)
    coffre backup $vm --no-progress >/dev/null
    end=$(date +%s.%N)
    times[$vm]+="$(awk "BEGIN {print $end - $start}") "
  done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m1=$(echo "${times[VM1]}" | median); m2=$(echo "${times[VM2]}" | median); m3=$(echo "${times[VM3]}" | median)
churn_mib=$DISK_MIB
printf '\nchurn %d MiB per VM per round, %d rounds, %d workers\n' "$churn_mib" "$ROUNDS" "${COFFRE_WORKERS:-$(nproc)}"
printf '%-4s %-28s %10s %s\n' VM "churn placement" "median s" "all rounds"
printf '%-4s %-28s %10.2f %s\n' VM1 "1 disk (A1)" "$m1" "${times[VM1]}"
printf '%-4s %-28s %10.2f %s\n' VM2 "4 disks (B1-B4)" "$m2" "${times[VM2]}"
printf '%-4s %-28s %10.2f %s\n' VM3 "2 disks (C1, C4)" "$m3" "${times[VM3]}"
awk -v a="$m1" -v b="$m2" -v c="$m3" 'BEGIN {printf "ratios: VM2/VM1 %.2f  VM3/VM1 %.2f  VM2/VM3 %.2f\n", b / a, c / a, b / c}'
