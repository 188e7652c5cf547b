#!/usr/bin/env bash
# Larson at 4 threads with 1024 chunks per thread under hakmem, RUNS times in
# a row (default 100), each run checked: exit status 0, a result line, and
# hakmem's stats line as proof it was preloaded. Prints the tally; exits 1 if
# any run failed.
#
#   scripts/larson-soak.sh [RUNS] [SECONDS_PER_RUN]     defaults: 100 1
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-100}
SECS=${2:-1}
[[ "$RUNS" =~ ^[1-9][0-9]*$ && "$SECS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [RUNS] [SECONDS_PER_RUN]" >&2; exit 2; }
make --no-print-directory lib build/larson >&2
LIB=$PWD/target/release/libhakmem.so
ERR=$(mktemp)
trap 'rm -f "$ERR"' EXIT

ok=0 failed=0
for ((i = 1; i <= RUNS; i++)); do
    rc=0
    out=$(HAKMEM_STATS=1 LD_PRELOAD=$LIB timeout 120 build/larson -t 4 -n 1024 -s "$SECS" -S "$i" 2>"$ERR") || rc=$?
    if ((rc == 0)) && [[ "$out" == *"ops_per_sec="* ]] && grep -q '^hakmem: stats: pid=' "$ERR"; then
        ok=$((ok + 1))
    else
        failed=$((failed + 1))
        echo "larson-soak: run $i FAILED (exit $rc): $out $(grep -v '^hakmem: stats' "$ERR" | tail -c 400)" >&2
    fi
    ((i % 10)) || echo "larson-soak: $i/$RUNS runs, $failed failed" >&2
done
echo "larson-soak: $RUNS runs of larson -t 4 -n 1024 -s $SECS under hakmem: $ok passed, $failed failed"
((failed == 0))
