#!/usr/bin/env python3
"""Module cycles inside each crate of the workspace: exits 1 and prints each cycle with its edges if any.

A module depends on another when its code (comments and its `#[cfg(test)] mod tests` left out) names a path
`crate::a::b` or `super::…` that resolves to another module's file. A parent and its own descendants are one
unit (a child using its parent's items is how Rust modules are written), so only cycles between modules that
are not nested in each other count: `decoder.rs` ↔ `host/decoder.rs` is one, `decoder.rs` ↔ `decoder/kv_cache.rs`
is not. Written by hand: cargo-modules needs a nightly rustc; this reads files as text in well under a second.

Usage: scripts/module-cycles.py [CRATE_DIR ...]   (default: crates/* and xtask)
"""
import os
import re
import sys


def modules(crate):
    """Module path (tuple) → file, for every .rs file under crate/src."""
    src = os.path.join(crate, "src")
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if f.endswith(".rs"):
                path = os.path.join(root, f)
                parts = os.path.relpath(path, src)[:-3].split(os.sep)
                if parts[-1] in ("mod", "lib", "main"):
                    parts = parts[:-1]
                out[tuple(parts)] = path
    return out


def code(path):
    text = open(path, encoding="utf-8").read()
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests\s*\{", text)[0]
    return "\n".join(l for l in text.split("\n") if not l.strip().startswith("//"))


def nested(a, b):
    return a[: len(b)] == b or b[: len(a)] == a


def graph(crate):
    mods = modules(crate)
    edges = {m: set() for m in mods}

    def resolve(parts, m):
        for i in range(len(parts), 0, -1):
            if parts[:i] in mods and parts[:i] != m:
                return parts[:i]
        return None

    for m, path in mods.items():
        text = code(path)
        for p in re.findall(r"crate::((?:\w+::)*\w+)", text):
            target = resolve(tuple(p.split("::")), m)
            if target and not nested(m, target):
                edges[m].add(target)
        for p in re.findall(r"super::((?:\w+::)*\w+)", text):
            target = resolve(m[:-1] + tuple(p.split("::")), m)
            if target and not nested(m, target):
                edges[m].add(target)
    return edges


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]

    def visit(n):
        index[n] = low[n] = counter[0]
        counter[0] += 1
        stack.append(n)
        on.add(n)
        for w in edges[n]:
            if w not in index:
                visit(w)
                low[n] = min(low[n], low[w])
            elif w in on:
                low[n] = min(low[n], index[w])
        if low[n] == index[n]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == n:
                    break
            if len(comp) > 1:
                found.append(comp)

    sys.setrecursionlimit(10000)
    for n in edges:
        if n not in index:
            visit(n)
    return found


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    crates = sys.argv[1:] or sorted(
        [os.path.join(root, "crates", c) for c in os.listdir(os.path.join(root, "crates"))]
        + [os.path.join(root, "xtask")]
    )
    name = lambda m: "::".join(m) or "crate"
    bad = 0
    for crate in crates:
        if not os.path.isdir(os.path.join(crate, "src")):
            continue
        edges = graph(crate)
        for comp in cycles(edges):
            bad += 1
            members = set(comp)
            print(f"{os.path.relpath(crate, root)}: module cycle {' ↔ '.join(name(m) for m in sorted(comp))}")
            for m in sorted(comp):
                for w in sorted(edges[m] & members):
                    print(f"    {name(m)} → {name(w)}")
    if bad:
        sys.exit(1)
    print(f"no module cycles in {len(crates)} crates")


if __name__ == "__main__":
    main()
