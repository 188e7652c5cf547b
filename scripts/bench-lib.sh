# Shared helpers for the benchmark scripts (sourced, not run).
# The caller is in the repository root and has `set -euo pipefail`.

# Every allocator the benchmarks know, in the order tables and charts show them.
ALL_ALLOCATORS=(hakmem glibc mimalloc jemalloc tcmalloc)
# The ones installed from Debian's packages.
PEERS=(mimalloc jemalloc tcmalloc)

# HAK_LIB may point elsewhere (as for tests/programs.sh); default: the cargo build.
HAK_LIB="${HAK_LIB:-$PWD/target/release/libhakmem.so}"
BUILD_DIR="$PWD/build"

# Debian package that ships a peer.
peer_pkg() {
    case "$1" in
        mimalloc) echo libmimalloc2.0 ;;
        jemalloc) echo libjemalloc2 ;;
        tcmalloc) echo libtcmalloc-minimal4 ;;
        *) echo "bench-lib: unknown peer $1" >&2; return 1 ;;
    esac
}

# Path of a peer's shared library, or nothing when it is not installed.  The
# versioned names are what Debian 12 ships; the globs catch a soname bump.
peer_lib() {
    local stem ver dir f
    case "$1" in
        mimalloc) stem=libmimalloc.so; ver=2 ;;
        jemalloc) stem=libjemalloc.so; ver=2 ;;
        tcmalloc) stem=libtcmalloc_minimal.so; ver=4 ;;
        *) echo "bench-lib: unknown peer $1" >&2; return 1 ;;
    esac
    for dir in /usr/lib/x86_64-linux-gnu /usr/lib /usr/local/lib; do
        for f in "$dir/$stem.$ver" "$dir/$stem".*; do
            if [[ -f "$f" ]]; then echo "$f"; return 0; fi
        done
    done
    return 0
}

# What to put in LD_PRELOAD for an allocator ("" for glibc, which is the default).
alloc_preload() {
    case "$1" in
        hakmem) echo "$HAK_LIB" ;;
        glibc) echo "" ;;
        *) peer_lib "$1" ;;
    esac
}
