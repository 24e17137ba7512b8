#!/usr/bin/env bash
# Fault measurements (issue 13): what the center and its agents do when the center or its
# database goes away under load. Everything runs on 127.0.0.1 with hostward-sim (real
# certificates, the real protocol and the agent runtime's link code, failover and back-off) and,
# where records must survive, one real hostward-agent. Each scenario prints a small table of what
# it measured and a "FAILED: ..." line for every target it missed; the exit code is 1 if any did.
#
#   storm       AGENTS (10000) connected, heartbeat 30 s; kill -9 the center and restart it at
#               once on the same data and ports. Seconds until every agent is connected again
#               (sims) and the center's hostward_agents_online is AGENTS again, the center's peak
#               CPU (% of one core, 0.5 s samples) and peak RSS during the recovery, and the slow
#               connection-acquire warnings sqlx logged after the restart. DB=sqlite|postgres
#               (postgres: a database on the shared cluster at 127.0.0.1:5432).
#   pg-outage   A private PostgreSQL; AGENTS (2000) sims sending 6 events/min each, plus one real
#               agent queuing 10,000 events (100 x `hostward-agent emit --count 100`). At 20 % of
#               the emits PostgreSQL stops (pg_ctl stop -m fast) for OUTAGE_SECS (10) and starts
#               again. Every record must be stored once, no agent may be marked offline.
#   failover    Two replicas on one PostgreSQL database; AGENTS (2000) sims enrolled at and
#               connected to A, which advertises B in their config; kill -9 A: seconds until
#               every agent is connected to B (target <= 60 s).
#   kill-center One real agent queuing 50,000 events (100 x 500) and KC_AGENTS (500) sims at 60
#               events/min while the center is killed -9 and restarted six times, every ~10 s.
#               Lost and duplicated records must be 0/0. DB=sqlite|postgres.
#   all         All of the above (storm on SQLite and on PostgreSQL).
#
#   bash bench/faults.sh storm                    # DB=sqlite AGENTS=10000
#   DB=postgres bash bench/faults.sh storm
#   bash bench/faults.sh pg-outage
#   bash bench/faults.sh failover
#   bash bench/faults.sh kill-center
#   bash bench/faults.sh all
#
# Needs curl, python3, psql, and PostgreSQL 15 server binaries (PGBIN) for the private instance;
# run as root (the private instance runs as user postgres via runuser). CARGO_TARGET_DIR is
# honoured. Logs are kept in a temp dir only with KEEP=1.
set -euo pipefail
scenario=${1:-}
case "$scenario" in
  storm | pg-outage | failover | kill-center | all) ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
    ;;
esac
HEARTBEAT=${HEARTBEAT:-30}
RAMP=${RAMP:-1000}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGHOST_SHARED=${PGHOST_SHARED:-127.0.0.1}
PGPORT_SHARED=${PGPORT_SHARED:-5432}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release --bins -q)
bin=$target/release
work=$(mktemp -d /tmp/hw-faults.XXXXXX)
chmod 755 "$work" # the private PostgreSQL (user postgres) keeps its data and socket under it
pids=()
shared_dbs=()
pg_private=""
failures=0
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$pg_private" ]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pg_private/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  for d in "${shared_dbs[@]}"; do
    psql -q -h "$PGHOST_SHARED" -p "$PGPORT_SHARED" -U postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" postgres >/dev/null 2>&1 || true
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# One descriptor per agent on each side (see sim_load.sh); each process gets the hard limit.
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
fd_limit=$(ulimit -Hn)

