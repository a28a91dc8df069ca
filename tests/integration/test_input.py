"""wsgi.input: read(), read(n), readline(), readline(n), readlines(), iteration,
seek(), tell() and seekable()."""
import json

import pytest

import httpraw

BODY = b"line one\nline two\r\n\nlast line without newline"
LINES = [b"line one\n", b"line two\r\n", b"\n", b"last line without newline"]


@pytest.fixture
def input_server(start_server):
    return start_server("apps:input_app")


def _pieces(srv, path, body=BODY, method="POST"):
    response = srv.request(method, path, body=body)
    assert response.status == 200, response
    return [p.encode("latin-1") for p in json.loads(response.body)["pieces"]]


def test_read_all(input_server):
    assert _pieces(input_server, "/read") == [BODY]


def test_read_all_empty_body(input_server):
    assert _pieces(input_server, "/read", body=b"") == [b""]


def test_read_all_get_without_body(input_server):
    assert _pieces(input_server, "/read", body=b"", method="GET") == [b""]


@pytest.mark.parametrize("size", [1, 5, 9, 100])
def test_read_n(input_server, size):
    pieces = _pieces(input_server, "/read-n?n=%d" % size)
    assert pieces[-1] == b""
    assert all(0 < len(p) <= size for p in pieces[:-1]), pieces
    assert b"".join(pieces) == BODY


def test_readline(input_server):
    assert _pieces(input_server, "/readline") == LINES + [b""]


def test_readline_with_size(input_server):
    pieces = _pieces(input_server, "/readline-size?n=4")
    assert pieces[-1] == b""
    assert b"".join(pieces) == BODY
    for piece in pieces[:-1]:
        assert 0 < len(piece) <= 4, pieces
        assert b"\n" not in piece[:-1], "readline(4) crossed a newline: %r" % pieces


def test_readlines(input_server):
    assert _pieces(input_server, "/readlines") == LINES + [b""]


def test_iteration(input_server):
    assert _pieces(input_server, "/iter") == LINES


def test_mixed_reads(input_server):
    assert _pieces(input_server, "/mixed") == [
        b"line one\n", b"lin", b"e two\r\n", b"\n", b"last line without newline"]


def test_seek_to_zero_rereads_the_body_for_a_zope_conflict_retry(input_server):
    # Zope's HTTPRequest.retry() seeks wsgi.input back to 0 before it
    # publishes a request again after a ConflictError: without seek() every
    # conflict under concurrent writes became a 500.
    pieces = _pieces(input_server, "/seek")
    assert pieces == [
        BODY, b"%d" % len(BODY), b"0", BODY,
        b"%d" % (len(BODY) - 4), BODY[-4:],
        b"5", b"8", BODY[8:BODY.index(b"\n", 8) + 1],
        b"%d" % len(BODY), b"", b"0", b"True"]


def test_seek_rejects_bad_arguments_and_keeps_the_position(input_server):
    pieces = _pieces(input_server, "/seek-errors")
    assert pieces == [b"ValueError", b"ValueError", b"TypeError", b"TypeError", b"0", BODY]


def test_readlines_large_body(input_server):
    lines = [b"%06d %s\n" % (i, b"z" * (i % 200)) for i in range(5000)]
    body = b"".join(lines)
    assert len(body) > 500000
    assert _pieces(input_server, "/readlines", body=body) == lines + [b""]


def test_input_does_not_read_past_content_length(start_server):
    # Two requests in one send (pipelined): read() of the first must stop at
    # its Content-Length and leave the second request intact.
    srv = start_server("apps:input_app", keepalive=True)
    with srv.connect() as conn:
        conn.send(httpraw.build_request("POST", "/read", body=b"first")
                  + httpraw.build_request("POST", "/readlines", body=b"a\nb\n"))
        first = conn.read_response()
        second = conn.read_response()
    assert json.loads(first.body)["pieces"] == ["first"]
    assert json.loads(second.body)["pieces"] == ["a\n", "b\n", ""]
