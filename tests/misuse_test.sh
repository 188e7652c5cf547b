#!/usr/bin/env bash
# Every heap-misuse case of tests/c/misuse.c, at each of its sizes, in
# default and hardened mode (HAKMEM_HARDEN=1): each must end as the table
# below says. A report is checked whole: killed by SIGABRT, hakmem's message
# on stderr, naming the block the case printed (addr=…). A case hakmem does
# not catch in a mode is listed as "missed" and must still say "survived",
# so that a change which catches more, or less, updates this table and the
# README's "What bad input gets" with it.
#
#   tests/misuse_test.sh          (library: $HAK_LIB or target/release/libhakmem.so)
set -u
cd "$(dirname "$0")/.."
LIB=$(realpath "${HAK_LIB:-target/release/libhakmem.so}")
BIN=build/misuse

# What each outcome looks like: a message on a line of hakmem's that also
# names the case's block ({addr}: right there), or one of the exits
# misuse.c makes. A fault handler's report (guard, below) names the faulting
# address instead.
declare -A MESSAGE=(
    [overflow]="heap overflow past {addr} (block of"
    [guard]="heap overflow at"
    [below]="heap underflow at"
    [underflow]="heap underflow before {addr}"
    [double]="double free {addr}"
    [invalid]="invalid pointer {addr}"
    [waf]="write after free at"
    [uaf]="use after free at {addr}"
    [zero]="access to a malloc(0) block at"
)

# kind, mode, then the outcome at small (56 B), medium (60000 B) and large
# (4 MB) sizes; a/b: either. segv: killed by SIGSEGV, not by hakmem (a 1 MiB
# overflow of a big block runs off its mapping before free could look, and
# memcpy writes its last bytes first, past the guard page: hardened, the
# fault handler names that too; a 1 MiB underflow starts below the block's
# region, which only hardened mode's handler names).
TABLE='
overflow_1               default   missed    overflow  overflow
overflow_1               hardened  overflow  overflow  overflow
overflow_32              default   missed    overflow  overflow
overflow_32              hardened  overflow  overflow  overflow
overflow_1m              default   missed    overflow  segv/overflow
overflow_1m              hardened  overflow  guard     guard
memcpy_overflow_1        default   missed    overflow  overflow
memcpy_overflow_1        hardened  overflow  overflow  overflow
memcpy_overflow_32       default   missed    overflow  overflow
memcpy_overflow_32       hardened  overflow  overflow  overflow
memcpy_overflow_1m       default   missed    overflow  segv
memcpy_overflow_1m       hardened  overflow  guard     guard
underflow_1              default   missed    underflow underflow
underflow_1              hardened  underflow underflow underflow
underflow_32             default   missed    underflow underflow
underflow_32             hardened  underflow underflow underflow
underflow_1m             default   segv      segv      segv
underflow_1m             hardened  below     below     below
memcpy_underflow_1       default   missed    underflow underflow
memcpy_underflow_1       hardened  underflow underflow underflow
memcpy_underflow_32      default   missed    underflow underflow
memcpy_underflow_32      hardened  underflow underflow underflow
double_free_immediate    default   double    double    double
double_free_immediate    hardened  double    double    double
double_free_delayed      default   missed    double    double
double_free_delayed      hardened  double    double    double
double_free_interleaved  default   double    double    double
double_free_interleaved  hardened  double    double    double
double_free_after_reuse  default   missed    double    double
double_free_after_reuse  hardened  double    double    double
invalid_free_stack       default   invalid   invalid   invalid
invalid_free_stack       hardened  invalid   invalid   invalid
invalid_free_alloca      default   invalid   invalid   invalid
invalid_free_alloca      hardened  invalid   invalid   invalid
invalid_free_unaligned   default   invalid   invalid   invalid
invalid_free_unaligned   hardened  invalid   invalid   invalid
invalid_free_near        default   invalid   invalid   invalid
invalid_free_near        hardened  invalid   invalid   invalid
invalid_free_far         default   invalid   invalid   invalid
invalid_free_far         hardened  invalid   invalid   invalid
write_after_free         default   missed    waf       waf
write_after_free         hardened  waf       waf       uaf
immediate_reuse          default   missed    clean     clean
immediate_reuse          hardened  clean     clean     clean
exec_heap                default   clean     clean     clean
exec_heap                hardened  clean     clean     clean
huge_malloc              default   clean     clean     clean
huge_malloc              hardened  clean     clean     clean
huge_calloc              default   clean     clean     clean
huge_calloc              hardened  clean     clean     clean
huge_realloc             default   clean     clean     clean
huge_realloc             hardened  clean     clean     clean
huge_memalign            default   clean     clean     clean
huge_memalign            hardened  clean     clean     clean
bad_alignment            default   clean     clean     clean
bad_alignment            hardened  clean     clean     clean
zero_size_write          default   missed    missed    missed
zero_size_write          hardened  zero      zero      zero
zero_size_read           default   missed    missed    missed
zero_size_read           hardened  zero      zero      zero
calloc_zeroed            default   clean     clean     clean
calloc_zeroed            hardened  clean     clean     clean
'

passed=0 failed=0
check() { # KIND MODE SIZE WANT
    local harden=0 out err rc=0 addr want
    [[ $2 == hardened ]] && harden=1
    err=$(mktemp)
    out=$(LD_PRELOAD="$LIB" HAKMEM_HARDEN=$harden timeout 20 "$BIN" "$1" "$3" 2>"$err") || rc=$?
    addr=$(sed -n 's/^addr=//p' <<<"$out")
    local ok=0 one
    for one in ${4//\// }; do
        case "$one" in
            missed) [[ $rc -eq 0 && "$out" == *survived ]] && ok=1 ;;
            clean) [[ $rc -eq 3 && "$out" == *clean ]] && ok=1 ;;
            segv) [[ $rc -eq 139 ]] && ok=1 ;;
            *)
                want=${MESSAGE[$one]//\{addr\}/$addr}
                local named=$addr
                [[ $one == guard || $one == below ]] && named=
                [[ $rc -eq 134 ]] && grep -F -- "$want" "$err" | grep '^hakmem: ' | grep -qF -- "$named" && ok=1
                ;;
        esac
    done
    if ((ok)); then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $1 $3 ($2): want $4, got exit $rc; stdout: $(tr '\n' ' ' <<<"$out"); stderr: $(tail -c 300 "$err")"
    fi
    rm -f "$err"
}

while read -r kind mode small medium large; do
    [[ -z "$kind" ]] && continue
    check "$kind" "$mode" small "$small"
    check "$kind" "$mode" medium "$medium"
    check "$kind" "$mode" large "$large"
done <<<"$TABLE"

listed=$(awk 'NF {print $1}' <<<"$TABLE" | sort -u)
for kind in $("$BIN" --list); do
    grep -qx "$kind" <<<"$listed" || { failed=$((failed + 1)); echo "FAIL $kind: not in the table"; }
done
echo "misuse_test: $passed passed, $failed failed"
((failed == 0))
