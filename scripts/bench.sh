#!/usr/bin/env bash
# The benchmark comparison behind `make bench`: every harness in build/ under
# hakmem (LD_PRELOAD), glibc (no preload), mimalloc, jemalloc and tcmalloc,
# and the script jobs (a real program driven by a script in scripts/, which
# is handed the allocator to preload; see "script:" below).
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
#   BENCH_QUICK=1          3 short runs each (about 10 minutes on 2 cores)
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
    PC64_BLOCKS=6000000      # prodcons_64, blocks passed per run
    PCMIX_BLOCKS=2000000     # prodcons_16_1024
    QUIET_SECS=1             # quiet: the quiet period after the frees
    REDIS_REQUESTS=100000    # redis_idle: redis-benchmark -n, per test
    BIGHEAP_MIB=512          # bigheap: live MiB, and random steps
    BIGHEAP_STEPS=10000000
    HANDOFF_ROUNDS=10000     # handoff: rounds per thread
    FALSESHARE_REPEATS=50000 # falseshare: writes of each object per iteration
    MANY_ROUNDS=10           # manythreads: thread generations
    RUN_TIMEOUT=60
else
    RUNS=${BENCH_RUNS:-5}
    LARSON_SECS=3
    MIXED_STEPS=20000000
    FIXED_STEPS=8000000
    WAIT_SECS=1.5
    CHURN_THREADS=20000
    BIG_STEPS=4000
    PC64_BLOCKS=16000000
    PCMIX_BLOCKS=6000000
    QUIET_SECS=1
    REDIS_REQUESTS=200000
    BIGHEAP_MIB=1024
    BIGHEAP_STEPS=20000000
    HANDOFF_ROUNDS=20000
    FALSESHARE_REPEATS=100000
    MANY_ROUNDS=20
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
    make --no-print-directory build/larson build/random_mixed build/memory build/churn build/bigblocks \
        build/prodcons build/quiet build/bigheap build/handoff build/falseshare build/manythreads >&2
    if [[ " ${REQUESTED[*]} " == *" hakmem "* && "$HAK_LIB" == "$PWD/target/release/libhakmem.so" ]]; then
        make --no-print-directory lib >&2 || die "hakmem: cargo build --release failed"
    fi
