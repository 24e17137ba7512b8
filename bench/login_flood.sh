#!/usr/bin/env bash
# Login flood (issue 11 #2): N (default 400) parallel sign-ins with unknown user names over
# HTTPS, from 100 loopback source addresses (127.0.1.1-100), against a fresh center; meanwhile a
# legitimate user signs in from 127.0.0.2 (waiting out 503 answers per Retry-After, as a browser
# user would retry). Prints the center's peak RSS (VmHWM of /proc/<pid>/status), the flood's
# answers and how long the legitimate sign-in took, for each center binary given. Goal: peak
# RSS <= 300 MB (7.8 GB before the fix).
#
#   bash bench/login_flood.sh                       # this tree's release build
#   bash bench/login_flood.sh path/to/hostward ...  # these binaries, e.g. a build of an older
#                                                   # commit first, then this tree's
#   N=200 bash bench/login_flood.sh
#
# Loopback only; every process it starts is stopped at the end.
set -euo pipefail
N=${N:-400}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
if [ $# -eq 0 ]; then
  (cd "$root" && cargo build --release -p hostward-center --bins -q)
  set -- "$target/release/hostward"
fi
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cat >"$work/flood.py" <<'EOF'
import concurrent.futures, http.client, json, ssl, sys, threading, time
port, ca, n, user, password = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False  # the certificate names 127.0.0.1; we connect to it by address

def login(src, name, pw):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=300, source_address=(src, 0))
    try:
        c.request("POST", "/api/v1/session", json.dumps({"username": name, "password": pw}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        return r.status, r.getheader("Retry-After")
    except Exception as e:
        return "error: %s" % type(e).__name__, None
    finally:
        c.close()

start = threading.Barrier(n + 1)
def flood(i):
    start.wait()
    return login("127.0.1.%d" % (i % 100 + 1), "flood-%d" % i, "flood-guess-1")[0]

legit = {}
def legitimate():
    start.wait()
    time.sleep(0.2)
    t = time.monotonic()
    for tries in range(1, 121):
        status, retry = login("127.0.0.2", user, password)
        if status != 503:
            break
        time.sleep(min(int(retry or 1), 5))
    legit.update(status=status, wait=time.monotonic() - t, tries=tries)

with concurrent.futures.ThreadPoolExecutor(max_workers=n + 1) as ex:
    lf = ex.submit(legitimate)
    fs = [ex.submit(flood, i) for i in range(n)]
    answers = {}
    for f in fs:
        s = f.result()
        answers[s] = answers.get(s, 0) + 1
    lf.result()
print(json.dumps({"answers": {str(k): v for k, v in sorted(answers.items(), key=str)}, "legit": legit}))
EOF

for bin in "$@"; do
  d=$work/$(basename "$(dirname "$bin")")-$RANDOM
  p1=$(port); p2=$(port)
  "$bin" serve --data-dir "$d" --listen "127.0.0.1:$p1" --gateway-listen "127.0.0.1:$p2" \
    --public-url "https://127.0.0.1:$p1" --log warn >"$d.out" 2>"$d.log" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 150); do curl -sfk "https://127.0.0.1:$p1/healthz" >/dev/null && break; sleep 0.2; done
  echo "bench-admin-passphrase-9" | "$bin" user add bench-admin --superadmin --password-stdin --data-dir "$d" >/dev/null
  before=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  out=$(python3 "$work/flood.py" "$p1" "$d/ca.crt" "$N" bench-admin bench-admin-passphrase-9)
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  sleep 5
  after=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  python3 - "$bin" "$N" "$before" "$peak" "$after" "$out" <<'EOF'
import json, sys
bin, n, before, peak, after, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), json.loads(sys.argv[6])
l = out["legit"]
print(f"{bin}\n  {n} parallel logins: answers {out['answers']}\n"
      f"  center RSS: {before/1024:.0f} MiB before, peak {peak/1024:.0f} MiB, {after/1024:.0f} MiB 5 s after"
      f" (goal: peak <= 300 MB)\n"
      f"  legitimate login from 127.0.0.2: {l['status']} after {l['wait']:.2f} s ({l['tries']} tries)")
EOF
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
