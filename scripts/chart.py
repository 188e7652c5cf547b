#!/usr/bin/env python3
"""Draw bench-results/results.csv as an SVG bar chart (standard library only).

    python3 scripts/chart.py results.csv chart.svg [--allocators "hakmem glibc ..."]

Two panels of horizontal bars, one group per benchmark and one bar per
allocator, each normalized to the first allocator (hakmem = 1.0):
throughput (ops/sec, longer is better) and memory (KiB, shorter is better).
Each bar is labelled with its ratio; each group with the base's absolute
value.  Bars past the axis end are cut and marked with their real ratio.
"""
import argparse
import csv
import sys
from xml.sax.saxutils import escape

COLORS = {
    "hakmem": "#1f5fbf",
    "glibc": "#8c8c8c",
    "mimalloc": "#2ca02c",
    "jemalloc": "#ff7f0e",
    "tcmalloc": "#9467bd",
}
EXTRA_COLORS = ["#d62728", "#17becf", "#bcbd22", "#e377c2"]

WIDTH = 1100
LABEL_W = 300          # group labels on the left
PLOT_X = LABEL_W + 10  # where bars start (ratio 0)
PLOT_W = 650           # pixels for the axis range
BAR_H = 10
BAR_GAP = 2
GROUP_GAP = 16
AXIS_CAP = 3.0         # longest axis; longer bars are cut and marked

MEMORY_ROWS = [  # (benchmark prefix, metric, label suffix)
    ("memory_", "rss_kib", "peak RSS"),
    ("memory_", "after_free_rss_kib", "RSS after free"),
    ("memory_", "final_rss_kib", "RSS at the end"),
    ("memory_bigblocks", "seconds", "time"),
    ("prodcons_", "rss_kib", "peak RSS"),
    ("quiet_", "growth_kib", "RSS left after quiet"),
    ("churn_", "final_rss_kib", "RSS at the end"),
    ("churn_", "seconds", "time"),
    ("redis_", "rss_idle_kib", "idle RSS"),
    ("larson_", "peak_rss_kib", "peak RSS"),
    ("random_mixed_16_1024", "peak_rss_kib", "peak RSS"),
    ("prog_", "seconds", "time"),
    ("prog_", "rss_kib", "peak RSS"),
]


def human(metric, v):
    if metric == "ops_per_sec":
        return f"{v / 1e6:.1f}M ops/s"
    if metric == "seconds":
        return f"{v:.2f} s"
    if v >= 10240:
        return f"{v / 1024:.1f} MiB"
    return f"{v:.0f} KiB"


def load(path):
    data, order = {}, []
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        need = {"benchmark", "allocator", "threads", "metric", "value"}
        if not need <= set(r.fieldnames or []):
            sys.exit(f"chart: {path} lacks columns {sorted(need)}")
        for row in r:
            key = (row["benchmark"], row["threads"], row["metric"])
            if key not in data:
                order.append(key)
                data[key] = {}
            data[key][row["allocator"]] = float(row["value"])
    return data, order


def groups_for(data, order, base):
    """(title, [ (label, sublabel, {alloc: ratio}) ]) for each panel."""
    thr = []
    for key in order:
        bench, threads, metric = key
        if metric != "ops_per_sec" or base not in data[key] or data[key][base] <= 0:
            continue
        b = data[key][base]
        thr.append((f"{bench}  t={threads}", f"{base}: {human(metric, b)}",
                    {a: v / b for a, v in data[key].items()}))
    mem = []
    for prefix, metric, what in MEMORY_ROWS:
        for key in order:
            bench, threads, m = key
            if m != metric or not bench.startswith(prefix) or base not in data[key]:
                continue
            b = data[key][base]
            if b <= 0:
                continue
            label = f"{bench}  t={threads}  {what}" if not bench.startswith("memory_") else f"{bench}  {what}"
            mem.append((label, f"{base}: {human(metric, b)}", {a: v / b for a, v in data[key].items()}))
    return [
        (f"Throughput relative to {base} (longer bar = faster)", thr),
        (f"Memory relative to {base} (shorter bar = less memory)", mem),
    ]


