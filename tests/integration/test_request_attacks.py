"""Request parsing under attack: chunked framing that no size limit used to
count (memory DoS), absolute-form targets and Host values that were taken
as they came, fragments, and an obs-fold right after the colon.

The floods send 64 MiB at most, to 127.0.0.1 only; the server must answer
with the right status while its peak RSS (VmHWM) stays far below that.
"""
import os
import socket
import time

import pytest

import support
from support import (
    exchange,
    expect_error,
    json_of,
    parse_responses,
    strict_server,
)

FLOOD_BYTES = 64 << 20
PIECE = 256 << 10
# Far below the flood: a server that buffers it fails, one that counts does not.
RSS_GROWTH_BOUND_KIB = 24 << 10
CHUNKED_HEAD = (b"POST / HTTP/1.1\r\nHost: localhost\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")


def _status_kib(pid, field):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def _flood(srv, head, filler, total=FLOOD_BYTES):
    """Sends head, then `filler` repeated up to `total` bytes (stopping
    early if the server closes), half-closes, and returns the responses and
    the server's peak RSS growth in KiB."""
    pid = srv.proc.pid
    before = _status_kib(pid, "VmRSS")
    piece = (filler * (PIECE // len(filler) + 1))[:PIECE]
    with srv.connect(timeout=20) as conn:
        conn.send(head)
        sent = 0
        try:
            while sent < total:
                conn.sock.sendall(piece)
                sent += len(piece)
            conn.sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            raw = conn.read_available()
        except ConnectionResetError as exc:
            raise AssertionError("reset instead of a response") from exc
        except support.ResponseTimeout as exc:
            raise AssertionError("no answer after %d bytes: %s" % (sent, exc)) from None
    growth = _status_kib(pid, "VmHWM") - before
    return parse_responses(raw), growth


def _assert_bounded(growth):
    # Under AddressSanitizer RSS says little (quarantine, shadow memory).
    if not os.environ.get("PYRUVATE_TEST_LD_PRELOAD"):
        assert growth < RSS_GROWTH_BOUND_KIB, "peak RSS grew by %d KiB" % growth


@pytest.fixture
def small_body_srv(start_server):
    return strict_server(start_server, {"max_request_body_size": 1024})


def test_chunk_extension_flood_is_400_with_bounded_memory(small_body_srv):
    """A chunk line "1;" followed by 64 MiB of extension: 400 once the line
    passes 4 KiB, and nothing like 64 MiB is held."""
    responses, growth = _flood(small_body_srv, CHUNKED_HEAD + b"1;", b"a")
    assert [r.status for r in responses] == [400], responses
    _assert_bounded(growth)


def test_chunk_size_leading_zeros_flood_is_400_with_bounded_memory(small_body_srv):
    """64 MiB of leading zeros in a chunk size (llhttp reports nothing for
    them): 400, memory bounded."""
    responses, growth = _flood(small_body_srv, CHUNKED_HEAD, b"0")
    assert [r.status for r in responses] == [400], responses
    _assert_bounded(growth)


def test_trailer_whitespace_flood_is_431_with_bounded_memory(small_body_srv):
    """64 MiB of spaces in a trailer field count against
    max_request_header_size: 431, memory bounded."""
    responses, growth = _flood(small_body_srv, CHUNKED_HEAD + b"0\r\nX-Trailer:", b" ")
    assert [r.status for r in responses] == [431], responses
    _assert_bounded(growth)


def test_many_small_chunks_with_extensions_is_413_with_bounded_memory(start_server):
    """Chunks of one byte, each with a 4000-byte extension (each line within
    its own limit): the framing of the whole request is bounded, 413 long
    before the 16 KiB body limit (16384 such chunks, 64 MiB) is reached."""
    srv = strict_server(start_server, {"max_request_body_size": 16384})
    chunk = b"1;" + b"e" * 3991 + b"\r\nz\r\n"
    responses, growth = _flood(srv, CHUNKED_HEAD, chunk)
    assert [r.status for r in responses] == [413], responses
    _assert_bounded(growth)


def test_chunked_body_with_extensions_and_trailers_within_limits_served(small_body_srv):
    """The limits leave ordinary chunked requests alone."""
    body = (b"200;name=value\r\n" + b"x" * 512 + b"\r\n"
            + b"200\r\n" + b"y" * 512 + b"\r\n0\r\nX-T: 1\r\n\r\n")
    raw = exchange(small_body_srv, CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close"
                                                        b"\r\n\r\n") + body)
    responses = parse_responses(raw)
    assert [r.status for r in responses] == [200], raw[:300]
    assert json_of(responses[0])["CONTENT_LENGTH"] == "1024"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    from support import launch, stop_launched

    server = launch(tmp_path_factory.mktemp("request_attacks"))
    yield server
    stop_launched(server)


@pytest.mark.parametrize("target", [
    b"s://]ufd/:",
    b"http:///p",
    b"http://:80/p",
    b"http://[zz]/p",
    b"http://host:99999/p",
    b"http://host:0/p",
    b"http://host:/p",
    b"ftp://host/p",
    b"http://user:pass@example.com:8080/foo",
    b"http://example.com@evil.test/",
    b"p/q",
])
def test_absolute_form_with_bad_authority_is_400(srv, target):
    """RFC 9112 §3.2.2, RFC 9110 §4.2.1 and §4.2.4: only http/https with a
    valid host and port, and no userinfo, may replace Host."""
    expect_error(srv, b"PUT " + target + b" HTTP/1.1\r\nHost: localhost\r\n"
                 b"Content-Length: 0\r\n\r\n", 400)


@pytest.mark.parametrize("target, host", [
    (b"http://example.org/p", "example.org"),
    (b"HTTPS://Example.org:8443/p", "Example.org:8443"),
    (b"http://[::1]:8080/p", "[::1]:8080"),
    (b"http://192.0.2.1/p", "192.0.2.1"),
])
def test_absolute_form_with_valid_authority_sets_host(srv, target, host):
    raw = exchange(srv, b"GET " + target + b" HTTP/1.1\r\nHost: other.test\r\n"
                   b"Connection: close\r\n\r\n")
    env = json_of(parse_responses(raw)[0])
    assert (env["HTTP_HOST"], env["PATH_INFO"]) == (host, "/p")


@pytest.mark.parametrize("host", [
    b"user:pass@example.com", b"example.com:99999", b"example.com:", b"[zz]", b"a/b",
    b"a b", b"example.com:0",
])
def test_invalid_host_header_is_400(srv, host):
    """RFC 9112 §3.2: a Host field with an invalid value gets 400."""
    expect_error(srv, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", 400)


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
def test_empty_host_with_origin_form_is_400(srv, version):
    """RFC 9110 §4.2.1: the target URI would have an empty host."""
    expect_error(srv, b"GET / " + version + b"\r\nHost:\r\n\r\n", 400)


def test_empty_host_with_absolute_form_is_served(srv):
    """RFC 9112 §3.2: the target names the host, the empty Host is allowed."""
    raw = exchange(srv, b"GET http://example.org/p HTTP/1.1\r\nHost:\r\n"
                   b"Connection: close\r\n\r\n")
    assert json_of(parse_responses(raw)[0])["HTTP_HOST"] == "example.org"


@pytest.mark.parametrize("target", [b"/path?page=1#frag", b"/path#frag", b"http://a.test/p#f"])
def test_fragment_in_target_is_400(srv, target):
    """RFC 9112 §3.2: "#" is in no request-target form; it never reaches
    PATH_INFO or QUERY_STRING."""
    expect_error(srv, b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 400)


@pytest.mark.parametrize("headers, body", [
    (b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n"),
    (b"Content-Length:\r\n 5\r\n", b"hello"),
    (b"X-Empty-Then-Fold:\r\n\tvalue\r\n", b""),
], ids=["transfer-encoding", "content-length", "other"])
def test_obs_fold_after_empty_first_line_is_400(srv, headers, body):
    """RFC 9112 §5.2: a fold right after the colon is a fold too."""
    expect_error(srv, b"POST / HTTP/1.1\r\nHost: localhost\r\n" + headers + b"\r\n" + body, 400)


def test_obs_fold_after_empty_host_is_400(srv):
    expect_error(srv, b"GET / HTTP/1.1\r\nHost:\r\n evil\r\n\r\n", 400)


def test_chunk_extension_with_bws_is_400(srv):
    """Deliberate (README): llhttp 8.1 refuses whitespace around ";" in a
    chunk extension, and so do we, consistently."""
    expect_error(srv, CHUNKED_HEAD + b"5; name=value\r\nhello\r\n0\r\n\r\n", 400)


# --------------------------------------------------------------------------
# Siblings: buffers that outlived their use.

BIG_BODY = 48 << 20  # above glibc's largest mmap threshold: freed memory leaves RSS


def _rss_kib(srv):
    return _status_kib(srv.proc.pid, "VmRSS")


def _rss_settles_below(srv, before, timeout):
    """Peak-free RSS growth over `before`, polled until it is within the
    bound or `timeout` passes (the buffer is given back after the response
    went out, so the client cannot wait for that causally)."""
    deadline = time.monotonic() + timeout
    while True:
        growth = _rss_kib(srv) - before
        if growth < RSS_GROWTH_BOUND_KIB or time.monotonic() > deadline:
            return growth
        time.sleep(0.05)


def test_capacity_of_a_large_body_not_kept_for_the_next_request(start_server):
    """A 48 MiB POST followed by the start of a pipelined request: while the
    connection waits for the rest of it (request_timeout, 30 s), the buffer
    does not keep the capacity the body needed."""
    srv = strict_server(start_server)
    before = _rss_kib(srv)
    with srv.connect(timeout=20) as conn:
        conn.send(b"POST /length HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
                  % BIG_BODY)
        piece = b"b" * PIECE
        for _ in range(BIG_BODY // PIECE):
            conn.sock.sendall(piece)
        conn.sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        assert conn.read_response().status == 200
        held = _rss_settles_below(srv, before, timeout=10)
        conn.send(b"Connection: close\r\n\r\n")
        assert conn.read_response().status == 200
    _assert_bounded(held)


def test_rejected_body_buffer_freed_while_lingering(start_server):
    """After a 413 for a chunked body, the server drains what the client
    still sends; the 48 MiB it had buffered is freed before the answer goes
    out, not kept for the drain."""
    srv = strict_server(start_server, {"max_request_body_size": BIG_BODY})
    before = _rss_kib(srv)
    with srv.connect(timeout=20) as conn:
        conn.send(CHUNKED_HEAD + b"%x\r\n" % (BIG_BODY + PIECE))
        piece = b"c" * PIECE
        try:
            for _ in range(BIG_BODY // PIECE + 1):
                conn.sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = conn.read_response()
        held = _rss_kib(srv) - before  # the connection is still open: lingering
    assert response.status == 413
    _assert_bounded(held)


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\rXGET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n",
    CHUNKED_HEAD + b"5\rXhello\r\n0\r\n\r\n",
    CHUNKED_HEAD + b"5;a=b\rXhello\r\n0\r\n\r\n",
    CHUNKED_HEAD + b"5\r\nhello\r\n0\r\n\rXGET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Empty:\rY\nGET /admin HTTP/1.1\r\n"
    b"Host: localhost\r\n\r\n",
], ids=["header-block", "chunk-size", "chunk-extension", "trailers", "empty-value"])
def test_bare_cr_then_any_byte_as_line_end_is_400(srv, data):
    """RFC 9112 §2.2: llhttp 8.1 (non-strict) took CR plus any byte for the
    CRLF ending the header block, a chunk line or the trailers, hiding that
    byte: a smuggled request could follow. One 400, the app not called."""
    expect_error(srv, data, 400)
