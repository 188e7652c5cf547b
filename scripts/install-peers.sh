#!/usr/bin/env bash
# Install the peer allocators that `make bench` compares hakmem against, using
# Debian's packages (mimalloc, jemalloc, tcmalloc-minimal).  Installs only what
# is missing and only when we are root; otherwise says which peers are absent.
# Never fails because a peer is unavailable: the benchmark skips it by name.
#
#   scripts/install-peers.sh          install what is missing, print a summary
#   scripts/install-peers.sh --check  print the summary only, install nothing
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

check_only=0
case "${1:-}" in
    "") ;;
    --check) check_only=1 ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

missing_pkgs=()
for peer in "${PEERS[@]}"; do
    [[ -n "$(peer_lib "$peer")" ]] || missing_pkgs+=("$(peer_pkg "$peer")")
done

if ((${#missing_pkgs[@]} > 0 && check_only == 0)); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-peers: not root, cannot install: ${missing_pkgs[*]}" >&2
    elif ! command -v apt-get >/dev/null; then
        echo "install-peers: no apt-get here, cannot install: ${missing_pkgs[*]}" >&2
    else
        echo "install-peers: installing ${missing_pkgs[*]}" >&2
        # The package lists may be stale or absent on a fresh machine: update
        # once and retry rather than paying for an update every time.
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing_pkgs[@]}" >/dev/null 2>&1; then
            echo "install-peers: install failed, running apt-get update and retrying" >&2
            DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 || true
            # Install one by one so a single unknown package does not block the others.
            for pkg in "${missing_pkgs[@]}"; do
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null 2>&1 \
                    || echo "install-peers: apt-get install $pkg failed" >&2
            done
        fi
    fi
fi

# Summary: one line per peer, so a skipped peer is never silent.
status=0
for peer in "${PEERS[@]}"; do
    lib=$(peer_lib "$peer")
    if [[ -n "$lib" ]]; then
        echo "install-peers: $peer available: $lib" >&2
    else
        echo "install-peers: $peer UNAVAILABLE (package $(peer_pkg "$peer") not installed); it will be skipped" >&2
        status=1
    fi
done
# --check reports absence through the exit code; an install run always exits 0
# because a missing peer is not fatal for the benchmark.
if ((check_only)); then exit "$status"; fi
exit 0
