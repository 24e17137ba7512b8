#!/usr/bin/env bash
# Agent idle footprint: RSS and CPU of an enrolled, connected hostward-agent (default 30 s
# heartbeat) over DURATION seconds (default 600), beside CrowdSec's security engine from Debian
# idling in the same run on the same machine. Goal: <= 10 MB RSS, <= 0.2 % of one core.
# Quoted, not measured here: Wazuh agent ~35 MB, Velociraptor client 30-50 MB.
#
#   bash bench/agent_idle.sh            # 10 minutes
#   DURATION=60 bash bench/agent_idle.sh
set -euo pipefail
DURATION=${DURATION:-600}
INTERVAL=${INTERVAL:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release --bins -q)
bin=$target/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p1=$(port); p2=$(port)
"$bin/hostward" serve --data-dir "$work/center" --listen "127.0.0.1:$p1" --gateway-listen "127.0.0.1:$p2" \
  --public-url "https://127.0.0.1:$p1" --log warn >"$work/center.out" 2>"$work/center.log" &
pids+=($!)
for _ in $(seq 100); do curl -sfk "https://127.0.0.1:$p1/healthz" >/dev/null && break; sleep 0.2; done
read -r secret fp < <("$bin/hostward" token create --data-dir "$work/center" --json |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["secret"], d["ca_sha256"])')
"$bin/hostward-agent" enroll --center "https://127.0.0.1:$p1" --token "$secret" --ca-sha256 "$fp" \
  --state-dir "$work/agent" --allow-unsupported >/dev/null
"$bin/hostward-agent" run --state-dir "$work/agent" 2>"$work/agent.log" &
agent=$!
pids+=("$agent")
sleep 5 # connected and settled

procs=("hostward-agent=$agent")
if ! command -v crowdsec >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q crowdsec >/dev/null 2>&1 || true
fi
if command -v crowdsec >/dev/null; then
  # Its package may have started it already (where systemd runs); else start it in the foreground.
  peer=$(pgrep -x crowdsec | head -1 || true)
  if [ -z "$peer" ]; then
    crowdsec -c /etc/crowdsec/config.yaml >"$work/crowdsec.log" 2>&1 &
    peer=$!
    pids+=("$peer")
    sleep 10
  fi
  if kill -0 "$peer" 2>/dev/null; then procs+=("crowdsec (Debian $(dpkg-query -W -f='${Version}' crowdsec))=$peer"); fi
fi
echo "Sampling for $DURATION s every $INTERVAL s..."
python3 "$root/bench/sample.py" "$DURATION" "$INTERVAL" "${procs[@]}"
