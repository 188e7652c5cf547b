#!/usr/bin/env bash
# Larson at 1, 2 and 4 threads with 256 and 1024 chunks per thread, for hakmem
# and every installed peer: the Larson rows of scripts/bench.sh on their own.
#
#   scripts/larson.sh                     5 runs each, 3 s per run
#   BENCH_QUICK=1 scripts/larson.sh       3 runs each, 1 s per run
#   BENCH_ALLOCATORS="hakmem glibc" scripts/larson.sh
#
# Results go to bench-results/larson/ (same files as scripts/bench.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if (($# > 0)); then
    echo "usage: [BENCH_QUICK=1] [BENCH_ALLOCATORS=...] $0" >&2
    exit 2
fi
BENCH_FILTER='^larson' BENCH_OUT="${BENCH_OUT:-bench-results/larson}" exec bash scripts/bench.sh
