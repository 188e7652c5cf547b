#!/usr/bin/env bash
# programs.sh — real programs running on hakmem.
#
# Each case runs a deterministic workload twice in the same directory: once on
# the system malloc and once with LD_PRELOAD=libhakmem.so HAKMEM_STATS=1 on the
# program under test.  It passes when
#   * both runs exit 0,
#   * stdout is byte-for-byte identical (and stderr too, minus hakmem's stats),
#   * hakmem's exit-time stats ("hakmem: stats: ... slab_blocks=N ...") show
#     N > 0 in at least one process: hakmem really served the allocations.
#
# Usage: tests/programs.sh            (library: $HAK_LIB or
#                                      target/release/libhakmem.so)
# A missing program is installed with apt-get when running as root.
set -u
cd "$(dirname "$0")/.."

LIB=${HAK_LIB:-$PWD/target/release/libhakmem.so}
if [ ! -f "$LIB" ]; then
    echo "FAIL programs: $LIB not found (build it: cargo build --release)"
    echo "programs: 0 passed, 1 failed"
    exit 1
fi
LIB=$(realpath "$LIB")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-programs.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export LC_ALL=C TZ=UTC

passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# need PROGRAM PACKAGE: the program is on PATH, installing it if we can.
apt_updated=
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing $2 (for $1) ..."
        if [ -z "$apt_updated" ]; then
            apt-get update -qq >/dev/null 2>&1
            apt_updated=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1
    fi
    command -v "$1" >/dev/null 2>&1
}

# The workloads call the program under test through `run`, so only it (and
# its children) get hakmem; helpers like sha256sum and awk stay on glibc.
run() {
    if [ -n "${HAKTEST_PRELOAD:-}" ]; then
        LD_PRELOAD="$HAKTEST_PRELOAD" HAKMEM_STATS=1 HAKMEM_HARDEN="${HAKTEST_HARDEN:-0}" "$@"
    else
        "$@"
    fi
}
export -f run

# check_case NAME WORKLOAD-FUNCTION [HARDEN]: the two runs and the
# comparison; HARDEN=1 runs hakmem with HAKMEM_HARDEN=1 (a clean program must
# not notice).
check_case() {
    local name=$1 fn=$2 harden=${3:-0} dir="$TMP/$1" mode rc_base rc_hak
    local t0=$SECONDS
    for mode in base hak; do
        rm -rf "$dir/work"
        mkdir -p "$dir/work"
        local pre=
        [ "$mode" = hak ] && pre=$LIB
        (cd "$dir/work" && HAKTEST_PRELOAD=$pre HAKTEST_HARDEN=$harden timeout 600 bash -c "$fn") \
            >"$dir/$mode.out" 2>"$dir/$mode.err"
        local rc=$?
        if [ "$mode" = base ]; then rc_base=$rc; else rc_hak=$rc; fi
    done
    grep -v '^hakmem: stats:' "$dir/hak.err" >"$dir/hak.err.rest"

    if [ "$rc_base" != 0 ]; then
        fail "$name" "the workload fails even without hakmem (exit $rc_base): $(tail -c 400 "$dir/base.err")"
        return
    fi
    if [ "$rc_hak" != 0 ]; then
        local why="exit status $rc_hak"
        [ "$rc_hak" -gt 128 ] && why="killed by signal $((rc_hak - 128))"
        [ "$rc_hak" = 124 ] && why="timed out"
        fail "$name" "under hakmem: $why; stderr: $(grep -v '^hakmem: stats:' "$dir/hak.err" | tail -c 600)"
        return
    fi
    if ! cmp -s "$dir/base.out" "$dir/hak.out"; then
        fail "$name" "stdout differs under hakmem ($(wc -c <"$dir/base.out") vs $(wc -c <"$dir/hak.out") bytes):
$(diff "$dir/base.out" "$dir/hak.out" | head -n 10)"
        return
    fi
    if ! cmp -s "$dir/base.err" "$dir/hak.err.rest"; then
        fail "$name" "stderr differs under hakmem:
$(diff "$dir/base.err" "$dir/hak.err.rest" | head -n 10)"
        return
    fi
    local stats max=0 n
    stats=$(grep -c '^hakmem: stats: pid=' "$dir/hak.err")
    for n in $(grep '^hakmem: stats:' "$dir/hak.err" | grep -o 'slab_blocks=[0-9]*' | cut -d= -f2); do
        [ "$n" -gt "$max" ] && max=$n
    done
    if [ "$stats" = 0 ]; then
        fail "$name" "no 'hakmem: stats:' line on stderr: hakmem was not loaded or did not report"
        return
    fi
    if [ "$max" -le 0 ]; then
        fail "$name" "hakmem served no slab blocks ($stats stats lines, all slab_blocks=0 or missing)"
        return
    fi
    pass "$name ($(wc -c <"$dir/base.out") bytes of identical output; $stats hakmem processes, up to slab_blocks=$max; $((SECONDS - t0)) s)"
}

