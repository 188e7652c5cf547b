#!/usr/bin/env bash
# HAKMEM_PROF (README, "Heap profiles"): prof_test keeps 60,000 and 20,000
# blocks from two functions and frees 60,000 from a third; google-pprof must
# name the first two with a 3:1 ratio (within 20%), not the third, and the
# total near what is live. hak_prof_dump writes the same format, and says
# ENOTSUP with profiling off.
#
#   tests/prof.sh BUILD_DIR     (make test runs it; installs google-perftools
#                                when missing and it can)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$1

fail() { echo "prof: FAIL $*" >&2; exit 1; }
source scripts/apt-install.sh
command -v google-pprof >/dev/null || apt_install google-perftools || true
if ! command -v google-pprof >/dev/null; then
    echo "prof: SKIPPED (google-pprof is not installed and could not be: package google-perftools)"
    exit 0
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

out=$("$BUILD/prof_test" "$TMP/off.heap" 2>&1) && fail "hak_prof_dump succeeded with profiling off: $out"
[[ "$out" == *"not supported"* ]] || fail "hak_prof_dump with profiling off: $out"

(cd "$TMP" && HAKMEM_PROF=1 HAKMEM_PROF_INTERVAL=32768 "$OLDPWD/$BUILD/prof_test" "$TMP/mid.heap" >/dev/null) \
    || fail "prof_test failed under HAKMEM_PROF=1"
exit_heap=$(ls "$TMP"/hakmem.*.heap 2>/dev/null || true)
[[ -n "$exit_heap" ]] || fail "no hakmem.<pid>.heap written at exit"
head -n1 "$TMP/mid.heap" | grep -q '^heap profile: .* @ heap_v2/32768$' || fail "hak_prof_dump's file: $(head -n1 "$TMP/mid.heap")"
grep -q '^MAPPED_LIBRARIES:' "$exit_heap" || fail "the exit profile has no MAPPED_LIBRARIES"

google-pprof --text "$BUILD/prof_test" "$exit_heap" >"$TMP/text" 2>/dev/null || fail "google-pprof could not read the profile"
mb() { awk -v f="$1" '$NF == f { print $1 }' "$TMP/text"; }
three=$(mb keep_three_parts) one=$(mb keep_one_part) churn=$(mb churn_and_free)
[[ -n "$three" && -n "$one" ]] || fail "google-pprof does not name both call sites: $(cat "$TMP/text")"
awk -v a="$three" -v b="$one" 'BEGIN { r = a / b; exit !(r >= 2.4 && r <= 3.6) }' \
    || fail "ratio keep_three_parts/keep_one_part = $three/$one MB, not 3 within 20%"
awk -v c="${churn:-0}" 'BEGIN { exit !(c < 1) }' || fail "freed blocks show as live: churn_and_free $churn MB"
total=$(sed -n 's/^Total: \([0-9.]*\) MB$/\1/p' "$TMP/text")
awk -v t="$total" 'BEGIN { exit !(t > 78.1 * 0.8 && t < 78.1 * 1.2) }' \
    || fail "total $total MB, not the 78.1 MB live within 20%"
echo "PASS prof: google-pprof names keep_three_parts ($three MB) and keep_one_part ($one MB), total $total MB of 78.1 live; freed blocks absent; hak_prof_dump ENOTSUP when off"
