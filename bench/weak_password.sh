#!/usr/bin/env bash
# Weak-password check speed: ACCOUNTS yescrypt hashes (default 20, libxcrypt's default cost, as
# Debian 12 and RHEL 9 write them; every fourth account has a password from the word list)
# against a fixed 100-word list (the first 100 lines of content/weak_passwords.txt), on all
# cores, beside John the Ripper (Debian's john 1.9.0, `--format=crypt --fork=<cores>`, one
# OpenMP thread per process so it gets the same cores and no more; a fresh pot file each run)
# in the same run on the same machine. Both use the host's crypt(3), so this measures the
# scheduling around it. Goal: not slower than john.
# With FULL=1 it also times the check as the agent runs it (built-in dictionary, user-name
# variants and the empty string, about 500 candidates per account).
#
#   bash bench/weak_password.sh
#   ACCOUNTS=8 FULL=1 bash bench/weak_password.sh
#
# Needs `[[bench]] name = "weak_password" harness = false` in crates/agent/Cargo.toml and john
# (apt-get install -y john).
set -euo pipefail
ACCOUNTS=${ACCOUNTS:-20}
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
    python3 -c 'import json,sys
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

echo "hostward (check_words, $cores threads)..." >&2
ours=$("$bin" words "$work/host" "$work/words.txt")

echo "john --fork=$cores..." >&2
mkdir -p "$work/john-home"
start=$(date +%s.%N)
HOME="$work/john-home" OMP_NUM_THREADS=1 "$john" --format=crypt --fork="$cores" \
  --wordlist="$work/words.txt" --session="$work/john-home/bench" "$work/host/etc/shadow" \
  >"$work/john.out" 2>&1
end=$(date +%s.%N)
john_cracked=$(HOME="$work/john-home" "$john" --show --format=crypt "$work/host/etc/shadow" |
  sed -n 's/^\([0-9]*\) password hash.* cracked.*/\1/p')

full=""
if [ "$FULL" = 1 ]; then
  echo "hostward (full check)..." >&2
  full=$("$bin" full "$work/host")
fi

python3 - "$ours" "$start" "$end" "$john_cracked" "$ACCOUNTS" "$full" <<'EOF'
import json, sys
ours, start, end, john_cracked, accounts, full = sys.argv[1:7]
o = json.loads(ours)
john_s = float(end) - float(start)
hashes = int(accounts) * 100
print(f"{accounts} yescrypt accounts x 100 words{'':14s}{'wall s':>10s}{'cracked':>10s}{'hashes/s':>10s}")
print(f"{'  hostward-agent weak-password check':50s}{o['wall_s']:10.2f}{o['cracked']:10d}{hashes/o['wall_s']:10.1f}")
print(f"{'  john --format=crypt --fork':50s}{john_s:10.2f}{int(john_cracked or 0):10d}{hashes/john_s:10.1f}")
print(f"{'  goal':50s}{'<= john':>10s}")
print("  (hashes/s: accounts x words over wall time; both stop an account once cracked)")
if full:
    f = json.loads(full)
    print(f"{'  full check, %d candidates per account' % f['candidates']:50s}{f['wall_s']:10.2f}{f['cracked']:10d}")
EOF
