"""Every body goes through the one framing function (frame_body in
src/wsgi.c), whichever way it leaves: write(), iteration, or a
wsgi.file_wrapper sent with sendfile.  The bytes written before a file count
against Content-Length, a chunked response frames the file as a chunk, and a
file returned without start_response is a 500 before anything went out.
Each test checks the framing on a keep-alive connection by sending a second
request after it: a response that is a byte too long or short shows there.
The apps are in apps.py."""
import json

import pytest

import support
from apps import DIGITS, HELLO, INJECTION
from support import assert_alive, launch, stop_launched, wait_for_log


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = launch(tmp_path_factory.mktemp("response-framing"), workers=1)
    yield server
    stop_launched(server)


def then_hello(conn):
    """The next response on the connection is exactly /hello's."""
    response = conn.request("GET", "/hello")
    assert (response.status, response.body) == (200, HELLO), response
    assert response.header("X-Injected") is None, response


def test_file_after_write_counts_written_bytes_against_content_length(srv):
    """Content-Length 10, write(b"hello "), then a 10-byte file: 10 body
    bytes, not 16, and the next response starts where it should."""
    with srv.connect() as conn:
        response = conn.request("GET", "/file?cl=10&write=hello+")
        assert response.body == b"hello " + DIGITS[:4], response
        assert response.header("Content-Length") == "10", response
        then_hello(conn)


def test_file_after_write_is_a_chunk_not_an_injected_response(srv):
    """No Content-Length and write() first: the response is chunked, and
    the file goes out as a chunk, so a file holding "0\\r\\n\\r\\nHTTP/1.1 ..."
    stays body and cannot end the response and start another."""
    with srv.connect() as conn:
        response = conn.request("GET", "/file?data=injection&write=prefix")
        assert response.chunked, response
        assert response.body == b"prefix" + INJECTION, response
        then_hello(conn)


@pytest.mark.parametrize("query", ["data=injection", "data=injection&kind=nofileno",
                                   "data=0", "data=0&kind=nofileno"])
def test_file_without_start_response_is_500_before_anything(srv, query):
    """No start_response: a 500 with a status line, and nothing of the file
    or of a head before it (a real file, a file-like without a descriptor,
    an empty one of each)."""
    raw = srv.send_raw(support.build_request("GET", "/file?start=0&" + query))
    assert raw.startswith(b"HTTP/1.1 500 "), raw[:300]
    assert b"injected" not in raw and raw.count(b"HTTP/1.1") == 1, raw[:600]
    assert wait_for_log(srv, "start_response")
    assert_alive(srv)


@pytest.mark.parametrize("kind", ["file", "nofileno"])
def test_file_after_write_http10_is_close_delimited(srv, kind):
    """HTTP/1.0 without a length: write() and file both reach the client,
    and the connection ends the body."""
    raw = srv.send_raw(support.build_request("GET", "/file?write=ab&kind=" + kind,
                                             version="HTTP/1.0"))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), raw[:300]
    assert b"Content-Length" not in head and b"chunked" not in head, head
    assert body == b"ab" + DIGITS


def test_file_after_write_without_chunked_transfer(start_server):
    """chunked_transfer=False: the body after write() is close-delimited."""
    server = start_server(workers=1, options={"chunked_transfer": False})
    raw = server.send_raw(support.build_request("GET", "/file?write=ab&data=injection"))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Connection: close" in head and b"chunked" not in head, head
    assert body == b"ab" + INJECTION


def test_file_with_max_reuse_count_closes_after_the_last(start_server):
    server = start_server(workers=1, options={"max_reuse_count": 2})
    with server.connect() as conn:
        first = conn.request("GET", "/file?write=ab")
        assert first.body == b"ab" + DIGITS and not first.has_token("Connection", "close")
        last = conn.request("GET", "/file?write=ab")
        assert last.body == b"ab" + DIGITS and last.has_token("Connection", "close"), last
        assert conn.wait_closed()


def test_head_with_a_file_has_its_length_and_no_body(srv):
    with srv.connect() as conn:
        response = conn.request("HEAD", "/file?data=injection")
        assert response.header("Content-Length") == str(len(INJECTION)), response
        then_hello(conn)


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_file_with_a_bodyless_status_sends_no_body(srv, status):
    with srv.connect() as conn:
        response = conn.request("GET", "/file?data=injection&status=" + status.replace(" ", "+"))
        assert response.status == int(status[:3]), response
        assert response.header("Content-Length") is None, response
        then_hello(conn)


def test_file_longer_than_content_length_is_cut(srv):
    with srv.connect() as conn:
        response = conn.request("GET", "/file?cl=4")
        assert response.body == DIGITS[:4], response
        then_hello(conn)


def test_file_shorter_than_content_length_closes(srv):
    """10 bytes of a promised 20: what there is, then the connection closes
    (the client sees a short body, never the next response as body)."""
    with srv.connect() as conn:
        conn.send(support.build_request("GET", "/file?cl=20"))
        raw = conn.read_available()
    assert raw.endswith(b"\r\n\r\n" + DIGITS), raw


@pytest.mark.parametrize("kind", ["file", "nofileno"])
def test_partly_read_file_sends_the_rest(srv, kind):
    with srv.connect() as conn:
        response = conn.request("GET", "/file?data=300&skip=100&kind=" + kind)
        assert response.body == (DIGITS * 30)[100:], response
        then_hello(conn)


@pytest.mark.parametrize("kind", ["file", "nofileno"])
def test_file_after_write_with_content_length_exact(srv, kind):
    with srv.connect() as conn:
        response = conn.request("GET", "/file?cl=12&write=ab&kind=" + kind)
        assert response.body == b"ab" + DIGITS, response
        then_hello(conn)


def test_exception_mid_file_closes_without_ending_the_body(srv):
    """read() fails after the first block went out: the chunked body is
    left unterminated and the connection closes, so the client cannot take
    the truncated body for a whole one."""
    with srv.connect() as conn:
        conn.send(support.build_request("GET", "/file?kind=fails&write=ab"))
        raw = conn.read_available()
    assert b"Transfer-Encoding: chunked" in raw, raw
    assert not raw.endswith(b"0\r\n\r\n"), raw
    assert wait_for_log(srv, "read fails on purpose")
    assert_alive(srv)


def test_start_response_is_reused_between_requests(srv):
    """The worker's start_response object serves request after request (no
    new object and no reference cycle per request)."""
    with srv.connect() as conn:
        for _ in range(20):
            response = conn.request("GET", "/start-response-id")
    out = json.loads(response.body)
    assert len(set(out["ids"][-20:])) == 1, out
    assert out["tracked"] == 1, out
