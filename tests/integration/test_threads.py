"""Worker threads: bounded thread count, thread-local state persists, and
a worker that computes does not keep the others from starting requests
for long."""
import json
import os
import select
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import support

WORKERS = 3


def _thread_info(conn):
    response = conn.request("GET", "/thread-info")
    assert response.status == 200, response
    info = json.loads(response.body)
    return info["ident"], info["count"]


def _one_shot(srv):
    with srv.connect() as conn:
        return _thread_info(conn)


def test_thread_ids_bounded_and_thread_locals_persist(start_server):
    srv = start_server(workers=WORKERS)
    results = []  # (ident, count) in the order the client observed them

    # Phase 1: sequential requests, each on a new connection.
    sequential = defaultdict(list)
    for _ in range(100):
        ident, count = _one_shot(srv)
        sequential[ident].append(count)
        results.append((ident, count))
    for ident, counts in sequential.items():
        assert counts == sorted(counts) and len(set(counts)) == len(counts), (
            "thread-local counter not strictly increasing for thread %s: %r" % (ident, counts))

    # Phase 2: concurrent requests on fresh connections.
    with ThreadPoolExecutor(max_workers=8) as pool:
        results.extend(pool.map(lambda _: _one_shot(srv), range(100)))

    per_thread = defaultdict(list)
    for ident, count in results:
        per_thread[ident].append(count)
    assert 1 <= len(per_thread) <= WORKERS, "more threads than workers: %r" % sorted(per_thread)
    # Each thread's counter went 1, 2, ..., k: one increment per request it
    # served, and the values survived between requests.
    for ident, counts in per_thread.items():
        assert sorted(counts) == list(range(1, len(counts) + 1)), (ident, sorted(counts))
    assert sum(len(c) for c in per_thread.values()) == 200


def test_thread_locals_with_keepalive_connections(start_server):
    srv = start_server(workers=WORKERS, keepalive=True)
    per_thread = defaultdict(list)
    connections = [srv.connect() for _ in range(4)]
    try:
        for index in range(60):  # round-robin over 4 open connections
            ident, count = _thread_info(connections[index % len(connections)])
            per_thread[ident].append(count)
    finally:
        for conn in connections:
            conn.close()
    assert 1 <= len(per_thread) <= WORKERS
    for ident, counts in per_thread.items():
        assert counts == list(range(1, len(counts) + 1)), (ident, counts)


def test_single_worker_uses_one_thread(start_server):
    srv = start_server(workers=1)
    results = [_one_shot(srv) for _ in range(20)]
    assert len({ident for ident, _ in results}) == 1
    assert [count for _, count in results] == list(range(1, 21))


def test_workers_run_requests_concurrently(start_server):
    # /barrier?n=3 only passes if 3 requests are inside the app at the same
    # time, i.e. on 3 distinct worker threads.
    srv = start_server(workers=WORKERS)

    def barrier_request(_):
        with srv.connect(timeout=10) as conn:
            response = conn.request("GET", "/barrier?n=%d" % WORKERS)
            assert response.status == 200, response
            return json.loads(response.body)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        infos = list(pool.map(barrier_request, range(WORKERS)))
    assert [info["barrier"] for info in infos] == ["passed"] * WORKERS
    assert len({info["ident"] for info in infos}) == WORKERS


def _wait_for_file(path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "the app never reached " + path
        time.sleep(0.005)


def _answered_within(conn, seconds):
    """Whether the first bytes of a response are there within `seconds`."""
    return bool(select.select([conn.sock], [], [], seconds)[0])


def test_a_request_starts_beside_one_that_computes_for_long(start_server, tmp_path):
    # A worker computing in the application (GIL held) keeps the other from
    # starting a request only for a moment (CPython's switch interval), not
    # until it is done: here it computes until the fast request is answered.
    srv = start_server(workers=2)
    gate = str(tmp_path / "long")
    with srv.connect(timeout=30) as busy, srv.connect(timeout=30) as fast:
        busy.send(support.build_request("GET", "/compute?gate=" + gate))
        _wait_for_file(gate + ".entered")
        response = fast.request("GET", "/thread-info")
        assert response.status == 200, response
        open(gate, "w").close()
        assert busy.read_response().status == 200


def test_a_pipeline_of_computing_requests_does_not_hold_up_another_client(start_server,
                                                                           tmp_path):
    # Outside attack (room): one client pipelining CPU-bound requests kept
    # every other request waiting until its pipeline was done, as each of
    # its requests was a new, short one. Each pipelined request computes
    # until the test opens its gate, once the next one may start.
    srv = start_server(workers=2)
    gates = [str(tmp_path / ("g%d" % i)) for i in range(40)]
    pipeline = b"".join(support.build_request("GET", "/compute?gate=" + g) for g in gates)
    with srv.connect(timeout=30) as busy, srv.connect(timeout=30) as fast:
        busy.send(pipeline)
        _wait_for_file(gates[0] + ".entered")
        fast.send(support.build_request("GET", "/thread-info"))
        for number, gate in enumerate(gates):
            _wait_for_file(gate + ".entered")
            if _answered_within(fast, 0.05):
                break
            open(gate, "w").close()
        assert number < len(gates) - 1, "answered only after the whole pipeline"
        assert fast.read_response().status == 200
        for gate in gates:
            open(gate, "w").close()
        for _ in gates:
            assert busy.read_response().status == 200