# ---------------------------------------------------------------------------------------------
# Helpers
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
row() { printf '  %-52s %s\n' "$1" "$2"; }
fail() {
  echo "  FAILED: $*"
  failures=$((failures + 1))
}
stop_pids() { # stops what this scenario started
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

# start_center LOG DATA_DIR DB_URL PORT GATEWAY_PORT [serve args...]: sets $center_pid.
start_center() {
  local log=$1 dir=$2 db=$3 p1=$4 p2=$5
  shift 5
  local dbargs=()
  [ -n "$db" ] && dbargs=(--database-url "$db")
  "$bin/hostward" serve --data-dir "$dir" "${dbargs[@]}" --listen "127.0.0.1:$p1" \
    --gateway-listen "127.0.0.1:$p2" --public-url "https://127.0.0.1:$p1" \
    --gateway-url "wss://127.0.0.1:$p2/agent/v1" --heartbeat-secs "$HEARTBEAT" \
    --log "${CENTER_LOG:-warn}" "$@" >>"$log.out" 2>"$log" &
  center_pid=$!
  pids+=("$center_pid")
}

# wait_healthy PORT PID [SECS]
wait_healthy() {
  local t0
  t0=$(now)
  until curl -sfk --max-time 2 "https://127.0.0.1:$1/healthz" >/dev/null 2>&1; do
    kill -0 "$2" 2>/dev/null || { echo "center (pid $2) exited during start-up"; return 1; }
    awk -v s="$(since "$t0")" -v m="${3:-60}" 'BEGIN { exit !(s > m) }' && { echo "center not healthy in ${3:-60} s"; return 1; }
    sleep 0.1
  done
}

# metric PORT DATA_DIR NAME: the value (summed over labels), empty when /metrics does not answer.
metric() {
  { curl -sf --max-time 3 --cacert "$2/ca.crt" "https://127.0.0.1:$1/metrics" 2>/dev/null || true; } |
    awk -v n="$3" '$1 == n || index($1, n "{") == 1 { s += $2; f = 1 } END { if (f) printf "%d\n", s; else if (NR) print 0 }'
}

# sims FIELD...: the sums of these fields over the last status line of every sim in $sdir.
sims() {
  python3 - "$sdir" "$@" <<'PY'
import glob, json, os, sys
d, fields = sys.argv[1], sys.argv[2:]
tot = {f: 0 for f in fields}
for path in sorted(glob.glob(os.path.join(d, "sim-*.out"))):
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 16384))
        lines = fh.read().decode(errors="replace").splitlines()
    for l in reversed(lines):
        try:
            s = json.loads(l)
        except ValueError:
            continue
        if "connected" in s:
            for f in fields:
                tot[f] += int(s.get(f, 0))
            break
print(" ".join(str(tot[f]) for f in fields))
PY
}

# start_sims CENTER_URL SECRET FINGERPRINT AGENTS [sim args...]: 10,000 agents per process.
start_sims() {
  local url=$1 secret=$2 fp=$3 n_all=$4
  shift 4
  local n_sims=$(((n_all + 9999) / 10000)) i n
  for i in $(seq 1 "$n_sims"); do
    n=$((n_all / n_sims + (i <= n_all % n_sims ? 1 : 0)))
    HOSTWARD_ENROLL_TOKEN=$secret "$bin/hostward-sim" --center "$url" --ca-sha256 "$fp" --agents "$n" \
      --seed "$i" --ramp-per-sec "$((RAMP / n_sims))" --heartbeat-secs "$HEARTBEAT" --status-secs 0.5 \
      --state-dir "$sdir/sim-$i" "$@" >"$sdir/sim-$i.out" 2>"$sdir/sim-$i.log" &
    pids+=($!)
    sim_pids+=($!)
  done
}

# token DATA_DIR DB_URL: prints "secret fingerprint".
token() {
  local dbargs=()
  [ -n "$2" ] && dbargs=(--database-url "$2")
  "$bin/hostward" token create --data-dir "$1" "${dbargs[@]}" --json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["secret"], d["ca_sha256"])'
}

# wait_all_connected PORT DATA_DIR EXPECTED_ONLINE SIM_AGENTS TIMEOUT: until every sim session
# has its config and the center counts EXPECTED_ONLINE agents online.
wait_all_connected() {
  local t0 c on
  t0=$(now)
  while :; do
    c=$(sims configured)
    on=$(metric "$1" "$2" hostward_agents_online)
    [ "$c" -ge "$4" ] && [ "${on:-0}" -ge "$3" ] && return 0
    if awk -v s="$(since "$t0")" -v m="$5" 'BEGIN { exit !(s > m) }'; then
      echo "  only $c sims configured, ${on:-?} online after $5 s"
      return 1
    fi
    sleep 1
  done
}

# sql DB_URL QUERY: rows, columns separated by a space.
sql() {
  case "$1" in
    sqlite://*) sqlite3 -separator ' ' "file:${1#sqlite://}?mode=ro" "$2" ;;
    *) psql -X -qtA -F ' ' "$1" -c "$2" ;;
  esac
}

