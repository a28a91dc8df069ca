"""The metrics endpoint (metrics_path, Prometheus text format) and
pyruvate.stats(): what the server counts, checked against known sequences
of requests over real sockets."""
import json
import math
import threading
import time

import pytest

from support import build_request, json_of, run_python

prometheus_parser = pytest.importorskip("prometheus_client.parser")

METRICS = {"metrics_path": "/metrics"}
SCRAPE = build_request("GET", "/metrics")


def parse(text):
    """{(sample name, ((label, value), ...)): value} and {family: type}."""
    samples, types = {}, {}
    for family in prometheus_parser.text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, types


def scrape(conn):
    """One scrape on conn: (samples, types, raw response bytes)."""
    conn.send(SCRAPE)
    response = conn.read_response()
    assert response.status == 200, response
    assert response.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    assert response.header("Cache-Control") == "no-store"
    samples, types = parse(response.body.decode("utf-8"))
    return samples, types, response.raw


def value(samples, name, **labels):
    return samples[("pyruvate_" + name, tuple(sorted(labels.items())))]


def scrape_when_idle(server, conn, expected_requests):
    """Scrapes until every request the client saw answered is counted as
    finished: a worker counts a response just after its last byte went
    out, so a fast client may scrape a moment before that. Returns
    (samples, types, scrapes made)."""
    deadline = time.monotonic() + 20
    made = []
    while True:
        samples, types, raw = scrape(conn)
        made.append(raw)
        counted = value(samples, "request_duration_seconds_count")
        if (counted >= expected_requests and value(samples, "requests_in_flight") == 0) \
                or time.monotonic() > deadline:
            return samples, types, made
        time.sleep(0.02)


def test_metrics_parse_as_prometheus_text(start_server):
    server = start_server(options=METRICS)
    with server.connect() as conn:
        assert conn.request("GET", "/hello").status == 200
        samples, types, _ = scrape_when_idle(server, conn, 1)
    assert types == {
        "pyruvate_requests": "counter",
        "pyruvate_server_responses": "counter",
        "pyruvate_endpoint_requests": "counter",
        "pyruvate_received_bytes": "counter",
        "pyruvate_sent_bytes": "counter",
        "pyruvate_requests_in_flight": "gauge",
        "pyruvate_queue_depth": "gauge",
        "pyruvate_busy_workers": "gauge",
        "pyruvate_idle_workers": "gauge",
        "pyruvate_open_connections": "gauge",
        "pyruvate_idle_connections": "gauge",
        "pyruvate_draining": "gauge",
        "pyruvate_queue_wait_seconds": "histogram",
        "pyruvate_request_duration_seconds": "histogram",
    }
    assert value(samples, "requests_total", **{"class": "2xx"}) == 1
    assert value(samples, "open_connections") >= 1
    assert value(samples, "draining") == 0


def test_counts_requests_by_status_class(start_server):
    server = start_server(options=dict(METRICS, max_request_body_size=100,
                                       max_number_headers=4))
    statuses = [200, 200, 201, 302, 404, 404, 503, 500]
    with server.connect() as conn:
        for status in statuses:
            assert conn.request("GET", "/status?code=%d" % status).status == status
    # The acceptor's own answers: a body too large, too many header fields.
    with server.connect() as conn:
        assert conn.request("POST", "/hello", body=b"x" * 101).status == 413
    with server.connect() as conn:
        headers = [("X-Field-%d" % i, "v") for i in range(6)]
        assert conn.request("GET", "/hello", headers=headers).status == 431
    with server.connect() as conn:
        samples, _, scrapes = scrape_when_idle(server, conn, len(statuses))
    classes = {c: value(samples, "requests_total", **{"class": c})
               for c in ("1xx", "2xx", "3xx", "4xx", "5xx")}
    assert classes == {"1xx": 0, "2xx": 3, "3xx": 1, "4xx": 2 + 2, "5xx": 2}
    assert value(samples, "server_responses_total", code="413") == 1
    assert value(samples, "server_responses_total", code="431") == 1
    assert value(samples, "server_responses_total", code="503") == 0  # the app's 503
    # Scrapes are counted apart, after their answer went out.
    assert value(samples, "endpoint_requests_total", endpoint="metrics") == len(scrapes) - 1
    assert value(samples, "endpoint_requests_total", endpoint="health") == 0


