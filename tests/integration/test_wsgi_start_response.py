"""PEP 3333 over real sockets: start_response and write(), when
headers go out, type checks, errors after the headers, and wsgiref.validate
around the whole request/response surface.

Each test quotes or names the PEP 3333 passage it checks.
"""
import json

import pytest

from support import (
    CLOSE,
    HOST,
    assert_alive,
    exchange,
    json_of,
    launch,
    parse_responses,
    raw_get,
    read_until,
    stop_launched,
    strict_server,
    wait_for_log,
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = launch(tmp_path_factory.mktemp("pep3333"))
    yield server
    stop_launched(server)


def one(srv, path, headers=CLOSE, version=b"HTTP/1.1"):
    responses = parse_responses(exchange(srv, raw_get(path, headers, version)))
    assert len(responses) == 1, responses
    return responses[0]


# --------------------------------------------------------------------------
# start_response and write()


def test_pep3333_write_output_flushed_before_iterable(srv):
    """PEP 3333 "The write() Callable": data passed to write() is
    transmitted before write() returns -- here it reaches the client while
    the app is still blocked, before its iterable exists."""
    with srv.connect(timeout=10) as conn:
        conn.send(raw_get(b"/write-flush?id=flush"))
        read_until(conn, b"written;")
        with srv.connect() as other:
            assert other.request("GET", "/release?id=flush").status == 200
        response = conn.read_response()
    assert response.status == 200
    assert response.body == b"written;iterable;released=True", response


def test_pep3333_write_then_iterable_in_order(srv):
    """PEP 3333 "The write() Callable": write() output comes first, then
    the returned iterable; empty writes and chunks are harmless."""
    response = one(srv, b"/write-then-iterable")
    assert (response.status, response.body) == (200, b"written;iterable"), response
    assert response.header("Content-Length") == "16"


def test_pep3333_second_start_response_without_exc_info_raises(srv):
    """PEP 3333 "The start_response() Callable": "it is a fatal error to
    call start_response without the exc_info argument if start_response has
    already been called": the second call raises and the first stands."""
    response = one(srv, b"/twice")
    assert response.status == 200, response
    assert response.body.startswith(b"raised "), response
    assert response.header("X-First") == "1" and response.header("X-Second") is None


def test_pep3333_second_start_response_uncaught_gives_500(srv):
    """PEP 3333: the error from a second start_response, left to propagate,
    becomes a 500 (nothing was sent yet)."""
    response = one(srv, b"/twice-uncaught")
    assert response.status == 500, response
    assert b"second start_response accepted" not in response.raw


def test_pep3333_exc_info_before_headers_replaces_status_and_headers(srv):
    """PEP 3333: with exc_info, "if no output has been sent, start_response
    replaces the status and headers": the old X-Old and Content-Length are
    gone."""
    response = one(srv, b"/exc-before")
    assert (response.status, response.reason) == (503, "Replaced"), response
    assert response.header("X-Old") is None and response.header("X-New") == "1"
    assert response.header_all("Content-Length") == ["8"]
    assert response.body == b"replaced"


def test_pep3333_exc_info_after_headers_reraises(srv):
    """PEP 3333: "if exc_info is provided, and the HTTP headers have already
    been sent, start_response must raise an error, and should re-raise using
    the exc_info tuple": the very same exception comes back."""
    response = one(srv, b"/exc-after")
    assert response.status == 200, response
    assert response.body == b"part1;reraised-same=True", response


def test_pep3333_headers_sent_with_first_nonempty_chunk(srv):
    """PEP 3333 "Buffering and Streaming": headers go out only with the
    first non-empty body bytestring, so after yielding b"" the app can still
    replace them with exc_info."""
    response = one(srv, b"/empty-then-replace")
    assert (response.status, response.reason) == (202, "Replaced"), response
    assert response.header("X-Old") is None and response.header("X-New") == "1"
    assert response.body == b"after"


def test_pep3333_empty_body_headers_sent_at_end(srv):
    """PEP 3333: for an empty body the headers go out when the iterable is
    exhausted; the body is empty and correctly framed."""
    with srv.connect() as conn:
        response = conn.request("GET", "/empty-chunks")
        assert (response.status, response.body) == (200, b""), response
        assert response.header("Content-Length") == "0" or response.chunk_sizes == [0]
        assert conn.request("GET", "/hello").status == 200


def test_pep3333_start_response_from_inside_iterable(srv):
    """PEP 3333: start_response must be called "before the iterable yields
    its first body bytestring" -- calling it from inside the iterable, before
    the first chunk, is allowed."""
    response = one(srv, b"/lazy")
    assert (response.status, response.body) == (200, b"lazy"), response


# --------------------------------------------------------------------------
# Types: status str, headers a list of (str, str) tuples, chunks bytes


@pytest.mark.parametrize("what", [
    "status-bytes", "status-int", "headers-tuple", "headers-dict", "header-item-list",
    "header-item-3", "header-name-bytes", "header-value-bytes", "header-value-int",
    "chunk-str", "chunk-bytearray", "write-str", "result-none",
])
def test_pep3333_wrong_types_give_500_and_are_logged(srv, what):
    """PEP 3333 "start_response()": status is a str, response_headers a list
    of (header_name, header_value) tuples of str; the body yields
    bytestrings.  Anything else gives the client a 500 and the server logs
    the error."""
    marker = len(srv.stderr())
    response = one(srv, b"/bad-type?what=" + what.encode(), b"")
    assert response.status == 500, response
    assert b"BAD-TYPE-ACCEPTED" not in response.raw
    assert response.has_token("Connection", "close")
    assert wait_for_log(srv, "Error"), srv.stderr()[-2000:]
    assert "Error" in srv.stderr()[marker:], srv.stderr()[marker:]
    assert_alive(srv)


# --------------------------------------------------------------------------
# Errors after the headers went out


@pytest.mark.parametrize("query, version", [
    (b"?cl=1", b"HTTP/1.1"), (b"", b"HTTP/1.1"), (b"", b"HTTP/1.0"),
], ids=["content-length", "chunked", "http10"])
def test_pep3333_error_after_headers_closes_without_second_status(srv, query, version):
    """PEP 3333 (error handling): once the headers are out, an
    error can only be signalled by closing the connection: the body stops
    short (no last chunk), no second status line appears, the error is
    logged, and the pipelined next request is not answered."""
    marker = len(srv.stderr())
    raw = exchange(srv, raw_get(b"/fail-after" + query, b"", version) + raw_get(b"/hello"))
    assert raw.count(b"HTTP/1.1 ") == 1, raw
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), raw
    if query:
        assert body == b"part1;", raw  # 6 of the 100 bytes promised
    elif version == b"HTTP/1.1":
        assert body == b"6\r\npart1;\r\n", raw  # no "0\r\n\r\n"
    else:
        assert body == b"part1;", raw
    assert wait_for_log(srv, "error after the headers went out")
    assert "error after the headers went out" in srv.stderr()[marker:]
    assert_alive(srv)