# Starts a private PostgreSQL 15 on its own port with its socket in its own dir: stopping it
# disturbs nobody. Sets $pg_private, $pg_port.
start_private_pg() {
  pg_private="$work/pg"
  mkdir -p "$pg_private"
  chown postgres "$pg_private"
  pg_port=$(port)
  runuser -u postgres -- "$PGBIN/initdb" -D "$pg_private/data" -A trust -U postgres >"$pg_private/initdb.log" 2>&1
  pg_ctl_start
  psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -c "CREATE DATABASE hostward" postgres
}
pg_ctl_start() {
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pg_private/data" -l "$pg_private/server.log" -w \
    -o "-p $pg_port -k $pg_private -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null
}
pg_ctl_stop() {
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pg_private/data" -m fast -w stop >/dev/null
}

shared_db() { # creates a database on the shared cluster (dropped on exit); sets $db_url
  local name="hw_faults_${1}_$$"
  psql -q -h "$PGHOST_SHARED" -p "$PGPORT_SHARED" -U postgres -c "CREATE DATABASE $name" postgres
  shared_dbs+=("$name")
  db_url="postgres://postgres@$PGHOST_SHARED:$PGPORT_SHARED/$name"
}

# Background sampler: peak CPU (% of one core over each 0.5 s) and peak RSS of a pid, rewritten
# into FILE after every sample as "cpu_pct rss_mb".
sampler() {
  python3 - "$1" "$2" <<'PY' &
import os, sys, time
pid, out = sys.argv[1], sys.argv[2]
hz = os.sysconf("SC_CLK_TCK")
def ticks():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
def rss_kb():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])
    return 0
peak_cpu = peak_rss = 0.0
try:
    last, t = ticks(), time.monotonic()
    while True:
        time.sleep(0.5)
        n, r, m = ticks(), rss_kb(), time.monotonic()
        peak_cpu = max(peak_cpu, (n - last) / hz / (m - t) * 100)
        peak_rss = max(peak_rss, r / 1024)
        last, t = n, m
        with open(out + ".tmp", "w") as fh:
            fh.write(f"{peak_cpu:.0f} {peak_rss:.0f}\n")
        os.replace(out + ".tmp", out)
except (FileNotFoundError, ProcessLookupError):
    pass
PY
  sampler_pid=$!
  pids+=("$sampler_pid")
}

# Real agent: enroll at CENTER_URL into $sdir/agent and run it; sets $agent_pid, $agent_server.
start_real_agent() {
  local url=$1 secret=$2 fp=$3
  HOSTWARD_ENROLL_TOKEN=$secret "$bin/hostward-agent" enroll --center "$url" --ca-sha256 "$fp" \
    --state-dir "$sdir/agent" --allow-unsupported >"$sdir/agent-enroll.log" 2>&1
  agent_server=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["server_id"])' "$sdir/agent/identity.json")
  "$bin/hostward-agent" --log-level info run --state-dir "$sdir/agent" >"$sdir/agent.out" 2>"$sdir/agent.log" &
  agent_pid=$!
  pids+=("$agent_pid")
}

# emit_loop BATCHES PER_BATCH PAUSE_SECS TYPE: in the background, one `emit` per batch with
# data {"batch": k}; each emit's JSON answer (or error) is a line of $sdir/emit.log.
emit_loop() {
  (
    for k in $(seq 1 "$1"); do
      if ! "$bin/hostward-agent" emit --state-dir "$sdir/agent" --event-type "$4" --count "$2" \
        --data "{\"batch\":$k}" >>"$sdir/emit.log" 2>>"$sdir/emit.err"; then
        echo '{"queued":0,"failed":true}' >>"$sdir/emit.log"
      fi
      sleep "$3"
    done
  ) &
  emit_pid=$!
  pids+=("$emit_pid")
}
emits_done() { [ -f "$sdir/emit.log" ] && wc -l <"$sdir/emit.log" || echo 0; }
emits_queued() {
  python3 -c 'import json,sys; print(sum(json.loads(l).get("queued",0) for l in open(sys.argv[1]) if l.strip()))' "$sdir/emit.log"
}

# real_counts DB_URL SERVER TYPE PER_BATCH BATCHES: "rows distinct_seqs lost dup" where lost and
# dup are per batch (each batch's events carry the same data): a batch short of PER_BATCH rows
# lost some, one over it has duplicates.
real_counts() {
  sql "$1" "SELECT data, COUNT(*), COUNT(DISTINCT seq) FROM events WHERE server_id = '$2' AND event_type = '$3' GROUP BY data" |
    python3 -c '
import json, sys
per, batches = int(sys.argv[1]), int(sys.argv[2])
got = {}
rows = seqs = 0
for line in sys.stdin:
    data, n, d = line.rsplit(" ", 2)
    got[json.loads(data).get("batch")] = int(n)
    rows += int(n); seqs += int(d)
lost = sum(max(0, per - got.get(k, 0)) for k in range(1, batches + 1))
dup = sum(max(0, n - per) for n in got.values())
print(rows, seqs, lost, dup)' "$4" "$5"
}

