#!/usr/bin/env python3
"""Checks that src/ keeps its layers (docs/ARCHITECTURE.md, the picture at
the top): every `crate::` path a file uses outside its unit tests names a
module in the same layer or one below, and no two modules import each
other, directly or round a circle. Prints each offence and exits 1; prints
the layer counts and exits 0 when there is none.

    scripts/check-layers.py          (from the project root; make lint runs it)
"""
import os
import re
import sys

# Layer of each top-level module, highest first (a module may import its
# own layer and those below).
LAYERS = {
    "api": 6, "global": 6,
    "alloc": 5, "init": 5, "report": 5,
    "purge": 4,
    "thread": 3,
    "slab": 2, "large": 2, "bootstrap": 2, "foreign": 2,
    "os": 0, "size_class": 0, "sync": 0, "config": 0, "stats": 0, "diag": 0, "canary": 0, "valgrind": 0, "prof": 0,
}


def module_of(path):
    m = path[len("src/"):-len(".rs")]
    if m.endswith("/mod"):
        m = m[: -len("/mod")]
    return m.replace("/", "::")


def imports(text):
    """The crate:: paths in `text` (use lists with braces expanded)."""
    found = []
    for prefix, group in re.findall(r"crate::([a-z_:]*)\{([^}]*)\}", text):
        for item in group.split(","):
            item = item.strip().split(" ")[0]
            if item:
                found.append(prefix + item)
    found += re.findall(r"crate::([a-z_]+(?:::[a-z_]+)*)", text)
    return found


def main():
    files = [os.path.join(d, f) for d, _, fs in os.walk("src") for f in fs if f.endswith(".rs")]
    modules = {module_of(f): f for f in files if not f.endswith("lib.rs")}
    edges = {}
    for m, f in modules.items():
        text = open(f).read()
        cut = text.find("#[cfg(test)]\nmod tests")
        if cut >= 0:
            text = text[:cut]
        for path in imports(text):
            parts = path.split("::")
            for k in range(len(parts), 0, -1):
                target = "::".join(parts[:k])
                if target in modules:
                    if target != m:
                        edges.setdefault(m, set()).add(target)
                    break
    bad = []
    for m, targets in sorted(edges.items()):
        top = m.split("::")[0]
        if top not in LAYERS:
            bad.append(f"{modules[m]}: module {top} has no layer in scripts/check-layers.py")
            continue
        for t in sorted(targets):
            if LAYERS.get(t.split("::")[0], 0) > LAYERS[top]:
                bad.append(f"{modules[m]}: imports {t}, a layer above it")
    # Circles: strongly connected components with more than one module.
    index, low, stack, on, count = {}, {}, [], set(), [0]

    def visit(v):
        index[v] = low[v] = count[0]
        count[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                bad.append("import circle: " + " -> ".join(sorted(comp)))

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            visit(v)
    for line in bad:
        print("check-layers: " + line)
    if bad:
        return 1
    n = sum(len(t) for t in edges.values())
    print(f"check-layers: {len(modules)} modules, {n} imports, none upwards, no circle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
