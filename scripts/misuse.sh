#!/usr/bin/env bash
# Which heap-misuse cases each allocator catches: every case of
# tests/c/misuse.c (misuse --list) at each size (small 56 B, medium 60000 B,
# large 4000000 B), under hakmem, hakmem with HAKMEM_HARDEN=1, glibc and
# each installed peer, one process per case, 10 s each at most.
#
#   scripts/misuse.sh          a table (x caught, . missed) and the totals
#   scripts/misuse.sh --csv    kind,size,allocator,outcome lines
#
# Caught: the allocator aborted or faulted, or made the misuse harmless
# (the case printed "clean"). Missed: the case printed "survived", or hung.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh

CSV=0
case "${1:-}" in
    "") ;;
    --csv) CSV=1 ;;
    *) echo "usage: $0 [--csv]" >&2; exit 2 ;;
esac
make --no-print-directory lib build/misuse >&2
bash scripts/install-peers.sh >&2 || true

ALLOCS=(hakmem hardened glibc)
for p in "${PEERS[@]}"; do
    [[ -n "$(peer_lib "$p")" ]] && ALLOCS+=("$p")
done

# outcome ALLOC KIND SIZE: caught, clean or missed
outcome() {
    local envs=() out rc=0
    case "$1" in
        hardened) envs=(LD_PRELOAD="$HAK_LIB" HAKMEM_HARDEN=1) ;;
        *) local l; l=$(alloc_preload "$1"); [[ -z "$l" ]] || envs=(LD_PRELOAD="$l") ;;
    esac
    out=$(env "${envs[@]}" timeout 10 build/misuse "$2" "$3" 2>/dev/null) || rc=$?
    if [[ $rc -eq 0 || $rc -eq 124 ]]; then
        echo missed
    elif [[ $rc -eq 3 && "$out" == *clean ]]; then
        echo clean
    else
        echo caught
    fi
}

declare -A caught
total=0
((CSV)) && echo "kind,size,allocator,outcome"
((CSV)) || printf '%-26s %-7s%s\n' kind size "$(printf ' %-9s' "${ALLOCS[@]}")"
for kind in $(build/misuse --list); do
    for size in small medium large; do
        total=$((total + 1))
        row=""
        for a in "${ALLOCS[@]}"; do
            o=$(outcome "$a" "$kind" "$size")
            [[ $o == missed ]] || caught[$a]=$((${caught[$a]:-0} + 1))
            ((CSV)) && echo "$kind,$size,$a,$o"
            row+=$(printf ' %-9s' "$([[ $o == missed ]] && echo . || echo x)")
        done
        ((CSV)) || printf '%-26s %-7s%s\n' "$kind" "$size" "$row"
    done
done
((CSV)) && exit 0
echo
for a in "${ALLOCS[@]}"; do
    echo "$a: caught ${caught[$a]:-0} of $total"
done