def test_pep3333_reraised_exc_info_after_headers_closes(srv):
    """PEP 3333: start_response(..., exc_info) after the headers were sent
    re-raises; left uncaught, the connection is closed after the partial
    body, with no second status line."""
    raw = exchange(srv, raw_get(b"/exc-after-uncaught") + raw_get(b"/hello"))
    assert raw.count(b"HTTP/1.1 ") == 1, raw
    assert raw.endswith(b"\r\n\r\n6\r\npart1;\r\n"), raw
    assert b"Too Late" not in raw
    assert_alive(srv)


# --------------------------------------------------------------------------
# wsgiref.validate around the app


VALIDATED_REQUESTS = [  # (method, expected status, raw request)
    ("GET", 200, raw_get(b"/env?x=1&y=%20")),
    ("GET", 200, raw_get(b"/a%20b/c")),
    ("POST", 200, b"POST /cl HTTP/1.1\r\n" + HOST + b"Content-Type: text/plain\r\n"
                  b"Content-Length: 5\r\n\r\nhello"),
    ("POST", 200, b"POST /chunked HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
                  b"5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
    ("POST", 200, b"POST /empty HTTP/1.1\r\n" + HOST + b"Content-Length: 0\r\n\r\n"),
    ("HEAD", 200, raw_get(b"/hello", method=b"HEAD")),
    ("GET", 200, raw_get(b"http://example.org:8080/abs?q=1")),
    ("GET", 200, raw_get(b"/generator?n=4")),
    ("GET", 200, raw_get(b"/write-then-iterable")),
    ("GET", 503, raw_get(b"/exc-before")),
    ("GET", 200, raw_get(b"/empty-chunks")),
    ("GET", 204, raw_get(b"/status?code=204&gen=1")),
    ("GET", 304, raw_get(b"/status?code=304")),
    ("GET", 200, raw_get(b"/own-date-server")),
    ("GET", 200, raw_get(b"/length?declared=5&send=5")),
    ("PUT", 200, b"PUT /put HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\n\r\nabc"),
    ("DELETE", 200, raw_get(b"/del", method=b"DELETE")),
    ("GET", 200, raw_get(b"/hello", b"X-Many: 1\r\nX-Many: 2\r\n")),
]


def _validation_errors(srv):
    with srv.connect() as conn:
        response = conn.request("GET", "/validation-errors")
    assert response.status == 200, response
    return json.loads(response.body)["errors"]


def test_pep3333_wsgiref_validator_finds_no_violation(start_server):
    """PEP 3333 as checked by wsgiref.validate.validator: the app wrapped in
    the validator sees no violation (WSGIWarnings are errors, so any would
    be a 500) across pipelined and keep-alive requests of every kind, and
    no late violation (e.g. close() not called) is recorded."""
    srv = strict_server(start_server, app="apps:validated")
    requests = b"".join(request for _, _, request in VALIDATED_REQUESTS)
    responses = parse_responses(exchange(srv, requests + raw_get(b"/hello", CLOSE)),
                                methods=[m for m, _, _ in VALIDATED_REQUESTS] + ["GET"])
    statuses = [r.status for r in responses]
    expected = [status for _, status, _ in VALIDATED_REQUESTS] + [200]
    assert statuses == expected, (statuses, srv.stderr()[-3000:])
    assert json_of(responses[3])["__body__"] == "hello"
    # HTTP/1.0, 1.0 keep-alive and Expect: 100-continue, on their own
    # connections.
    ten = parse_responses(exchange(srv, b"GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                        b"GET /ten2 HTTP/1.0\r\n\r\n"))
    assert [r.status for r in ten] == [200, 200]
    with srv.connect() as conn:
        conn.send(b"POST /continue HTTP/1.1\r\n" + HOST + b"Expect: 100-continue\r\n"
                  b"Content-Length: 2\r\n\r\n")
        assert conn._read_line() == b"HTTP/1.1 100 Continue" and conn._read_line() == b""
        conn.send(b"ok")
        assert json_of(conn.read_response())["__body__"] == "ok"
    assert _validation_errors(srv) == []


def test_pep3333_wsgiref_validator_accepts_options_asterisk(start_server):
    """RFC 9112 §3.2.4 + wsgiref.validate: OPTIONS * reaches a validated
    app without a violation."""
    srv = strict_server(start_server, app="apps:validated")
    raw = exchange(srv, b"OPTIONS * HTTP/1.1\r\n" + HOST + CLOSE + b"\r\n")
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:300]
