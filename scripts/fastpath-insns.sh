#!/usr/bin/env bash
# Instructions per random-mixed step (one free plus one malloc), counted
# exactly with valgrind --tool=callgrind, for hakmem and each installed peer.
# Each allocator runs N and 2N steps; the difference divided by N cancels
# start-up, the slot table's warm-up and exit.
#
#   scripts/fastpath-insns.sh                   16..1024 B, N = 2,000,000
#   scripts/fastpath-insns.sh -m 64 -M 64       one fixed size
#   FASTPATH_STEPS=500000 scripts/fastpath-insns.sh
#
# Prints "allocator insns_per_step ratio_to_hakmem" lines.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh

MIN=16 MAX=1024
while getopts ":m:M:" opt; do
    case "$opt" in
        m) MIN=$OPTARG ;;
        M) MAX=$OPTARG ;;
        *) echo "usage: $0 [-m min] [-M max]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
(($# == 0)) || { echo "usage: $0 [-m min] [-M max]" >&2; exit 2; }
N=${FASTPATH_STEPS:-2000000}
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "fastpath-insns: FASTPATH_STEPS must be a positive integer" >&2; exit 2; }

command -v valgrind >/dev/null || {
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null; }
    fi
    command -v valgrind >/dev/null || { echo "fastpath-insns: valgrind is missing" >&2; exit 1; }
}
make --no-print-directory lib build/random_mixed >&2
bash scripts/install-peers.sh || true

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Total instructions of one run of `steps` steps under allocator $1.
count() {
    local alloc=$1 steps=$2 preload out
    preload=$(alloc_preload "$alloc")
    out="$TMP/cg.$alloc.$steps"
    env ${preload:+LD_PRELOAD=$preload} valgrind --tool=callgrind --callgrind-out-file="$out" \
        build/random_mixed -n "$steps" -w 4096 -m "$MIN" -M "$MAX" -S 42 >/dev/null 2>"$TMP/err" \
        || { echo "fastpath-insns: $alloc failed under callgrind:" >&2; cat "$TMP/err" >&2; exit 1; }
    sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out"
}

base=""
echo "random_mixed $MIN..$MAX B, steps $N vs $((2 * N)): instructions per step"
for alloc in "${ALL_ALLOCATORS[@]}"; do
    if [[ "$alloc" != hakmem && "$alloc" != glibc && -z "$(peer_lib "$alloc")" ]]; then
        echo "$alloc skipped (not installed)"
        continue
    fi
    a=$(count "$alloc" "$N")
    b=$(count "$alloc" $((2 * N)))
    per=$(awk -v a="$a" -v b="$b" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / n }')
    [[ -n "$base" ]] || base=$per
    awk -v p="$per" -v b="$base" -v name="$alloc" 'BEGIN { printf "%-9s %7.1f  %.2fx\n", name, p, p / b }'
done
