"""Edge paths of src/wsgi.c that the other suites leave out: the environ
(absolute-form targets, long header names, url_prefix, trusted_proxy),
start_response and write() misuse, results whose close() fails, and the
synchronous access log.  The apps are in apps.py."""
import json
import re
import socket
import struct
import threading
import time

import pytest

from support import (
    CLOSE,
    assert_alive,
    exchange,
    expect_error,
    json_of,
    launch,
    parse_responses,
    raw_get,
    read_until,
    stop_launched,
    wait_for_log,
)

def _launch(tmp_path_factory, name, options=None):
    return launch(tmp_path_factory.mktemp(name), options=options)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = _launch(tmp_path_factory, "wsgi-edges")
    yield server
    stop_launched(server)


@pytest.fixture(scope="module")
def prefix_srv(tmp_path_factory):
    server = _launch(tmp_path_factory, "wsgi-edges-prefix", {"url_prefix": "/app"})
    yield server
    stop_launched(server)


@pytest.fixture(scope="module")
def proxy_srv(tmp_path_factory):
    # Trusts a proxy that is not the peer (the tests connect from 127.0.0.1).
    server = _launch(tmp_path_factory, "wsgi-edges-proxy", {"trusted_proxy": "10.1.2.3"})
    yield server
    stop_launched(server)


def one(srv, path, headers=CLOSE):
    responses = parse_responses(exchange(srv, raw_get(path, headers)))
    assert len(responses) == 1, responses
    return responses[0]


# --------------------------------------------------------------------------
# the environ


@pytest.mark.parametrize("target, query", [
    (b"http://example.org", ""),
    (b"http://example.org?x=1", "x=1"),
])
def test_absolute_form_without_path_is_root(srv, target, query):
    """RFC 9112 §3.2.2: an absolute-form target without a path asks for "/";
    its authority replaces the Host header."""
    env = json_of(one(srv, target, CLOSE))
    assert env["PATH_INFO"] == "/"
    assert env["QUERY_STRING"] == query
    assert env["HTTP_HOST"] == "example.org"
    assert env["REQUEST_URI"] == target.decode()


def test_long_header_name_reaches_environ_twice(srv):
    """A header name longer than the per-worker key cache holds (40 bytes)
    gets its environ key built every time: correct on both requests of one
    connection; a long name with an underscore is still dropped."""
    long_name = "X-" + "Very-Long-Header-Name-" * 3  # 68 characters
    key = "HTTP_" + long_name.upper().replace("-", "_")
    underscored = "X_" + "Underscored-Long-Header-Name-" * 2
    with srv.connect() as conn:
        for value in ("first value", "second value"):
            response = conn.request("GET", "/environ", headers=[
                (long_name, value), (underscored, "must be dropped")])
            env = json_of(response)
            assert env[key] == value
            assert not [k for k in env["__keys__"] if "UNDERSCORED" in k], env["__keys__"]
            assert not response.has_token("Connection", "close"), response


@pytest.mark.parametrize("target, path_info", [
    (b"/other/place", "/other/place"),   # outside the prefix: unchanged
    (b"/application", "/application"),  # shares the characters, not the segment
    (b"/app", ""),                      # the prefix itself: empty PATH_INFO
    (b"/app/inside", "/inside"),        # inside: the prefix is stripped
])
def test_url_prefix(prefix_srv, target, path_info):
    """url_prefix is SCRIPT_NAME for every request; PATH_INFO loses it only
    when the path is the prefix or lies below it."""
    env = json_of(one(prefix_srv, target))
    assert env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == path_info


def test_untrusted_peer_without_proxy_headers(proxy_srv):
    """trusted_proxy set, peer not trusted, no proxy headers: nothing to
    remove, the request goes through with the peer's own address."""
    env = json_of(one(proxy_srv, b"/environ"))
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "example.test"
    assert not [k for k in env["__keys__"] if "FORWARDED" in k], env["__keys__"]


def test_untrusted_peer_loses_proxy_headers(proxy_srv):
    """trusted_proxy set, peer not trusted: its X-Forwarded-* and Forwarded
    claims never reach the app, other headers do."""
    headers = (b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
               b"X-Forwarded-Host: evil.example\r\nForwarded: for=192.0.2.60;proto=https\r\n"
               b"X-Other: kept\r\n" + CLOSE)
    env = json_of(one(proxy_srv, b"/environ", headers))
    assert not [k for k in env["__keys__"] if "FORWARDED" in k], env["__keys__"]
    assert env["HTTP_X_OTHER"] == "kept"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "example.test"


# --------------------------------------------------------------------------
# response headers from the app