fi
for h in larson random_mixed memory churn bigblocks prodcons quiet bigheap handoff falseshare manythreads; do
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
# One job per row of the table: name, threads column, command line.  The
# command is a harness in build/ run with LD_PRELOAD=<allocator>, after any
# leading VAR=value words (its environment).  "script:NAME" instead runs
# `bash scripts/NAME ALLOC` with no preload of its own: ALLOC is the library
# to preload into the program it measures, or "glibc" (for a program linked
# against another allocator, the script preloads libc itself); the script
# prints the one result line and fails loudly like a harness.
JOB_NAME=() JOB_THREADS=() JOB_CMD=() SKIPPED_JOBS=()
selected() { [[ "$1" =~ ${BENCH_FILTER:-.} ]]; }
add_job() {
    selected "$1" || return 0
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
# prodcons_64, prodcons_16_1024 (threads 2 and 4: half producers, half
# consumers): blocks allocated in batches of 1000..4000 by producers, handed
# over a bounded queue (8 batches) and freed by consumers, so every free is
# remote; ops_per_sec = blocks passed per second, rss_kib = VmHWM.  About 2 s
# under glibc (a second in quick mode).
for t in 2 4; do
    add_job prodcons_64 "$t" "prodcons -t $t -m 64 -M 64 -n $PC64_BLOCKS -S 42"
    add_job prodcons_16_1024 "$t" "prodcons -t $t -m 16 -M 1024 -n $PCMIX_BLOCKS -S 42"
done
# handoff (threads 2 and 4): each thread keeps 1000 slots of blocks of
# 16..16000 B skewed small (a third from calloc, two thirds from memalign 8
# or 16, every page written), frees and refills scattered slots each round,
# and every other round hands a fresh batch to the next thread, which frees
# it: rpmalloc's random test's shape. ops_per_sec = mallocs and frees per
# second, peak_rss_kib = VmHWM.
for t in 2 4; do
    add_job handoff "$t" "handoff -t $t -w 1000 -o 100 -r $HANDOFF_ROUNDS -m 16 -M 16000 -S 42"
done
# falseshare_{active,passive} (2 threads): each thread mallocs an 8-byte
# object, writes and reads it FALSESHARE_REPEATS times, frees it, 1000
# times; passive: its first object is one of two neighbours the main thread
# allocated (Hoard's cache-thrash and cache-scratch shapes). ops_per_sec =
# bytes written and read back per second.
add_job falseshare_active 2 "falseshare -t 2 -s 8 -i 1000 -r $FALSESHARE_REPEATS"
add_job falseshare_passive 2 "falseshare -t 2 -s 8 -i 1000 -r $FALSESHARE_REPEATS -p"
# manythreads (threads 8 and 32, more than the cores): MANY_ROUNDS
# generations of threads, each making 20,000 steps of malloc (16..256 B,
# one in 100 up to 100 times larger, one in 1000 up to 1000 times), frees
# of its own blocks and swaps with a shared table (mimalloc's stress test's
# shape). ops_per_sec = mallocs and frees per second.
for t in 8 32; do
    add_job manythreads "$t" "manythreads -t $t -r $MANY_ROUNDS -n 20000 -S 42"
done
# quiet_<size>x<count>_{sleep,active}: a burst of blocks written and freed,
# then QUIET_SECS with no allocator call at all (sleep) or with only
# malloc(64)/free pairs every 10 us (active, the fast path); growth_kib =
# VmRSS after the quiet period - VmRSS at start (what the burst left
# resident), after_free_rss_kib = VmRSS right after the last free.  Small
# (1 M x 16 B), medium (2000 x 100 KiB) and big blocks (64 x 4 MiB).
for shape in "16x1M 1048576 16" "100Kx2000 2000 102400" "4Mx64 64 4194304"; do
    read -r label count size <<<"$shape"
    add_job "quiet_${label}_sleep" 1 "quiet -n $count -s $size -w $QUIET_SECS -q"
    add_job "quiet_${label}_active" 1 "quiet -n $count -s $size -w $QUIET_SECS -a"
done
# churn_2k_4k: thread churn as memory_churn but each thread keeps 50 blocks
# of 2..4 KiB (64 threads at a time, freed by main after they exit):
# final_rss_kib = VmRSS at the end, after_delay_rss_kib = VmRSS 300 ms later
# (past hakmem's 100 ms purge delay, twice: the freed blocks' slabs are
# collected, then purged), seconds = the whole run.
add_job churn_2k_4k 64 "churn -t $CHURN_THREADS -b 64 -k 50 -m 2048 -M 4096 -w 300"
# bigheap_thp_{never,default,always}: BIGHEAP_MIB MiB of 64 B..4 KiB blocks
# written, then BIGHEAP_STEPS random word updates (one block in 64 replaced),
# with HAKMEM_THP set as named (the peers ignore it: three samples of the
# same run for them): ops_per_sec = steps per second of the random phase,
# seconds = the whole run, rss_kib = VmHWM.  The A/B that sets HAKMEM_THP's
# default.
for thp in never default always; do
    add_job "bigheap_thp_$thp" 1 "HAKMEM_THP=$thp bigheap -g $BIGHEAP_MIB -m 64 -M 4096 -n $BIGHEAP_STEPS -S 42"
done
# prog_<name>: real programs from Debian on allocation-heavy workloads
# (scripts/program-bench.sh: python3, sqlite3, sort, gcc, perl, ruby), each
# output checked against a run without preload and hakmem's stats line
# checked once: seconds = wall time, rss_kib = peak RSS.  Skipped by name
# when the program cannot be installed.
for prog in python3 sqlite3 sort gcc perl ruby; do
    selected "prog_$prog" || continue
    if bash scripts/program-bench.sh --install "$prog"; then
        add_job "prog_$prog" 1 "script:program-bench.sh $prog"
    else
        note "SKIPPING prog_$prog: $prog not installed and could not be installed"
        SKIPPED_JOBS+=("prog_$prog")
    fi
done
# redis_idle: Debian's redis-server with the allocator preloaded, loaded by
# redis-benchmark (SET on 100,000 random keys, LPUSH, 200-byte values,
# REDIS_REQUESTS each), then FLUSHALL and 3 s idle: ops_per_sec is the
# mean of the two tests' requests per second, rss_after_load_kib and
# rss_idle_kib are the server's VmRSS (scripts/redis-idle.sh).  The glibc
# column preloads libc (Debian's redis is linked with jemalloc).  Skipped by
# name when redis cannot be installed.
if selected redis_idle; then
    if bash scripts/redis-idle.sh --install; then
        add_job redis_idle 1 "REDIS_REQUESTS=$REDIS_REQUESTS script:redis-idle.sh"
    else
        note "SKIPPING redis_idle: redis-server/redis-tools not installed and could not be installed"
        SKIPPED_JOBS+=(redis_idle)
    fi
fi
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
    while [[ "${cmd[0]}" =~ ^[A-Z_][A-Z0-9_]*= ]]; do
        envs+=("${cmd[0]}"); cmd=("${cmd[@]:1}")
    done
    local preload script=0
    preload=$(alloc_preload "$alloc")
    if [[ "${cmd[0]}" == script:* ]]; then
        # The script preloads the allocator into what it measures, not itself.
        script=1
        cmd=(bash "scripts/${cmd[0]#script:}" "${preload:-glibc}" "${cmd[@]:1}")
    else
        cmd[0]="$BUILD_DIR/${cmd[0]}"
        [[ -n "$preload" ]] && envs+=("LD_PRELOAD=$preload")
    fi
    local -a wrap=(timeout -k 5 "$RUN_TIMEOUT")
    # /usr/bin/time over a script would report its biggest child, whichever.
    [[ -n "$TIME_BIN" && $script == 0 ]] && wrap+=("$TIME_BIN" -f %M -o "$TMP/time")

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
        prog_*)
            metrics=("seconds=$(field seconds "$out")" "rss_kib=$(field rss_kib "$out")") ;;
        bigheap_*)
            metrics=("ops_per_sec=$(field ops_per_sec "$out")" "seconds=$(field seconds "$out")"
                     "rss_kib=$(field peak_kib "$out")") ;;
        prodcons_*)
            metrics=("ops_per_sec=$(field ops_per_sec "$out")" "rss_kib=$(field peak_kib "$out")") ;;
        quiet_*)
            metrics=("after_free_rss_kib=$(field after_free_kib "$out")"
                     "growth_kib=$(field growth_kib "$out")") ;;
        churn_*)
            metrics=("final_rss_kib=$(field final_kib "$out")" "seconds=$(field seconds "$out")"
                     "after_delay_rss_kib=$(field after_wait_kib "$out")") ;;
        redis_*)
            metrics=("ops_per_sec=$(field ops_per_sec "$out")"
                     "rss_after_load_kib=$(field rss_after_load_kib "$out")"
                     "rss_idle_kib=$(field rss_idle_kib "$out")") ;;
        memory_*)
            local start wait
            start=$(field start_kib "$out") wait=$(field after_wait_kib "$out")
            metrics=("rss_kib=$(field peak_kib "$out")"
                     "overhead_kib=$(field overhead_kib "$out")"
                     "after_free_rss_kib=$(field after_free_kib "$out")"
                     "after_wait_growth_kib=$([[ -n "$start" && -n "$wait" ]] && echo $((wait - start)))") ;;
        *) metrics=("ops_per_sec=$(field ops_per_sec "$out")") ;;
    esac
    if [[ -n "$TIME_BIN" && $script == 0 ]]; then
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
        prodcons_*|bigheap_*) awk -v v="$(field ops_per_sec "$out")" -v p="$(field peak_kib "$out")" \
                        'BEGIN { printf "%.2fM ops/s, %d KiB peak\n", v / 1e6, p }' >&2 ;;
        quiet_*) echo "$(field growth_kib "$out") KiB growth, $(field after_free_kib "$out") KiB after free" >&2 ;;
        churn_*) echo "$(field seconds "$out") s, $(field final_kib "$out") KiB at the end" >&2 ;;
        prog_*) echo "$(field seconds "$out") s, $(field rss_kib "$out") KiB peak" >&2 ;;
        redis_*) echo "$(field rss_after_load_kib "$out") KiB loaded, $(field rss_idle_kib "$out") KiB idle" >&2 ;;
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
((${#SKIPPED_JOBS[@]} == 0)) || note "NOTE: benchmarks skipped (program not installed): ${SKIPPED_JOBS[*]}"
note "wrote $OUT/results.csv, $OUT/results.md, $OUT/chart.svg (total $((SECONDS - started)) s)"
