#!/usr/bin/env bash
# Malware scanner throughput (crates/scanner, through the hostward-scanner binary) beside the
# yara CLI and clamscan, in one run, with the same signatures (content/yara/hostward.yar:
# clamscan loads YARA files, and no ClamAV database is installed, so it runs our rules only),
# on one thread each and then on every core (clamscan has one), page cache warm for all, every
# file read whole (no size cap), on one corpus of at least 500 MB: binaries
# (/usr/bin), scripts (Python's standard library), archives (a zip of /usr/share/doc, a tar.gz
# of Perl's modules), web files (/usr/share/javascript). Hostward and clamscan unpack the
# archives; the yara CLI cannot.
# Goal (issue 16): >= 4x the yara CLI and >= 50x clamscan, with unpacking on; peak RSS of each.
# Then a full scan of this machine (every local filesystem, as the agent's full scan reads it)
# with the scanner capped at 10 % of a core: wall time, CPU time, files and bytes. The cargo
# target directory is left out (tens of GB of build output would only measure the disk).
#
#   bash bench/scanner.sh                  # both
#   PART=throughput bash bench/scanner.sh  # the corpus only
#   PART=full bash bench/scanner.sh        # the full scan only
#
# Needs yara, clamav (apt-get install -y yara clamav), GNU time and python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
rules=$root/content/yara/hostward.yar
(cd "$root" && cargo build --release -q -p hostward-scanner)
work=$(mktemp -d /var/tmp/scanbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
part=${PART:-both}
if [ "$part" != full ]; then
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
cores=$(nproc)
h=$(run hostward "$target/release/hostward-scanner" scan --max-file-mib 512 "$c")
y=$(run yara yara -r -N -p 1 "$rules" "$c")
k=$(run clamscan clamscan -r --no-summary --infected -d "$rules" "$c")
hn=$(run hostward_all "$target/release/hostward-scanner" scan --max-file-mib 512 --threads "$cores" "$c")
yn=$(run yara_all yara -r -N -p "$cores" "$rules" "$c")
# What unpacking costs: the same scan reading archives as plain files, as the yara CLI does.
hu=$(run hostward_flat "$target/release/hostward-scanner" scan --max-file-mib 512 --no-unpack "$c")
hd=$(grep -c '"engine":"yara"' "$work/hostward.out" || true)
echo "  hostward scanned $(python3 -c 'import json,sys; print(round(json.loads(open(sys.argv[1]).read().splitlines()[-1])["summary"]["bytes"]/1e6))' "$work/hostward.out") MB with the archives' members (the others: the $((bytes / 1000000)) MB on disk; MB/s below is of those)"
yd=$(wc -l < "$work/yara.out")
kd=$(grep -c FOUND "$work/clamscan.out" || true)
python3 - "$bytes" "$cores" "$h" "$y" "$k" "$hn" "$yn" "$hu" "$hd" "$yd" "$kd" <<'PY'
import sys
b, cores = int(sys.argv[1]), sys.argv[2]
rows = [a.split() for a in sys.argv[3:9]]
found = sys.argv[9:12] + ["", "", ""]
mbs = {r[0]: b / 1e6 / max(float(r[1]), 1e-3) for r in rows}
for (name, secs, rss), n in zip(rows, found):
    flagged = f"  files flagged {n}" if n else ""
    print(f"  {name:12} {float(secs):7.2f} s  {mbs[name]:8.1f} MB/s  peak RSS {int(rss)/1024:7.1f} MiB{flagged}")
print(f"  one thread each: hostward / yara CLI {mbs['hostward']/mbs['yara']:.1f}x (goal 4x); hostward / clamscan {mbs['hostward']/mbs['clamscan']:.1f}x (goal 50x)")
print(f"  without unpacking (hostward_flat, as the yara CLI reads the corpus): hostward / yara CLI {mbs['hostward_flat']/mbs['yara']:.1f}x on one thread")
print(f"  {cores} threads each: hostward / yara CLI {mbs['hostward_all']/mbs['yara_all']:.1f}x; hostward on {cores} threads / clamscan (one thread, all it has) {mbs['hostward_all']/mbs['clamscan']:.1f}x; hostward on {cores} threads / yara CLI on one {mbs['hostward_all']/mbs['yara']:.1f}x")
PY

fi
[ "$part" = throughput ] && exit 0
echo "== full scan of this machine at 10 % of a core (excluded: $target, $work)"
mounts=$(awk '$3 ~ /^(ext[234]|xfs|btrfs|tmpfs|overlay|f2fs|zfs|vfat)$/ {print $2}' /proc/self/mounts | sort -u)
/usr/bin/time -f "%e %U %S %M" -o "$work/full.time" "$target/release/hostward-scanner" scan --cpu-percent 10 \
    --exclude "$target" --exclude "$work" $mounts > "$work/full.out" 2> /dev/null || true
# The scanner exits 1 when it found something; time's last line has the figures.
read -r wall user sys rss < <(tail -1 "$work/full.time")
python3 - "$work/full.out" "$wall" "$user" "$sys" "$rss" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
s = json.loads(lines[-1])["summary"]
flagged = [json.loads(l)["path"] for l in lines[:-1] if json.loads(l).get("detections")]
dirs = sorted({p.rsplit("/", 1)[0] for p in flagged})
wall, cpu = float(sys.argv[2]), float(sys.argv[3]) + float(sys.argv[4])
print(f"  {s['files']} files, {s['bytes']/1e9:.2f} GB scanned (archive members included), {s['skipped']} skipped with a reason, {s['unreadable']} unreadable, {s['detections']} files with a detection")
print(f"  flagged in: {', '.join(dirs[:8])}{' …' if len(dirs) > 8 else ''}")
print(f"  wall {wall:.0f} s, CPU {cpu:.1f} s = {100*cpu/max(wall,1e-3):.1f} % of one core (cap 10 %), peak RSS {int(sys.argv[5])/1024:.0f} MiB")
PY
