#!/usr/bin/env python3
"""Turn scripts/bench.sh's raw runs into medians and tables.

Reads runs.csv (benchmark,allocator,threads,run,metric,value), writes
results.csv (benchmark,allocator,threads,metric,value: the median over runs)
and results.md (markdown tables with the machine they ran on), and prints the
same tables on stdout.  Ratios are allocator / first allocator (hakmem).
Standard library only.
"""
import argparse
import csv
import datetime
import os
import platform
import statistics
import sys

# Metrics in the order the tables show them, with their heading.
THROUGHPUT = ("ops_per_sec",)
MEMORY = ("rss_kib", "overhead_kib", "after_free_rss_kib", "after_wait_growth_kib",
          "growth_kib", "final_rss_kib", "after_delay_rss_kib", "rss_after_load_kib", "rss_idle_kib", "peak_rss_kib")
TIME = ("seconds",)
HEADINGS = {
    "ops_per_sec": "Throughput, operations per second (higher is better)",
    "memory": "Memory, KiB (lower is better)",
    "seconds": "Time, seconds (lower is better)",
}
METRIC_NOTES = {
    "rss_kib": "peak RSS (VmHWM); for memory_16x1M and memory_100Kx200 with all blocks live",
    "overhead_kib": "RSS with all blocks live - RSS before - bytes asked for",
    "after_free_rss_kib": "RSS after freeing everything (memory_*: and allocating a little)",
    "after_wait_growth_kib": "RSS after allocating a little for a second or two, minus RSS at start",
    "growth_kib": "quiet_*: RSS after the quiet period (sleep: no allocator call; "
                  "active: malloc(64)/free pairs only), minus RSS at start",
    "final_rss_kib": "RSS at the end of the thread churn",
    "after_delay_rss_kib": "churn_2k_4k: RSS 300 ms after the end (past the purge delay)",
    "rss_after_load_kib": "redis-server's RSS after the redis-benchmark load",
    "rss_idle_kib": "redis-server's RSS 3 s after FLUSHALL, with no requests",
    "seconds": "time of the run (lower is better)",
    "peak_rss_kib": "peak RSS of the whole run (/usr/bin/time %M)",
}


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count() or 0,
        "kernel": platform.release(),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }


def fmt(metric, v):
    if v is None:
        return "-"
    if metric == "ops_per_sec":
        return f"{v / 1e6:.2f}M"
    if metric == "seconds":
        return f"{v:.2f}"
    return f"{v:,.0f}"


def ratio(v, base):
    if v is None or base is None or base == 0:
        return ""
    return f"{v / base:.2f}x"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--allocators", required=True, help="space-separated, base first")
    ap.add_argument("--runs", default="?")
    ap.add_argument("--quick", default="0")
    ap.add_argument("--skipped", default="", help="space-separated allocators not run")
    ap.add_argument("--versions", default="", help="'alloc version;alloc version;...'")
    args = ap.parse_args()
    allocs = args.allocators.split()

    # Gather values per (benchmark, threads, metric) row, keeping first-seen order.
    rows = {}
    with open(args.raw, newline="") as f:
        for r in csv.DictReader(f):
            key = (r["benchmark"], r["threads"], r["metric"])
            rows.setdefault(key, {}).setdefault(r["allocator"], []).append(float(r["value"]))
    if not rows:
        sys.exit("summarize: no finished runs in " + args.raw)

    medians = {k: {a: statistics.median(vs) for a, vs in per.items()} for k, per in rows.items()}

    with open(os.path.join(args.out, "results.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["benchmark", "allocator", "threads", "metric", "value"])
        for (bench, threads, metric), per in medians.items():
            for a in allocs:
                if a in per:
                    v = per[a]
                    w.writerow([bench, a, threads, metric,
                                f"{v:.1f}" if metric == "ops_per_sec" else f"{v:g}"])

    base = allocs[0]
    # Two sections: throughput, then memory (one row per benchmark and metric).
    sections = [
        ("ops_per_sec", [k for k in medians if k[2] in THROUGHPUT], False),
        ("memory", sorted((k for k in medians if k[2] in MEMORY),
                          key=lambda k: (MEMORY.index(k[2]), list(medians).index(k))), True),
        ("seconds", [k for k in medians if k[2] in TIME], True),
    ]
    m = machine()
    versions = [v.strip() for v in args.versions.split(";") if v.strip()]
    runs_note = f"median of {args.runs} runs" + (" (BENCH_QUICK=1: short runs)" if args.quick == "1" else "")

    md = ["## Benchmark results", "",
          f"Machine: {m['cpu']}, {m['nproc']} CPUs, Linux {m['kernel']}; {m['date']}.  ",
          f"Each value is the {runs_note}; `(0.80x)` is the allocator's value / {base}'s.  ",
          "Versions: " + ", ".join(versions) + "." if versions else ""]
    if args.skipped.split():
        md[-1] += "  "
        md.append(f"Not measured (not installed): {', '.join(args.skipped.split())}.")
    md.append("")
    text = [f"Machine: {m['cpu']}, {m['nproc']} CPUs, Linux {m['kernel']}, {m['date']}",
            f"Values: {runs_note}; (x) = allocator / {base}", ""]

    for name, keys, with_metric in sections:
        if not keys:
            continue
        head = ["benchmark", "threads"] + (["metric"] if with_metric else []) + allocs
        table = []
        for key in keys:
            bench, threads, metric = key
            per = medians[key]
            b = per.get(base)
            cells = [bench, threads] + ([metric] if with_metric else [])
            for a in allocs:
                v = per.get(a)
                r = ratio(v, b) if a != base else ""
                cells.append(fmt(metric, v) + (f" ({r})" if r else ""))
            table.append(cells)

        md += [f"### {HEADINGS[name]}", ""]
        md.append("| " + " | ".join(head) + " |")
        md.append("|" + "|".join("---" if i < len(head) - len(allocs) else "---:"
                                 for i in range(len(head))) + "|")
        md += ["| " + " | ".join(c) + " |" for c in table]
        md.append("")
        if with_metric:
            used = [mt for mt in MEMORY if any(k[2] == mt for k in keys)]
            md += [f"- `{mt}`: {METRIC_NOTES[mt]}" for mt in used] + [""]

        widths = [max(len(str(r[i])) for r in [head] + table) for i in range(len(head))]
        left = len(head) - len(allocs)
        text.append(HEADINGS[name])
        for r in [head] + table:
            text.append("  ".join(str(c).ljust(widths[i]) if i < left else str(c).rjust(widths[i])
                                  for i, c in enumerate(r)))
        text.append("")

    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(md).rstrip() + "\n\n![benchmark chart](chart.svg)\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
