#!/usr/bin/env bash
# The benchmark comparison behind `make bench`: every harness in build/ under
# hakmem (LD_PRELOAD), glibc (no preload), mimalloc, jemalloc and tcmalloc.
#
# Runs alternate between allocators run by run (round-robin, rotating who goes
# first) so that a slow moment of the machine does not land on one allocator;
# each (benchmark, allocator) pair runs several times and the MEDIAN is kept.
#
# Writes bench-results/:
#   runs.csv     every finished run (appended as they finish)
#   results.csv  medians: benchmark,allocator,threads,metric,value
#   results.md   the tables as markdown, with the machine they ran on
#   chart.svg    bars per benchmark and allocator, normalized to hakmem = 1
#
# Environment:
#   BENCH_QUICK=1          3 short runs each (< 5 minutes on 2 cores)
#   BENCH_RUNS=N           runs per pair (default 5, quick 3)
#   BENCH_ALLOCATORS="..." a subset, e.g. "glibc mimalloc" (default: all five)
#   BENCH_OUT=DIR          output directory (default bench-results)
#   BENCH_FILTER=REGEX     only benchmarks whose name matches (e.g. '^larson')
#   HAK_LIB=PATH           the hakmem library (default target/release/libhakmem.so)
#
# Any crash, non-zero exit, time-out or missing result line fails the whole
# bench loudly, naming the allocator and benchmark; a peer that is not
# installed and cannot be installed is skipped by name; hakmem never is.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

die() { echo "bench: FAILED: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------- settings
QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
    RUNS=${BENCH_RUNS:-3}
    LARSON_SECS=1        # per Larson run
    MIXED_STEPS=10000000 # random_mixed 16..1024, per run
    FIXED_STEPS=4000000  # random_mixed at each fixed size, per run
    WAIT_SECS=1          # memory: "allocate a little" phase after the frees
    CHURN_THREADS=5000
    BIG_STEPS=1000
    RUN_TIMEOUT=60
else
    RUNS=${BENCH_RUNS:-5}
    LARSON_SECS=3
    MIXED_STEPS=20000000
    FIXED_STEPS=8000000
    WAIT_SECS=1.5
    CHURN_THREADS=20000
    BIG_STEPS=4000
    RUN_TIMEOUT=180
fi
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$RUNS'"
OUT=${BENCH_OUT:-bench-results}
read -r -a REQUESTED <<<"${BENCH_ALLOCATORS:-${ALL_ALLOCATORS[*]}}"
for a in "${REQUESTED[@]}"; do
    [[ " ${ALL_ALLOCATORS[*]} " == *" $a "* ]] || die "unknown allocator '$a' in BENCH_ALLOCATORS (know: ${ALL_ALLOCATORS[*]})"
done

# ------------------------------------------------------------------ builds
# `make bench` has built everything already; run by hand, build what we use.
if [[ -z "${MAKELEVEL:-}" ]]; then
    make --no-print-directory build/larson build/random_mixed build/memory build/churn build/bigblocks >&2
    if [[ " ${REQUESTED[*]} " == *" hakmem "* && "$HAK_LIB" == "$PWD/target/release/libhakmem.so" ]]; then
        make --no-print-directory lib >&2 || die "hakmem: cargo build --release failed"
    fi
fi
for h in larson random_mixed memory churn bigblocks; do
    [[ -x "$BUILD_DIR/$h" ]] || die "harness $BUILD_DIR/$h missing (make c-programs)"
done

# -------------------------------------------------------------- allocators
bash scripts/install-peers.sh || true   # reports unavailable peers itself
ALLOCS=() SKIPPED=()
for a in "${REQUESTED[@]}"; do
    case "$a" in
        hakmem)
            [[ -f "$HAK_LIB" ]] || die "hakmem: $HAK_LIB missing (did cargo build --release fail?)"
            # A preload that does not take effect would silently measure glibc:
            # demand hakmem's own stats line as proof that it served malloc.
            if ! proof=$(HAKMEM_STATS=1 LD_PRELOAD="$HAK_LIB" "$BUILD_DIR/memory" -n 1000 2>&1 >/dev/null); then
                die "hakmem: $BUILD_DIR/memory -n 1000 failed under LD_PRELOAD=$HAK_LIB: $proof"
            fi
            [[ "$proof" == *"hakmem: stats:"* ]] \
                || die "hakmem: no 'hakmem: stats:' line with HAKMEM_STATS=1, is $HAK_LIB really preloaded? stderr: $proof"
            ;;
        glibc) ;;
        *)
            if [[ -z "$(peer_lib "$a")" ]]; then
                note "SKIPPING $a: not installed and could not be installed (package $(peer_pkg "$a"))"
                SKIPPED+=("$a")
                continue
            fi
            ;;
    esac
    ALLOCS+=("$a")
