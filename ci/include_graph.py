#!/usr/bin/env python3
"""The include graph of src/ and include/pyruvate/ must have no circle.

A node is a file name without its suffix: src/X.c and include/pyruvate/X.h
are both X. "X includes pyruvate/Y.h" is an edge X -> Y. Lists every
elementary cycle and exits 1 if there is one; otherwise prints the files
from the top (module, server) down to the utilities that include nothing.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r'^\s*#\s*include\s+"pyruvate/([A-Za-z0-9_]+)\.h"', re.M)


def read_graph():
    graph = {}
    files = sorted(ROOT.glob("src/*.c")) + sorted(ROOT.glob("include/pyruvate/*.h"))
    for path in files:
        node = path.stem
        edges = graph.setdefault(node, set())
        for target in INCLUDE.findall(path.read_text(encoding="utf-8")):
            if target != node:
                edges.add(target)
                graph.setdefault(target, set())
    return graph


def cycles(graph):
    """Elementary cycles, each listed once, starting at its smallest node
    (a depth-first search from every node over the nodes above it)."""
    found = []
    nodes = sorted(graph)
    for start in nodes:
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        on_path = {start}
        while stack:
            node, targets = stack[-1]
            for target in targets:
                if target == start:
                    found.append(path + [start])
                elif target > start and target not in on_path:
                    stack.append((target, iter(sorted(graph[target]))))
                    path.append(target)
                    on_path.add(target)
                    break
            else:
                stack.pop()
                on_path.discard(path.pop())
    return found


def layers(graph):
    """The nodes from the top down: each stands above everything it includes."""
    depth = {}

    def height(node):
        if node not in depth:
            depth[node] = 1 + max((height(t) for t in graph[node]), default=-1)
        return depth[node]

    for node in graph:
        height(node)
    return sorted(graph, key=lambda n: (-depth[n], n)), depth


def main():
    graph = read_graph()
    found = cycles(graph)
    if found:
        for cycle in found:
            print("include cycle: " + " -> ".join(cycle))
        print(f"include graph: {len(found)} cycle(s)", file=sys.stderr)
        return 1
    if "-v" in sys.argv[1:]:
        order, depth = layers(graph)
        for node in order:
            print(f"{depth[node]:2} {node}: {' '.join(sorted(graph[node]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
