#!/usr/bin/env bash
# A/B of two allocators on one harness, for a noisy shared machine: each
# run starts both at once, one per core (cores swapped every run), so both
# see the same moment's load; the ratio of each pair is kept and their
# median printed. Single pairs still range widely here (0.6-1.6 for a
# library against itself), so use runs of 50 ms or more and 30 runs or
# more: a library against itself then gives 0.99-1.00.
#
#   scripts/paired.sh A B RUNS HARNESS [ARGS...]
#       A, B     libraries to preload (or glibc for none)
#       HARNESS  a program of build/ that prints ops_per_sec=X
#
#   e.g. scripts/paired.sh /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
#            target/release/libhakmem.so 30 random_mixed -n 5000000 -w 4096 -m 16 -M 1024
#
# Prints "A <median ops/s> B <median ops/s> B/A <median ratio> (min .. max)".
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: $0 A B RUNS HARNESS [ARGS...]" >&2; exit 2; }
(($# >= 4)) || usage
A=$1 B=$2 RUNS=$3 H=$4
shift 4
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || usage
[[ -x "build/$H" ]] || { echo "paired: build/$H missing (make c-programs)" >&2; exit 1; }
for l in "$A" "$B"; do
    [[ "$l" == glibc || -f "$l" ]] || { echo "paired: no library $l" >&2; exit 1; }
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# run LIB CORE OUT ARGS...: the harness preloaded with LIB, pinned to CORE
run() {
    local lib=$1 core=$2 out=$3 pre=()
    shift 3
    [[ "$lib" == glibc ]] || pre=(env "LD_PRELOAD=$lib")
    "${pre[@]}" taskset -c "$core" "build/$H" "$@" >"$out" 2>&1
}
rate() { sed -n 's/.*ops_per_sec=\([0-9.]*\).*/\1/p' "$1"; }

for ((i = 0; i < RUNS; i++)); do
    ca=$((i % 2)) cb=$((1 - i % 2))
    run "$A" "$ca" "$TMP/a" "$@" &
    pa=$!
    run "$B" "$cb" "$TMP/b" "$@" &
    pb=$!
    wait "$pa" || { echo "paired: $A failed: $(head -c 300 "$TMP/a")" >&2; exit 1; }
    wait "$pb" || { echo "paired: $B failed: $(head -c 300 "$TMP/b")" >&2; exit 1; }
    ra=$(rate "$TMP/a") rb=$(rate "$TMP/b")
    [[ -n "$ra" && -n "$rb" ]] || { echo "paired: no ops_per_sec in the output" >&2; exit 1; }
    echo "$ra $rb"
done | python3 -c '
import statistics, sys
d = [tuple(map(float, l.split())) for l in sys.stdin]
r = sorted(b / a for a, b in d)
print("A %.1fM B %.1fM B/A %.3f (%.3f .. %.3f)" % (statistics.median(a for a, _ in d) / 1e6,
      statistics.median(b for _, b in d) / 1e6, statistics.median(r), r[0], r[-1]))'
