#!/usr/bin/env bash
# File integrity: Hostward's engine (crates/agent/src/fim/engine.rs, through the fim_scan
# example) beside AIDE on the same tree, in one run, page cache warm for both:
#   1. baseline: `aide --init` (sha256) vs `fim_scan init` (BLAKE3); both read every byte.
#   2. check of the unchanged tree: `aide --check` (re-reads every byte) vs `fim_scan check`
#      (re-reads only files whose inode, size, mtime or ctime moved) and `fim_scan check --full`.
#   3. check after 10 files changed: both must report 10.
# Goal (issue 15): baseline >= 3x faster, check >= 10x faster.
#
#   bash bench/fim.sh            # SIZE_MB=500 FILES=5000
#
# Needs aide (apt-get install -y aide) and python3.
set -euo pipefail
SIZE_MB=${SIZE_MB:-500}
FILES=${FILES:-5000}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release -q -p hostward-agent --example fim_scan)
fim=$target/release/examples/fim_scan
command -v aide >/dev/null || { echo "aide not installed (apt-get install -y aide)"; exit 1; }
work=$(mktemp -d /var/tmp/fimbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
tree=$work/tree

python3 - "$tree" "$SIZE_MB" "$FILES" <<'PY'
import os, sys
tree, mb, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
size = mb * 1024 * 1024 // n
for i in range(n):
    d = os.path.join(tree, f"d{i % 50:02d}", f"s{i % 7}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(size))
PY
cat > "$work/aide.conf" <<CONF
database_in=file:$work/aide.db
database_out=file:$work/aide.db.new
database_new=file:$work/aide.db.new
gzip_dbout=no
report_url=stdout
$tree p+i+n+u+g+s+m+c+sha256
CONF
find "$tree" -type f -exec cat {} + >/dev/null # warm the page cache for both

secs() { python3 - "$@" <<'PY'
import subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
dt = time.monotonic() - t
open("/tmp/fimbench.last", "wb").write(r.stdout)
print(f"{dt:.3f}")
PY
}

echo "== tree: $FILES files, $SIZE_MB MB, $(aide --version 2>&1 | head -1)"
a_init=$(secs aide --config "$work/aide.conf" --init); mv "$work/aide.db.new" "$work/aide.db"
h_init=$(secs "$fim" init "$tree" "$work/hw.json"); cat /tmp/fimbench.last
a_check=$(secs aide --config "$work/aide.conf" --check)
h_check=$(secs "$fim" check "$tree" "$work/hw.json"); tail -1 /tmp/fimbench.last
h_full=$(secs "$fim" check "$tree" "$work/hw.json" --full); tail -1 /tmp/fimbench.last

# 10 changed files: same size, new content.
for f in $(find "$tree" -type f | sort | head -10); do head -c "$(stat -c %s "$f")" /dev/urandom > "$f"; done
a_changed=$(secs aide --config "$work/aide.conf" --check)
a_found=$(grep -cE '^f[ =><!~+-]*.*: '"$tree" /tmp/fimbench.last || true)
h_changed=$(secs "$fim" check "$tree" "$work/hw.json"); h_found=$(grep -c '^modify ' /tmp/fimbench.last || true)

python3 - "$a_init" "$h_init" "$a_check" "$h_check" "$h_full" "$a_changed" "$h_changed" "$a_found" "$h_found" <<'PY'
import sys
ai, hi, ac, hc, hf, ach, hch, af, hf2 = sys.argv[1:]
ai, hi, ac, hc, hf, ach, hch = map(float, (ai, hi, ac, hc, hf, ach, hch))
print(f"  baseline          aide --init  {ai:7.2f} s   hostward {hi:7.2f} s   {ai/hi:5.1f}x faster (goal 3x)")
print(f"  check, unchanged  aide --check {ac:7.2f} s   hostward {hc:7.3f} s   {ac/hc:5.1f}x faster (goal 10x)")
print(f"                                               hostward --full {hf:7.2f} s   {ac/hf:5.1f}x")
print(f"  check, 10 changed aide --check {ach:7.2f} s ({af} lines naming files)   hostward {hch:7.3f} s ({hf2} modified)")
PY
