#!/usr/bin/env bash
# What hardened mode and statistics cost: random mixed (16..1024 B, one
# thread) under hakmem in default mode, with HAKMEM_HARDEN=1 and with
# HAKMEM_STATS=1, runs alternating, medians of RUNS runs each.
#
#   scripts/mode-cost.sh [RUNS]        default 7
#
# Prints each mode's median ops/s and its ratio to default mode.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh

RUNS=${1:-7}
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [RUNS]" >&2; exit 2; }
make --no-print-directory lib build/random_mixed >&2

MODES=("default" "HAKMEM_HARDEN=1" "HAKMEM_STATS=1")
declare -A runs
for ((r = 1; r <= RUNS; r++)); do
    for mode in "${MODES[@]}"; do
        envs=(LD_PRELOAD="$HAK_LIB")
        [[ "$mode" == default ]] || envs+=("$mode")
        out=$(env "${envs[@]}" build/random_mixed -n 10000000 -w 4096 -m 16 -M 1024 -S 42 2>/dev/null) \
            || { echo "mode-cost: random_mixed failed under $mode" >&2; exit 1; }
        v=$(sed -n 's/.*ops_per_sec=\([0-9.]*\).*/\1/p' <<<"$out")
        [[ -n "$v" ]] || { echo "mode-cost: no result under $mode: $out" >&2; exit 1; }
        runs[$mode]+="$v "
        echo "[$r/$RUNS] $mode $v" >&2
    done
done
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
base=$(median "${runs[default]}")
echo "random_mixed 16..1024 B, median of $RUNS runs"
for mode in "${MODES[@]}"; do
    m=$(median "${runs[$mode]}")
    awk -v m="$m" -v b="$base" -v name="$mode" 'BEGIN { printf "%-16s %6.2fM ops/s  %.3fx default\n", name, m / 1e6, m / b }'
done