done
((${#ALLOCS[@]} > 0)) || die "no allocator left to run"

# /usr/bin/time gives each run's peak RSS for free; install it if we can.
TIME_BIN=/usr/bin/time
if [[ ! -x "$TIME_BIN" && $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    note "installing 'time' for peak RSS measurements"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null 2>&1 \
        || { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 || true
             DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null 2>&1 || true; }
fi
if [[ ! -x "$TIME_BIN" ]]; then
    note "no /usr/bin/time: peak_rss_kib will not be recorded"
    TIME_BIN=""
fi

# -------------------------------------------------------------- benchmarks
# One job per row of the table: name, threads column, harness command line.
JOB_NAME=() JOB_THREADS=() JOB_CMD=()
add_job() {
    [[ "$1" =~ ${BENCH_FILTER:-.} ]] || return 0
    JOB_NAME+=("$1"); JOB_THREADS+=("$2"); JOB_CMD+=("$3")
}
for chunks in 256 1024; do
    for t in 1 2 4; do
        add_job "larson_$chunks" "$t" "larson -t $t -n $chunks -m 16 -M 1024 -s $LARSON_SECS -S 4141"
    done
done
add_job random_mixed_16_1024 1 "random_mixed -t 1 -n $MIXED_STEPS -w 4096 -m 16 -M 1024 -S 42"
for size in 16 32 64 128 256 512 1024 2048 4096 8192; do
    add_job "random_mixed_fixed_$size" 1 "random_mixed -t 1 -n $FIXED_STEPS -w 4096 -m $size -M $size -S 42"
done
add_job memory_16x1M 1 "memory -n 1048576 -s 16 -w $WAIT_SECS"
add_job memory_100Kx200 1 "memory -n 200 -s 102400 -w $WAIT_SECS"
add_job memory_churn 64 "churn -t $CHURN_THREADS -b 64 -k 16"
add_job memory_bigblocks 1 "bigblocks -n $BIG_STEPS -w 16 -m 65536 -M 16777216 -S 42"
((${#JOB_NAME[@]} > 0)) || die "BENCH_FILTER='${BENCH_FILTER:-}' matches no benchmark"

# ------------------------------------------------------------------- runs
mkdir -p "$OUT"
# Stale results must not survive a failed bench: only this run's numbers count.
rm -f "$OUT/results.csv" "$OUT/results.md" "$OUT/chart.svg"
RAW="$OUT/runs.csv"
echo "benchmark,allocator,threads,run,metric,value" >"$RAW"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Value of key=value field $1 in the result line held in $2 (empty if absent).
# (No `| head` anywhere: under pipefail a writer killed by SIGPIPE fails the script.)
field() {
    if [[ " $2" =~ [[:space:]]$1=(-?[0-9.]+) ]]; then echo "${BASH_REMATCH[1]}"; fi
}
is_number() { [[ "$1" =~ ^[0-9]+(\.[0-9]+)?$ ]]; }

signal_name() { kill -l "$1" 2>/dev/null || echo "?"; }

total=$((RUNS * ${#JOB_NAME[@]} * ${#ALLOCS[@]}))
note "${#ALLOCS[@]} allocators (${ALLOCS[*]}), ${#JOB_NAME[@]} benchmarks, $RUNS runs each: $total runs$([[ "$QUICK" == 1 ]] && echo ' (quick)')"
started=$SECONDS
n=0

# run_one JOB ALLOC RUN: run once, append its numbers to runs.csv, or die.
run_one() {
    local j=$1 alloc=$2 run=$3
    local name=${JOB_NAME[$j]} threads=${JOB_THREADS[$j]}
    local -a cmd envs=()
    read -r -a cmd <<<"${JOB_CMD[$j]}"
    cmd[0]="$BUILD_DIR/${cmd[0]}"
    local preload
    preload=$(alloc_preload "$alloc")
    [[ -n "$preload" ]] && envs=("LD_PRELOAD=$preload")
    local -a wrap=(timeout -k 5 "$RUN_TIMEOUT")
    [[ -n "$TIME_BIN" ]] && wrap+=("$TIME_BIN" -f %M -o "$TMP/time")

    n=$((n + 1))
    printf '[%d/%d] %s t=%s %s run %d/%d ... ' "$n" "$total" "$name" "$threads" "$alloc" "$run" "$RUNS" >&2
    local rc=0
    "${wrap[@]}" env "${envs[@]}" "${cmd[@]}" >"$TMP/out" 2>"$TMP/err" || rc=$?
    local out err repro
    out=$(cat "$TMP/out")
    err=$(head -c 2000 "$TMP/err")
    repro="${envs[*]:+${envs[*]} }${cmd[*]}"
    if ((rc != 0)); then
        echo "FAILED" >&2
        local why="exited with status $rc"
        ((rc == 124)) && why="timed out after ${RUN_TIMEOUT}s"
        ((rc > 128 && rc != 124)) && why="killed by signal $((rc - 128)) (SIG$(signal_name $((rc - 128))))"
        die "$alloc on $name (threads=$threads, run $run/$RUNS) $why
  reproduce: $repro
  stderr: ${err:-<empty>}"
    fi
    # ld.so only warns when a preload fails and then runs plain glibc.
    if [[ "$err" == *"cannot be preloaded"* ]]; then
        echo "FAILED" >&2
        die "$alloc on $name: the preload did not load: $err"
    fi

    local -a metrics=()
    case "$name" in
        memory_churn)
            metrics=("rss_kib=$(field peak_kib "$out")" "final_rss_kib=$(field final_kib "$out")") ;;
        memory_bigblocks)
            metrics=("rss_kib=$(field peak_kib "$out")" "seconds=$(field seconds "$out")") ;;
        memory_*)
            local start wait
            start=$(field start_kib "$out") wait=$(field after_wait_kib "$out")
            metrics=("rss_kib=$(field peak_kib "$out")"
                     "overhead_kib=$(field overhead_kib "$out")"
                     "after_free_rss_kib=$(field after_free_kib "$out")"
                     "after_wait_growth_kib=$([[ -n "$start" && -n "$wait" ]] && echo $((wait - start)))") ;;
        *) metrics=("ops_per_sec=$(field ops_per_sec "$out")") ;;
    esac
    if [[ -n "$TIME_BIN" ]]; then
        metrics+=("peak_rss_kib=$(tail -n1 "$TMP/time")")
    fi
    local m
    for m in "${metrics[@]}"; do
        if ! is_number "${m#*=}" && ! [[ "${m%%=*}" == *_kib && "${m#*=}" =~ ^-[0-9]+$ ]]; then
            echo "FAILED" >&2
            die "$alloc on $name (run $run/$RUNS): no valid ${m%%=*} in its output
  reproduce: $repro
  stdout: ${out:-<empty>}
  stderr: ${err:-<empty>}"
        fi
    done
    # Only a run that finished and printed every number reaches the CSV.
    for m in "${metrics[@]}"; do
        echo "$name,$alloc,$threads,$run,${m%%=*},${m#*=}" >>"$RAW"
    done
    case "$name" in
        memory_bigblocks) echo "$(field seconds "$out") s, $(field peak_kib "$out") KiB peak" >&2 ;;
        memory_*) echo "$(field peak_kib "$out") KiB peak" >&2 ;;
        *) awk -v v="$(field ops_per_sec "$out")" 'BEGIN { printf "%.2fM ops/s\n", v / 1e6 }' >&2 ;;
    esac
}

for ((run = 1; run <= RUNS; run++)); do
    for ((j = 0; j < ${#JOB_NAME[@]}; j++)); do
        # Rotate the allocator order so none is always first (cold) or last.
        k=${#ALLOCS[@]}
        for ((i = 0; i < k; i++)); do
            run_one "$j" "${ALLOCS[$(((i + run + j) % k))]}" "$run"
        done
    done
done
note "all $total runs finished in $((SECONDS - started)) s"

# ---------------------------------------------------------------- results
peer_versions=""
for a in "${ALLOCS[@]}"; do
    case "$a" in
        hakmem) v=$(sed -n '/^version *=/{s/^version *= *"\(.*\)"/\1/p;q}' Cargo.toml)
                rev=$(git rev-parse --short HEAD 2>/dev/null || true)
                v="$v${rev:+ ($rev)}" ;;
        glibc) v=$(ldd --version 2>/dev/null | sed -n '1s/.* //p') ;;
        *) v=$(dpkg-query -W -f '${Version}' "$(peer_pkg "$a")" 2>/dev/null || echo "?") ;;
    esac
    peer_versions+="$a $v;"
done
python3 bench-c/summarize.py --raw "$RAW" --out "$OUT" --allocators "${ALLOCS[*]}" \
    --runs "$RUNS" --quick "$QUICK" --versions "$peer_versions" \
    --skipped "${SKIPPED[*]}"
python3 scripts/chart.py "$OUT/results.csv" "$OUT/chart.svg" --allocators "${ALLOCS[*]}"
((${#SKIPPED[@]} == 0)) || note "NOTE: skipped, not installed: ${SKIPPED[*]}"
note "wrote $OUT/results.csv, $OUT/results.md, $OUT/chart.svg (total $((SECONDS - started)) s)"
