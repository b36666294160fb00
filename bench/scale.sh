#!/usr/bin/env bash
# Collection, repacking and dedup lookups at scale: a vault of at least 1 M chunks.
#
#   bench/scale.sh                     # ~1.05 M chunks (16 KiB blocks), measured at half and full size
#   SCALE_ROUNDS=8 bench/scale.sh      # a quick run (~0.3 M chunks)
#
# The chunks are cheap to make: a 1 GiB image of 16 KiB blocks, each block a 16-byte
# (block, round) header and zeros — unique, and compressible to a few dozen bytes. Each round
# rewrites the header of half the blocks and backs the image up: 65,536 + 32,768 new chunks per
# round after the first. At half the rounds and at the end it measures (GNU time: wall, CPU,
# peak RSS):
#   gc        a collection with nothing to free (mark every point, list and weigh every pack)
#   lookups   a backup of the same image as another item (no base point: every block is
#             looked up in the chunk index, none is stored)
# At the end it expires points until at least 10 % of the stored bytes are unused, then:
#   repack    `vault gc --max-unused 0`: every partly used pack repacked, the rest deleted
# Results: $BENCH_DIR/scale.md (default /tmp/coffre-scale).
#
# Environment: SCALE_ROUNDS (default 31), SCALE_BLOCKS (default 65536), COFFRE_BIN (else a
# release build), BENCH_DIR, BENCH_KEEP=1 to keep the vault.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
ROUNDS=${SCALE_ROUNDS:-31}
BLOCKS=${SCALE_BLOCKS:-65536}
W=${BENCH_DIR:-/tmp/coffre-scale}
log() { printf '%s [scale] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

case "$W" in ""|/|/tmp|/tmp/|/root|/home|"$HOME") log "refusing BENCH_DIR=$W"; exit 2 ;; esac
if [[ -e "$W" && ! -f "$W/.coffre-scale" && -n "$(ls -A "$W")" ]]; then log "$W is not a scale benchmark dir"; exit 2; fi
rm -rf "$W" && mkdir -p "$W/logs" && touch "$W/.coffre-scale"
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
if [[ -z "${COFFRE_BIN:-}" ]]; then
  log "building coffre (release)"
  (cd "$REPO_ROOT" && swift build -c release --product coffre) >&2
  COFFRE_BIN="$(cd "$REPO_ROOT" && swift build -c release --product coffre --show-bin-path)/coffre"
fi
trap '[[ "${BENCH_KEEP:-0}" == 1 ]] || rm -rf "$W/vault" "$W/disk.img"' EXIT

V="$W/vault" IMG="$W/disk.img"
"$COFFRE_BIN" vault create "$V" --block-size 16KiB >/dev/null

# Writes the (block, round) header of the blocks that change in `round` (all of them in round 0).
mutate() {
  python3 - "$IMG" "$BLOCKS" "$1" <<'PY'
import struct, sys
path, blocks, rnd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b" if rnd else "wb") as f:
    if rnd == 0:
        f.truncate(blocks * 16384)
    for i in range(blocks):
        if rnd == 0 or (i * 2654435761 + rnd * 40503) % 1000 < 500:
            f.seek(i * 16384)
            f.write(struct.pack("<QQ", i + 1, rnd + 1))
PY
}

