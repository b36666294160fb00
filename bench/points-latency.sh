#!/usr/bin/env bash
# How long `GET /api/v1/vms/VM/points` takes on a VM with many points (decision 0015).
#
# Until issue 13 every points request walked every index of the vault to account blocks (K2);
# now the vault keeps that accounting up to date and a request reads it. The first request of
# a server walks once (what every request cost before); the later ones read the ledger. This
# script backs up one VM POINTS times (a little of its disk changed each time), starts
# `coffre serve`, and times the first and the following requests.
#
#   bench/points-latency.sh                     # 1 GiB disk, 20 points, release build
#   BENCH_SIZE_MIB=256 BENCH_POINTS=10 bench/points-latency.sh
#
# Environment: BENCH_SIZE_MIB (disk size, default 1024), BENCH_POINTS (default 20),
# BENCH_REQUESTS (timed requests after the first, default 20), BENCH_DIR (default
# /tmp/coffre-points-bench), COFFRE_BIN (a coffre binary; default: build release).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
POINTS=${BENCH_POINTS:-20}
REQUESTS=${BENCH_REQUESTS:-20}
W=${BENCH_DIR:-/tmp/coffre-points-bench}
if [[ -z "${COFFRE_BIN:-}" ]]; then
  (cd "$REPO" && swift build -c release --product coffre >&2 && swift build -c release --product coffre-agent >&2)
  COFFRE_BIN=$REPO/.build/release/coffre
fi
rm -rf "$W"
export COFFRE_DATA=$W/data
vm=$COFFRE_DATA/fabric/prod/big
mkdir -p "$vm"
python3 - "$vm/os.img" "$SIZE_MIB" <<'EOF'
import os, random, sys
path, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(13)
with open(path, "wb") as f:
    for _ in range(mib):
        f.write(rng.randbytes(1 << 20))
EOF
definition() { printf '{"name": "big", "region": "local", "powerState": "%s", "agentVersion": "2.1", "disks": ["os.img"]}\n' "$1" > "$vm/vm.json"; }
definition running  # registration wants a running VM (it installs the extension)
"$COFFRE_BIN" discover > /dev/null
"$COFFRE_BIN" register big > /dev/null
"$COFFRE_BIN" policy create bench --daily 22:00 --keep-days 30 > /dev/null
"$COFFRE_BIN" protect big --policy bench > /dev/null
definition stopped  # then its disk is read in place: no snapshot copy per point
for n in $(seq 1 "$POINTS"); do
  # 1 % of the disk rewritten between points.
  python3 - "$vm/os.img" "$SIZE_MIB" "$n" <<'EOF'
import random, sys
path, mib, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(n)
with open(path, "r+b") as f:
    for _ in range(max(1, mib * 16 // 100)):
        f.seek(rng.randrange(mib * 16) * 65536)
        f.write(rng.randbytes(65536))
EOF
  "$COFFRE_BIN" backup big --no-progress > /dev/null
done

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$COFFRE_BIN" serve --port "$port" > "$W/serve.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/healthz" > /dev/null 2>&1 && break; sleep 0.1; done
token=$(cat "$COFFRE_DATA/admin-token")
get() { curl -fsS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/vms/prod%2Fbig/points"; }
first=$(get)
: > "$W/later.txt"
for _ in $(seq 1 "$REQUESTS"); do get >> "$W/later.txt"; done
python3 - "$first" "$W/later.txt" "$POINTS" "$SIZE_MIB" <<'EOF'
import statistics, sys
first = float(sys.argv[1]) * 1000
later = sorted(float(line) * 1000 for line in open(sys.argv[2]) if line.strip())
median = statistics.median(later)
print(f"{sys.argv[3]} points of a {sys.argv[4]} MiB disk")
print(f"first request (walks every index once, as every request did before): {first:.1f} ms")
print(f"later requests (read the kept accounting): median {median:.1f} ms, min {later[0]:.1f}, max {later[-1]:.1f} (n={len(later)})")
print(f"ratio first/median: {first / median:.1f}x")
EOF
