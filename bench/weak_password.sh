#!/usr/bin/env bash
# Weak-password check speed: ACCOUNTS yescrypt hashes (default 20, libxcrypt's default cost, as
# Debian 12 and RHEL 9 write them; every fourth account has a password from the word list)
# against a fixed 100-word list (the first 100 lines of content/weak_passwords.txt), on all
# cores, beside John the Ripper (Debian's john 1.9.0, `--format=crypt --fork=<cores>`, one
# OpenMP thread per process so it gets the same cores and no more; fresh salts each run, so
# nothing is in its pot file) on the same machine, RUNS times in turn (default 3; medians printed). Both run at nice 19, as
# the agent's check does. Both call the host's crypt(3), so this measures the scheduling around
# it. Goal: not slower than john.
# With FULL=1 it also times the check as the agent runs it (built-in dictionary, user-name
# variants and the empty string: about 500 candidates per account).
#
#   bash bench/weak_password.sh
#   ACCOUNTS=8 RUNS=1 FULL=1 bash bench/weak_password.sh
#
# Needs john (apt-get install -y john).
set -euo pipefail
ACCOUNTS=${ACCOUNTS:-20}
RUNS=${RUNS:-3}
FULL=${FULL:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
cores=$(nproc)
john=$(command -v john || echo /usr/sbin/john)
[ -x "$john" ] || { echo "john not found: apt-get install -y john" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() {
  (cd "$root" && cargo bench -q -p hostward-agent --bench weak_password --no-run \
    --message-format=json 2>/dev/null) |
    python3 -c 'import json, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "weak_password" and m.get("executable"):
        print(m["executable"])'
}
# BIN: an already built driver (skips the build).
bin=${BIN:-$(build)}
[ -x "$bin" ] || { echo "the weak_password bench driver did not build" >&2; exit 1; }

head -n 100 "$root/content/weak_passwords.txt" >"$work/words.txt"

# john 1.9.0 has no --pot option: its pot file is ~/.john/john.pot of the passwd entry, not of
# $HOME, and a hash found there is not tried again. So each run gets freshly salted hashes, and
# on exit the lines this script added are taken out of that pot file again.
pot="$(getent passwd "$(id -u)" | cut -d: -f6)/.john/john.pot"
had_john_dir=$([ -d "$(dirname "$pot")" ] && echo 1 || echo 0)
cleanup() {
  if [ "$had_john_dir" = 0 ]; then rm -rf "$(dirname "$pot")"; fi
  if [ -f "$pot" ] && ls "$work"/run*/etc/shadow >/dev/null 2>&1; then
    cut -d: -f2 "$work"/run*/etc/shadow | sed 's/$/:/' >"$work/ours.pat"
    grep -vF -f "$work/ours.pat" "$pot" >"$work/pot.kept" || true
    cat "$work/pot.kept" >"$pot"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Wall and CPU time of a command and its children (john's forks are its children).
measure() {
  python3 -c 'import json, resource, subprocess, sys, time
t0 = time.perf_counter()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
wall = time.perf_counter() - t0
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "cpu_s": r.ru_utime + r.ru_stime}))' "$@"
}
ours=()
johns=()
for run in $(seq "$RUNS"); do
  host="$work/run$run"
  "$bin" gen "$host" "$work/words.txt" "$ACCOUNTS"
  echo "run $run/$RUNS: hostward ($cores threads)..." >&2
  ours+=("$("$bin" words "$host" "$work/words.txt")")

  echo "run $run/$RUNS: john --fork=$cores..." >&2
  timing=$(OMP_NUM_THREADS=1 measure nice -n 19 "$john" --format=crypt --fork="$cores" \
    --wordlist="$work/words.txt" --session="$work/john-$run" "$host/etc/shadow")
  cracked=$("$john" --show --format=crypt "$host/etc/shadow" |
    sed -n 's/^\([0-9]*\) password hash.* cracked.*/\1/p')
  johns+=("${timing%\}},\"cracked\":${cracked:-0}}")
done

full=""
if [ "$FULL" = 1 ]; then
  echo "hostward (full check)..." >&2
  full=$("$bin" full "$work/run1")
fi

python3 - "$ACCOUNTS" "$full" "$RUNS" "${ours[@]}" "${johns[@]}" <<'EOF'
import json, statistics, sys
accounts, full, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ours = [json.loads(a) for a in sys.argv[4:4 + n]]
johns = [json.loads(a) for a in sys.argv[4 + n:]]
med = lambda rs, k: statistics.median(r[k] for r in rs)
runs = lambda rs: " ".join(f"{r['wall_s']:.1f}" for r in rs)
print(f"{accounts} yescrypt accounts x 100 words{'':8s}{'wall s':>10s}{'CPU s':>10s}{'cracked':>10s}   wall s of each run")
for name, rs in [("hostward-agent weak-password check", ours), ("john --format=crypt --fork", johns)]:
    print(f"  {name:42s}{med(rs, 'wall_s'):10.2f}{med(rs, 'cpu_s'):10.2f}{rs[0]['cracked']:10d}   {runs(rs)}")
print(f"{'  goal':44s}{'<= john':>10s}")
print("  (medians; both stop trying words on an account once it is cracked)")
if full:
    f = json.loads(full)
    name = "full check, %d candidates per account" % f["candidates"]
    print(f"  {name:42s}{f['wall_s']:10.2f}{f['cpu_s']:10.2f}{f['cracked']:10d}")
EOF
