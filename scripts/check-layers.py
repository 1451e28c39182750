#!/usr/bin/env python3
"""Fails when two top-level modules of src/ import each other, directly or in a cycle.

A module's imports are every `crate::<module>` path in its files (`use` lines and
inline paths alike, test code included). The layers this keeps are drawn in
docs/design.md ("Layers"); `python3 scripts/check-layers.py -v` prints the graph.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")


def graph():
    edges = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(folder, name), ROOT)
            top = rel.split(os.sep)[0].removesuffix(".rs")
            if top in ("lib", "main"):
                continue
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                text = f.read()
            # Comments (doc links included) are not imports.
            code = "\n".join(line.split("//", 1)[0] for line in text.splitlines())
            targets = edges.setdefault(top, set())
            targets.update(t for t in PATH.findall(code) if t != top)
    return edges


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main():
    edges = graph()
    if "-v" in sys.argv:
        for module in sorted(edges):
            print(f"{module} -> {', '.join(sorted(edges[module])) or '(nothing)'}")
    bad = cycles(edges)
    for component in bad:
        members = set(component)
        links = [f"{a} -> {b}" for a in component for b in sorted(edges.get(a, ())) if b in members]
        print(f"import cycle between top-level modules {', '.join(component)}: {'; '.join(links)}")
    if bad:
        sys.exit(1)
    print(f"layers: {len(edges)} top-level modules, no import cycle")


if __name__ == "__main__":
    main()
