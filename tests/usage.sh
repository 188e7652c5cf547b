#!/usr/bin/env bash
# The README's ways of using hakmem, each as written: the header as C and
# C++, make install + pkg-config (linked, no LD_PRELOAD), the bin/hakmem
# wrapper, the Rust GlobalAlloc example (with hakmem::stats()), heap
# profiles read by google-pprof (tests/prof.sh) and memcheck's reports
# (tests/valgrind.sh). Each run proves hakmem served it.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "usage: FAIL $*" >&2; exit 1; }
pass() { echo "PASS $*"; }
source scripts/apt-install.sh
need() { # command, Debian package
    command -v "$1" >/dev/null || apt_install "$2" || true
    command -v "$1" >/dev/null || fail "$1 is missing and could not be installed (package $2)"
}
need pkg-config pkg-config
need c++ g++

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# The header, as C and as C++.
for std in c11 gnu11; do
    cc -std=$std -Wall -Wextra -Werror -pedantic -Iinclude -o "$TMP/h_$std" tests/header_test.c -Ltarget/release -lhakmem \
        || fail "include/hakmem.h does not compile cleanly as $std"
done
c++ -std=c++11 -Wall -Wextra -Werror -pedantic -Iinclude -x c++ -o "$TMP/h_cxx" tests/header_test.c -Ltarget/release -lhakmem \
    || fail "include/hakmem.h does not compile cleanly as C++"
LD_LIBRARY_PATH=target/release "$TMP/h_cxx" || fail "the header test program failed"
pass "include/hakmem.h compiles as C11, GNU11 and C++11 and links"

# No language runtime comes along: a build with Rust's std needed libgcc_s
# and carried sixteen times the code.
needed=$(readelf -d target/release/libhakmem.so | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
[[ "$needed" == "libc.so.6 " ]] || fail "libhakmem.so needs more than libc.so.6: $needed"
pass "libhakmem.so needs only libc.so.6"

# make install into a fresh prefix, then build with pkg-config and run without LD_PRELOAD.
make --no-print-directory install PREFIX="$TMP/prefix" >/dev/null
for f in lib/libhakmem.so include/hakmem.h lib/pkgconfig/hakmem.pc bin/hakmem; do
    [[ -e "$TMP/prefix/$f" ]] || fail "make install did not install $f"
done
export PKG_CONFIG_PATH="$TMP/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
cc -Wall -Wextra -Werror -o "$TMP/link_test" tests/c/link_test.c $(pkg-config --cflags --libs hakmem)
out=$(env -u LD_PRELOAD "$TMP/link_test") || fail "link_test failed: $out"
[[ "$out" == *"malloc from $TMP/prefix/lib/libhakmem.so"* ]] || fail "link_test did not run on the installed library: $out"
pass "make install + pkg-config: $out"

# The wrapper.
"$TMP/prefix/bin/hakmem" --version | grep -q "hakmem $(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml)" \
    || fail "hakmem --version"
set +e
"$TMP/prefix/bin/hakmem" >/dev/null 2>&1; rc=$?
set -e
((rc == 2)) || fail "hakmem without a program should exit 2, not $rc"
err=$(HAKMEM_STATS=1 "$TMP/prefix/bin/hakmem" sort -n /dev/null 2>&1 >/dev/null) || fail "hakmem sort failed: $err"
[[ "$err" == *"hakmem: stats: pid="* ]] || fail "the wrapper did not preload hakmem: $err"
pass "bin/hakmem runs a program preloaded (stats line seen)"

# Rust: the GlobalAlloc example.
out=$(cargo run --release --quiet --example global_alloc 2>&1) || fail "global_alloc example: $out"
[[ "$out" == *"global_alloc: ok:"* ]] || fail "global_alloc example printed: $out"
pass "Rust #[global_allocator]: $out"

# Heap profiles and valgrind, as the README shows them (their programs are
# built by make test-c).
tests/prof.sh build
tests/valgrind.sh build "$PWD/target/release/libhakmem.so"