def test_counts_bytes_in_and_out(start_server):
    server = start_server(options=METRICS)
    sent = received = 0
    with server.connect() as conn:
        for request in (build_request("GET", "/hello"),
                        build_request("POST", "/status?code=204", body=b"y" * 5000),
                        build_request("GET", "/hello", headers=[("Connection", "close")])):
            conn.send(request)
            sent += len(request)
            received += len(conn.read_response().raw)
    with server.connect() as conn:
        samples, _, scrapes = scrape_when_idle(server, conn, 3)
    # Each scrape's request is counted before its answer, its answer after.
    assert value(samples, "received_bytes_total") == sent + len(SCRAPE) * len(scrapes)
    assert value(samples, "sent_bytes_total") == received + sum(len(r) for r in scrapes[:-1])


def histogram(samples, name):
    buckets = sorted(((float(dict(labels)["le"]), count)
                      for (sample, labels), count in samples.items()
                      if sample == "pyruvate_%s_bucket" % name))
    return buckets, value(samples, name + "_sum"), value(samples, name + "_count")


def test_histograms_count_every_request_and_are_cumulative(start_server):
    server = start_server(options=METRICS)
    with server.connect(timeout=30) as conn:
        for _ in range(5):
            assert conn.request("GET", "/hello").status == 200
        # 300 ms in the app: never in a bucket below 0.3 s, however loaded
        # the machine is.
        assert conn.request("GET", "/slow?ms=300").status == 200
        samples, _, _ = scrape_when_idle(server, conn, 6)
    for name in ("queue_wait_seconds", "request_duration_seconds"):
        buckets, total, count = histogram(samples, name)
        assert count == 6, name
        assert [le for le, _ in buckets][-1] == math.inf
        assert buckets[-1][1] == count
        counts = [n for _, n in buckets]
        assert counts == sorted(counts), (name, buckets)
        assert total >= 0
    buckets, total, _ = histogram(samples, "request_duration_seconds")
    assert total >= 0.3
    assert all(n <= 5 for le, n in buckets if le < 0.3), buckets


def test_metrics_show_busy_workers_and_the_queue_while_the_app_is_stuck(start_server, tmp_path):
    from test_health import _hold_workers
    server = start_server(workers=2, options=METRICS)
    release = _hold_workers(server, tmp_path, 2)
    queued = server.connect(timeout=60)
    try:
        queued.send(build_request("GET", "/hello"))
        with server.connect() as conn:
            deadline = time.monotonic() + 20
            while True:
                samples, _, _ = scrape(conn)
                if value(samples, "queue_depth") == 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            assert value(samples, "queue_depth") == 1
            assert value(samples, "busy_workers") == 2
            assert value(samples, "idle_workers") == 0
            assert value(samples, "requests_in_flight") == 2
            assert value(samples, "open_connections") >= 4
    finally:
        results = release()
        response = queued.read_response()
        queued.close()
    assert [r.status for r in results] == [200, 200]
    assert response.status == 200


def test_metrics_path_is_the_applications_unless_configured(start_server):
    server = start_server()
    response = server.request("GET", "/metrics")
    assert json_of(response)["PATH_INFO"] == "/metrics"  # the app's answer


def test_metrics_head_and_other_methods(start_server):
    server = start_server(options=METRICS)
    with server.connect() as conn:
        response = conn.request("HEAD", "/metrics")
        assert response.status == 200 and int(response.header("Content-Length")) > 1000
        response = conn.request("POST", "/metrics", body=b"")
        assert response.status == 405 and response.header("Allow") == "GET, HEAD"