stat_json() { "$COFFRE_BIN" vault stats --vault "$V" --json; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

ROWS="$W/rows.tsv"
: >"$ROWS"
# measure NAME CHUNKS -- command...: one row of wall, user, sys, peak RSS.
measure() {
  local name=$1 chunks=$2; shift 3
  /usr/bin/time -f '%e %U %S %M' -o "$W/logs/$name.time" "$@" >"$W/logs/$name.out" 2>"$W/logs/$name.err" \
    || { log "$name failed: $(tail -3 "$W/logs/$name.err")"; exit 1; }
  read -r wall user sys rss <"$W/logs/$name.time"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$chunks" "$wall" "$user" "$sys" "$((rss / 1024))" >>"$ROWS"
  log "$name at $chunks chunks: ${wall}s wall, ${user}s user, ${sys}s sys, $((rss / 1024)) MiB"
}

checkpoint() {
  local chunks
  chunks=$(stat_json | field '["storedChunks"]')
  measure "gc-$1" "$chunks" -- "$COFFRE_BIN" vault gc --vault "$V" --json
  measure "lookups-$1" "$chunks" -- "$COFFRE_BIN" image backup --vault "$V" --item "other-$1" --no-progress "$IMG"
  local added
  added=$(grep -o 'rp-[0-9T]*-[0-9a-f]*' "$W/logs/lookups-$1.out" | head -1)
  "$COFFRE_BIN" image expire --vault "$V" --point "$added" --no-gc >/dev/null
}

start=$(date +%s)
for ((r = 0; r < ROUNDS; r++)); do
  mutate "$r"
  "$COFFRE_BIN" image backup --vault "$V" --item vm --no-progress "$IMG" >>"$W/logs/points.txt"
  (( r % 5 == 0 )) && log "round $r/$ROUNDS: $(stat_json | field '["storedChunks"]') chunks"
  if (( r == ROUNDS / 2 )); then checkpoint half; fi
done
log "filled in $(( $(date +%s) - start )) s"
checkpoint full

# Expire points from the middle until at least 10 % of the stored bytes are unused.
mapfile -t points <"$W/logs/points.txt"
expired=0
for ((i = 1; i < ${#points[@]} - 1; i += 2)); do
  "$COFFRE_BIN" image expire --vault "$V" --point "${points[$i]}" --no-gc >/dev/null
  expired=$((expired + 1))
  share=$(stat_json | field '["unusedShare"]')
  python3 -c "import sys; sys.exit(0 if $share >= 0.10 else 1)" && break
done
before=$(stat_json)
chunks=$(echo "$before" | field '["storedChunks"]')
measure repack "$chunks" -- "$COFFRE_BIN" vault gc --vault "$V" --max-unused 0 --json
after=$(stat_json)
"$COFFRE_BIN" vault verify --vault "$V" --percent 5 --json >"$W/logs/verify.json" || { log "verify failed"; exit 1; }

python3 - "$ROWS" "$W/logs/repack.out" "$expired" "$before" "$after" >"$W/scale.md" <<'PY'
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
repack = json.load(open(sys.argv[2]))
expired, before, after = int(sys.argv[3]), json.loads(sys.argv[4]), json.loads(sys.argv[5])
print("| run | chunks in vault | wall s | user s | sys s | peak RSS MiB |")
print("|---|---:|---:|---:|---:|---:|")
for name, chunks, wall, user, sys_, rss in rows:
    print(f"| {name} | {int(chunks):,} | {wall} | {user} | {sys_} | {rss} |")
print()
print(f"repack: {expired} points expired, unused {before['unusedShare']*100:.1f} % of "
      f"{before['packBytes']/2**20:.1f} MiB in {before['packs']} packs before; "
      f"{repack['packsRepacked']} packs repacked ({repack['bytesRewritten']/2**20:.1f} MiB rewritten), "
      f"{repack['packsDeleted']} deleted ({repack['packBytesDeleted']/2**20:.1f} MiB), "
      f"{repack['removedChunks']:,} chunks freed; after: {after['packs']} packs, "
      f"{after['packBytes']/2**20:.1f} MiB, unused {after['unusedShare']*100:.2f} %, "
      f"{after['indexSegments']} index segments")
def row(n): return next(r for r in rows if r[0] == n)
for kind in ("gc", "lookups"):
    h, f = row(f"{kind}-half"), row(f"{kind}-full")
    g = float(f[2]) / float(h[2]); c = int(f[1]) / int(h[1])
    print(f"{kind}: x{c:.2f} chunks -> x{g:.2f} wall, RSS {h[5]} -> {f[5]} MiB")
PY
cat "$W/scale.md"
