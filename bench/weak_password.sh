#!/usr/bin/env bash
# Weak-password check speed: ACCOUNTS yescrypt hashes (default 20, libxcrypt's default cost, as
# Debian 12 and RHEL 9 write them; every fourth account has a password from the word list)
# against a fixed 100-word list (the first 100 lines of content/weak_passwords.txt), on all
# cores, beside John the Ripper (Debian's john 1.9.0, `--format=crypt --fork=<cores>`, one
# OpenMP thread per process so it gets the same cores and no more; a fresh pot file each run)
# on the same machine, RUNS times in turn (default 3; medians printed). Both run at nice 19, as
# the agent's check does. Both call the host's crypt(3), so this measures the scheduling around
# it. Goal: not slower than john.
# With FULL=1 it also times the check as the agent runs it (built-in dictionary, user-name
# variants and the empty string: about 500 candidates per account).
#
#   bash bench/weak_password.sh
#   ACCOUNTS=8 RUNS=1 FULL=1 bash bench/weak_password.sh
#
# Needs `[[bench]] name = "weak_password" harness = false` in crates/agent/Cargo.toml, and john
# (apt-get install -y john).
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
[ -x "$bin" ] || { echo "no bench driver: add the [[bench]] lines to crates/agent/Cargo.toml" >&2; exit 1; }

head -n 100 "$root/content/weak_passwords.txt" >"$work/words.txt"
"$bin" gen "$work/host" "$work/words.txt" "$ACCOUNTS"

now() { python3 -c 'import time; print(time.time())'; }
ours=()
johns=()
for run in $(seq "$RUNS"); do
  echo "run $run/$RUNS: hostward ($cores threads)..." >&2
  ours+=("$("$bin" words "$work/host" "$work/words.txt")")

  echo "run $run/$RUNS: john --fork=$cores..." >&2
  rm -rf "$work/john-home" && mkdir -p "$work/john-home"
  start=$(now)
  HOME="$work/john-home" OMP_NUM_THREADS=1 nice -n 19 "$john" --format=crypt --fork="$cores" \
    --wordlist="$work/words.txt" --session="$work/john-home/bench" "$work/host/etc/shadow" \
    >"$work/john.out" 2>&1
  end=$(now)
  cracked=$(HOME="$work/john-home" "$john" --show --format=crypt "$work/host/etc/shadow" |
    sed -n 's/^\([0-9]*\) password hash.* cracked.*/\1/p')
  johns+=("{\"start\":$start,\"end\":$end,\"cracked\":${cracked:-0}}")
done

full=""
if [ "$FULL" = 1 ]; then
  echo "hostward (full check)..." >&2
  full=$("$bin" full "$work/host")
fi

python3 - "$ACCOUNTS" "$full" "$RUNS" "${ours[@]}" "${johns[@]}" <<'EOF'
import json, statistics, sys
accounts, full, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ours = [json.loads(a) for a in sys.argv[4:4 + n]]
johns = [json.loads(a) for a in sys.argv[4 + n:]]
for j in johns:
    j["wall_s"] = j["end"] - j["start"]
med = lambda rs: statistics.median(r["wall_s"] for r in rs)
runs = lambda rs: " ".join(f"{r['wall_s']:.1f}" for r in rs)
print(f"{accounts} yescrypt accounts x 100 words{'':14s}{'wall s':>10s}{'cracked':>10s}   runs")
print(f"{'  hostward-agent weak-password check':50s}{med(ours):10.2f}{ours[0]['cracked']:10d}   {runs(ours)}")
print(f"{'  john --format=crypt --fork':50s}{med(johns):10.2f}{johns[0]['cracked']:10d}   {runs(johns)}")
print(f"{'  goal':50s}{'<= john':>10s}")
print("  (medians; both stop trying words on an account once it is cracked)")
if full:
    f = json.loads(full)
    print(f"{'  full check, %d candidates per account' % f['candidates']:50s}{f['wall_s']:10.2f}{f['cracked']:10d}")
EOF
