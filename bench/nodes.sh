#!/usr/bin/env bash
# Backups across 1, 2 and 3 `coffre serve` nodes sharing one PostgreSQL catalog and one vault
# (issue 17): does a second and a third node back up more VMs per minute?
#
#   bench/nodes.sh                          # 200 VMs; 1, 2, 3 nodes; each twice
#   BENCH_VMS=40 BENCH_REPEAT=1 bench/nodes.sh   # quick run
#
# Per run (one node count, one repeat): a fresh data folder with BENCH_VMS small VMs on the
# local fabric (a 1 MiB os.img holding BENCH_VM_KIB KiB of random data, distinct per VM), a
# fresh database in a throw-away PostgreSQL cluster (scripts/pg-harness, started once), N
# nodes on that folder and that database, each running at most BENCH_PER_NODE backups at once
# (coffre.json's maxConcurrentBackups; heartbeat 1 s, lease 4 s, tick 1 s). Through node 1,
# not timed: discover, register every VM, one daily policy 12 hours away, protect every VM.
# Timed: the policy's slot moved (PUT /api/v1/policies/nightly) to the next minute at least
# 15 s away; at the slot the leader queues one scheduled backup per VM in one pass, and every
# node's runner claims them: the queue is full before the nodes start, so nothing waits on the
# benchmark's own requests. Then the wait until none is Queued or InProgress. Every VM must
# have exactly one backup, succeeded (no duplicate, none missing). From the jobs in the catalog:
#   backups/min     jobs / (last endedAt - first startedAt) x 60
#   queue pass      the leader's pass that queued them: last startedAt - first startedAt
#   claim latency   how soon a node fills a place that frees: from the end of one of its
#                   backups to its next claim (details.claimedAt, ISO 8601 to the millisecond),
#                   p50/p95 in ms, over the claims after each node's first BENCH_PER_NODE
#   queue wait      from queued (startedAt) to claimed, p50/p95 in s: what the queue's depth costs
#   per node        backups each node ran (the job's owner, host:pid:start, matched by pid)
#   busy            the machine's busy share (/proc/stat, sampled every 0.2 s) while they ran
#   CPU ms/backup   CPU time of the nodes and of PostgreSQL over the timed part, per backup
# Runs go repeat by repeat (1 2 3 nodes, then 1 2 3 again), so a drift of the machine's load
# lands on every node count. Each node count is reported as the mean of its runs and their
# spread (min-max), with its ratio to the smallest node count (2 nodes / 1 node, ...).
# Results: $BENCH_DIR/results.md (printed at the end) and $BENCH_DIR/results.json; per run,
# $BENCH_DIR/runs/nN-rR/ keeps the nodes' logs, the job ids and the jobs as the catalog has them.
#
# Environment:
#   BENCH_NODES       node counts to run, default "1 2 3" (ratios are to the smallest)
#   BENCH_REPEAT      runs per node count (default 2)
#   BENCH_VMS         VMs (default 200)
#   BENCH_VM_KIB      random data per VM in KiB (default 256), at the start of a 1 MiB os.img
#   BENCH_PER_NODE    maxConcurrentBackups of each node (default 4)
#   BENCH_TIMEOUT     seconds to wait for the backups of one run to end (default 1800)
#   BENCH_DIR         work dir (default /tmp/coffre-bench-nodes)
#   BENCH_PG_DIR      the PostgreSQL cluster's folder (default $BENCH_DIR/pg; its parents must
#                     be reachable by the `postgres` user). Removed at the start and the end; not
#                     scripts/pg-harness's default, so that a cluster the tests use is left alone.
#   BENCH_VAULT       s3://BUCKET/PREFIX: the nodes share this S3 vault (serve --vault), one
#                     fresh prefix per run under it (created with --create-bucket, not removed
#                     afterwards); the endpoint and keys come from AWS_ENDPOINT_URL,
#                     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Default: the data folder's
#                     own vault, a local folder every node shares.
#   BENCH_KEEP=1      keep the data folders (VMs and vaults) of every run
#   COFFRE_BIN        use this coffre binary instead of building one (release)
#
# Needs root (scripts/pg-harness runs PostgreSQL as the `postgres` user), curl, python3.
#
# Exit status: 0 when every backup succeeded; 1 when a backup failed, did not end within
# BENCH_TIMEOUT or a node died (correctness); 2 when the benchmark itself could not run.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

