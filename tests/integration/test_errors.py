"""Application errors, and close() on the application's iterable."""
import json
import time

import pytest

import support

HELLO = b"Hello, World!"


def _closed_count(srv):
    return json.loads(srv.request("GET", "/closed-count").body)["count"]


def _wait_closed_count(srv, expected, timeout=10.0):
    """Poll (bounded) until close() was called `expected` times."""
    deadline = time.monotonic() + timeout
    count = _closed_count(srv)
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        count = _closed_count(srv)
    return count


def _assert_server_alive(srv):
    response = srv.request("GET", "/hello")
    assert response.status == 200
    assert response.body == HELLO


def test_raise_before_start_response_gives_500(server):
    response = server.request("GET", "/raise-before-start")
    assert response.status == 500
    _assert_server_alive(server)
    _assert_server_alive(server)


def test_raise_before_start_response_logged(server):
    assert server.request("GET", "/raise-before-start").status == 500
    _assert_server_alive(server)
    assert "intentional error before start_response" in server.stderr()


def test_raise_before_start_response_on_keepalive_connection(start_server):
    srv = start_server(keepalive=True)
    with srv.connect() as conn:
        response = conn.request("GET", "/raise-before-start")
        assert response.status == 500
        # Either the connection is closed cleanly, or it can be reused.
        if not conn.eof and not response.has_token("Connection", "close"):
            follow = conn.request("GET", "/hello")
            assert follow.status == 200
            assert follow.body == HELLO
    _assert_server_alive(srv)


def test_raise_during_iteration_truncates_response(start_server):
    # The app declares Content-Length: 30, yields 10 bytes, then raises.
    srv = start_server(keepalive=True)
    with srv.connect() as conn:
        conn.send(support.build_request("GET", "/raise-in-iteration"))
        try:
            response = conn.read_response()
        except support.IncompleteResponse as exc:
            # Headers and the first chunk were sent, then the connection was
            # closed: the client can tell the response is incomplete.
            assert exc.partial.startswith(b"HTTP/1.1 200")
            assert exc.partial.endswith(b"\r\n\r\n0123456789")
        else:
            # Acceptable only if nothing was sent yet and a 500 replaced it.
            assert response.status == 500, (
                "complete response despite error during iteration: %r" % response)
    _assert_server_alive(srv)


def test_raise_during_chunked_stream_not_terminated(start_server):
    srv = start_server(keepalive=True, options={"chunked_transfer": True})
    with srv.connect() as conn:
        conn.send(support.build_request("GET", "/raise-in-stream"))
        try:
            response = conn.read_response()
        except support.IncompleteResponse as exc:
            assert exc.partial.startswith(b"HTTP/1.1 200")
            assert b"first-chunk\n" in exc.partial
            assert b"never" not in exc.partial
            assert b"500" not in exc.partial.split(b"\r\n\r\n", 1)[1]
        else:
            assert response.status == 500, (
                "stream terminated normally despite error: %r" % response)
    _assert_server_alive(srv)


def test_raise_during_unframed_stream_closes_without_junk(server):
    with server.connect() as conn:
        conn.send(support.build_request("GET", "/raise-in-stream"))
        try:
            response = conn.read_response()
        except support.IncompleteResponse as exc:
            # chunked anyway and cut short: fine, as long as nothing else
            # was appended.
            assert b"never" not in exc.partial
            assert exc.partial.count(b"HTTP/1.") == 1
        else:
            if response.status != 500:
                assert response.status == 200
                assert not response.chunked, "chunked stream terminated normally"
                # Close-delimited body: it must be a prefix of what the app
                # produced, with nothing (e.g. an error response) appended.
                assert b"first-chunk\nsecond-chunk\n".startswith(response.body), response
                assert conn.eof
    _assert_server_alive(server)


def test_close_called_on_result(server):
    assert _closed_count(server) == 0
    response = server.request("GET", "/closing")
    assert response.status == 200
    assert response.body == b"closing iterable"
    assert _wait_closed_count(server, 1) == 1
    response = server.request("GET", "/closing")
    assert response.body == b"closing iterable"
    assert _wait_closed_count(server, 2) == 2


def test_close_called_when_iteration_raises(server):
    assert _closed_count(server) == 0
    with server.connect() as conn:
        conn.send(support.build_request("GET", "/raise-in-iteration"))
        try:
            conn.read_response()
        except support.IncompleteResponse:
            pass
    assert _wait_closed_count(server, 1) == 1


def test_close_called_when_client_disconnects_early(server):
    assert _closed_count(server) == 0
    with server.connect() as conn:
        conn.send(support.build_request("GET", "/big-closing?chunks=512"))  # 32 MiB
        conn._read_line()  # status line only, then drop the connection
    assert _wait_closed_count(server, 1) == 1
    _assert_server_alive(server)



@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nNo colon header\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
])
def test_malformed_request_rejected(server, request_bytes):
    with server.connect() as conn:
        conn.send(request_bytes)
        try:
            response = conn.read_response()
        except support.IncompleteResponse as exc:
            assert exc.partial == b"", exc  # closed without a response: ok
        else:
            assert response.status == 400, response
    _assert_server_alive(server)
