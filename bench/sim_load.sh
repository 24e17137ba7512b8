#!/usr/bin/env bash
# Gateway capacity with hostward-sim: AGENTS simulated agents (default 20000, 30 s heartbeats,
# real per-agent certificates) against one center on this machine. Prints how many stay online,
# the center's RSS, and the time for one broadcast task to reach all of them.
# Goal: 20,000 agents, <= 2 GB, <= 5 s. Quoted, not measured here: Velociraptor 10k endpoints
# on 2 vCPU / 8 GB; Elkeid 1,500 connections per 1 core / 2 GB.
#
#   bash bench/sim_load.sh                    # 20000 agents on SQLite
#   AGENTS=2000 DB=postgres bash bench/sim_load.sh
set -euo pipefail
AGENTS=${AGENTS:-20000}
RAMP=${RAMP:-1000}
HEARTBEAT=${HEARTBEAT:-30}
DB=${DB:-sqlite}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release --bins -q)
bin=$target/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# One descriptor per agent on each side. Root may raise the hard limit where it holds
# CAP_SYS_RESOURCE; where it does not (these build machines: 20,000), the center can hold at most
# that many sockets less its own files, and each simulator process at most 10,000 agents.
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
fd_limit=$(ulimit -Hn)
if [ "$AGENTS" -gt $((fd_limit - 100)) ]; then
  echo "note: open-files hard limit here is $fd_limit and cannot be raised; capping at $((fd_limit - 100)) agents"
  AGENTS=$((fd_limit - 100))
fi
SIMS=$(( (AGENTS + 9999) / 10000 ))

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p1=$(port); p2=$(port)
dbargs=()
if [ "$DB" = postgres ]; then
  name="hw_bench_$$"
  psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $name" postgres
  dbargs=(--database-url "postgres://postgres@127.0.0.1/$name")
fi
center_args=(--data-dir "$work/center" "${dbargs[@]}")
"$bin/hostward" serve "${center_args[@]}" --listen "127.0.0.1:$p1" --gateway-listen "127.0.0.1:$p2" \
  --public-url "https://127.0.0.1:$p1" --heartbeat-secs "$HEARTBEAT" --log warn >"$work/center.out" 2>"$work/center.log" &
center=$!
pids+=("$center")
for _ in $(seq 100); do curl -sfk "https://127.0.0.1:$p1/healthz" >/dev/null && break; sleep 0.2; done
read -r secret fp < <("$bin/hostward" token create "${center_args[@]}" --json |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["secret"], d["ca_sha256"])')
head -c 24 /dev/urandom | base64 | "$bin/hostward" user add bench --superadmin --password-stdin "${center_args[@]}" >/dev/null
api_token=$("$bin/hostward" api-token create --user bench "${center_args[@]}")

for i in $(seq 1 "$SIMS"); do
  n=$(( AGENTS / SIMS + (i <= AGENTS % SIMS ? 1 : 0) ))
  "$bin/hostward-sim" --center "https://127.0.0.1:$p1" --token "$secret" --ca-sha256 "$fp" --agents "$n" --seed "$i" \
    --ramp-per-sec "$(( RAMP / SIMS ))" --heartbeat-secs "$HEARTBEAT" --state-dir "$work/sim-$i" >"$work/sim-$i.out" 2>"$work/sim-$i.log" &
  pids+=($!)
done
echo "Waiting for $AGENTS agents to connect..."
t_start=$(date +%s)
while :; do
  connected=$(for f in "$work"/sim-*.out; do tail -n 50 "$f"; echo; echo '{"end":1}'; done | python3 -c '
import json,sys
total=c=0
for l in sys.stdin:
    try: d=json.loads(l)
    except ValueError: continue
    if "connected" in d: c=d["connected"]
    if "end" in d: total+=c; c=0
print(total)')
  [ "$connected" -ge "$AGENTS" ] && break
  if [ $(( $(date +%s) - t_start )) -gt 900 ]; then echo "only $connected connected after 15 min"; break; fi
  sleep 5
done
connect_secs=$(( $(date +%s) - t_start ))
sleep "$HEARTBEAT" # one full heartbeat round at steady state
online=$(curl -sf --cacert "$work/center/ca.crt" "https://127.0.0.1:$p1/metrics" | awk '/^hostward_agents_online /{print $2}')
rss_mb=$(awk '/VmRSS/{printf "%.0f", $2/1024}' "/proc/$center/status")

t0=$(python3 -c 'import time; print(int(time.time()*1000))')
curl -sf --cacert "$work/center/ca.crt" -H "Authorization: Bearer $api_token" -H 'Content-Type: application/json' \
  -d '{"all":true,"kind":"ping"}' "https://127.0.0.1:$p1/api/v1/tasks" >/dev/null
broadcast_ms=""
for _ in $(seq 600); do
  # A broadcast is one task per server: it has reached everyone when the ping tasks created
  # after t0 were received by AGENTS agents in total; the latency is the last receipt.
  broadcast_ms=$(python3 - "$t0" "$AGENTS" "$work"/sim-*.out <<'PY'
import json,sys
t0,n,paths=int(sys.argv[1]),int(sys.argv[2]),sys.argv[3:]
tasks={}
for path in paths:
  for l in open(path):
    try: d=json.loads(l)
    except ValueError: continue
    if d.get("task_kind")=="ping" and d.get("first_unix_ms",0)>=t0:
        tasks[d["task_id"]]=d
if sum(d["received_by"] for d in tasks.values())>=n:
    print(max(d["last_unix_ms"] for d in tasks.values())-t0)
PY
)
  [ -n "$broadcast_ms" ] && break
  sleep 0.5
done
echo
printf '%-44s %s\n' "simulated agents" "$AGENTS in $SIMS processes (connected in ${connect_secs}s at ramp $RAMP/s, DB $DB)"
printf '%-44s %s\n' "agents online (center /metrics)" "${online:-?}   goal 20000"
printf '%-44s %s\n' "center RSS" "${rss_mb} MB   goal <= 2048 MB"
printf '%-44s %s\n' "broadcast ping reached all agents in" "${broadcast_ms:-not all within 300 s} ms   goal <= 5000 ms"
printf '%-44s %s\n' "peers (quoted)" "Velociraptor 10k endpoints on 2 vCPU/8 GB; Elkeid 1,500 per 1C2G"