NODE_COUNTS=${BENCH_NODES:-1 2 3}
REPEAT=${BENCH_REPEAT:-2}
VMS=${BENCH_VMS:-200}
VM_KIB=${BENCH_VM_KIB:-256}
PER_NODE=${BENCH_PER_NODE:-4}
TIMEOUT=${BENCH_TIMEOUT:-1800}
W=${BENCH_DIR:-/tmp/coffre-bench-nodes}
VAULT_BASE=${BENCH_VAULT:-}
PSQL=/usr/lib/postgresql/15/bin/psql

log() { printf '%s [bench-nodes] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 2; }
fail() { log "FAILED: $*"; exit 1; }

# ---------------------------------------------------------------- arguments
NODE_COUNTS=$(echo $NODE_COUNTS)
for n in $NODE_COUNTS; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_NODES=$NODE_COUNTS: whole numbers from 1"; done
[[ -n $NODE_COUNTS ]] || die "BENCH_NODES is empty"
for v in REPEAT VMS VM_KIB PER_NODE TIMEOUT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v}: a whole number from 1"
done
[[ -z $VAULT_BASE || $VAULT_BASE == s3://* ]] || die "BENCH_VAULT=$VAULT_BASE: s3://BUCKET/PREFIX or nothing"
IMG_KIB=$(( VM_KIB > 1024 ? VM_KIB : 1024 )) # os.img is 1 MiB, or the data if larger

# ---------------------------------------------------------------- work dir
case "$W" in
  ""|/|/tmp|/tmp/|/root|/home|"$HOME") die "refusing to use BENCH_DIR=$W" ;;
esac
W=$(realpath -m "$W")
export COFFRE_PG_DIR=${BENCH_PG_DIR:-$W/pg}
case "$COFFRE_PG_DIR" in
  ""|/|/tmp|/tmp/|/root|/home|"$HOME") die "refusing to use BENCH_PG_DIR=$COFFRE_PG_DIR" ;;
esac
PG_HARNESS=$REPO_ROOT/scripts/pg-harness
if [[ -e "$W" ]]; then
  [[ -f "$W/.coffre-bench-nodes" || -z "$(ls -A "$W")" ]] \
    || die "$W exists and is not a previous nodes benchmark dir (no .coffre-bench-nodes marker)"
  if [[ -f "$COFFRE_PG_DIR/env" ]]; then "$PG_HARNESS" down >/dev/null 2>&1 || true; fi # left by a killed run
  rm -rf "$W"
fi
mkdir -p "$W/runs"
touch "$W/.coffre-bench-nodes"
RUNS_JSONL=$W/runs.jsonl
: >"$RUNS_JSONL"

