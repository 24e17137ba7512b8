#!/usr/bin/env bash
# Alarm notifications, two figures (issue 18, part 3):
#
# (a) alarm-to-inbox latency through a real mail server: exim4 (STARTTLS, AUTH, a Maildir) on
#     this machine, alarms sent one at a time through a real agent session, timed from the
#     record to its file in the Maildir; median and p95 over N (50) alarms. Beside it, the
#     floor of the same exim in the same run: a message submitted straight over SMTP (the same
#     TLS and AUTH) until its file appears. Goal: median <= 2 s.
# (b) record ingestion with and without notifications: hostward-sim agents pushing `sim`
#     events as fast as the center takes them (EVENT_AGENTS x EVENTS_PER_MIN offered), beside a
#     second simulator raising 10,000 alarms a minute (each a new alarm). Run 1: no channel,
#     run 2: a webhook channel receiving every alarm (a local receiver answering 200). Prints
#     the events acked per second in each run and what the receiver got. Goal: no measurable
#     drop.
#
# Needs exim4-daemon-light (apt-get install exim4-daemon-light) and python3; run as root (exim
# is started with a config of its own).
#
#   bash bench/notify.sh              # both parts
#   PART=a bash bench/notify.sh       # latency only;  PART=b: ingestion only
#   PROFILE=debug bash bench/notify.sh  # debug builds (slower: an upper bound on latency)
#   BIN_DIR=DIR ...                   # binaries already built elsewhere (skips the build)
set -euo pipefail
PART=${PART:-ab}
PROFILE=${PROFILE:-release}
N=${N:-50}
SECS=${SECS:-60}
EVENT_AGENTS=${EVENT_AGENTS:-100}
EVENTS_PER_MIN=${EVENTS_PER_MIN:-3000}
ALARM_AGENTS=${ALARM_AGENTS:-50}
ALARMS_PER_MIN=${ALARMS_PER_MIN:-10000}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
command -v exim4 >/dev/null || { echo "exim4 is missing: apt-get install exim4-daemon-light"; exit 1; }
profile_flag=()
[ "$PROFILE" = release ] && profile_flag=(--release)
if [ -n "${BIN_DIR:-}" ]; then
  bin=$BIN_DIR
else
  (cd "$root" && cargo build "${profile_flag[@]}" --bins -q -p hostward-center -p hostward-agent -p hostward-sim)
  bin=$target/$PROFILE
fi

if [[ $PART == *a* ]]; then
  echo "== (a) alarm-to-inbox latency, $N alarms"
  out=$(cd "$root" && HOSTWARD_BIN_DIR=$bin NOTIFY_BENCH_N=$N cargo test "${profile_flag[@]}" -q -p hostward-e2e --test notifications \
    -- --ignored --exact bench_alarm_to_inbox_latency --nocapture 2>&1) || { echo "$out" | tail -40; exit 1; }
  alarm=$(echo "$out" | awk '/NOTIFY-BENCH alarm_to_inbox_ms/ {print $3, $4, $5}')
  floor=$(echo "$out" | awk '/NOTIFY-BENCH smtp_floor_ms/ {print $3, $4, $5}')
  printf '%-44s %s\n' "alarm -> Maildir (ms)" "$alarm   goal median <= 2000"
  printf '%-44s %s\n' "peer: exim's own SMTP -> Maildir (ms)" "$floor"
fi

[[ $PART == *b* ]] || exit 0
echo "== (b) record ingestion, ${SECS} s per run"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p1=$(port); p2=$(port); hook=$(port)

# The webhook receiver: answers 200 at once, counts requests into a file each second.
cat >"$work/hook.py" <<'PY'
import http.server, socketserver, sys, threading, time
count = 0
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global count
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            count += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
def dump():
    while True:
        time.sleep(1)
        with open(sys.argv[2], "w") as f:
            f.write(str(count))
threading.Thread(target=dump, daemon=True).start()
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/hook.py" "$hook" "$work/hook.count" &
pids+=($!)

center_args=(--data-dir "$work/center")
"$bin/hostward" serve "${center_args[@]}" --listen "127.0.0.1:$p1" --gateway-listen "127.0.0.1:$p2" \
  --public-url "https://127.0.0.1:$p1" --heartbeat-secs 30 --log warn >"$work/center.out" 2>"$work/center.log" &
