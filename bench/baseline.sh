#!/usr/bin/env bash
# Configuration baselines on this machine, in one run (issue 17): Hostward's shipped policies
# (content/sca/*.yml, through crates/sca's sca_run example, release build), OpenSCAP's SSG
# standard profile (`oscap xccdf eval`; ssg-debian ships Debian 11 content only, so its
# installed-OS check is widened to Debian 12, the CPE patch bookworm needs) and Lynis
# (`lynis audit system --quick`). Prints each tool's wall time and its number of checks (and
# Hostward's and oscap's pass / fail / not applicable).
# Goal (issue 17): Hostward <= 0.5 s for at least as many checks as the SSG standard profile.
#
#   bash bench/baseline.sh
#
# Needs openscap-scanner, ssg-debian and lynis (apt-get install -y openscap-scanner ssg-debian
# lynis), GNU time, and root (all three read /etc/shadow and run commands).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release -q -p hostward-sca --example sca_run)
work=$(mktemp -d /var/tmp/baselinebench.XXXXXX)
trap 'rm -rf "$work"' EXIT
ds=/usr/share/xml/scap/ssg/content/ssg-debian11-ds.xml
sed 's|<ind:pattern operation="pattern match">^11.\[0-9\]+\$</ind:pattern>|<ind:pattern operation="pattern match">^1[12].[0-9]+$</ind:pattern>|' "$ds" > "$work/ssg-ds.xml"

# run NAME CMD...: wall seconds (the tools' exit codes say "something failed", not an error).
run() {
    local name=$1; shift
    /usr/bin/time -f "%e" -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err" || true
    echo "$name $(tail -1 "$work/$name.time")"
}
h=$(run hostward "$target/release/examples/sca_run" --json / "$root"/content/sca/*.yml)
o=$(run oscap oscap xccdf eval --profile xccdf_org.ssgproject.content_profile_standard "$work/ssg-ds.xml")
l=$(run lynis lynis audit system --quick --no-colors --no-log)
python3 - "$work" "$h" "$o" "$l" <<'PY'
import json, re, sys
work = sys.argv[1]
rows = dict((a.split()[0], float(a.split()[1])) for a in sys.argv[2:])
def count(xs):
    return {k: xs.count(k) for k in ("pass", "fail", "not_applicable")}
hw = [c["result"] for line in open(f"{work}/hostward.out") if line.strip() for c in json.loads(line).get("checks", [])]
osc = [r.replace("notapplicable", "not_applicable") for r in re.findall(r"^Result\s+(\S+)", open(f"{work}/oscap.out").read(), re.M)]
ly = re.search(r"Tests performed\s*:\s*(\d+)", open(f"{work}/lynis.out").read())
print(f"  hostward  {rows['hostward']:6.2f} s  {len(hw):4d} checks  {count(hw)}")
print(f"  oscap     {rows['oscap']:6.2f} s  {len(osc):4d} rules   {count(osc)}  (SSG standard profile)")
print(f"  lynis     {rows['lynis']:6.2f} s  {ly.group(1) if ly else '?':>4} tests")
print(f"  goal: hostward <= 0.5 s with >= {len(osc)} checks: {'met' if rows['hostward'] <= 0.5 and len(hw) >= len(osc) else 'not met'}")
PY
