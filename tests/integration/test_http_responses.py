"""Strict HTTP/1.1 responses (RFC 9110, RFC 9112): framing chosen
by the server, bodies that must not be sent, Date/Server, hop-by-hop fields
from the app, and response splitting.

Raw bytes over real sockets; every test names its rule.  Most requests are
followed, on the same connection, by a second one: its response arriving
intact proves that the first one was framed exactly.
"""
import pytest

from apps import BAD_HEADS, HELLO, pattern
from support import (
    CLOSE,
    HTTP_DATE,
    assert_alive,
    exchange,
    launch,
    parse_responses,
    raw_get,
    stop_launched,
    strict_server,
    wait_for_log,
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = launch(tmp_path_factory.mktemp("responses"))
    yield server
    stop_launched(server)


def then_hello(srv, request, methods=("GET", "GET")):
    """`request` then, pipelined, GET /hello with Connection: close.
    Returns the first response, having checked that the second arrived
    intact (so the first was framed exactly)."""
    responses = parse_responses(exchange(srv, request + raw_get(b"/hello", CLOSE)),
                                methods=methods)
    assert len(responses) == 2, responses
    assert (responses[1].status, responses[1].body) == (200, HELLO), responses[1]
    return responses[0]


# --------------------------------------------------------------------------
# Framing: RFC 9112 §6.3, §7.1


def test_rfc9112_6_3_app_content_length_honoured(srv):
    """RFC 9112 §6.3: the app's Content-Length frames the body; no chunked
    coding on top and the connection stays open."""
    first = then_hello(srv, raw_get(b"/length?declared=10&send=10"))
    assert first.header_all("Content-Length") == ["10"]
    assert first.header("Transfer-Encoding") is None
    assert first.body == pattern(10)


def test_rfc9112_6_3_fewer_bytes_than_content_length_closes(srv):
    """RFC 9112 §6.3: an app that sends fewer bytes than its
    Content-Length leaves an incomplete message; the server logs it and
    closes the connection right after the short body (the pipelined second
    request is not answered), so the client can tell."""
    raw = exchange(srv, raw_get(b"/length?declared=10&send=5") + raw_get(b"/hello"))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 10" in head, raw
    assert body == pattern(5), raw
    assert wait_for_log(srv, "Content-Length"), srv.stderr()[-2000:]
    assert_alive(srv)


def test_rfc9112_6_3_more_bytes_than_content_length_truncated(srv):
    """RFC 9112 §6.3: bytes beyond the app's Content-Length are
    dropped (and logged); the next response on the connection is intact."""
    first = then_hello(srv, raw_get(b"/length?declared=5&send=13"))
    assert first.header("Content-Length") == "5"
    assert first.body == pattern(5)
    assert wait_for_log(srv, "Content-Length of 5"), srv.stderr()[-2000:]


def test_rfc9112_7_1_no_length_on_http11_is_chunked(srv):
    """RFC 9112 §7.1 / §6.3: a body of unknown length on HTTP/1.1 is sent
    chunked and the connection stays open."""
    first = then_hello(srv, raw_get(b"/generator?n=3"))
    assert first.header_all("Transfer-Encoding") == ["chunked"]
    assert first.header("Content-Length") is None
    assert first.chunk_sizes == [8, 8, 8, 0]
    assert first.body == b"chunk-0;chunk-1;chunk-2;"


def test_chunked_transfer_false_is_close_delimited(start_server):
    """Pyruvate's chunked_transfer=False: a body of unknown length is
    delimited by closing the connection (RFC 9112 §6.3 (8)), never chunked."""
    srv = strict_server(start_server, {"chunked_transfer": False})
    raw = exchange(srv, raw_get(b"/generator?n=3") + raw_get(b"/hello"))
    responses = parse_responses(raw)
    assert len(responses) == 1, raw
    response = responses[0]
    assert response.header("Transfer-Encoding") is None
    assert response.header("Content-Length") is None
    assert response.has_token("Connection", "close"), response
    assert response.body == b"chunk-0;chunk-1;chunk-2;"
    assert_alive(srv)


def test_rfc9112_6_3_no_length_on_http10_is_close_delimited(srv):
    """RFC 9112 §6.1/§6.3: HTTP/1.0 has no chunked coding: a body of
    unknown length is delimited by closing the connection, even when the
    client asked for keep-alive."""
    raw = exchange(srv, raw_get(b"/generator?n=3", b"Connection: keep-alive\r\n", b"HTTP/1.0")
                   + raw_get(b"/hello", b"", b"HTTP/1.0"))
    responses = parse_responses(raw)
    assert len(responses) == 1, raw
    assert responses[0].header("Transfer-Encoding") is None
    assert responses[0].header("Content-Length") is None
    assert responses[0].body == b"chunk-0;chunk-1;chunk-2;"


# --------------------------------------------------------------------------
# Responses without a body: RFC 9110 §6.4.1


def test_rfc9110_9_3_2_head_has_no_body_but_keeps_content_length(srv):
    """RFC 9110 §9.3.2: HEAD gets the GET headers, including the app's
    Content-Length, and no body, whatever the app returned."""
    first = then_hello(srv, raw_get(b"/hello", method=b"HEAD"), methods=("HEAD", "GET"))
    assert first.status == 200
    assert first.header_all("Content-Length") == ["13"]
    assert first.header("Transfer-Encoding") is None
    assert first.raw.endswith(b"\r\n\r\n")


def test_rfc9110_9_3_2_head_of_streaming_response_has_no_body(srv):
    """RFC 9110 §9.3.2: HEAD of a response of unknown length: no body and no
    chunked framing (a zero chunk would be a body)."""
    first = then_hello(srv, raw_get(b"/generator?n=3", method=b"HEAD"), methods=("HEAD", "GET"))
    assert first.status == 200
    assert first.raw.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("query", [b"", b"&gen=1"], ids=["list", "generator"])
def test_rfc9110_15_3_5_204_has_no_body(srv, query):
    """RFC 9110 §15.3.5: a 204 response cannot contain content; what the
    app returns is dropped and the connection stays in sync."""
    first = then_hello(srv, raw_get(b"/status?code=204" + query))
    assert first.status == 204
    assert first.header("Transfer-Encoding") is None
    assert first.raw.endswith(b"\r\n\r\n")


def test_rfc9110_15_4_5_304_has_no_body_keeps_content_length(srv):
    """RFC 9110 §15.4.5/§8.6: a 304 has no content; a Content-Length from
    the app (the selected representation's) may be kept."""
    first = then_hello(srv, raw_get(b"/status?code=304&cl=26"))
    assert first.status == 304
    assert first.header("Transfer-Encoding") is None
    assert first.raw.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("code", [b"103", b"199"])
def test_rfc9110_15_2_1xx_has_no_body(srv, code):
    """RFC 9110 §15.2: a 1xx response is terminated by the end of its
    header section: an app's body is never sent after it."""
    raw = exchange(srv, raw_get(b"/status?code=" + code) + raw_get(b"/hello", CLOSE))
    assert b"body-that-must-not-be-sent" not in raw, raw
    assert raw.startswith(b"HTTP/1.1 " + code + b" ")


def test_rfc9110_15_2_1xx_as_final_response_closes_the_connection(srv):
    """RFC 9110 §15.2: a 1xx is interim; a WSGI app cannot send a final
    response after it, so the server closes the connection rather than let
    the client take the next response for this request's."""
    raw = exchange(srv, raw_get(b"/status?code=103") + raw_get(b"/hello", CLOSE))
    assert raw.startswith(b"HTTP/1.1 103 "), raw[:200]
    assert raw.count(b"HTTP/1.1 ") == 1, raw
    assert b"connection: close" in raw.lower(), raw


def test_rfc9110_8_6_no_content_length_in_204(srv):
    """RFC 9110 §8.6: a server MUST NOT send Content-Length in a 204 (or
    1xx) response."""
    first = then_hello(srv, raw_get(b"/status?code=204&cl=26"))
    assert first.status == 204
    assert first.header("Content-Length") is None, first


# --------------------------------------------------------------------------
# Date and Server: RFC 9110 §6.6.1, §10.2.4


def test_rfc9110_6_6_1_date_and_server_added(srv):
    """RFC 9110 §6.6.1: an origin server with a clock sends Date (IMF-fixdate,
    §5.6.7); and Server: pyruvate."""
    response = parse_responses(exchange(srv, raw_get(b"/hello", CLOSE)))[0]
    dates = response.header_all("Date")
    assert len(dates) == 1 and HTTP_DATE.match(dates[0]), response
    assert response.header_all("Server") == ["pyruvate"], response


def test_rfc9110_6_6_1_app_date_and_server_kept(srv):
    """Date and Server are only added when the app sets none: the
    app's values go out, once each."""
    response = parse_responses(exchange(srv, raw_get(b"/own-date-server", CLOSE)))[0]
    assert response.header_all("Date") == ["Sun, 06 Nov 1994 08:49:37 GMT"], response
    assert response.header_all("Server") == ["strict-app/1.0"], response


def test_rfc9110_6_6_1_date_on_server_generated_errors(srv):
    """RFC 9110 §6.6.1: Date MUST be sent in 2xx, 3xx and 4xx responses,
    including the ones the server generates itself (400 here)."""
    response = parse_responses(exchange(srv, b"GET / HTTP/1.1\r\n\r\n"))[0]
    assert response.status == 400
    assert HTTP_DATE.match(response.header("Date") or ""), response


# --------------------------------------------------------------------------
# Hop-by-hop fields from the app: RFC 9110 §7.6.1


def test_rfc9110_7_6_1_hop_by_hop_from_app_not_copied_streaming(srv):
    """RFC 9110 §7.6.1: Connection, Keep-Alive and Transfer-Encoding from
    the app are the server's business: not copied; the server frames the
    body itself (one chunked coding, not two) and the connection stays
    usable."""
    first = then_hello(srv, raw_get(b"/hop-by-hop"))
    assert first.header_all("Transfer-Encoding") == ["chunked"], first
    assert first.header("Keep-Alive") is None, first
    assert not first.has_token("Connection", "keep-alive"), first
    assert first.body == b"abcde"


def test_rfc9110_7_6_1_hop_by_hop_from_app_with_content_length(srv):
    """RFC 9110 §7.6.1 / RFC 9112 §6.3: the app sent both Transfer-Encoding:
    chunked and Content-Length: the server frames by Content-Length and
    sends no Transfer-Encoding (never both)."""
    first = then_hello(srv, raw_get(b"/hop-by-hop?cl=1"))
    assert first.header("Transfer-Encoding") is None, first
    assert first.header_all("Content-Length") == ["5"], first
    assert first.header("Keep-Alive") is None, first
    assert first.body == b"abcde"


def test_rfc9110_7_6_1_no_transfer_encoding_to_http10_client(srv):
    """RFC 9112 §6.1: a server must not send Transfer-Encoding to an
    HTTP/1.0 client, even when the app set it."""
    raw = exchange(srv, raw_get(b"/hop-by-hop?cl=1", b"", b"HTTP/1.0"))
    response = parse_responses(raw)[0]
    assert response.header("Transfer-Encoding") is None, response
    assert response.body == b"abcde"


@pytest.mark.parametrize("path", [b"/app-close", b"/hop-by-hop?connection=close"])
def test_rfc9110_7_6_1_app_connection_close_ends_connection(srv, path):
    """RFC 9112 §9.6: Connection: close from the app is honoured: the
    response says so once and the server closes after it."""
    raw = exchange(srv, raw_get(path) + raw_get(b"/hello"))
    responses = parse_responses(raw)
    assert len(responses) == 1, raw
    assert responses[0].header_all("Connection") == ["close"], responses[0]


# --------------------------------------------------------------------------
# Response splitting: PEP 3333 start_response, RFC 9110 §5.5


@pytest.mark.parametrize("what", sorted(BAD_HEADS))
def test_response_splitting_bad_status_or_header_gives_500(srv, what):
    """RFC 9110 §5.5 / PEP 3333: a status or header with CR, LF, NUL, a bad
    name or a non-latin-1 value is refused: the client gets a 500 and none
    of the bad bytes ("X-Injected") reach the wire."""
    raw = exchange(srv, raw_get(b"/split?what=" + what.encode()))
    assert raw.startswith(b"HTTP/1.1 500 "), raw
    assert b"Injected" not in raw, raw
    assert len(parse_responses(raw)) == 1
    assert_alive(srv)


@pytest.mark.parametrize("what", sorted(BAD_HEADS))
def test_response_splitting_start_response_raises(srv, what):
    """PEP 3333 ("start_response ... should raise an error"): the bad status
    or header makes start_response itself raise, so the app can still
    answer properly (with exc_info)."""
    response = parse_responses(exchange(srv, raw_get(b"/split?catch=1&what=" + what.encode(),
                                                 CLOSE)))[0]
    assert response.status == 200, response
    assert response.body in (b"raised ValueError", b"raised TypeError"), response
    assert b"Injected" not in response.raw