def test_app_connection_token_list_with_close(srv):
    """The app's "Connection: keep-alive, close" names close among its
    tokens: the server closes after the response (and writes its own
    Connection field, not the app's)."""
    with srv.connect() as conn:
        response = conn.request("GET", "/connection-close-list")
        assert (response.status, response.body) == (200, b"closing"), response
        assert response.header_all("Connection") == ["close"], response
        assert conn.wait_closed(), "connection left open"


@pytest.mark.parametrize("value", ["abc", "-1", "1e3"])
def test_app_invalid_content_length_is_500(srv, value):
    """start_response rejects a Content-Length that is not all digits
    (ValueError): a 500 with Connection: close; a new connection works."""
    expect_error(srv, raw_get(b"/bad-cl?v=" + value.encode()), 500)
    assert wait_for_log(srv, "invalid Content-Length ('Content-Length', '%s')" % value)


def test_app_conflicting_content_lengths_is_500(srv):
    """Two different Content-Length values from the app cannot both frame
    the body: start_response raises ValueError, the client gets a 500 and
    neither length."""
    response = expect_error(srv, raw_get(b"/two-cl?a=1&b=20"), 500)
    assert response.header("Content-Length") != "1", response.headers
    assert wait_for_log(srv, "conflicting Content-Length ('Content-Length', '20')")


def test_app_repeated_content_length_sent_once(srv):
    """The same Content-Length twice from the app goes out once."""
    with srv.connect() as conn:
        response = conn.request("GET", "/two-cl?a=20&b=20")
        assert (response.status, response.body) == (200, b"x" * 20), response
        assert response.header_all("Content-Length") == ["20"], response.headers
        assert conn.request("GET", "/two-cl").status == 200


# --------------------------------------------------------------------------
# start_response and write() misuse


