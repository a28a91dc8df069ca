"""wsgi.input: read(), read(n), readline(), readline(n), readlines(), iteration,
seek(), tell() and seekable().

Edge paths of wsgi.input (src/input.c): sizes larger than the body, 0,
None and negative, repeated reads, readline/readlines limits, iteration
after partial reads, bad arguments, and an input object used after its
request finished.  The app (/input-ops in apps.py) applies ?op=NAME[:ARG]
operations in order and reports each result, or "raised TYPE"."""
import json
from urllib.parse import urlencode

import pytest

import support
from support import launch, stop_launched


BODY = b"line one\nline two\r\n\nlast line without newline"
LINES = [b"line one\n", b"line two\r\n", b"\n", b"last line without newline"]


@pytest.fixture
def input_server(start_server):
    return start_server()


def _pieces(srv, path, body=BODY, method="POST"):
    response = srv.request(method, path, body=body)
    assert response.status == 200, response
    return [p.encode("latin-1") for p in json.loads(response.body)["pieces"]]


def test_read_all(input_server):
    assert _pieces(input_server, "/input/read") == [BODY]


def test_read_all_empty_body(input_server):
    assert _pieces(input_server, "/input/read", body=b"") == [b""]


def test_read_all_get_without_body(input_server):
    assert _pieces(input_server, "/input/read", body=b"", method="GET") == [b""]


@pytest.mark.parametrize("size", [1, 5, 9, 100])
def test_read_n(input_server, size):
    pieces = _pieces(input_server, "/input/read-n?n=%d" % size)
    assert pieces[-1] == b""
    assert all(0 < len(p) <= size for p in pieces[:-1]), pieces
    assert b"".join(pieces) == BODY


def test_readline(input_server):
    assert _pieces(input_server, "/input/readline") == LINES + [b""]


def test_readline_with_size(input_server):
    pieces = _pieces(input_server, "/input/readline-size?n=4")
    assert pieces[-1] == b""
    assert b"".join(pieces) == BODY
    for piece in pieces[:-1]:
        assert 0 < len(piece) <= 4, pieces
        assert b"\n" not in piece[:-1], "readline(4) crossed a newline: %r" % pieces


def test_readlines(input_server):
    assert _pieces(input_server, "/input/readlines") == LINES + [b""]


def test_iteration(input_server):
    assert _pieces(input_server, "/input/iter") == LINES


def test_mixed_reads(input_server):
    assert _pieces(input_server, "/input/mixed") == [
        b"line one\n", b"lin", b"e two\r\n", b"\n", b"last line without newline"]


def test_seek_to_zero_rereads_the_body_for_a_zope_conflict_retry(input_server):
    # Zope's HTTPRequest.retry() seeks wsgi.input back to 0 before it
    # publishes a request again after a ConflictError: without seek() every
    # conflict under concurrent writes became a 500.
    pieces = _pieces(input_server, "/input/seek")
    assert pieces == [
        BODY, b"%d" % len(BODY), b"0", BODY,
        b"%d" % (len(BODY) - 4), BODY[-4:],
        b"5", b"8", BODY[8:BODY.index(b"\n", 8) + 1],
        b"%d" % len(BODY), b"", b"0", b"True"]


def test_seek_rejects_bad_arguments_and_keeps_the_position(input_server):
    pieces = _pieces(input_server, "/input/seek-errors")
    assert pieces == [b"ValueError", b"ValueError", b"TypeError", b"TypeError", b"0", BODY]


def test_readlines_large_body(input_server):
    lines = [b"%06d %s\n" % (i, b"z" * (i % 200)) for i in range(5000)]
    body = b"".join(lines)
    assert len(body) > 500000
    assert _pieces(input_server, "/input/readlines", body=body) == lines + [b""]


def test_input_does_not_read_past_content_length(start_server):
    # Two requests in one send (pipelined): read() of the first must stop at
    # its Content-Length and leave the second request intact.
    srv = start_server(keepalive=True)
    with srv.connect() as conn:
        conn.send(support.build_request("POST", "/input/read", body=b"first")
                  + support.build_request("POST", "/input/readlines", body=b"a\nb\n"))
        first = conn.read_response()
        second = conn.read_response()
    assert json.loads(first.body)["pieces"] == ["first"]
    assert json.loads(second.body)["pieces"] == ["a\n", "b\n", ""]


LINE1, LINE2, LINE3 = "first line\n", "second line\n", "third\n"
EDGE_BODY = LINE1 + LINE2 + LINE3 + "tail without newline"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = launch(tmp_path_factory.mktemp("input-edges"))
    yield server
    stop_launched(server)


