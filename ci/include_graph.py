#!/usr/bin/env python3
"""The include graph of src/ and include/pyruvate/: no circle, no edge up.

A node is a file name without its suffix: src/X.c and include/pyruvate/X.h
are both X. "X includes pyruvate/Y.h" is an edge X -> Y.

1. No circle: every elementary cycle is listed.
2. No upward edge: ORDER ranks every file from the top down, and a file
   includes only files of its own rank or below. The stages stand in the
   order a request passes them, so a stage may call into a later one but a
   later stage never includes an earlier stage's header to call back into
   it: it gets a narrow handoff that stands below both (struct conn_return
   in conn.h, the pool's and the park set's callbacks) instead.
3. Every file has a rank: a new file is placed in ORDER (and in the layout
   section of CONTRIBUTING.md) when it is added.

Exits 1 on any finding; with -v prints the files by rank with their edges.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# From the top down; the files of one tuple share a rank.
ORDER = (
    # The top: the module assembles the options and the server, the server
    # starts every stage and thread and stops them.
    ("module",),
    ("server",),
    ("options", "signals"),
    # pyruvate.stats()'s dict, made from the metrics the server visits.
    ("stats",),
    # The stages, in the order a request passes them: the acceptor reads it
    # (with conn.c and request.c, below), a worker takes it from the pool,
    # wsgi.c calls the app with its environ and start_response, send.c puts
    # the result on the wire. input/filewrapper are wsgi's Python objects.
    ("acceptor",),
    ("worker",),
    ("wsgi",),
    ("environ", "start_response"),
    ("input", "filewrapper"),
    ("send",),
    # The side poll threads a stage hands connections to: the acceptor's
    # idle keep-alive set and send.c's park set. They give connections back
    # through their callbacks, never by name. The handoff set is what workers
    # and the acceptor share between a response and the next request.
    # pollset is the poll array and thread skeleton they (and the acceptor)
    # share.
    ("idle", "park", "handoff"),
    ("pollset",),
    # What the stages share: the serve() call's and the worker's state, and
    # the Python-free response framing that worker_state.h embeds.
    ("server_state", "worker_state"),
    ("response",),
    ("environ_cache",),
    ("proxy",),
    # The handoffs between the stages, which know neither side: the pool's
    # queue (void items, callbacks), the connection itself (with
    # struct conn_return, how a later stage gives it back), its request.
    ("pool",),
    # Whether a pool thread may start a request while another computes in
    # one: the threads' CPU clocks, which the pool and the workers read.
    ("room",),
    ("conn",),
    ("request",),
    ("listen",),
    # The counters every stage adds to, and their Prometheus text.
    ("metrics",),
    ("http_status",),
    # Utilities, used by every rank above.
    ("log",),
    ("syntax",),
    ("buf",),
    ("wakeup", "fdlimit", "systemd", "registry"),
    ("common", "state"),
)
RANK = {node: rank for rank, group in enumerate(ORDER) for node in group}

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


def unranked(graph):
    """Files that ORDER does not place."""
    return sorted(node for node in graph if node not in RANK)


def upward_edges(graph):
    """Edges from a file to one ranked above it: (from, to) pairs."""
    return sorted(
        (node, target)
        for node, targets in graph.items()
        for target in targets
        if node in RANK and target in RANK and RANK[target] < RANK[node]
    )


def main():
    graph = read_graph()
    problems = 0
    for cycle in cycles(graph):
        print("include cycle: " + " -> ".join(cycle))
        problems += 1
    for node in unranked(graph):
        print(f"include order: {node} has no rank; place it in ORDER in ci/include_graph.py")
        problems += 1
    for node, target in upward_edges(graph):
        print(
            f"include order: {node} includes {target}.h, which stands above it "
            f"(rank {RANK[node]} -> {RANK[target]}); give {target} a handoff below both"
        )
        problems += 1
    if problems:
        print(f"include graph: {problems} problem(s)", file=sys.stderr)
        return 1
    if "-v" in sys.argv[1:]:
        for node in sorted(graph, key=lambda n: (RANK[n], n)):
            print(f"{RANK[node]:2} {node}: {' '.join(sorted(graph[node]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
