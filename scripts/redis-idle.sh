#!/usr/bin/env bash
# Redis idle RSS: how much memory a real server keeps after its data is gone.
#
# Starts redis-server (Debian's package) on 127.0.0.1 on a free high port, no
# persistence, optionally with an allocator preloaded; loads it with
# redis-benchmark (SET on up to 100,000 random keys and LPUSH onto one list,
# 200-byte values), reads its VmRSS, empties it with FLUSHALL, waits a few
# seconds without any request and reads VmRSS again; then shuts it down.
#
#   scripts/redis-idle.sh [ALLOC]       ALLOC (or $LIB when no argument):
#       /path/to/lib.so   LD_PRELOAD it into the server (checked in its maps)
#       glibc             preload the libc the server links against, so that
#                         glibc's malloc wins over the jemalloc Debian's
#                         redis-server is linked with
#       none or empty     no preload: Debian's redis with its own jemalloc
#   scripts/redis-idle.sh --install     install redis-server and redis-tools
#                                       when missing; exit 0 if both are there
#
# Environment: REDIS_REQUESTS (default 200000 per test), REDIS_IDLE_SECS
# (default 3), REDIS_TIMEOUT (bound on the server's whole life, default 300 s).
#
# Output, one line (KiB):
#   redis_idle requests=N ops_per_sec=R rss_start_kib=S rss_after_load_kib=L rss_idle_kib=I keys=K
# start: after the server came up; after_load: after redis-benchmark; idle:
# REDIS_IDLE_SECS after FLUSHALL; keys: DBSIZE after the load (proof it ran).
# redis-benchmark's own output goes to stderr.  Exit status 1 on any failure,
# 2 on bad usage; the server never outlives the script (trap, and timeout).
set -euo pipefail

die() { echo "redis-idle: $*" >&2; exit 1; }

