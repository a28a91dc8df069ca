"""What an idle keep-alive connection costs the server: its descriptor and a
small struct, not a buffer or a parser. Thousands of clients may keep a
connection open between requests (tests/bench/idle_memory.py measures the
bytes beside bjoern)."""
import json
import os
import resource
import time

import pytest

import support

GET = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"


def _rss_kib(server):
    response = server.request("GET", "/memory")
    assert response.status == 200
    return json.loads(response.body)["rss_kib"]


def _raise_open_file_limit(wanted):
    """Raises the soft limit (inherited by a server started afterwards);
    returns the connections the test can hold on both ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        soft = hard if hard != resource.RLIM_INFINITY else max(soft, 2 * wanted + 2048)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    # The server keeps 1024 descriptors for the application.
    return min(wanted, soft - 1024 - 200)


@pytest.mark.parametrize("method, path", [
    ("GET", "/hello"),
    # Answered by the acceptor itself: the connection never passes a worker.
    ("GET", "/health"),
    ("POST", "/health"),  # 405, the body read and dropped
    ("GET", "/metrics"),
])
def test_idle_keepalive_connection_holds_no_request_buffer(start_server, method, path):
    count = _raise_open_file_limit(3000)
    if count < 1000:
        pytest.skip("the open file limit allows only %d connections" % count)
    server = start_server(workers=2, options={"health_path": "/health",
                                              "metrics_path": "/metrics"})
    for _ in range(20):  # the app, the workers and /memory itself warmed up
        assert server.request("GET", "/hello").status == 200
    _rss_kib(server)
    before = _rss_kib(server)
    held = []
    try:
        for _ in range(count):
            conn = support.RawConnection("127.0.0.1", server.port)
            held.append(conn)
            body = b"x" * 20000 if method == "POST" else b""
            response = conn.request(method, path, body=body)
            assert response.status in (200, 405), response
            assert not response.has_token("Connection", "close")
        after = _rss_kib(server)
        # Each connection kept its 16 KiB input buffer once, later its
        # parser and header array (1.7 KiB); now it holds a struct of a few
        # hundred bytes. 1 KiB a connection leaves room for allocator noise.
        # (Under AddressSanitizer RSS holds its quarantine and shadow.)
        if not os.environ.get("PYRUVATE_TEST_LD_PRELOAD"):
            assert (after - before) * 1024 / count < 1024, (before, after, count)
        # Idle, they all still serve the next request.
        for conn in held[::97]:
            assert conn.request("GET", "/hello").status == 200
    finally:
        for conn in held:
            conn.close()


def _read_responses(conn, count):
    return [conn.read_response() for _ in range(count)]


def test_connection_reused_after_idle_parses_pipelined_and_split_requests(start_server):
    server = start_server(workers=2)
    with support.RawConnection("127.0.0.1", server.port) as conn:
        for round_ in range(3):
            assert conn.request("GET", "/hello").status == 200
            # Long enough for the server to move the connection to its idle
            # set and free its request; the answers are the same either way.
            time.sleep(0.6)
            body = b"x" * (round_ * 5000 + 7)
            conn.send(GET + support.build_request("POST", "/echo", body=body) + GET)
            first, echoed, last = _read_responses(conn, 3)
            assert (first.status, echoed.status, last.status) == (200, 200, 200)
            assert echoed.body == body
            assert first.body == last.body == b"Hello, World!"
            time.sleep(0.6)
            # One request split over several sends, the first of them to a
            # connection that holds nothing.
            for piece in (b"GET /hel", b"lo HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
                conn.send(piece)
                time.sleep(0.05)
            response = conn.read_response()
            assert response.status == 200 and response.body == b"Hello, World!"
