#!/usr/bin/env bash
# Inventory cost on this machine, release build:
#  1. full inventory (all seven kinds): wall time, CPU time, peak extra RSS of the agent process;
#     the first run hashes every running executable, later runs hit the hash cache as the daemon
#     does. Goal: < 200 ms, < 20 MB extra.
#  2. the 30 s port cycle: CPU per cycle, as a share of one core at one cycle per 30 s.
#     Goal: < 0.1 % of a core.
#  3. bytes on the wire: a full snapshot, and a diff after DIFF_WAIT seconds of this machine's
#     own activity.
# Beside each, the same information gathered with the standard tools in the same run
# (getent, ss, ps + sha256sum of each executable, dpkg-query, systemctl/crontab files, lsmod):
# what an operator's script or an osquery-less peer pays for it. (osquery, Wazuh syscollector:
# not installable here; not quoted.)
#
#   bash bench/inventory.sh
#   DIFF_WAIT=300 bash bench/inventory.sh
set -euo pipefail
RUNS=${RUNS:-5}
PORT_CYCLES=${PORT_CYCLES:-200}
DIFF_WAIT=${DIFF_WAIT:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release --bins -q)
agent=$target/release/hostward-agent
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$agent" inventory --stats --repeat "$RUNS" >/dev/null 2>"$work/full.jsonl"
"$agent" inventory --kind ports --stats --repeat "$PORT_CYCLES" >/dev/null 2>"$work/ports.jsonl"
# Between the two collections, a busy hour's worth of change on a server: a few new
# long-running processes (a deploy) and a new listening service.
echo "collecting twice, $DIFF_WAIT s apart, with a deploy in between, for the wire sizes..." >&2
"$agent" inventory --wire --repeat 2 --interval "$DIFF_WAIT" >/dev/null 2>"$work/wire.jsonl" &
collector=$!
sleep 2
activity=()
for _ in 1 2 3 4 5; do sleep 3600 & activity+=($!); done
python3 -c 'import socket,time; s=socket.socket(); s.bind(("0.0.0.0",0)); s.listen(); time.sleep(3600)' & activity+=($!)
wait "$collector"
kill "${activity[@]}" 2>/dev/null || true

# The same facts with the standard tools, one shell run each time.
export TOOLS='
  getent passwd >/dev/null
  ss -tulpn >/dev/null
  ps -eo pid,ppid,user,lstart,args >/dev/null
  for p in /proc/[0-9]*; do readlink "$p/exe" 2>/dev/null; done | sort -u | xargs -r sha256sum >/dev/null 2>&1
  dpkg-query -W -f "\${Package}\t\${Version}\t\${Architecture}\n" >/dev/null 2>&1
  systemctl list-unit-files --state=enabled >/dev/null 2>&1
  cat /etc/crontab /etc/cron.d/* >/dev/null 2>&1
  cat /proc/modules >/dev/null 2>&1
  true'
python3 - "$work" "$RUNS" "$PORT_CYCLES" "$DIFF_WAIT" <<'EOF'
import json, os, resource, subprocess, sys, time
work, runs, cycles, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
load = lambda f: [json.loads(l) for l in open(os.path.join(work, f)) if l.startswith("{")]

def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

def timed(cmd, n):
    walls, cpus = [], []
    for _ in range(n):
        c0, t0 = children_cpu(), time.perf_counter()
        subprocess.run(["bash", "-c", cmd], check=False)
        walls.append((time.perf_counter() - t0) * 1e3)
        cpus.append((children_cpu() - c0) * 1e3)
    return walls, cpus

full = load("full.jsonl")
first, warm = full[0], full[1:] or full
avg = lambda xs: sum(xs) / len(xs)
print(f"{'full inventory (7 kinds)':44s}{'wall ms':>10s}{'CPU ms':>10s}{'peak extra RSS':>18s}")
print(f"{'  hostward-agent, first run (cold hashes)':44s}{first['wall_ms']:10.1f}{first['cpu_ms']:10.1f}{first['peak_extra_kb']/1024:15.1f} MB")
print(f"{'  hostward-agent, warm runs (avg)':44s}{avg([r['wall_ms'] for r in warm]):10.1f}{avg([r['cpu_ms'] for r in warm]):10.1f}{max(r['peak_extra_kb'] for r in full)/1024:15.1f} MB")
w, c = timed(os.environ["TOOLS"], runs)
print(f"{'  standard tools (getent, ss, ps+sha256sum,':44s}{avg(w):10.1f}{avg(c):10.1f}{'':>18s}")
print(f"{'   dpkg-query, systemctl, cron, modules)':44s}")
print(f"{'  goal':44s}{'< 200':>10s}{'':>10s}{'< 20 MB':>18s}")
print()
ports = load("ports.jsonl")[1:]
cpu = avg([r["cpu_ms"] for r in ports])
print(f"{'port cycle':44s}{'CPU ms':>10s}{'% core @30s':>14s}")
print(f"{'  hostward-agent (avg of %d cycles)' % len(ports):44s}{cpu:10.3f}{cpu/30000*100:14.4f}")
w, c = timed("ss -tulpn >/dev/null", 20)
print(f"{'  ss -tulpn (avg of 20)':44s}{avg(c):10.3f}{avg(c)/30000*100:14.4f}")
print(f"{'  goal':44s}{'':>10s}{'< 0.1':>14s}")
print()
wire = load("wire.jsonl")
print(f"{'bytes on the wire (JSON frames)':36s}{'full':>10s}{'one change':>12s}{'diff after %ss' % wait:>18s}")
for k in [r["kind"] for r in wire if r["wire"] == "full"]:
    f = next(r for r in wire if r["wire"] == "full" and r["kind"] == k)
    d = next((r for r in wire if r["wire"] == "diff" and r["kind"] == k), {"bytes": 0})
    one = f.get("one_change_bytes") or 0
    print(f"{'  ' + k + ' (%d items)' % f['items']:36s}{f['bytes']:10d}{one:12d}{d['bytes']:18d}")
tf = sum(r["bytes"] for r in wire if r["wire"] == "full")
td = sum(r["bytes"] for r in wire if r["wire"] == "diff")
print(f"{'  total':36s}{tf:10d}{'':12s}{td:18d}")
print("  (diff: 5 processes started and one service listening in between; unchanged kinds send nothing)")
EOF