REQUESTS=${REDIS_REQUESTS:-200000}
IDLE_SECS=${REDIS_IDLE_SECS:-3}
SERVER_TIMEOUT=${REDIS_TIMEOUT:-300}
[[ "$REQUESTS" =~ ^[1-9][0-9]*$ ]] || { echo "redis-idle: REDIS_REQUESTS must be a positive integer" >&2; exit 2; }
[[ "$IDLE_SECS" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "redis-idle: REDIS_IDLE_SECS must be a number of seconds" >&2; exit 2; }
[[ "$SERVER_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || { echo "redis-idle: REDIS_TIMEOUT must be a positive integer" >&2; exit 2; }

# Install what is missing (root with apt-get only); true if both are there.
install_redis() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
        && command -v redis-benchmark >/dev/null && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "redis-idle: installing redis-server redis-tools" >&2
        export DEBIAN_FRONTEND=noninteractive
        timeout 600 apt-get install -y -q redis-server redis-tools >/dev/null 2>&1 \
            || { timeout 600 apt-get update -q >/dev/null 2>&1 || true
                 timeout 600 apt-get install -y -q redis-server redis-tools >/dev/null 2>&1 || true; }
    fi
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
        && command -v redis-benchmark >/dev/null
}

if (($# > 1)); then
    echo "usage: $0 [LIB.so | glibc | none] | --install" >&2
    exit 2
fi
if [[ "${1:-}" == "--install" ]]; then
    install_redis || die "redis-server/redis-tools missing and could not be installed"
    exit 0
fi
ALLOC=${1-${LIB:-}}
install_redis || die "redis-server/redis-tools missing and could not be installed"

REDIS_SERVER=$(command -v redis-server)
PRELOAD="" CHECK_MAPS=""
case "$ALLOC" in
    ""|none) ;;
    glibc)
        PRELOAD=$(ldd "$REDIS_SERVER" | sed -n 's/^[[:space:]]*libc\.so\.6 => \([^ ]*\) .*/\1/p')
        [[ -f "$PRELOAD" ]] || die "cannot find the libc.so.6 $REDIS_SERVER links against"
        ;;
    *)
        [[ -f "$ALLOC" ]] || die "no such library: $ALLOC"
        PRELOAD=$(readlink -f "$ALLOC")
        CHECK_MAPS=$PRELOAD
        ;;
esac

TMP=$(mktemp -d)
TPID="" SPID="" PORT=""
cli() { timeout 10 redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }
cleanup() {
    if [[ -n "$SPID" ]] && kill -0 "$SPID" 2>/dev/null; then
        cli shutdown nosave >/dev/null 2>&1 || true
        for _ in $(seq 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
        kill -TERM "$SPID" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SPID" 2>/dev/null || true
    fi
    if [[ -n "$TPID" ]]; then
        kill -TERM "$TPID" 2>/dev/null || true
        wait "$TPID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# Is anyone listening on 127.0.0.1:$1?  (A connect that works means taken.)
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Start the server under `timeout` (so it cannot outlive us even if we are
# killed outright) with `env` exec'ing it: the server is timeout's only child.
start_server() {
    local -a envs=()
    [[ -n "$PRELOAD" ]] && envs=("LD_PRELOAD=$PRELOAD")
    timeout -k 5 "$SERVER_TIMEOUT" env "${envs[@]}" "$REDIS_SERVER" \
        --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no --daemonize no \
        --dir "$TMP" --logfile "$TMP/redis.log" --protected-mode yes \
        </dev/null >/dev/null 2>"$TMP/stderr" &
    TPID=$!
    SPID=""
    local _
    for _ in $(seq 100); do
        SPID=$(pgrep -P "$TPID" || true)
        if [[ -n "$SPID" ]] && [[ "$(cli ping 2>/dev/null)" == PONG ]]; then
            return 0
        fi
        kill -0 "$TPID" 2>/dev/null || break
        sleep 0.1
    done
    # Not up: a port race (bind failed) or a server that cannot start.
    [[ -n "$SPID" ]] && kill -KILL "$SPID" 2>/dev/null
    wait "$TPID" 2>/dev/null || true
    TPID="" SPID=""
    return 1
}

started=0
for _ in $(seq 10); do
    PORT=$((20000 + RANDOM % 40000))
    port_taken "$PORT" && continue
    if start_server; then started=1; break; fi
    grep -qi "address already in use" "$TMP/redis.log" "$TMP/stderr" 2>/dev/null || break
done
if ((started == 0)); then
    die "redis-server did not come up (preload '${PRELOAD:-none}'): $(tail -n 5 "$TMP/stderr" "$TMP/redis.log" 2>/dev/null | tr '\n' ' ')"
fi
if grep -q "cannot be preloaded" "$TMP/stderr"; then
    die "the preload did not load: $(cat "$TMP/stderr")"
fi
if [[ -n "$CHECK_MAPS" ]] && ! grep -qF "$CHECK_MAPS" "/proc/$SPID/maps"; then
    die "$CHECK_MAPS is not mapped into redis-server (pid $SPID): the preload did not take"
fi

rss() {
    local v
    v=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SPID/status" 2>/dev/null || true)
    [[ -n "$v" ]] || die "cannot read VmRSS of redis-server (pid $SPID): did it die? $(tail -n 5 "$TMP/redis.log" 2>/dev/null | tr '\n' ' ')"
    echo "$v"
}

rss_start=$(rss)
timeout 300 redis-benchmark -h 127.0.0.1 -p "$PORT" -n "$REQUESTS" -r 100000 -d 200 \
    -t set,lpush -q </dev/null >"$TMP/bench" 2>&1 \
    || die "redis-benchmark failed: $(tr '\r' '\n' <"$TMP/bench" | tail -n 5 | tr '\n' ' ')"
# -q still prints progress with carriage returns: keep the final lines.
tr '\r' '\n' <"$TMP/bench" | grep -E 'requests per second' >"$TMP/rates" || true
cat "$TMP/rates" >&2
# The load's throughput: the mean of the two tests' requests per second.
ops=$(awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "requests") { s += $i; n++ } }
           END { if (n == 2) printf "%.1f", s / n }' "$TMP/rates")
[[ -n "$ops" ]] || die "no 'requests per second' for both tests in redis-benchmark's output"
keys=$(cli dbsize) || die "redis-cli dbsize failed"
[[ "$keys" =~ ^[1-9][0-9]*$ ]] || die "after the load DBSIZE is '$keys', not a positive count"
rss_load=$(rss)

[[ "$(cli flushall)" == OK ]] || die "FLUSHALL failed"
sleep "$IDLE_SECS"
rss_idle=$(rss)

echo "redis_idle requests=$REQUESTS ops_per_sec=$ops rss_start_kib=$rss_start rss_after_load_kib=$rss_load rss_idle_kib=$rss_idle keys=$keys"