# sim_counts DB_URL: "rows distinct_(server,seq) distinct_(server,data)" of the sims' events.
sim_counts() {
  sql "$1" "SELECT COUNT(*), COUNT(DISTINCT server_id || ':' || seq), COUNT(DISTINCT server_id || data) FROM events WHERE event_type = 'sim'"
}

center_alive() { # PID LOG: reports a crash with the log's tail
  if ! kill -0 "$1" 2>/dev/null; then
    fail "the center (pid $1) is not running any more; last log lines:"
    tail -n 20 "$2" | sed 's/^/    /'
  fi
}

log_summary() { # LOG: the most frequent warning/error messages
  python3 - "$1" <<'PY'
import collections, json, sys
c = collections.Counter()
for l in open(sys.argv[1], errors="replace"):
    try:
        d = json.loads(l)
    except ValueError:
        continue
    if d.get("level") in ("WARN", "ERROR"):
        c[(d["level"], d.get("fields", {}).get("message", "")[:90])] += 1
for (lvl, msg), n in c.most_common(6):
    print(f"    {n:>7}  {lvl:<5} {msg}")
PY
}

SLOW_ACQUIRE='time to acquire exceeded slow threshold' # sqlx-core 0.9 pool/inner.rs, at WARN
acquire_waits() { # LOG: median / p90 / max of acquired_after_secs in the slow-acquire warnings
  python3 - "$1" <<'PY'
import json, sys
v = []
for l in open(sys.argv[1], errors="replace"):
    try:
        f = json.loads(l).get("fields", {})
    except ValueError:
        continue
    if "acquired_after_secs" in f:
        v.append(float(f["acquired_after_secs"]))
v.sort()
print(f"{v[len(v) // 2]:.1f} / {v[int(len(v) * 0.9)]:.1f} / {v[-1]:.1f} s" if v else "-")
PY
}

# ---------------------------------------------------------------------------------------------
storm() {
  local db=${DB:-sqlite} agents=${AGENTS:-10000}
  sdir="$work/storm-$db"
  mkdir -p "$sdir"
  sim_pids=()
  echo
  echo "== storm: $agents agents, kill -9 the center and restart it at once (DB $db, heartbeat ${HEARTBEAT} s)"
  if [ "$agents" -gt $((fd_limit - 100)) ]; then
    echo "  note: open-files hard limit is $fd_limit; capping at $((fd_limit - 100)) agents"
    agents=$((fd_limit - 100))
  fi
  local url=""
  if [ "$db" = postgres ]; then
    shared_db storm
    url=$db_url
  fi
  local p1 p2
  p1=$(port)
  p2=$(port)
  start_center "$sdir/center-1.log" "$sdir/center" "$url" "$p1" "$p2"
  wait_healthy "$p1" "$center_pid"
  local secret fp
  read -r secret fp < <(token "$sdir/center" "$url")
  local t0
  t0=$(now)
  start_sims "https://127.0.0.1:$p1" "$secret" "$fp" "$agents"
  wait_all_connected "$p1" "$sdir/center" "$agents" "$agents" 1800 || fail "storm: not all agents connected before the kill"
  row "agents connected before the kill (enrollment included)" "$(since "$t0") s"
  sleep 5

  # "Connected again" counts only once every agent lost its old session: the sims' status
  # lines (every 0.5 s) may still show the old sessions just after the kill.
  local lost0 lost
  lost0=$(sims sessions_lost)
  kill -9 "$center_pid"
  wait "$center_pid" 2>/dev/null || true
  start_center "$sdir/center-2.log" "$sdir/center" "$url" "$p1" "$p2"
  local restarted=$center_pid
  t0=$(now)
  sampler "$restarted" "$sdir/peaks"
  local t_conn="" t_conf="" t_online="" c conf on
  while :; do
    read -r c conf lost < <(sims connected configured sessions_lost)
    on=$(metric "$p1" "$sdir/center" hostward_agents_online)
    if [ $((lost - lost0)) -ge "$agents" ]; then
      [ -z "$t_conn" ] && [ "$c" -ge "$agents" ] && t_conn=$(since "$t0")
      [ -z "$t_conf" ] && [ "$conf" -ge "$agents" ] && t_conf=$(since "$t0")
    fi
    [ -z "$t_online" ] && [ "${on:-0}" -ge "$agents" ] && t_online=$(since "$t0")
    [ -n "$t_conn" ] && [ -n "$t_conf" ] && [ -n "$t_online" ] && break
    if ! kill -0 "$restarted" 2>/dev/null || awk -v s="$(since "$t0")" 'BEGIN { exit !(s > 900) }'; then
      break
    fi
    sleep 0.5
  done
  sleep 1
  kill "$sampler_pid" 2>/dev/null || true
  local peak_cpu peak_rss slow
  read -r peak_cpu peak_rss <"$sdir/peaks" || true
  slow=$(grep -c "$SLOW_ACQUIRE" "$sdir/center-2.log" || true)
  row "all agents connected again (sims: connected)" "${t_conn:-not within 900 s} s after the restart ($c)"
  row "all agents configured again (sims: got config)" "${t_conf:-not within 900 s} s ($conf)"
  row "center hostward_agents_online = $agents" "${t_online:-not within 900 s} s (${on:-?})"
  row "center peak CPU during the recovery" "${peak_cpu:-?} % of one core (0.5 s samples)"
  row "center peak RSS during the recovery" "${peak_rss:-?} MB"
  row "slow-acquire warnings after the restart" "$slow  (\"$SLOW_ACQUIRE\")"
  [ "$slow" -gt 0 ] && row "  their wait: median / p90 / max" "$(acquire_waits "$sdir/center-2.log")"
  row "sims: connect errors / refused (whole run)" "$(sims connect_errors refused | tr ' ' /)"
  echo "  center warnings/errors after the restart:"
  log_summary "$sdir/center-2.log"
  [ -n "$t_conn" ] && [ -n "$t_online" ] || fail "storm ($db): not every agent came back"
  center_alive "$restarted" "$sdir/center-2.log"
  stop_pids
}