# ---------------------------------------------------------------- python3
# Dicts, lists, strings and json; PYTHONMALLOC=malloc sends even the small
# objects to malloc instead of Python's own arenas.
python_workload() {
    cat >work.py <<'EOF'
import hashlib, json, random
random.seed(12345)
d = {}
for i in range(100000):
    k = "key%06d_%s" % (i, "x" * (i % 17))
    d[k] = [i, k.upper(), random.random(), {"t": str(i % 7)} if i % 3 == 0 else None]
s = json.dumps(d, sort_keys=True)
d2 = json.loads(s)
assert d2 == d
lst = sorted(d2.values(), key=lambda e: e[2])
words = " ".join(e[1] for e in lst[:50000]).split()
words.sort(key=lambda w: w[::-1])
cnt = {}
for w in words:
    cnt[w[-3:]] = cnt.get(w[-3:], 0) + 1
big = [bytes(range(256)) * (i % 50) for i in range(3000)]
print(len(d), len(s), hashlib.sha256(s.encode()).hexdigest())
print(lst[0][0], lst[-1][0], sorted(cnt.items())[:5], sum(map(len, big)))
print(hashlib.sha256(repr(sorted(cnt.items())).encode() + b"".join(big)).hexdigest())
EOF
    PYTHONHASHSEED=0 PYTHONMALLOC=malloc run "$HAKTEST_PY" work.py
}

# ------------------------------------------------------------------- perl
perl_workload() {
    cat >work.pl <<'EOF'
use strict; use warnings; use Digest::MD5 qw(md5_hex);
my (%h, %cnt); my $x = 42; my $n = 0;
for my $i (0 .. 99999) {
    $x = ($x * 1103515245 + 12345) % 2147483648;
    $h{sprintf("k%07d-%x", $i, $x)} = "val" . ($x % 1000) . ("z" x ($i % 13));
}
my @keys = sort keys %h;
for my $k (@keys) {
    if ($h{$k} =~ /^val(\d+)(z*)$/) { $cnt{length $2}++; $n += $1; }
    (my $t = $k) =~ s/(\d)(\d)/<$2$1>/g;
    $h{$k} = $t;
}
my @vals = sort values %h;
my @parts = map { [split /-/] } @keys[0 .. 49999];
print scalar(@keys), " $n ", scalar(@parts), "\n";
print join(" ", map { "$_:$cnt{$_}" } sort { $a <=> $b } keys %cnt), "\n";
print md5_hex(join("\n", @keys)), " ", md5_hex(join(",", @vals)), "\n";
EOF
    run perl work.pl
}

# -------------------------------------------------------------------- git
# Fixed identity and dates make every object id deterministic.
git_workload() {
    export GIT_CONFIG_NOSYSTEM=1 HOME=$PWD/home GIT_AUTHOR_NAME="Hak Test" \
        GIT_AUTHOR_EMAIL=hak@example.com GIT_COMMITTER_NAME="Hak Test" \
        GIT_COMMITTER_EMAIL=hak@example.com GIT_PAGER=cat PAGER=cat
    mkdir home repo && cd repo || return 1
    run git init -q -b main . || return 1
    for i in $(seq 1 20); do
        export GIT_AUTHOR_DATE="2020-01-$(printf %02d "$i")T12:00:00+0000"
        export GIT_COMMITTER_DATE=$GIT_AUTHOR_DATE
        mkdir -p "dir$((i % 4))"
        seq "$i" 3 $((i * 400)) >"dir$((i % 4))/file$i.txt"
        awk -v i="$i" '{ print $0 * i, "line", NR }' "dir$((i % 4))/file$i.txt" >"notes$((i % 3)).txt"
        [ "$i" -gt 5 ] && rm -f "dir$(((i - 5) % 4))/file$((i - 5)).txt"
        run git add -A || return 1
        run git commit -q -m "commit $i: $(wc -l <"notes$((i % 3)).txt") notes" || return 1
    done
    run git log --stat --format='%H %an <%ae> %ad%n  %s' --date=iso || return 1
    run git diff --stat HEAD~10 HEAD || return 1
    run git blame -s notes1.txt | tail -n 20 || return 1
    run git repack -adq || return 1
    run git fsck --strict --no-progress || return 1
    run git rev-list --objects --all | sort || return 1
    run git cat-file -p HEAD^{tree}
}

# -------------------------------------------------------------------- gcc
# Compile under hakmem, run the result; the binary itself must be identical.
gcc_workload() {
    cat >prog.c <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    enum { N = 200000, P = 1000000 };
    unsigned *a = malloc(N * sizeof *a), x = 1, sum = 0;
    char *sieve = calloc(P, 1);
    int primes = 0;
    for (int i = 0; i < N; i++)
        a[i] = (x = x * 1103515245u + 12345u) >> 4;
    qsort(a, N, sizeof *a, cmp);
    for (int i = 0; i < N; i++)
        sum = sum * 31u + a[i];
    for (int i = 2; i < P; i++)
        if (!sieve[i]) {
            primes++;
            for (long j = (long)i * i; j < P; j += i)
                sieve[j] = 1;
        }
    char *s = NULL;
    size_t len = 0;
    for (int i = 0; i < 2000; i++) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%u,", a[i * 97]);
        s = realloc(s, len + (size_t)n + 1);
        memcpy(s + len, buf, (size_t)n + 1);
        len += (size_t)n;
    }
    printf("min %u max %u sum %u primes %d strlen %zu\n", a[0], a[N - 1], sum, primes,
           strlen(s));
    free(a);
    free(sieve);
    free(s);
    return 0;
}
EOF
    run gcc -O2 -g -Wall -frandom-seed=hakmem -o prog prog.c || return 1
    run ./prog || return 1
    sha256sum prog
}

