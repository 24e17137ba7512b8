#!/usr/bin/env bash
# Brute-force block latency: from the write of the threshold-crossing failure line (the 5th
# `Failed password` of an address within 30 s) to the address being an element of the
# firewall set, for the real hostward-agent (enrolled to a real center, release build) and for
# fail2ban (Debian's, pyinotify backend, sshd filter, an nft action), both following the same
# log file in the same run, each blocking into its own table in a network namespace made here.
# `nft monitor` in that namespace timestamps every element as the kernel adds it, so both tools
# are measured by the same clock. Goal: <= 10 ms median, at least 10x faster than fail2ban.
#
#   bash bench/block_latency.sh            # ROUNDS=30
#
# Needs root, nftables, iproute2, python3, fail2ban and python3-pyinotify
# (apt-get install -y fail2ban python3-pyinotify).
set -euo pipefail
ROUNDS=${ROUNDS:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
command -v fail2ban-server >/dev/null || { echo "fail2ban not found: apt-get install -y fail2ban python3-pyinotify" >&2; exit 1; }
(cd "$root" && cargo build --release --bins -q)
bin=$target/release
work=$(mktemp -d)
ns=hwbench$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
log=$work/auth.log
touch "$log"

# The center and an enrolled agent following $log, blocking in the namespace.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p1=$(port); p2=$(port)
"$bin/hostward" serve --data-dir "$work/center" --listen "127.0.0.1:$p1" --gateway-listen "127.0.0.1:$p2" \
  --public-url "https://127.0.0.1:$p1" --log warn >"$work/center.out" 2>"$work/center.log" &
pids+=($!)
for _ in $(seq 100); do curl -sfk "https://127.0.0.1:$p1/healthz" >/dev/null && break; sleep 0.2; done
read -r secret fp < <("$bin/hostward" token create --data-dir "$work/center" --json |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["secret"], d["ca_sha256"])')
"$bin/hostward-agent" enroll --center "https://127.0.0.1:$p1" --token "$secret" --ca-sha256 "$fp" \
  --state-dir "$work/agent" --allow-unsupported >/dev/null 2>"$work/enroll.log"
cat >"$work/agent.toml" <<EOF
state_dir = "$work/agent"
[authlog]
source = "files"
[authlog.ssh]
path = "$log"
[authlog.ftp]
enabled = false
[authlog.mysql]
enabled = false
[firewall]
nft = ["ip", "netns", "exec", "$ns", "nft"]
EOF
"$bin/hostward-agent" run --config "$work/agent.toml" 2>"$work/agent.log" &
pids+=($!)

# fail2ban on the same file, its own table in the same namespace.
f2b=$work/f2b
cp -r /etc/fail2ban "$f2b"
rm -f "$f2b"/jail.d/*
cat >"$f2b/fail2ban.local" <<EOF
[DEFAULT]
logtarget = $work/f2b.log
socket = $work/f2b.sock
pidfile = $work/f2b.pid
dbfile = :memory:
EOF
cat >"$f2b/action.d/hw-nft.conf" <<EOF
[Definition]
actionstart = ip netns exec $ns nft 'add table inet f2b; add set inet f2b blocked4 { type ipv4_addr; }'
actionstop = ip netns exec $ns nft delete table inet f2b
actioncheck =
actionban = ip netns exec $ns nft add element inet f2b blocked4 '{ <ip> }'
actionunban = ip netns exec $ns nft delete element inet f2b blocked4 '{ <ip> }'
EOF
cat >"$f2b/jail.local" <<EOF
[DEFAULT]
backend = pyinotify
[sshd]
enabled = false
[hw-sshd]
enabled = true
filter = sshd
logpath = $log
maxretry = 5
findtime = 30
bantime = 3600
banaction = hw-nft
EOF
fail2ban-server -f -x -c "$f2b" >/dev/null 2>"$work/f2b.err" &
pids+=($!)

for _ in $(seq 100); do
  ip netns exec "$ns" nft list tables 2>/dev/null | grep -q 'inet hostward' &&
    ip netns exec "$ns" nft list tables 2>/dev/null | grep -q 'inet f2b' && break
  sleep 0.2
done
sleep 1 # both followers at the end of the file

python3 - "$ns" "$log" "$ROUNDS" <<'PY'
import subprocess, sys, threading, time, statistics, socket
ns, log, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = {}  # (table, ip) -> monotonic time
lock = threading.Lock()
mon = subprocess.Popen(["ip", "netns", "exec", ns, "nft", "monitor", "elements"],
                       stdout=subprocess.PIPE, text=True, bufsize=1)
def read():
    for line in mon.stdout:
        t = time.monotonic()
        if not line.startswith("add element"):
            continue
        parts = line.split()
        table = parts[3]
        ip = line.split("{", 1)[1].split()[0].rstrip(",}")
        with lock:
            seen.setdefault((table, ip), t)
threading.Thread(target=read, daemon=True).start()
time.sleep(0.5)
host = socket.gethostname()
out = open(log, "a", buffering=1)
lat = {"hostward": [], "f2b": []}
missed = {"hostward": 0, "f2b": 0}
for i in range(rounds):
    ip = f"10.80.{i // 250}.{i % 250 + 1}"
    for k in range(5):
        stamp = time.strftime("%b %e %H:%M:%S")
        out.write(f"{stamp} {host} sshd[4242]: Failed password for root from {ip} port {40000 + k} ssh2\n")
        out.flush()
        if k < 4:
            time.sleep(0.01)
    t0 = time.monotonic()
    deadline = t0 + 5
    while time.monotonic() < deadline:
        with lock:
            if all((t, ip) in seen for t in lat):
                break
        time.sleep(0.001)
    with lock:
        for t in lat:
            if (t, ip) in seen:
                lat[t].append((seen[(t, ip)] - t0) * 1000)
            else:
                missed[t] += 1
    time.sleep(0.2)
mon.terminate()
def row(name, v, m):
    if not v:
        return f"  {name:<32} no block in 5 s ({m} missed)"
    v = sorted(v)
    p90 = v[min(len(v) - 1, int(len(v) * 0.9))]
    return f"  {name:<32} {statistics.median(v):9.1f} {p90:9.1f} {v[0]:9.1f} {len(v):5d}" + (f"  ({m} missed)" if m else "")
print(f"block latency, ms from the 5th failure line to the set element ({rounds} addresses)")
print(f"  {'':<32} {'median':>9} {'p90':>9} {'min':>9} {'n':>5}")
print(row("hostward-agent", lat["hostward"], missed["hostward"]))
print(row("fail2ban (pyinotify, nft action)", lat["f2b"], missed["f2b"]))
print(f"  {'goal':<32} {'<= 10':>9}   and >= 10x faster than fail2ban")
if lat["hostward"] and lat["f2b"]:
    print(f"  ratio of medians: {statistics.median(lat['f2b']) / statistics.median(lat['hostward']):.1f}x")
PY