def axis_max(groups):
    top = max((r for _, _, rs in groups for r in rs.values()), default=1.0)
    top = min(max(top, 1.0) * 1.05, AXIS_CAP)
    return max(1.5, -(-top * 2 // 1) / 2)  # round up to a multiple of 0.5


def render(panels, allocs):
    colors = {a: COLORS.get(a, EXTRA_COLORS[i % len(EXTRA_COLORS)]) for i, a in enumerate(allocs)}
    out = []
    y = 20

    def text(x, yy, s, size=12, anchor="start", weight="normal", fill="#222"):
        out.append(f'<text x="{x:.1f}" y="{yy:.1f}" font-size="{size}" text-anchor="{anchor}" '
                   f'font-weight="{weight}" fill="{fill}">{escape(s)}</text>')

    text(WIDTH / 2, y + 6, "hakmem benchmark comparison (medians; each allocator / "
         f"{allocs[0]})", 18, "middle", "bold")
    y += 30
    # Legend: one swatch per allocator, centred.
    item_w = 120
    lx = WIDTH / 2 - item_w * len(allocs) / 2
    for i, a in enumerate(allocs):
        x = lx + i * item_w
        out.append(f'<rect x="{x:.1f}" y="{y - 10}" width="14" height="14" fill="{colors[a]}"/>')
        text(x + 20, y + 2, a, 13)
    y += 24

    for title, groups in panels:
        if not groups:
            continue
        amax = axis_max(groups)
        scale = PLOT_W / amax
        y += 14
        text(20, y, title, 15, weight="bold")
        y += 12
        top = y
        group_h = len(allocs) * (BAR_H + BAR_GAP) - BAR_GAP
        height = len(groups) * (group_h + GROUP_GAP)
        # Stripes first, then the grid, then bars and labels on top of both.
        for i in range(0, len(groups), 2):  # zebra stripes: a group reads across
            sy = top + i * (group_h + GROUP_GAP)
            out.append(f'<rect x="10" y="{sy:.1f}" width="{WIDTH - 20}" '
                       f'height="{group_h + GROUP_GAP}" fill="#f6f8fb"/>')
        # Grid every 0.5, labelled at the bottom; the 1.0 line stands out.
        for t in [i * 0.5 for i in range(int(amax / 0.5) + 1)]:
            x = PLOT_X + t * scale
            style = ('stroke="#c0392b" stroke-width="1.5" stroke-dasharray="5,3"' if t == 1.0
                     else 'stroke="#e3e3e3" stroke-width="1"')
            out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + height}" {style}/>')
            text(x, top + height + 14, f"{t:.1f}x", 11, "middle", fill="#555")
        out.append(f'<line x1="{PLOT_X}" y1="{top}" x2="{PLOT_X}" y2="{top + height}" '
                   'stroke="#333" stroke-width="1"/>')
        gy = top + GROUP_GAP / 2
        for label, sub, ratios in groups:
            text(LABEL_W, gy + group_h / 2 - 2, label, 12, "end", "bold")
            text(LABEL_W, gy + group_h / 2 + 12, sub, 10, "end", fill="#666")
            for k, a in enumerate(allocs):
                by = gy + k * (BAR_H + BAR_GAP)
                if a not in ratios:
                    text(PLOT_X + 4, by + BAR_H - 1, f"{a}: no data", 9, fill="#999")
                    continue
                r = ratios[a]
                w = min(r, amax) * scale
                out.append(f'<rect x="{PLOT_X}" y="{by:.1f}" width="{max(w, 1):.1f}" '
                           f'height="{BAR_H}" fill="{colors[a]}"><title>{escape(a)}: {r:.2f}x'
                           '</title></rect>')
                mark = f"{r:.2f}x" + (" \u25b6" if r > amax else "")
                # A white halo keeps the label legible where it crosses a grid line.
                out.append(f'<text x="{PLOT_X + w + 4:.1f}" y="{by + BAR_H - 1:.1f}" font-size="9" '
                           f'fill="#333" stroke="white" stroke-width="3" paint-order="stroke">'
                           f'{escape(mark)}</text>')
            gy += group_h + GROUP_GAP
        y = top + height + 30

    height = y + 10
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
            f'viewBox="0 0 {WIDTH} {height:.0f}" font-family="DejaVu Sans, Arial, sans-serif">'
            f'<rect width="100%" height="100%" fill="white"/>')
    return head + "\n" + "\n".join(out) + "\n</svg>\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("csv")
    ap.add_argument("svg")
    ap.add_argument("--allocators", help="space-separated, base first (default: as in the CSV)")
    args = ap.parse_args()
    data, order = load(args.csv)
    if args.allocators:
        allocs = args.allocators.split()
    else:
        allocs = []
        for key in order:
            allocs += [a for a in data[key] if a not in allocs]
    if not allocs:
        sys.exit("chart: no data")
    panels = groups_for(data, order, allocs[0])
    if not any(g for _, g in panels):
        sys.exit(f"chart: no rows with a value for {allocs[0]}")
    with open(args.svg, "w") as f:
        f.write(render(panels, allocs))


if __name__ == "__main__":
    main()
