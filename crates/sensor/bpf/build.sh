#!/usr/bin/env bash
# Builds bpf/sensor.bpf.o from bpf/sensor.bpf.c (needs clang and libbpf-dev's headers).
#   bpf/build.sh [OUT]   build into OUT (default: the committed bpf/sensor.bpf.o)
#   bpf/build.sh --check build into a temporary file and fail unless it equals the committed
#                        object: CI runs this, so the object in git is the one the source makes.
# Paths are relative to the crate so the object does not depend on where the clone lives.
set -euo pipefail
cd "$(dirname "$0")/.."
build() {
    clang -O2 -g -fdebug-prefix-map="$PWD"=. -target bpf -D__TARGET_ARCH_x86 -Ibpf -c bpf/sensor.bpf.c -o "$1"
    # Drops DWARF (clone paths, 700 KB) and keeps .BTF/.BTF.ext, which CO-RE needs.
    llvm-strip -g "$1"
}
if [ "${1:-}" = "--check" ]; then
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    build "$tmp"
    if ! cmp -s "$tmp" bpf/sensor.bpf.o; then
        echo "bpf/sensor.bpf.o is not what bpf/sensor.bpf.c builds to with $(clang --version | head -1);" >&2
        echo "run crates/sensor/bpf/build.sh and commit the object" >&2
        exit 1
    fi
    echo "bpf/sensor.bpf.o matches bpf/sensor.bpf.c"
else
    build "${1:-bpf/sensor.bpf.o}"
fi