# ---------------------------------------------------------------------------------------------
pg_outage() {
  local agents=${AGENTS:-2000} outage=${OUTAGE_SECS:-10}
  sdir="$work/pg-outage"
  mkdir -p "$sdir"
  sim_pids=()
  echo
  echo "== pg-outage: $agents sims at 6 events/min + 1 real agent queuing 10,000 events; PostgreSQL down ${outage} s"
  start_private_pg
  local url="postgres://postgres@127.0.0.1:$pg_port/hostward"
  local p1 p2
  p1=$(port)
  p2=$(port)
  start_center "$sdir/center.log" "$sdir/center" "$url" "$p1" "$p2"
  local center=$center_pid
  wait_healthy "$p1" "$center"
  local secret fp
  read -r secret fp < <(token "$sdir/center" "$url")
  start_sims "https://127.0.0.1:$p1" "$secret" "$fp" "$agents" --events-per-min 6
  start_real_agent "https://127.0.0.1:$p1" "$secret" "$fp"
  wait_all_connected "$p1" "$sdir/center" $((agents + 1)) "$agents" 900 || fail "pg-outage: not all agents connected"

  emit_loop 100 100 "${EMIT_PAUSE:-0.5}" real
  until [ "$(emits_done)" -ge 20 ]; do sleep 0.1; done
  local t_stop_unix
  t_stop_unix=$(date +%s)
  pg_ctl_stop
  echo "  PostgreSQL stopped after $(emits_done) of 100 emits"
  sleep "$outage"
  pg_ctl_start
  local t_pg
  t_pg=$(now)
  echo "  PostgreSQL started again"
  # The real agent's backlog: what it had queued when the database came back.
  local backlog t_backlog="" t_real="" stored pending="" t_all="" signalled=""
  backlog=$(emits_queued)
  # The sims keep producing until the emits are done and the database has been back 20 s;
  # then they stop, so that "pending 0" means every event they made was acked.
  while :; do
    stored=$(sql "$url" "SELECT COUNT(*) FROM events WHERE server_id = '$agent_server' AND event_type = 'real'" 2>/dev/null || echo 0)
    pending=$(sims events_pending)
    [ -z "$t_backlog" ] && [ "${stored:-0}" -ge "$backlog" ] && t_backlog=$(since "$t_pg")
    [ -z "$t_real" ] && [ "${stored:-0}" -ge 10000 ] && t_real=$(since "$t_pg")
    if [ -z "$signalled" ] && [ "$(emits_done)" -ge 100 ] && awk -v s="$(since "$t_pg")" 'BEGIN { exit !(s >= 20) }'; then
      kill -USR1 "${sim_pids[@]}"
      signalled=$(since "$t_pg")
    fi
    if [ -n "$signalled" ] && [ -n "$t_real" ] && [ "$pending" -eq 0 ]; then
      t_all=$(since "$t_pg")
      break
    fi
    awk -v s="$(since "$t_pg")" 'BEGIN { exit !(s > 900) }' && break
    sleep 0.5
  done
  sleep 2
  local queued rows seqs lost dup
  queued=$(emits_queued)
  read -r rows seqs lost dup < <(real_counts "$url" "$agent_server" real 100 100)
  local produced acked dropped sent srows sseq sdata
  read -r produced acked dropped sent < <(sims events_produced events_acked events_dropped events_sent)
  read -r srows sseq sdata < <(sim_counts "$url")
  local offline history
  offline=$(sql "$url" "SELECT COUNT(DISTINCT server_id) FROM status_history WHERE status = 'offline' AND ts >= $t_stop_unix")
  history=$(sql "$url" "SELECT dimension || '=' || status || '/' || reason || ':' || COUNT(*) FROM status_history WHERE ts >= $t_stop_unix GROUP BY dimension, status, reason" | tr '\n' ' ')
  local m_fail m_unavail m_rej m_failing
  m_fail=$(metric "$p1" "$sdir/center" hostward_records_store_failures_total)
  m_unavail=$(metric "$p1" "$sdir/center" hostward_records_unavailable_total)
  m_rej=$(metric "$p1" "$sdir/center" hostward_records_rejected_total)
  m_failing=$(metric "$p1" "$sdir/center" hostward_agent_outbox_failing)
  row "real agent: events queued by emit" "$queued of 10000"
  row "real agent: rows stored / distinct seqs" "$rows / $seqs   (target 10000 / 10000)"
  row "real agent: lost / duplicated (per batch)" "$lost / $dup"
  row "sims: events produced / acked / dropped / sent" "$produced / $acked / $dropped / $sent"
  row "sims: rows stored / distinct (server,seq) / (server,data)" "$srows / $sseq / $sdata   (target = acked $acked)"
  row "sims: sessions lost (whole run)" "$(sims sessions_lost)"
  row "servers marked offline after the outage began" "$offline   (target 0)"
  row "status changes after the outage began" "${history:-none}"
  row "center: store failures / unavailable / rejected" "${m_fail:-?} / ${m_unavail:-?} / ${m_rej:-?}"
  row "center: hostward_agent_outbox_failing" "${m_failing:-?}"
  row "from PostgreSQL start: real backlog ($backlog) stored" "${t_backlog:-not within 900} s"
  row "from PostgreSQL start: real agent's 10000 stored" "${t_real:-not within 900} s (the emits run until ~50 s after the first)"
  row "from PostgreSQL start: all stored, sims pending 0" "${t_all:-not within 900} s (sims stop producing at ${signalled:-?} s)"
  echo "  center warnings/errors:"
  log_summary "$sdir/center.log"
  [ "$queued" -eq 10000 ] || fail "pg-outage: emit queued $queued of 10000"
  [ "$rows" -eq 10000 ] && [ "$seqs" -eq 10000 ] && [ "$lost" -eq 0 ] && [ "$dup" -eq 0 ] ||
    fail "pg-outage: real agent stored $rows rows ($seqs seqs), lost $lost, duplicated $dup"
  [ "$srows" -eq "$acked" ] && [ "$sdata" -eq "$acked" ] && [ "$acked" -eq $((produced - dropped)) ] ||
    fail "pg-outage: sims produced $produced (dropped $dropped), acked $acked, stored $srows ($sdata distinct)"
  [ "$offline" -eq 0 ] || fail "pg-outage: $offline servers were marked offline"
  [ -n "$t_all" ] || fail "pg-outage: not everything was stored within 900 s of the restart"
  center_alive "$center" "$sdir/center.log"
  stop_pids
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pg_private/data" -m fast stop >/dev/null 2>&1 || true
  pg_private=""
}