center=$!
pids+=("$center")
for _ in $(seq 100); do curl -sfk "https://127.0.0.1:$p1/healthz" >/dev/null && break; sleep 0.2; done
read -r secret fp < <("$bin/hostward" token create "${center_args[@]}" --json |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["secret"], d["ca_sha256"])')
head -c 24 /dev/urandom | base64 | "$bin/hostward" user add bench --superadmin --password-stdin "${center_args[@]}" >/dev/null
api_token=$("$bin/hostward" api-token create --user bench "${center_args[@]}")
api() { curl -sf --cacert "$work/center/ca.crt" -H "Authorization: Bearer $api_token" -H 'Content-Type: application/json' "$@"; }
project=$(api "https://127.0.0.1:$p1/api/v1/projects" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')

# One run: both simulators for SECS seconds; prints "<events acked/s> <alarms acked/s>".
run() {
  local tag=$1
  "$bin/hostward-sim" --center "https://127.0.0.1:$p1" --token "$secret" --ca-sha256 "$fp" --agents "$EVENT_AGENTS" \
    --seed 1 --events-per-min "$EVENTS_PER_MIN" --status-secs 1 --duration-secs "$SECS" \
    --state-dir "$work/sim-events" >"$work/events-$tag.out" 2>>"$work/sim.log" &
  local e=$!
  "$bin/hostward-sim" --center "https://127.0.0.1:$p1" --token "$secret" --ca-sha256 "$fp" --agents "$ALARM_AGENTS" \
    --seed 2 --events-per-min "$(( ALARMS_PER_MIN / ALARM_AGENTS ))" --alarm-share 1 --status-secs 1 \
    --duration-secs "$SECS" --state-dir "$work/sim-alarms" >"$work/alarms-$tag.out" 2>>"$work/sim.log" &
  local a=$!
  pids+=("$e" "$a")
  wait "$e" "$a"
  # The rate over the run's steady part: from a third of it to its end.
  for f in "$work/events-$tag.out" "$work/alarms-$tag.out"; do
    python3 - "$f" "$SECS" <<'PY'
import json, sys
rows = []
for l in open(sys.argv[1]):
    try: d = json.loads(l)
    except ValueError: continue
    if "events_acked" in d and not d.get("final"): rows.append((d["unix_ms"], d["events_acked"], d["connected"]))
start = [r for r in rows if r[2] > 0]
t0 = start[0][0] + int(sys.argv[2]) * 1000 // 3
a = next(r for r in rows if r[0] >= t0); b = rows[-1]
print(f"{(b[1] - a[1]) * 1000 / max(1, b[0] - a[0]):.0f}", end=" ")
PY
  done
  echo
}

# The channel: a webhook taking every alarm (no de-duplication), off until a run turns it on.
channel=$(api -X POST "https://127.0.0.1:$p1/api/v1/projects/$project/notification-channels" \
  -d "{\"name\":\"bench\",\"kind\":\"webhook\",\"enabled\":false,\"summary\":false,\"filters\":{\"dedup_minutes\":0},\"webhook\":{\"url\":\"http://127.0.0.1:$hook/bench\",\"format\":\"hostward\"}}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
switch() {
  api -X PUT "https://127.0.0.1:$p1/api/v1/notification-channels/$channel" \
    -d "{\"name\":\"bench\",\"kind\":\"webhook\",\"enabled\":$1,\"summary\":false,\"filters\":{\"dedup_minutes\":0},\"webhook\":{\"url\":\"http://127.0.0.1:$hook/bench\",\"format\":\"hostward\"}}" >/dev/null
}
# Warm-up: every simulated agent enrolls (cached for the runs) and the database has its tables
# warm; not measured.
SECS_MEASURED=$SECS; SECS=15; run warm >/dev/null || true; SECS=$SECS_MEASURED
results=()
for round in 1 2; do
  switch false
  read -r ev al < <(run "off$round")
  results+=("off $ev $al -")
  echo "round $round, no channel: events acked/s $ev, alarms acked/s $al"
  switch true
  before=$(cat "$work/hook.count" 2>/dev/null || echo 0)
  read -r ev al < <(run "on$round")
  sleep 5
  after=$(cat "$work/hook.count")
  results+=("on $ev $al $(( after - before ))")
  echo "round $round, webhook channel: events acked/s $ev, alarms acked/s $al, webhook requests $(( after - before ))"
done
switch false
depth=$(curl -sf --cacert "$work/center/ca.crt" "https://127.0.0.1:$p1/metrics" | awk '/^hostward_notifications_outbox_depth /{print $2}')
echo
printf '%-44s %s\n' "build" "$PROFILE ($bin)"
printf '%-44s %s\n' "offered" "$EVENT_AGENTS agents x $EVENTS_PER_MIN events/min + $ALARM_AGENTS agents x $(( ALARMS_PER_MIN / ALARM_AGENTS )) alarms/min, ${SECS} s per run, SQLite"
for r in "${results[@]}"; do
  read -r mode ev al got <<<"$r"
  if [ "$mode" = off ]; then
    printf '%-44s %s\n' "notifications off: events / alarms acked/s" "$ev / $al"
  else
    printf '%-44s %s\n' "10,000 alarms/min notified: events / alarms" "$ev / $al   (webhook requests received: $got)"
  fi
done
printf '%-44s %s\n' "outbox depth at the end" "${depth:-?}   goal: no measurable drop in events acked/s"
