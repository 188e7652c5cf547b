#!/usr/bin/env bash
# The memory rows of scripts/bench.sh on their own, for hakmem and every
# installed peer: 1 M live 16-byte blocks (peak RSS, overhead), RSS after
# freeing everything and allocating a little for a second or two (16-byte and
# 100 KiB blocks), thread churn (20,000 short threads whose blocks are freed
# after they exit) and a big-block workload (64 KiB..16 MiB, time and peak).
#
#   scripts/memory.sh                 5 runs each
#   BENCH_QUICK=1 scripts/memory.sh   3 shorter runs each
#
# Results go to bench-results/memory/ (same files as scripts/bench.sh);
# `make bench` runs these rows too, with all the others.
set -euo pipefail
cd "$(dirname "$0")/.."
if (($# > 0)); then
    echo "usage: [BENCH_QUICK=1] [BENCH_ALLOCATORS=...] $0" >&2
    exit 2
fi
make --no-print-directory build/churn build/bigblocks >&2
BENCH_FILTER='^memory' BENCH_OUT="${BENCH_OUT:-bench-results/memory}" exec bash scripts/bench.sh
