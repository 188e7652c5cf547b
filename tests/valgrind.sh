#!/usr/bin/env bash
# hakmem under valgrind's memcheck (README, "valgrind"): a program linked
# with hakmem, and one preloaded, each with its leaks and its write after
# free reported at the right call sites, nothing else reported, and
# hakmem's own hak_usable_size answering for a block (proof it served).
#
#   tests/valgrind.sh BUILD_DIR LIB     (make test runs it; installs valgrind
#                                        when missing and it can)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$1 LIB=$2

fail() { echo "valgrind: FAIL $*" >&2; exit 1; }
source scripts/apt-install.sh
command -v valgrind >/dev/null || apt_install valgrind || true
if ! command -v valgrind >/dev/null; then
    echo "valgrind: SKIPPED (valgrind is not installed and could not be)"
    exit 0
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# check NAME LOG: the reports memcheck must have made, and no others.
check() {
    local name=$1 log=$2
    grep -q "valgrind_test: done (a 100-byte block had 112 usable bytes)" "$log" \
        || fail "$name: the program did not run on hakmem: $(tail -n 20 "$log")"
    # One record per report: from its first line to the next blank one.
    awk -v RS= '/Invalid write of size 1/ && /use_after_free/' "$log" | grep -q . \
        || fail "$name: no write after free reported in use_after_free"
    awk -v RS= '/bytes in 1 blocks are definitely lost/ && /leak_small/' "$log" | grep -q . \
        || fail "$name: the slab block leaked in leak_small is not reported"
    awk -v RS= '/bytes in 1 blocks are definitely lost/ && /leak_pool/' "$log" | grep -q . \
        || fail "$name: the pool block leaked in leak_pool is not reported"
    grep -q "ERROR SUMMARY: 3 errors from 3 contexts" "$log" \
        || fail "$name: not exactly the three reports: $(grep -E 'ERROR SUMMARY|Invalid|uninitialised|lost in' "$log")"
    echo "PASS valgrind: $name: the leaks of leak_small and leak_pool and the write after free reported, nothing else"
}

VG=(valgrind --leak-check=full --soname-synonyms=somalloc=nouserintercepts)
"${VG[@]}" "$BUILD/valgrind_test" >"$TMP/linked.log" 2>&1 || true
check "linked with -lhakmem" "$TMP/linked.log"
LD_PRELOAD=$LIB "${VG[@]}" "$BUILD/valgrind_test_plain" >"$TMP/preloaded.log" 2>&1 || true
check "preloaded" "$TMP/preloaded.log"
