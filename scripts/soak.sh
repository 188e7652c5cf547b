#!/usr/bin/env bash
# Soak: the stress program (tests/c/stress.c) under hakmem for as long as
# asked, in rounds of one minute with a new seed each, alternating default and
# hardened mode. Reports operations done and failures (must be 0).
#
#   scripts/soak.sh MINUTES [THREADS]      e.g. scripts/soak.sh 60 8
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: $0 MINUTES [THREADS]" >&2; exit 2; }
(($# >= 1 && $# <= 2)) || usage
[[ "$1" =~ ^[1-9][0-9]*$ ]] || usage
THREADS=${2:-4}
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || usage

make --no-print-directory lib build/stress_plain >&2
TMP_ERR=$(mktemp)
trap 'rm -f "$TMP_ERR"' EXIT
LIB=$PWD/target/release/libhakmem.so
ops=0 failures=0 rounds=0
for ((m = 1; m <= $1; m++)); do
    harden=$((m % 2))
    seed=$((RANDOM * 32768 + RANDOM))
    rc=0
    out=$(HAKMEM_HARDEN=$harden HAKMEM_STATS=1 LD_PRELOAD=$LIB build/stress_plain -t "$THREADS" -s 60 -S "$seed" 2>"$TMP_ERR" ) || rc=$?
    line=$(grep '^stress ' <<<"$out" || true)
    n=$(sed -n 's/.*ops=\([0-9]*\).*/\1/p' <<<"$line")
    f=$(sed -n 's/.*failures=\([0-9]*\).*/\1/p' <<<"$line")
    if ((rc != 0)) || [[ -z "$n" ]] || ! grep -q '^hakmem: stats: pid=' "$TMP_ERR"; then
        echo "soak: round $m (seed $seed, HAKMEM_HARDEN=$harden) FAILED: exit $rc; $(tail -c 600 "$TMP_ERR")" >&2
        failures=$((failures + ${f:-0} + 1))
    else
        failures=$((failures + f))
    fi
    ops=$((ops + ${n:-0})) rounds=$((rounds + 1))
    echo "soak: minute $m/$1: seed $seed, HAKMEM_HARDEN=$harden, $n ops, ${f:-?} failures" >&2
done
echo "soak: $rounds minutes, $THREADS threads: $ops operations, $failures failures"
((failures == 0))