# ------------------------------------------------------------------- sort
# 500k generated lines (fixed seed), sorted three ways; the second spills to
# temporary files and merges with two threads.
sort_workload() {
    run sort "$HAKTEST_SORT_INPUT" || return 1
    mkdir tmp
    run sort -S 1M -T tmp --parallel=2 -k2,2n -k1,1r "$HAKTEST_SORT_INPUT" || return 1
    run sort -u -t ' ' -k3,3 "$HAKTEST_SORT_INPUT"
}

# ------------------------------------------------------------ sed and tar
# Both link libselinux, whose constructor allocates before hakmem's own
# constructor runs: hardened, those first blocks must be hardened ones too
# (they were not, and sed and tar aborted at their first fclose).
sed_tar_workload() {
    set -o pipefail
    run sed -E 's/^([0-9a-f]+) ([0-9]+)/\2 \1/' "$HAKTEST_SORT_INPUT" | sha256sum || return 1
    mkdir d && seq 1 20000 >d/numbers && cp "$HAKTEST_SORT_INPUT" d/ || return 1
    run tar cf - d | run tar tvf - | awk '{ print $3, $6 }'
}

# ---------------------------------------------------------------- sqlite3
# A generated workload: 300k rows inserted in transactions, two indexes, a
# join with aggregation, updates and deletes, then a checksum of the rest.
sqlite_workload() {
    {
        echo "PRAGMA journal_mode=WAL; PRAGMA cache_size=-20000;"
        echo "CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, region INTEGER);"
        echo "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, amount INTEGER, note TEXT);"
        echo "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)"
        echo "  INSERT INTO customer SELECT i, 'customer-' || i || '-' || substr('abcdefghij', 1 + i % 10), i % 37 FROM n;"
        echo "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)"
        echo "  INSERT INTO orders SELECT i, 1 + (i * 7919) % 20000, (i * 104729) % 10007, hex(randomblob(0)) || 'note ' || (i % 101) FROM n;"
        echo "CREATE INDEX orders_customer ON orders(customer);"
        echo "CREATE INDEX orders_amount ON orders(amount, note);"
        echo "SELECT c.region, count(*), sum(o.amount), max(length(c.name || o.note)) FROM orders o JOIN customer c ON c.id = o.customer GROUP BY c.region ORDER BY c.region;"
        echo "UPDATE orders SET amount = amount + 1, note = note || '!' WHERE amount % 3 = 0;"
        echo "DELETE FROM orders WHERE customer % 11 = 0;"
        echo "SELECT count(*), sum(amount), sum(length(note)) FROM orders;"
        echo "SELECT customer, group_concat(amount, ',') FROM (SELECT * FROM orders WHERE customer < 40 ORDER BY id) GROUP BY customer ORDER BY customer;"
    } >work.sql
    run sqlite3 db.sqlite <work.sql
}

export -f python_workload perl_workload git_workload gcc_workload sort_workload sed_tar_workload sqlite_workload

# ------------------------------------------------------------------- main
echo "programs: testing $LIB"

if need python3 python3; then
    # The real interpreter, not a wrapper script (pyenv shims are bash).
    HAKTEST_PY=$(python3 -c 'import sys; print(sys.executable)')
    export HAKTEST_PY
    check_case python3 python_workload
    check_case "python3 hardened" python_workload 1
else
    fail python3 "python3 is not installed and could not be installed"
fi

if need perl perl; then
    check_case perl perl_workload
else
    fail perl "perl is not installed and could not be installed"
fi

if need git git; then
    check_case git git_workload
else
    fail git "git is not installed and could not be installed"
fi

if need gcc gcc; then
    check_case gcc gcc_workload
else
    fail gcc "gcc is not installed and could not be installed"
fi

if need sort coreutils; then
    export HAKTEST_SORT_INPUT="$TMP/sort-input.txt"
    awk 'BEGIN { srand(7); for (i = 0; i < 500000; i++)
                   printf "%08x %06d %s\n", int(rand() * 4294967296), int(rand() * 1000000),
                          substr("abcdefghijklmnopqrstuvwxyz", 1 + int(rand() * 20), 1 + int(rand() * 6)) }' \
        >"$HAKTEST_SORT_INPUT"
    check_case sort sort_workload
    check_case "sed and tar hardened" sed_tar_workload 1
else
    fail sort "sort is not installed and could not be installed"
fi

if need sqlite3 sqlite3; then
    check_case sqlite3 sqlite_workload
    check_case "sqlite3 hardened" sqlite_workload 1
else
    fail sqlite3 "sqlite3 is not installed and could not be installed"
fi

echo "programs: $passed passed, $failed failed"
[ "$failed" = 0 ]