def ops(srv, *operations, body=EDGE_BODY, method="POST"):
    target = "/input-ops?" + urlencode([("op", op) for op in operations])
    response = srv.request(method, target, body=body.encode("latin-1"))
    assert response.status == 200, response
    return json.loads(response.body)["results"]


# -- read ---------------------------------------------------------------------

def test_read_more_than_the_body(srv):
    assert ops(srv, "read:100000", "read:10") == [EDGE_BODY, ""]


def test_read_zero_reads_nothing(srv):
    assert ops(srv, "read:0", "read:3", "read:0", "read") == ["", "fir", "", EDGE_BODY[3:]]


def test_read_none_reads_all(srv):
    assert ops(srv, "read:None", "read:None") == [EDGE_BODY, ""]


def test_read_negative_reads_all(srv):
    assert ops(srv, "read:2", "read:-5") == [EDGE_BODY[:2], EDGE_BODY[2:]]


def test_read_twice_second_is_empty(srv):
    assert ops(srv, "read", "read", "read:1") == [EDGE_BODY, "", ""]


# -- readline -----------------------------------------------------------------

def test_readline_limit_shorter_than_the_line(srv):
    assert ops(srv, "readline:4", "readline:4", "readline") == ["firs", "t li", "ne\n"]


def test_readline_limit_zero(srv):
    assert ops(srv, "readline:0", "readline") == ["", LINE1]


@pytest.mark.parametrize("arg", ["-1", "None"])
def test_readline_without_limit(srv, arg):
    assert ops(srv, "readline:" + arg, "readline:" + arg) == [LINE1, LINE2]


def test_readline_at_the_end_and_last_line_without_newline(srv):
    assert ops(srv, "read:%d" % len(LINE1 + LINE2 + LINE3), "readline", "readline") == [
        LINE1 + LINE2 + LINE3, "tail without newline", ""]


# -- readlines ----------------------------------------------------------------

def test_readlines_hint_stops_early(srv):
    """readlines(hint) stops once the lines read reach hint bytes; the rest
    stays for the next call."""
    assert ops(srv, "readlines:5", "readlines:%d" % (len(LINE2) + 1), "readlines") == [
        [LINE1], [LINE2, LINE3], ["tail without newline"]]


@pytest.mark.parametrize("hint", ["0", "-1", "None"])
def test_readlines_hint_not_positive_reads_all(srv, hint):
    assert ops(srv, "readlines:" + hint) == [[LINE1, LINE2, LINE3, "tail without newline"]]


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_readlines_on_empty_body(srv, method):
    assert ops(srv, "readlines", "readline", "read", "iter", body="", method=method) == [
        [], "", "", []]


# -- iteration ----------------------------------------------------------------

def test_iteration_after_partial_reads(srv):
    """Iteration goes on from where read() and readline() stopped."""
    assert ops(srv, "read:3", "readline", "iter") == [
        "fir", "st line\n", [LINE2, LINE3, "tail without newline"]]


def test_next_after_the_end_stops(srv):
    assert ops(srv, "next", "read", "next") == [LINE1, EDGE_BODY[len(LINE1):], "<StopIteration>"]


# -- bad arguments ------------------------------------------------------------

@pytest.mark.parametrize("method", ["read", "readline", "readlines"])
def test_str_argument_is_typeerror(srv, method):
    """A size that is not an integer raises TypeError in the app (which can
    catch it); nothing was consumed."""
    assert ops(srv, method + ":str", "read") == ["raised TypeError", EDGE_BODY]


def test_two_arguments_is_typeerror(srv):
    assert ops(srv, "read2", "read") == ["raised TypeError", EDGE_BODY]


def test_size_too_large_for_ssize_t_is_overflowerror(srv):
    assert ops(srv, "read:%d" % 2 ** 70, "read:4") == ["raised OverflowError", "firs"]


# -- after the request --------------------------------------------------------

def test_input_used_after_its_request_is_detached(srv):
    """A wsgi.input kept from a finished request reads as empty (it no
    longer points at that request's buffer); the current request's own
    input is unaffected."""
    stored = srv.request("POST", "/input-store", body=b"secret body of request one\nline 2\n")
    assert (stored.status, stored.body) == (200, b"stored"), stored
    response = srv.request("POST", "/input-read-stored", body=b"own body\n")
    assert response.status == 200, response
    assert json.loads(response.body) == {
        "read": "", "read_n": "", "readline": "", "readlines": [], "iter": [],
        "own": "own body\n"}
