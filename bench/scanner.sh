#!/usr/bin/env bash
# Malware scanner throughput (crates/scanner, through the hostward-scanner binary) beside the
# yara CLI and clamscan, in one run, with the same signatures (content/yara/hostward.yar:
# clamscan loads YARA files, and no ClamAV database is installed, so it runs our rules only),
# one thread each, page cache warm for all, on one corpus of at least 500 MB: binaries
# (/usr/bin), scripts (Python's standard library), archives (a zip of /usr/share/doc, a tar.gz
# of Perl's modules), web files (/usr/share/javascript). Hostward and clamscan unpack the
# archives; the yara CLI cannot.
# Goal (issue 16): >= 4x the yara CLI and >= 50x clamscan, with unpacking on; peak RSS of each.
#
#   bash bench/scanner.sh
#
# Needs yara, clamav (apt-get install -y yara clamav), GNU time and python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
rules=$root/content/yara/hostward.yar
(cd "$root" && cargo build --release -q -p hostward-scanner)
work=$(mktemp -d /var/tmp/scanbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
c=$work/corpus
mkdir -p "$c"
cp -a /usr/bin "$c/bin"
cp -a /usr/lib/python3* "$c/" 2>/dev/null || true
[ -d /usr/share/javascript ] && cp -aL /usr/share/javascript "$c/js" 2>/dev/null || true
python3 - "$c/doc.zip" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for d, _, fs in os.walk("/usr/share/doc"):
        for f in fs:
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p):
                z.write(p)
PY
tar czf "$c/perl.tar.gz" -C /usr/share perl perl5 2>/dev/null || true
# Scanners differ on symlinks; the corpus has none.
find "$c" -type l -delete
# Top up with shared libraries to 500 MB.
for f in /usr/lib/x86_64-linux-gnu/*.so*; do
    [ "$(du -sm "$c" | cut -f1)" -ge 520 ] && break
    [ -f "$f" ] && [ ! -L "$f" ] && cp "$f" "$c/" || true
done
bytes=$(du -sb "$c" | cut -f1)
files=$(find "$c" -type f | wc -l)
echo "== corpus: $files files, $((bytes / 1000000)) MB; rules: $(grep -c '^rule ' "$rules") (content/yara/hostward.yar)"
find "$c" -type f -exec cat {} + > /dev/null

# run NAME CMD...: wall seconds and peak RSS (KiB), detections counted by the caller's grep.
run() {
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err" || true
    read -r secs rss < "$work/$name.time"
    echo "$name $secs $rss"
}
h=$(run hostward "$target/release/hostward-scanner" "$c")
y=$(run yara yara -r -N -p 1 "$rules" "$c")
k=$(run clamscan clamscan -r --no-summary --infected -d "$rules" "$c")
hd=$(grep -c '"engine":"yara"' "$work/hostward.out" || true)
echo "  hostward scanned $(python3 -c 'import json,sys; print(round(json.loads(open(sys.argv[1]).read().splitlines()[-1])["summary"]["bytes"]/1e6))' "$work/hostward.out") MB with the archives' members (the others: the $((bytes / 1000000)) MB on disk; MB/s below is of those)"
yd=$(wc -l < "$work/yara.out")
kd=$(grep -c FOUND "$work/clamscan.out" || true)
python3 - "$bytes" "$h" "$y" "$k" "$hd" "$yd" "$kd" <<'PY'
import sys
b = int(sys.argv[1])
rows = [sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split()]
found = sys.argv[5:8]
mbs = {r[0]: b / 1e6 / max(float(r[1]), 1e-3) for r in rows}
for (name, secs, rss), n in zip(rows, found):
    print(f"  {name:9} {float(secs):7.2f} s  {mbs[name]:8.1f} MB/s  peak RSS {int(rss)/1024:7.1f} MiB  files flagged {n}")
print(f"  hostward / yara CLI: {mbs['hostward']/mbs['yara']:.1f}x (goal 4x); hostward / clamscan: {mbs['hostward']/mbs['clamscan']:.1f}x (goal 50x)")
PY