def test_stats_matches_the_endpoint(start_server):
    server = start_server(options=dict(METRICS, health_path="/health", max_number_headers=4))
    with server.connect() as conn:
        for _ in range(3):
            assert conn.request("GET", "/hello").status == 200
        assert conn.request("GET", "/health").status == 200
        assert conn.request("GET", "/hello", headers=[("X-%d" % i, "v") for i in range(6)]
                            ).status == 431
    with server.connect() as conn:
        samples, _, scrapes = scrape_when_idle(server, conn, 3)
        stats = json.loads(conn.request("GET", "/stats").body)
        after, _, _ = scrape(conn)
    # /stats ran between the two scrapes and saw itself in flight.
    assert stats["requests"] == {"1xx": 0, "2xx": 3, "3xx": 0, "4xx": 1, "5xx": 0}
    assert value(after, "requests_total", **{"class": "2xx"}) == 4
    assert stats["requests_in_flight"] == 1
    assert stats["server_responses"]["431"] == value(after, "server_responses_total", code="431") == 1
    assert stats["endpoint_requests"] == {"health": 1, "metrics": len(scrapes)}
    assert stats["received_bytes"] <= value(after, "received_bytes_total")
    assert stats["open_connections"] >= 1 and stats["draining"] is False
    assert set(stats) >= {"queue_depth", "busy_workers", "idle_workers", "idle_connections",
                          "sent_bytes"}
    # The queue waits include the /stats request itself, taken before it ran.
    buckets, total, count = histogram(after, "queue_wait_seconds")
    assert stats["queue_wait_seconds"]["count"] == count == 4
    assert [[float(b), n] for b, n in stats["queue_wait_seconds"]["buckets"]] == \
        [[le, n] for le, n in buckets]
    duration = stats["request_duration_seconds"]
    assert duration["count"] == 3 and duration["buckets"][-1] == ["inf", 3]


def test_stats_is_none_without_a_server():
    result = run_python("import pyruvate; print(repr(pyruvate.stats()))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"


def test_stats_is_none_after_serve_returned():
    code = """
import os, signal, threading, time, pyruvate
seen = []
def stop():
    time.sleep(0.2)
    seen.append(pyruvate.stats() is not None)
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=stop).start()
pyruvate.serve(lambda e, s: [], "127.0.0.1:0", 1)
print(seen, repr(pyruvate.stats()))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[True] None"


def test_scrapes_keep_the_connection_alive(start_server):
    server = start_server(options=METRICS)
    with server.connect() as conn:
        first, _, _ = scrape(conn)
        second, _, _ = scrape(conn)
    assert value(second, "endpoint_requests_total", endpoint="metrics") == \
        value(first, "endpoint_requests_total", endpoint="metrics") + 1


def test_concurrent_scrapes_and_requests_stay_consistent(start_server):
    server = start_server(workers=2, options=METRICS)
    errors = []

    def load():
        try:
            with server.connect() as conn:
                for _ in range(50):
                    assert conn.request("GET", "/hello").status == 200
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    with server.connect() as conn:
        for _ in range(10):
            samples, _, _ = scrape(conn)
            for name in ("queue_wait_seconds", "request_duration_seconds"):
                buckets, _, count = histogram(samples, name)
                counts = [n for _, n in buckets]
                assert counts == sorted(counts) and counts[-1] == count
    for thread in threads:
        thread.join(60)
    assert not errors
    with server.connect() as conn:
        samples, _, _ = scrape_when_idle(server, conn, 150)
    assert value(samples, "requests_total", **{"class": "2xx"}) == 150


def test_counts_idle_and_open_connections(start_server):
    server = start_server(options=METRICS)
    quiet = server.connect()
    try:
        assert quiet.request("GET", "/hello").status == 200
        # Quiet for a while, a kept-alive connection moves to the idle set.
        with server.connect() as conn:
            deadline = time.monotonic() + 20
            while True:
                samples, _, _ = scrape(conn)
                settled = value(samples, "idle_connections") == 1 and \
                    value(samples, "open_connections") == 2  # the start-up probe is gone
                if settled or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert value(samples, "idle_connections") == 1
            assert value(samples, "open_connections") == 2
            # It speaks again: no longer idle.
            assert quiet.request("GET", "/hello").status == 200
            samples, _, _ = scrape(conn)
            assert value(samples, "idle_connections") == 0
    finally:
        quiet.close()


def test_counts_request_timeouts_answered_by_the_acceptor(start_server):
    server = start_server(options=dict(METRICS, request_timeout=1))
    with server.connect(timeout=30) as conn:
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # never finished
        assert conn.read_response().status == 408
    with server.connect() as conn:
        samples, _, _ = scrape(conn)
    assert value(samples, "server_responses_total", code="408") == 1
    assert value(samples, "requests_total", **{"class": "4xx"}) == 1
    assert value(samples, "requests_in_flight") == 0
