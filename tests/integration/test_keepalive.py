"""Persistent connections (HTTP/1.1 keep-alive)."""
import re
import time

import support

HELLO = b"Hello, World!"


def _assert_hello(response):
    assert response.status == 200, response
    assert response.body == HELLO


def _two_requests_on_one_connection(srv):
    with srv.connect() as conn:
        first = conn.request("GET", "/hello")
        _assert_hello(first)
        assert not first.has_token("Connection", "close"), first
        # The second response can only arrive on this socket if the server
        # kept the connection open.
        second = conn.request("POST", "/echo", body=b"second request")
        assert second.status == 200
        assert second.body == b"second request"
        assert second.raw.startswith(b"HTTP/1.1 200")


def test_two_requests_reuse_connection(start_server):
    _two_requests_on_one_connection(start_server(keepalive=True))


def test_keepalive_is_on_by_default(start_server):
    # Our pyruvate: keep-alive on by default (Rust Pyruvate needs
    # max_reuse_count > 0, so this one fails there).
    _two_requests_on_one_connection(start_server(options={}))


def test_many_sequential_requests_on_one_connection(start_server):
    srv = start_server(keepalive=True)
    with srv.connect() as conn:
        for index in range(50):
            body = b"request %d" % index
            response = conn.request("POST", "/echo", body=body)
            assert response.status == 200
            assert response.body == body


def test_connection_close_request_header_closes(start_server):
    srv = start_server(keepalive=True)
    with srv.connect() as conn:
        response = conn.request("GET", "/hello", headers=[("Connection", "close")])
        _assert_hello(response)
        assert response.has_token("Connection", "close"), response
        assert conn.wait_closed(), "connection left open after Connection: close"


def test_connection_close_after_keepalive_requests(start_server):
    srv = start_server(keepalive=True)
    with srv.connect() as conn:
        _assert_hello(conn.request("GET", "/hello"))
        _assert_hello(conn.request("GET", "/hello", headers=[("Connection", "close")]))
        assert conn.wait_closed(), "connection left open after Connection: close"


def test_max_reuse_count_limits_requests_per_connection(start_server):
    srv = start_server(options={"max_reuse_count": 2})
    served = 0
    with srv.connect() as conn:
        for _ in range(10):
            try:
                response = conn.request("GET", "/hello")
            except (support.IncompleteResponse, BrokenPipeError, ConnectionResetError):
                break
            _assert_hello(response)
            served += 1
            if response.has_token("Connection", "close"):
                assert conn.wait_closed()
                break
        assert 1 <= served <= 3, "served %d requests with max_reuse_count=2" % served
        assert conn.wait_closed()


def test_keepalive_timeout_closes_idle_connection(start_server):
    srv = start_server(keepalive=True, options={"keepalive_timeout": 2})
    with srv.connect() as conn:
        _assert_hello(conn.request("GET", "/hello"))
        _assert_hello(conn.request("GET", "/hello"))  # kept alive meanwhile
        # Bounded wait for the server to close the idle connection.
        assert conn.wait_closed(timeout=10), "idle connection not closed"


def test_chunked_streaming_response_keeps_connection(start_server):
    srv = start_server(keepalive=True, options={"chunked_transfer": True})
    with srv.connect() as conn:
        response = conn.request("GET", "/stream?n=6")
        assert response.status == 200
        assert response.chunked, response
        assert response.header("Content-Length") is None
        assert response.body == b"".join(b"chunk-%d\n" % i for i in range(6))
        assert response.chunk_sizes[-1] == 0
        _assert_hello(conn.request("GET", "/hello"))


def test_streaming_response_without_length_is_delimited(start_server):
    # Without chunked_transfer a body of unknown length can only be
    # delimited by closing the connection (or by chunked coding).
    srv = start_server(keepalive=True)
    with srv.connect() as conn:
        response = conn.request("GET", "/stream?n=6")
        assert response.status == 200
        assert response.body == b"".join(b"chunk-%d\n" % i for i in range(6))
        if not response.chunked:
            assert response.header("Content-Length") is None
            assert conn.eof


def test_stray_crlf_after_a_request_leaves_the_connection_idle(start_server):
    """RFC 9112 §2.2: an empty line before a request line is ignored. One a
    client sends right after its request must not keep the connection busy
    waiting for a request (it was answered 408 after request_timeout, and
    never counted as idle)."""
    srv = start_server(options={"request_timeout": 1, "metrics_path": "/metrics"})
    with srv.connect(timeout=30) as conn:
        conn.send(support.build_request("GET", "/hello") + b"\r\n")
        assert conn.read_response().status == 200
        deadline = time.monotonic() + 20
        while True:
            with srv.connect(timeout=30) as probe:
                text = probe.request("GET", "/metrics").body.decode()
            if re.search(r"^pyruvate_idle_connections 1$", text, re.M):
                break
            assert time.monotonic() < deadline, "the connection never became idle:\n" + text
            time.sleep(0.1)
        assert re.search(r'^pyruvate_server_responses_total\{code="408"\} 0$', text, re.M)
        assert conn.request("GET", "/hello").status == 200  # and it still serves
