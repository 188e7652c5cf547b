#!/usr/bin/env bash
# Real programs as benchmarks: one run of a Debian-packaged program on an
# allocation-heavy workload, timed, with its peak RSS, its output checked
# against a run without any preload, and (for hakmem) proof that hakmem
# served it.
#
#   scripts/program-bench.sh ALLOC NAME     one timed run; ALLOC is a library
#                                           to preload, or glibc / none
#   scripts/program-bench.sh --install NAME install NAME's program when
#                                           missing; exit 0 if it is there
#
# NAME: python3 (building and parsing 60,000 JSON records, three times),
# sqlite3 (400,000 rows, two indexes, a join, updates), sort (a 12 MB word
# list with -S 64M), gcc (-O2 on a generated 12,000-line C file), perl (a
# 300,000-key hash, regexes, sorts), ruby (the same on 150,000 keys).
#
# Output, one line: program=NAME seconds=S rss_kib=K (wall time and peak RSS,
# /usr/bin/time).  Inputs and the reference output (sha256 of stdout, from a
# run with no preload) are made once per NAME in $PROGRAM_BENCH_DIR (default
# /tmp/hakmem-program-bench); so is the proof run for a library: with
# HAKMEM_STATS=1, a `hakmem: stats:` line with slab_blocks > 0 must appear.
# Exit status 1 on any failure (a different output included), 2 on bad usage.
set -euo pipefail

die() { echo "program-bench: $*" >&2; exit 1; }
usage() { echo "usage: $0 ALLOC NAME | --install NAME" >&2; exit 2; }

package_of() {
    case "$1" in
        python3) echo python3 ;; sqlite3) echo sqlite3 ;; sort) echo coreutils ;;
        gcc) echo gcc ;; perl) echo perl ;; ruby) echo ruby ;; *) return 1 ;;
    esac
}
program_of() { case "$1" in python3) echo /usr/bin/python3 ;; *) command -v "$1" || true ;; esac; }

[[ $# -eq 2 ]] || usage
if [[ "$1" == --install ]]; then
    pkg=$(package_of "$2") || usage
    [[ -x "$(program_of "$2")" ]] && exit 0
    source "$(dirname "$0")/apt-install.sh"
    echo "program-bench: installing $pkg" >&2
    apt_install "$pkg" || true
    [[ -x "$(program_of "$2")" ]]
    exit
fi
ALLOC=$1 NAME=$2
package_of "$NAME" >/dev/null || usage
PROG=$(program_of "$NAME")
[[ -x "$PROG" ]] || die "$NAME is not installed (scripts/program-bench.sh --install $NAME)"
TIME_BIN=/usr/bin/time
[[ -x "$TIME_BIN" ]] || die "/usr/bin/time is missing (package time)"
DIR=${PROGRAM_BENCH_DIR:-/tmp/hakmem-program-bench}/$NAME
mkdir -p "$DIR"
export LC_ALL=C TZ=UTC PYTHONHASHSEED=0

# Each workload reads its input from $DIR and writes its result to stdout.
prepare() {
    case "$NAME" in
        python3) cat >"$DIR/work.py" <<'EOF'
import json
total = 0
for r in range(3):
    recs = [{"id": i, "name": "user%d" % i, "tags": ["t%d" % (i % 7), "x" * (i % 13)],
             "score": i * 0.5, "nested": {"a": [i, i + 1], "b": str(i)}} for i in range(60000)]
    text = json.dumps(recs)
    back = json.loads(text)
    total += sum(x["id"] + len(x["tags"][1]) for x in back) + len(text)
print(total)
EOF
            ;;
        sqlite3) {
            echo "PRAGMA cache_size=-65536;"
            echo "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, name TEXT, note TEXT);"
            echo "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400000)"
            echo "  INSERT INTO t SELECT i, (i * 7919) % 100003, 'name-' || (i % 5000), printf('%.*c', 20 + i % 60, 'x') FROM n;"
            echo "CREATE INDEX t_k ON t(k); CREATE INDEX t_name ON t(name, k);"
            echo "UPDATE t SET note = note || 'y' WHERE k % 3 = 0;"
            echo "SELECT count(*), sum(k), sum(length(note)) FROM t;"
            echo "SELECT a.name, count(*), max(b.k) FROM t a JOIN t b ON b.k = a.id WHERE a.id < 20000 GROUP BY a.name ORDER BY a.name LIMIT 20;"
            echo "SELECT name, group_concat(k) FROM (SELECT name, k FROM t WHERE name < 'name-101' ORDER BY k) GROUP BY name;"
        } >"$DIR/work.sql" ;;
        sort) awk 'BEGIN { srand(11); for (i = 0; i < 1400000; i++) {
                      w = ""; n = 3 + int(rand() * 8)
                      for (j = 0; j < n; j++) w = w substr("abcdefghijklmnopqrstuvwxyz", 1 + int(rand() * 26), 1)
                      print w } }' >"$DIR/words.txt" ;;
        gcc) awk 'BEGIN { for (f = 0; f < 600; f++) {
                     printf "struct s%d { int a[%d]; double d; };\n", f, 1 + f % 9
                     printf "int f%d(int x, struct s%d *p) {\n  int r = x;\n", f, f
                     printf "  for (int i = 0; i < %d; i++) {\n", 1 + f % 9
                     printf "    switch ((x + i) %% 7) {\n"
                     for (c = 0; c < 7; c++) printf "    case %d: r = r * %d + p->a[i] - %d; break;\n", c, c + 3, f
                     printf "    }\n    p->d += r * 0.5;\n  }\n  return r ^ %d;\n}\n", f
                   }
                   printf "int main(void) { int t = 0;\n"
                   for (f = 0; f < 600; f++) printf "  { struct s%d v = {{0}}; t += f%d(t, &v); }\n", f, f
                   printf "  return t & 1; }\n" }' >"$DIR/big.c" ;;
        perl) cat >"$DIR/work.pl" <<'EOF'