def _store_every_workers_start_response(srv):
    """Two concurrent requests meet at a barrier, so both workers of the
    server store their start_response."""
    results = []

    def store():
        with srv.connect(timeout=10) as conn:
            results.append(conn.request("GET", "/sr-store?barrier=2"))

    threads = [threading.Thread(target=store) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert len(results) == 2, results
    for response in results:
        assert json.loads(response.body)["met"] is True, response
    assert max(json.loads(r.body)["stored"] for r in results) >= 2, results


def test_stale_start_response_of_idle_worker_raises(srv):
    """A start_response kept from a finished request, called while another
    request runs: RuntimeError inside that app call (here the stored object
    belongs to the other, idle worker)."""
    _store_every_workers_start_response(srv)
    response = one(srv, b"/sr-call-stored?which=other")
    assert (response.status, response.body) == (200, b"raised RuntimeError"), response
    assert response.header("X-Stale") is None


def test_stale_start_response_of_same_worker_raises(srv):
    """As above, but the stored object is the one of the worker serving the
    later request: it must still raise (the request it belonged to is
    over). Regression: the per-worker object used to be reused, so a kept
    one set a later request's status and headers."""
    _store_every_workers_start_response(srv)
    response = one(srv, b"/sr-call-stored?which=same")
    assert (response.status, response.body) == (200, b"raised RuntimeError"), response


def test_exc_info_not_a_tuple_after_headers_closes(srv):
    """exc_info that is not a 3-tuple once the headers went out: TypeError,
    the response stops short of its Content-Length and the connection
    closes."""
    raw = exchange(srv, raw_get(b"/exc-info-not-tuple"))  # keep-alive request
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1.1 200 "), raw[:300]
    assert b"\r\nContent-Length: 100\r\n" in head + b"\r\n", head
    assert body == b"part1;", raw[:300]  # truncated, nothing after it
    assert wait_for_log(srv, "TypeError: exc_info must be a 3-tuple")
    assert_alive(srv)


def test_write_before_start_response_is_500(srv):
    """write() (kept from an earlier request) called before this request's
    start_response: RuntimeError, a 500."""
    assert one(srv, b"/store-write").body == b"stored"
    response = expect_error(srv, raw_get(b"/write-before-start-response"), 500)
    assert b"write accepted" not in response.raw
    assert wait_for_log(srv, "RuntimeError: write() called before start_response")


def test_write_of_str_is_500(srv):
    """PEP 3333: write() takes bytes; a str raises TypeError, a 500 (no
    body was sent yet)."""
    response = expect_error(srv, raw_get(b"/write-str"), 500)
    assert b"accepted" not in response.raw
    assert wait_for_log(srv, "TypeError: write() takes bytes, not str")


def test_write_of_empty_bytes_after_headers_is_noop(srv):
    """write(b"") after the headers went out adds nothing; the body and its
    framing stay right and the connection stays usable."""
    with srv.connect() as conn:
        response = conn.request("GET", "/write-empty")
        assert (response.status, response.body) == (200, b"abcdefghi"), response
        assert response.header_all("Content-Length") == ["9"]
        assert response.header("Transfer-Encoding") is None
        again = conn.request("GET", "/hello")
        assert (again.status, again.body) == (200, b"Hello, World!"), again


def _report(srv):
    with srv.connect() as conn:
        response = conn.request("GET", "/report")
    assert response.status == 200, response
    return json.loads(response.body)


def test_write_after_client_went_away_raises_oserror(srv):
    """The client resets the connection while the app is still writing a
    large body: write() raises OSError in the app."""
    before = len(_report(srv)["write_lost"])
    conn = srv.connect(timeout=10)
    try:
        conn.send(raw_get(b"/write-lost"))
        read_until(conn, b"\r\n\r\n", timeout=10)
        # An abortive close (RST), with unread data pending anyway.
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        conn.close()
    deadline = time.monotonic() + 10
    seen = []
    while time.monotonic() < deadline:
        seen = _report(srv)["write_lost"][before:]
        if seen:
            break
        time.sleep(0.05)
    assert len(seen) == 1, seen
    assert seen[0].startswith("OSError: "), seen
    assert_alive(srv)


def test_yield_before_start_response_is_500(srv):
    """A generator that yields data before start_response was called: a
    500 (RuntimeError), none of the data goes out."""
    response = expect_error(srv, raw_get(b"/yield-before-start-response"), 500)
    assert b"data before" not in response.raw
    assert wait_for_log(srv, "returned data before calling start_response")


def test_close_raising_is_logged_response_kept(srv):
    """PEP 3333 calls close() after the response; an exception from it is
    logged, the response was delivered whole, the server goes on."""
    with srv.connect() as conn:
        response = conn.request("GET", "/close-raises")
        assert (response.status, response.body) == (200, b"close raises"), response
        # The next response on this connection comes after close() ran.
        assert conn.request("GET", "/hello").status == 200
    text = srv.stderr()
    assert "Error in the result's close()" in text
    assert "RuntimeError: apps: close() fails on purpose" in text
    assert_alive(srv)


def test_close_lookup_raising_is_logged(srv):
    """A result whose close attribute raises when looked up: logged as such,
    the response was delivered whole."""
    with srv.connect() as conn:
        response = conn.request("GET", "/close-lookup-raises")
        assert (response.status, response.body) == (200, b"close lookup raises"), response
        assert conn.request("GET", "/hello").status == 200
    text = srv.stderr()
    assert "Error looking up the result's close()" in text
    assert "RuntimeError: apps: looking up close fails on purpose" in text
    assert_alive(srv)


def test_empty_result_without_start_response_is_500(srv):
    """An app returning [] without ever calling start_response: 500."""
    expect_error(srv, raw_get(b"/empty-without-start-response"), 500)
    assert wait_for_log(srv, "the application never called start_response")


# --------------------------------------------------------------------------
# access log without async_logging

ACCESS = re.compile(r"^\S+ \S+ INFO pyruvate\.access (?P<thread>\S+): (?P<line>.*)$", re.M)


def test_access_log_synchronous(tmp_path_factory):
    """access_log=True with async_logging=False: each record is logged on
    "pyruvate.access" by the worker thread itself (threads are named
    pyruvate-N), in Common Log Format."""
    server = _launch(tmp_path_factory, "wsgi-edges-access",
                     {"access_log": True, "async_logging": False})
    try:
        with server.connect() as conn:
            assert conn.request("GET", "/hello?tag=sync-1").status == 200
            assert conn.request("GET", "/bad-cl?v=x").status == 500
        assert wait_for_log(server, '"GET /bad-cl?v=x HTTP/1.1" 500 ')
        records = [m.groupdict() for m in ACCESS.finditer(server.stderr())]
    finally:
        stop_launched(server)
    assert len(records) == 2, server.stderr()[-3000:]
    hello, error = records
    assert re.match(r'^127\.0\.0\.1 - - \[[^]]+\] "GET /hello\?tag=sync-1 HTTP/1\.1" 200 13 '
                    r'\d+\.\d+$', hello["line"]), hello
    assert re.match(r'^127\.0\.0\.1 - - \[[^]]+\] "GET /bad-cl\?v=x HTTP/1\.1" 500 ',
                    error["line"]), error
    assert all(r["thread"].startswith("pyruvate-") for r in records), records