NODE_PIDS=() NODE_URLS=()
# Stops the nodes of the current run: SIGTERM to all, then up to 60 s for them to exit.
stop_nodes() {
  ((${#NODE_PIDS[@]})) || return 0
  local pid t rc
  for pid in "${NODE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for ((t = 0; t < 600; t++)); do
    rc=0
    for pid in "${NODE_PIDS[@]}"; do if kill -0 "$pid" 2>/dev/null; then rc=1; fi; done
    ((rc)) || break
    sleep 0.1
  done
  for pid in "${NODE_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then log "node pid $pid still runs 60 s after SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    rc=0; wait "$pid" 2>/dev/null || rc=$?
    ((rc == 0)) || log "warning: node pid $pid exited with status $rc"
  done
  NODE_PIDS=() NODE_URLS=()
}

cleanup() {
  local rc=$?
  stop_nodes
  "$PG_HARNESS" down >/dev/null 2>&1 || true
  if [[ "${BENCH_KEEP:-0}" != 1 ]]; then
    rm -rf "$W"/runs/*/data # keep logs, job ids and jobs
  else
    log "BENCH_KEEP=1: leaving the data folders in $W/runs"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg) # before this script does any work of its own

# ---------------------------------------------------------------- prerequisites
[[ $(id -u) -eq 0 ]] || die "run as root: scripts/pg-harness starts PostgreSQL as the postgres user"
command -v curl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
command -v python3 >/dev/null || die "python3 is needed"

# ---------------------------------------------------------------- coffre binary
if [[ -n "${COFFRE_BIN:-}" ]]; then
  [[ -x "$COFFRE_BIN" ]] || die "COFFRE_BIN=$COFFRE_BIN is not executable"
else
  log "building coffre (release) in $REPO_ROOT"
  (cd "$REPO_ROOT" && swift build -c release --product coffre) >&2
  COFFRE_BIN="$(cd "$REPO_ROOT" && swift build -c release --product coffre --show-bin-path)/coffre"
fi
COFFRE_BIN=$(realpath "$COFFRE_BIN")

# ---------------------------------------------------------------- PostgreSQL
log "starting PostgreSQL in $COFFRE_PG_DIR"
"$PG_HARNESS" down >/dev/null 2>&1 || true # a cluster left by a killed run: its databases would clash
"$PG_HARNESS" up >&2 || die "scripts/pg-harness up failed"
# shellcheck disable=SC1091
. "$COFFRE_PG_DIR/env"
[[ -x $PSQL ]] || die "$PSQL is missing (postgresql-client-15)"
sql() { "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$DB_URL" -c "$1"; }

# ---------------------------------------------------------------- one run
# make_vms DATA: BENCH_VMS VMs of the local fabric, laid out as the tests' makeVM does.
make_vms() {
  local data=$1 i name folder
  for ((i = 0; i < VMS; i++)); do
    name=${VM_NAMES[$i]}
    folder=$data/fabric/prod/$name
    mkdir -p "$folder"
    head -c $((VM_KIB * 1024)) /dev/urandom >"$folder/os.img"
    truncate -s "${IMG_KIB}K" "$folder/os.img"
    printf '{"name":"%s","cloudService":"prod","region":"local","powerState":"running","agentVersion":"2.0","disks":["os.img"]}' \
      "$name" >"$folder/vm.json"
  done
}

# start_node I: one `coffre serve` on the run's data folder and database; waits for its
# "listens on" line.
start_node() {
  local i=$1 log_file=$RUN/logs/node$1.log pid url="" t
  COFFRE_CATALOG=$DB_URL "$COFFRE_BIN" serve --data "$DATA" --port 0 "${VAULT_ARGS[@]}" >"$log_file" 2>&1 &
  pid=$!
  NODE_PIDS+=("$pid")
  for ((t = 0; t < 1200; t++)); do
    url=$(grep -o 'listens on http://127\.0\.0\.1:[0-9]*' "$log_file" 2>/dev/null | head -n 1 | sed 's/^listens on //') || true
    [[ -n $url ]] && break
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log_file" >&2; die "node $i exited before listening"; }
    sleep 0.1
  done
  [[ -n $url ]] || { tail -n 20 "$log_file" >&2; die "node $i did not listen within 120 s"; }
  NODE_URLS+=("$url")
  log "node $i: pid $pid, $url"
}

# wait_alive N: until node 1's GET /api/v1/nodes lists N alive nodes.
wait_alive() {
  local want=$1 alive t
  for ((t = 0; t < 600; t++)); do
    alive=$(curl -sf -m 5 -H "Authorization: Bearer $TOKEN" "${NODE_URLS[0]}/api/v1/nodes" \
      | python3 -c 'import json, sys; print(sum(1 for n in json.load(sys.stdin) if n["alive"]))' 2>/dev/null) || alive=0
    ((alive >= want)) && return 0
    sleep 0.1
  done
  die "node 1 does not list $want alive nodes after 60 s (it lists $alive)"
}

# cpu_ticks PID…: user + system clock ticks the processes have used so far (0 for one gone).
cpu_ticks() {
  local pid sum=0 t
  for pid in "$@"; do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || t=0
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}
postgres_pids() { pgrep -u postgres -d ' ' . || true; }

# remote ARGS…: the CLI against node 1, as its first admin.
remote() { COFFRE_SERVER=${NODE_URLS[0]} COFFRE_TOKEN_FILE=$DATA/admin-token "$COFFRE_BIN" "$@"; }

# run_one N R: one run; appends its figures to runs.jsonl.
run_one() {
  local n=$1 r=$2 i
  RUN=$W/runs/n$n-r$r DATA=$W/runs/n$n-r$r/data
  mkdir -p "$RUN/logs" "$DATA"
  local db="bench_n${n}_r${r}"
  "$PG_HARNESS" createdb "$db" >/dev/null || die "createdb $db failed"
  DB_URL=${COFFRE_PG_URL%/*}/$db
  printf '{"maxConcurrentBackups": %d, "heartbeatSeconds": 1, "leaderLeaseSeconds": 4, "tickSeconds": 1}\n' "$PER_NODE" >"$DATA/coffre.json"
  VAULT_ARGS=()
  if [[ -n $VAULT_BASE ]]; then
    local vault="${VAULT_BASE%/}/nodes-n$n-r$r-$(date +%s)"
    "$COFFRE_BIN" vault create "$vault" --create-bucket >"$RUN/logs/vault-create.log" 2>&1 \
      || { tail -n 5 "$RUN/logs/vault-create.log" >&2; die "vault create $vault failed"; }
    VAULT_ARGS=(--vault "$vault")
  fi
  log "run n=$n r=$r: making $VMS VMs"
  make_vms "$DATA"

  for ((i = 1; i <= n; i++)); do start_node "$i"; done
  TOKEN=$(tr -d '[:space:]' <"$DATA/admin-token")
  wait_alive "$n"

  # Not timed: the VMs registered and protected, through node 1. The policy's daily slot is
  # 12 hours away, so the leader queues no scheduled backup during the run.
  log "run n=$n r=$r: discover, register, protect"
  local slot
  slot=$(date -u -d '+12 hours' +%H:%M)
  local setup_log=$RUN/logs/setup.log
  setup_failed() { tail -n 20 "$setup_log" >&2; die "$1 through node 1 failed ($setup_log)"; }
  remote discover >"$setup_log" 2>&1 || setup_failed discover
  remote register "${VM_NAMES[@]}" >>"$setup_log" 2>&1 || setup_failed register
  remote policy create nightly --daily "$slot" --keep-days 30 >>"$setup_log" 2>&1 || setup_failed "policy create"
  remote protect "${VM_NAMES[@]}" --policy nightly >>"$setup_log" 2>&1 || setup_failed protect

  # Timed: the slot moved to the next minute at least 15 s away; the leader queues every
  # backup at the slot, the nodes run them; until all are queued and none is queued or running.
  local now slot_epoch open queued
  now=$(date +%s)
  slot_epoch=$(( (now + 15 + 59) / 60 * 60 ))
  slot=$(date -u -d "@$slot_epoch" +%H:%M)
  curl -sf -m 30 -H "Authorization: Bearer $TOKEN" "${NODE_URLS[0]}/api/v1/policies/nightly" >"$RUN/policy.json" \
    || die "GET the policy through node 1 failed"
  python3 -c 'import json, sys
p = json.load(open(sys.argv[1]))["policy"]; p["schedule"]["time"] = sys.argv[2]; json.dump(p, open(sys.argv[1], "w"))' "$RUN/policy.json" "$slot"
  curl -sf -m 30 -X PUT -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -H "Origin: ${NODE_URLS[0]}" \
    --data-binary @"$RUN/policy.json" "${NODE_URLS[0]}/api/v1/policies/nightly" >/dev/null \
    || die "PUT the policy (slot $slot UTC) through node 1 failed"
  log "run n=$n r=$r: $VMS backups at the $slot UTC slot over $n node(s)"
  # Where the time goes: the machine's busy share sampled from /proc/stat every 0.2 s (the
  # report takes the samples around the backups' window), and the CPU ticks of the nodes and of
  # PostgreSQL over the whole timed part.
  ( while :; do printf '%s %s\n' "$(date +%s.%N)" "$(head -n 1 /proc/stat)"; sleep 0.2; done ) >"$RUN/cpu.txt" &
  local sampler=$! pg_pids
  pg_pids=$(postgres_pids)
  local node_ticks0 pg_ticks0
  node_ticks0=$(cpu_ticks "${NODE_PIDS[@]}")
  pg_ticks0=$(cpu_ticks $pg_pids)
  local deadline=$((SECONDS + (slot_epoch - now) + TIMEOUT)) last_log=$SECONDS pid
  while :; do
    IFS='|' read -r queued open < <(sql "SELECT count(*), count(*) FILTER (WHERE status IN ('Queued', 'InProgress')) FROM jobs WHERE type = 'Backup'")
    ((queued >= VMS && open == 0)) && break
    for pid in "${NODE_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || fail "node pid $pid died ($RUN/logs)"; done
    ((SECONDS < deadline)) || fail "$queued of $VMS backups queued, $open still queued or running after the timeout"
    if ((SECONDS - last_log >= 30)); then log "  $queued queued so far, $open queued or running"; last_log=$SECONDS; fi
    sleep 0.5
  done

  local node_ticks=$(($(cpu_ticks "${NODE_PIDS[@]}") - node_ticks0))
  # The PostgreSQL processes of the start and those started since, each once.
  local pg_ticks=$(($(cpu_ticks $(printf '%s\n' $pg_pids $(postgres_pids) | sort -u)) - pg_ticks0))
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  printf '%s %s\n' "$(date +%s.%N)" "$(head -n 1 /proc/stat)" >>"$RUN/cpu.txt" # one after the end
  sql "SELECT doc FROM jobs WHERE type = 'Backup' ORDER BY started_at, id" >"$RUN/jobs.jsonl"
  local pids=("${NODE_PIDS[@]}") rc=0
  stop_nodes
  python3 - "$RUN" "$n" "$r" "$VMS" "$PER_NODE" "$node_ticks" "$pg_ticks" "$(getconf CLK_TCK)" "${pids[@]}" \
    >>"$RUNS_JSONL" <<'PY' || rc=$?
import json, sys
from datetime import datetime

run, nodes, repeat, vms, per_place = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
node_ticks, pg_ticks, tck = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
pids = sys.argv[9:]
REF = 978307200.0  # 2001-01-01 in Unix time: the catalog's Dates are Swift's Double since 2001

mine = [json.loads(l) for l in open(f"{run}/jobs.jsonl") if l.strip()]
names = [j.get("vm") for j in mine]  # "cloudService/name"
twice = sorted({n for n in names if names.count(n) > 1})
if len(mine) != vms or twice:
    print(f"{len(mine)} backups for {vms} VMs; more than one for {twice[:5]}", file=sys.stderr)
    sys.exit(3)

def pct(values, p):  # nearest rank
    v = sorted(values)
    return v[max(0, min(len(v) - 1, -(-len(v) * p // 100) - 1))] if v else None

def iso(text):  # details.claimedAt: ISO 8601, UTC, to the millisecond
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() - REF

def node_of(j):
    parts = j.get("owner", "").split(":")
    return f"node{pids.index(parts[1]) + 1}" if len(parts) == 3 and parts[1] in pids else j.get("owner", "?")

by_status, per_node, wait_s, run_s, refill_ms, by_node = {}, {}, [], [], [], {}
for j in mine:
    by_status[j["status"]] = by_status.get(j["status"], 0) + 1
    node = node_of(j)
    per_node[node] = per_node.get(node, 0) + 1
    claimed = iso(j["details"]["claimedAt"]) if "claimedAt" in j.get("details", {}) else None
    if claimed is None:
        continue
    wait_s.append(claimed - j["startedAt"])
    if j.get("endedAt") is not None:
        run_s.append(j["endedAt"] - claimed)
    by_node.setdefault(node, []).append((claimed, j.get("endedAt")))
# A node's claims after its first `per_place` fill places its own backups freed: the gap from
# the latest end before the claim.
for claims in by_node.values():
    claims.sort()
    for index, (claimed, _) in enumerate(claims):
        if index < per_place:
            continue
        ends = [e for c, e in claims[:index] if e is not None and e <= claimed]
        if ends:
            refill_ms.append((claimed - max(ends)) * 1000)

first = min(j["startedAt"] for j in mine)
last = max(j.get("endedAt") or first for j in mine)
seconds = last - first

def busy_share():
    """The machine's busy share between the last sample before the first job and the first after the last end."""
    samples = []
    for line in open(f"{run}/cpu.txt"):
        parts = line.split()
        if len(parts) < 6 or parts[1] != "cpu":
            continue
        ticks = [int(x) for x in parts[2:]]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        samples.append((float(parts[0]) - REF, sum(ticks[:8]) - idle, sum(ticks[:8])))
    before = [s for s in samples if s[0] <= first]
    after = [s for s in samples if s[0] >= last]
    if not before or not after:
        return None
    (_, b0, t0), (_, b1, t1) = before[-1], after[0]
    return round((b1 - b0) / (t1 - t0), 3) if t1 > t0 else None
out = {
    "nodes": nodes, "repeat": repeat, "jobs": len(mine),
    "succeeded": by_status.get("Succeeded", 0), "statuses": by_status,
    "seconds": round(seconds, 3),
    "queuePassSeconds": round(max(j["startedAt"] for j in mine) - first, 3),
    "perMinute": round(len(mine) / seconds * 60, 2) if seconds > 0 else None,
    "claimMs": {"p50": pct(refill_ms, 50), "p95": pct(refill_ms, 95), "max": max(refill_ms, default=None),
                "count": len(refill_ms)},
    "queueWaitSeconds": {"p50": pct(wait_s, 50), "p95": pct(wait_s, 95)},
    "backupSeconds": {"p50": pct(run_s, 50), "p95": pct(run_s, 95)},
    "perNode": dict(sorted(per_node.items())),
    # CPU per backup over the timed part (which includes up to a minute of idle waiting for the
    # slot: heartbeats and claims, a few ms a second)
    "cpuMsPerBackup": {"nodes": round(node_ticks / tck * 1000 / len(mine), 1),
                       "postgres": round(pg_ticks / tck * 1000 / len(mine), 1)},
    "busyShare": busy_share(),
}
for group in ("claimMs", "queueWaitSeconds", "backupSeconds"):
    out[group] = {k: (round(v, 3) if v is not None else None) for k, v in out[group].items()}
print(json.dumps(out))
bad = [j for j in mine if j["status"] != "Succeeded"]
for j in bad[:5]:
    e, vm = j.get("error") or {}, j.get("vm")
    vm = vm.get("name", "?") if isinstance(vm, dict) else vm
    print(f"{j['id']} ({vm}): {j['status']} {e.get('code', '')} {e.get('message', '')}", file=sys.stderr)
sys.exit(4 if bad else 0)
PY
  case $rc in
    0) ;;
    3) fail "run n=$n r=$r: not exactly one backup per VM (jobs: $RUN/jobs.jsonl)" ;;
    4) fail "run n=$n r=$r: not every backup succeeded (jobs: $RUN/jobs.jsonl)" ;;
    *) fail "run n=$n r=$r: the jobs could not be read back (status $rc)" ;;
  esac
  log "run n=$n r=$r: $(tail -n 1 "$RUNS_JSONL" | python3 -c 'import json, sys
print("{perMinute} backups/min in {seconds} s, claim p50 {claimMs[p50]:.0f} ms, p95 {claimMs[p95]:.0f} ms, per node {perNode}".format(**json.load(sys.stdin)))')"
  [[ "${BENCH_KEEP:-0}" == 1 ]] || rm -rf "$DATA"
}

# ---------------------------------------------------------------- runs
VM_NAMES=()
for ((i = 0; i < VMS; i++)); do printf -v name "vm%0${#VMS}d" "$i"; VM_NAMES+=("$name"); done

for ((r = 1; r <= REPEAT; r++)); do
  for n in $NODE_COUNTS; do run_one "$n" "$r"; done
done

# ---------------------------------------------------------------- report
machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/^Mem:/{print $2}') GiB RAM"
python3 - "$RUNS_JSONL" "$W/results.md" "$W/results.json" "$VMS" "$VM_KIB" "$PER_NODE" "$REPEAT" \
  "${VAULT_BASE:-local}" "$(nproc)" "$machine" "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "$("$COFFRE_BIN" --version 2>/dev/null || echo unknown)" <<'PY'
import json, sys
from statistics import mean

(runs_path, md_path, json_path, vms, vm_kib, per_node, repeat, vault, cores, machine,
 load_start, load_end, version) = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
counts = sorted({r["nodes"] for r in runs})
base = counts[0]

def spread(values):
    return {"mean": round(mean(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}

configs = []
for n in counts:
    rs = [r for r in runs if r["nodes"] == n]
    configs.append({
        "nodes": n, "runs": len(rs),
        "perMinute": spread([r["perMinute"] for r in rs]),
        "claimP50Ms": spread([r["claimMs"]["p50"] for r in rs]),
        "claimP95Ms": spread([r["claimMs"]["p95"] for r in rs]),
        "claimMaxMs": round(max(r["claimMs"]["max"] for r in rs), 1),
        "perNode": [r["perNode"] for r in rs],
    })
b = next(c for c in configs if c["nodes"] == base)["perMinute"]
for c in configs:
    p = c["perMinute"]
    # the mean's ratio, and the widest and narrowest ratio any two runs give
    c["ratio"] = {"mean": round(p["mean"] / b["mean"], 3), "min": round(p["min"] / b["max"], 3),
                  "max": round(p["max"] / b["min"], 3)}

def rng(s, fmt="{:.0f}"):
    return f"{fmt.format(s['mean'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"

def label(n):
    return f"{n} node" + ("s" if n != 1 else "")

lines = [
    f"# {vms} VMs backed up by {', '.join(str(n) for n in counts)} `coffre serve` nodes on one PostgreSQL catalog",
    "",
    f"{vms} VMs of the local fabric, {vm_kib} KiB of random data each; vault: {vault}; "
    f"maxConcurrentBackups {per_node} per node; {repeat} run(s) per node count, mean (min–max).",
    "",
    f"| nodes | backups/min | vs {label(base)} | claim p50 ms | claim p95 ms | claim max ms | backups per node |",
    "|---:|---:|---:|---:|---:|---:|---|",
]
for c in configs:
    per = "; ".join("/".join(str(v) for v in d.values()) for d in c["perNode"])
    lines.append(f"| {c['nodes']} | {rng(c['perMinute'], '{:.1f}')} | "
                 f"{c['ratio']['mean']:.2f} ({c['ratio']['min']:.2f}–{c['ratio']['max']:.2f}) | "
                 f"{rng(c['claimP50Ms'])} | {rng(c['claimP95Ms'])} | {c['claimMaxMs']:.0f} | {per} |")
lines.append("")
for c in configs:
    if c["nodes"] != base:
        lines.append(f"- {label(c['nodes'])} / {label(base)}: x{c['ratio']['mean']:.2f} backups/min "
                     f"(runs: x{c['ratio']['min']:.2f}–x{c['ratio']['max']:.2f})")
lines += [
    "",
    "Claim latency: from the end of one of a node's backups to its next claim (details.claimedAt),",
    "over the claims after each node's first places were filled. Queue pass: the leader's pass that",
    "queued every VM's backup at the slot. Queue wait: from queued to claimed. Backups per node: one",
    "figure per node, runs separated by `;`.",
    "",
    "CPU: the machine's busy share while the backups ran (1.00: every core busy), and the CPU time",
    "per backup of the nodes and of PostgreSQL over the timed part.",
    "",
    "| nodes | run | backups | seconds | backups/min | queue pass s | claim p50 ms | claim p95 ms | queue wait p50 s | backup p50 s | busy | CPU ms/backup: nodes | PostgreSQL | per node |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
]
for r in sorted(runs, key=lambda r: (r["nodes"], r["repeat"])):
    per = ", ".join(f"{k} {v}" for k, v in r["perNode"].items())
    lines.append(f"| {r['nodes']} | {r['repeat']} | {r['succeeded']}/{r['jobs']} | {r['seconds']:.1f} | "
                 f"{r['perMinute']:.1f} | {r['queuePassSeconds']:.1f} | {r['claimMs']['p50']:.0f} | "
                 f"{r['claimMs']['p95']:.0f} | {r['queueWaitSeconds']['p50']:.1f} | {r['backupSeconds']['p50']:.2f} | "
                 f"{r['busyShare'] if r.get('busyShare') is not None else '?'} | {r['cpuMsPerBackup']['nodes']:.1f} | "
                 f"{r['cpuMsPerBackup']['postgres']:.1f} | {per} |")
lines += [
    "",
    "## The machine",
    "",
    f"{cores} cores ({machine}); every node, PostgreSQL and the benchmark's psql share them, so read the",
    "numbers as ratios (2 nodes / 1 node), not as what a deployment of separate machines would do.",
    f"Load average before: {load_start}; after: {load_end}. What limits it is discussed in docs/benchmarks.md.",
]
text = "\n".join(lines) + "\n"
open(md_path, "w").write(text)
json.dump({"vms": int(vms), "vmKiB": int(vm_kib), "maxConcurrentBackups": int(per_node), "repeat": int(repeat),
           "vault": vault, "cores": int(cores), "machine": machine, "coffre": version,
           "loadAverage": {"start": load_start, "end": load_end},
           "configurations": configs, "runs": runs}, open(json_path, "w"), indent=2)
print(text, end="")
PY
log "results: $W/results.md, $W/results.json"