# ---------------------------------------------------------------------------------------------
failover() {
  local agents=${AGENTS:-2000}
  sdir="$work/failover"
  mkdir -p "$sdir/b"
  sim_pids=()
  echo
  echo "== failover: $agents agents on replica A of two; kill -9 A"
  shared_db failover
  local url=$db_url
  local a1 a2 b1 b2
  a1=$(port)
  a2=$(port)
  b1=$(port)
  b2=$(port)
  start_center "$sdir/a.log" "$sdir/a" "$url" "$a1" "$a2"
  local a=$center_pid
  wait_healthy "$a1" "$a"
  # Replicas share the CA files (one secret volume), each has its own data dir and ports.
  cp "$sdir/a/ca.crt" "$sdir/a/ca.key" "$sdir/b/"
  start_center "$sdir/b.log" "$sdir/b" "$url" "$b1" "$b2"
  local b=$center_pid
  wait_healthy "$b1" "$b"
  local secret fp
  read -r secret fp < <(token "$sdir/a" "$url")
  start_sims "https://127.0.0.1:$a1" "$secret" "$fp" "$agents"
  wait_all_connected "$a1" "$sdir/a" "$agents" "$agents" 900 || fail "failover: not all agents connected to A"
  sleep "${FO_WAIT:-25}" # A's config pushes carry both gateways
  row "agents that learned another gateway before the kill" "$(sims multi_gateway) of $agents"
  local t_kill_unix lost0 lost
  t_kill_unix=$(date +%s)
  lost0=$(sims sessions_lost)
  kill -9 "$a"
  wait "$a" 2>/dev/null || true
  local t0
  t0=$(now)
  local t_conn="" t_conf="" t_online="" c conf on
  while :; do
    read -r c conf lost < <(sims connected configured sessions_lost)
    on=$(metric "$b1" "$sdir/b" hostward_agents_online)
    if [ $((lost - lost0)) -ge "$agents" ]; then
      [ -z "$t_conn" ] && [ "$c" -ge "$agents" ] && t_conn=$(since "$t0")
      [ -z "$t_conf" ] && [ "$conf" -ge "$agents" ] && t_conf=$(since "$t0")
    fi
    [ -z "$t_online" ] && [ "${on:-0}" -ge "$agents" ] && t_online=$(since "$t0")
    [ -n "$t_conn" ] && [ -n "$t_conf" ] && [ -n "$t_online" ] && break
    awk -v s="$(since "$t0")" 'BEGIN { exit !(s > 300) }' && break
    sleep 0.5
  done
  sleep 1
  row "all agents connected again (sims: connected)" "${t_conn:-not within 300} s after the kill ($c)"
  row "all agents configured again (sims: got config)" "${t_conf:-not within 300} s ($conf)"
  row "replica B hostward_agents_online = $agents" "${t_online:-not within 300} s (${on:-?})"
  row "sims: failovers (sessions on another URL)" "$(sims failovers)"
  row "servers marked offline after the kill" "$(sql "$url" "SELECT COUNT(DISTINCT server_id) FROM status_history WHERE status = 'offline' AND ts >= $t_kill_unix")"
  echo "  replica B warnings/errors:"
  log_summary "$sdir/b.log"
  if [ -z "$t_conn" ] || [ -z "$t_online" ] || awk -v a="$t_conn" -v b="$t_online" 'BEGIN { exit !(a > 60 || b > 60) }'; then
    fail "failover: agents back on B in ${t_conn:-never} s (sims) / ${t_online:-never} s (B online); target <= 60 s"
  fi
  center_alive "$b" "$sdir/b.log"
  stop_pids
}

