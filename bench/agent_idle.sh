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
# Peer: CrowdSec's security engine, Debian's package, with its SSH parsers and brute-force
# scenarios enabled from the hub the package vendors, tailing auth.log. The package is unpacked
# into the work dir, not installed: its post-install registers with an online API, which fails on
# a closed network and would leave dpkg half-configured for everything after it.
cs=$work/crowdsec
mkdir -p "$cs/pkg"
if (cd "$cs/pkg" && apt-get download crowdsec >/dev/null 2>&1) && dpkg-deb -x "$cs"/pkg/crowdsec_*.deb "$cs/root"; then
  r=$cs/root
  hub=$r/usr/share/crowdsec/hub
  conf=$cs/etc
  cp -r "$r/etc/crowdsec" "$conf"
  mkdir -p "$conf/parsers/s00-raw" "$conf/parsers/s01-parse" "$conf/parsers/s02-enrich" "$conf/scenarios" "$cs/data"
  ln -s "$hub/parsers/s00-raw/crowdsecurity/syslog-logs.yaml" "$conf/parsers/s00-raw/"
  ln -s "$hub/parsers/s01-parse/crowdsecurity/sshd-logs.yaml" "$conf/parsers/s01-parse/"
  ln -s "$hub/parsers/s02-enrich/crowdsecurity/dateparse-enrich.yaml" "$conf/parsers/s02-enrich/"
  ln -s "$hub/scenarios/crowdsecurity/ssh-bf.yaml" "$conf/scenarios/"
  ln -s "$hub/scenarios/crowdsecurity/ssh-slow-bf.yaml" "$conf/scenarios/"
  touch /var/log/auth.log
  printf 'filenames:\n  - /var/log/auth.log\nlabels:\n  type: syslog\n' >"$conf/acquis.yaml"
  sed -e "s#config_dir: .*#config_dir: $conf/#" -e "s#hub_dir: .*#hub_dir: $hub/#" -e "s#index_path: .*#index_path: $hub/.index.json#" -e "s#data_dir: .*#data_dir: $cs/data/#" \
    -e "s#acquisition_path: .*#acquisition_path: $conf/acquis.yaml#" -e "s#db_path: .*#db_path: $cs/data/crowdsec.db#" \
    -e "s#credentials_path: .*local_api_credentials.yaml#credentials_path: $conf/local_api_credentials.yaml#" \
    -e "s#credentials_path: .*online_api_credentials.yaml#credentials_path: $conf/online_api_credentials.yaml#" \
    -e "s#/etc/crowdsec/#$conf/#g" \
    "$r/etc/crowdsec/config.yaml" >"$conf/config.yaml"
  # No central API on a closed network: an empty credentials file keeps it local-only.
  : >"$conf/online_api_credentials.yaml"
  # Its own local API needs this engine registered as a watcher in the private database.
  "$r/usr/bin/cscli" -c "$conf/config.yaml" machines add -a --force -f "$conf/local_api_credentials.yaml" >/dev/null 2>&1 || true
  "$r/usr/bin/crowdsec" -c "$conf/config.yaml" >"$work/crowdsec.log" 2>&1 &
  peer=$!
  pids+=("$peer")
  sleep 10
  if kill -0 "$peer" 2>/dev/null; then
    procs+=("crowdsec $(dpkg-deb -f "$cs"/pkg/crowdsec_*.deb Version)=$peer")
  else
    echo "CrowdSec did not start; its log:"
    tail -5 "$work/crowdsec.log"
  fi
else
  echo "CrowdSec's package could not be fetched; measuring the agent alone."
fi
echo "Sampling for $DURATION s every $INTERVAL s..."
python3 "$root/bench/sample.py" "$DURATION" "$INTERVAL" "${procs[@]}"