use strict; use warnings;
my (%h, %cnt); my $x = 42; my $n = 0;
for my $i (0 .. 299999) {
    $x = ($x * 1103515245 + 12345) % 2147483648;
    $h{sprintf("k%07d-%x", $i, $x)} = "val" . ($x % 1000) . ("z" x ($i % 13));
}
for my $k (sort keys %h) {
    if ($h{$k} =~ /^val(\d+)(z*)$/) { $cnt{length $2}++; $n += $1; }
    (my $t = $k) =~ s/(\d)(\d)/<$2$1>/g;
    $h{$k} = $t;
}
my @vals = sort values %h;
print scalar(@vals), " $n ", join(" ", map { "$_:$cnt{$_}" } sort { $a <=> $b } keys %cnt), "\n";
EOF
            ;;
        ruby) cat >"$DIR/work.rb" <<'EOF'
h = {}
x = 42
150_000.times do |i|
  x = (x * 1103515245 + 12345) % 2147483648
  h["k%07d-%x" % [i, x]] = "val#{x % 1000}" + "z" * (i % 13)
end
cnt = Hash.new(0)
n = 0
h.keys.sort.each do |k|
  if h[k] =~ /\Aval(\d+)(z*)\z/
    cnt[$2.length] += 1
    n += $1.to_i
  end
  h[k] = k.gsub(/(\d)(\d)/) { "<#{$2}#{$1}>" }
end
vals = h.values.sort
puts "#{vals.size} #{n} #{cnt.keys.sort.map { |k| "#{k}:#{cnt[k]}" }.join(' ')}"
EOF
            ;;
    esac
}

# The program on its workload, stdout to $1; the preload (if any) is the
# caller's environment.
workload() {
    case "$NAME" in
        python3) "$PROG" "$DIR/work.py" >"$1" ;;
        sqlite3) "$PROG" "$WORK/db.sqlite" <"$DIR/work.sql" >"$1" ;;
        sort) "$PROG" -S 64M -T "$WORK" "$DIR/words.txt" >"$1" ;;
        gcc) "$PROG" -O2 -w -c -o "$WORK/big.o" "$DIR/big.c" && sha256sum <"$WORK/big.o" >"$1" ;;
        perl) "$PROG" "$DIR/work.pl" >"$1" ;;
        ruby) "$PROG" "$DIR/work.rb" >"$1" ;;
    esac
}
export -f workload

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export WORK NAME PROG DIR

# Inputs and the reference output, once.
if [[ ! -s "$DIR/expected.sha256" ]]; then
    prepare
    workload "$WORK/out" || die "$NAME fails even without a preload"
    sha256sum <"$WORK/out" >"$DIR/expected.sha256"
    rm -rf "${WORK:?}"/*
fi

preload=
case "$ALLOC" in
    glibc | none | "") ;;
    *) [[ -f "$ALLOC" ]] || die "no such library: $ALLOC"; preload=$ALLOC ;;
esac

# Proof that hakmem serves the program, once per library.
if [[ "$preload" == *hakmem* ]]; then
    proof="$DIR/proof.$(sha256sum <"$preload" | cut -c1-16)"
    if [[ ! -e "$proof" ]]; then
        LD_PRELOAD=$preload HAKMEM_STATS=1 bash -c 'workload "$WORK/out"' 2>"$WORK/err" \
            || die "$NAME failed under $preload with HAKMEM_STATS=1: $(grep -v '^hakmem: stats:' "$WORK/err" | tail -c 400)"
        grep -o 'slab_blocks=[1-9][0-9]*' "$WORK/err" >/dev/null \
            || die "$NAME: no 'hakmem: stats:' line with slab_blocks > 0 under $preload"
        touch "$proof"
        rm -rf "${WORK:?}"/*
    fi
fi

LD_PRELOAD=$preload "$TIME_BIN" -f '%e %M' -o "$WORK/time" bash -c 'workload "$WORK/out"' \
    || die "$NAME failed under ${ALLOC:-no preload}"
cmp -s <(sha256sum <"$WORK/out") "$DIR/expected.sha256" \
    || die "$NAME: the output under ${ALLOC:-no preload} differs from the run without a preload"
read -r secs kib <"$WORK/time"
echo "program=$NAME seconds=$secs rss_kib=$kib"