# ---------------------------------------------------------------------------------------------
kill_center() {
  local db=${DB:-sqlite} agents=${KC_AGENTS:-500} kills=${KILLS:-6}
  local batches=100 per=500
  sdir="$work/kill-center-$db"
  mkdir -p "$sdir"
  sim_pids=()
  echo
  echo "== kill-center: 1 real agent queuing $((batches * per)) events + $agents sims at 60/min; $kills x kill -9 the center (DB $db)"
  local url="" dburl
  if [ "$db" = postgres ]; then
    shared_db killc
    url=$db_url
  fi
  dburl=${url:-sqlite://$sdir/center/hostward.db}
  local p1 p2
  p1=$(port)
  p2=$(port)
  start_center "$sdir/center-0.log" "$sdir/center" "$url" "$p1" "$p2"
  wait_healthy "$p1" "$center_pid"
  local secret fp
  read -r secret fp < <(token "$sdir/center" "$url")
  start_sims "https://127.0.0.1:$p1" "$secret" "$fp" "$agents" --events-per-min 60
  start_real_agent "https://127.0.0.1:$p1" "$secret" "$fp"
  wait_all_connected "$p1" "$sdir/center" $((agents + 1)) "$agents" 900 || fail "kill-center: not all agents connected"

  local t0
  t0=$(now)
  emit_loop "$batches" "$per" "${EMIT_PAUSE:-0.6}" real
  local i before
  for i in $(seq 1 "$kills"); do
    sleep "${KILL_EVERY:-10}"
    before=$(sql "$dburl" "SELECT COUNT(*) FROM events WHERE server_id = '$agent_server' AND event_type = 'real'" 2>/dev/null || echo '?')
    kill -9 "$center_pid"
    wait "$center_pid" 2>/dev/null || true
    start_center "$sdir/center-$i.log" "$sdir/center" "$url" "$p1" "$p2"
    echo "  kill $i at $(since "$t0") s: $(emits_done) of $batches emits done, $before real events stored"
    wait_healthy "$p1" "$center_pid" || true
  done
  until [ "$(emits_done)" -ge "$batches" ]; do sleep 0.5; done
  kill -USR1 "${sim_pids[@]}"
  local t_last
  t_last=$(now)
  local stored=0 pending="" t_all=""
  while :; do
    stored=$(sql "$dburl" "SELECT COUNT(*) FROM events WHERE server_id = '$agent_server' AND event_type = 'real'" 2>/dev/null || echo 0)
    pending=$(sims events_pending)
    if [ "${stored:-0}" -ge $((batches * per)) ] && [ "$pending" -eq 0 ]; then
      t_all=$(since "$t_last")
      break
    fi
    awk -v s="$(since "$t_last")" 'BEGIN { exit !(s > 900) }' && break
    sleep 0.5
  done
  sleep 2
  local queued rows seqs lost dup
  queued=$(emits_queued)
  read -r rows seqs lost dup < <(real_counts "$dburl" "$agent_server" real "$per" "$batches")
  local produced acked dropped srows sseq sdata
  read -r produced acked dropped < <(sims events_produced events_acked events_dropped)
  read -r srows sseq sdata < <(sim_counts "$dburl")
  local slost=$((acked - sdata)) sdup=$((srows - sdata))
  [ "$slost" -lt 0 ] && slost=0
  row "real agent: events queued by emit" "$queued of $((batches * per))"
  row "real agent: rows stored / distinct seqs" "$rows / $seqs"
  row "real agent: lost / duplicated" "$lost / $dup   (target 0 / 0)"
  row "sims: events produced / acked / dropped" "$produced / $acked / $dropped"
  row "sims: rows stored / distinct (server,data)" "$srows / $sdata"
  row "sims: lost / duplicated" "$slost / $sdup   (target 0 / 0)"
  row "real agent: sessions ended (its log)" "$(grep -c '"session ended"' "$sdir/agent.log" || true)"
  row "sims: sessions lost / event frames sent (resends incl.)" "$(sims sessions_lost events_sent | tr ' ' /)"
  row "after the last emit, all stored in" "${t_all:-not within 900} s"
  row "center: unavailable closes / store failures" "$(metric "$p1" "$sdir/center" hostward_records_unavailable_total) / $(metric "$p1" "$sdir/center" hostward_records_store_failures_total) (since the last restart)"
  [ "$queued" -eq $((batches * per)) ] || fail "kill-center: emit queued $queued of $((batches * per))"
  [ "$lost" -eq 0 ] && [ "$dup" -eq 0 ] && [ "$rows" -eq "$queued" ] || fail "kill-center: real agent lost $lost, duplicated $dup ($rows rows for $queued queued)"
  [ "$slost" -eq 0 ] && [ "$sdup" -eq 0 ] && [ "$acked" -eq $((produced - dropped)) ] || fail "kill-center: sims lost $slost, duplicated $sdup (acked $acked of $produced produced)"
  center_alive "$center_pid" "$sdir/center-$kills.log"
  stop_pids
}

case "$scenario" in
  storm) storm ;;
  pg-outage) pg_outage ;;
  failover) failover ;;
  kill-center) kill_center ;;
  all)
    DB=sqlite storm
    DB=postgres storm
    AGENTS=${AGENTS_PG_OUTAGE:-2000} pg_outage
    AGENTS=${AGENTS_FAILOVER:-2000} failover
    kill_center
    ;;
esac
echo
if [ "$failures" -gt 0 ]; then
  echo "$failures target(s) missed"
  exit 1
fi
echo "all targets met"
