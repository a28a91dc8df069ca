"""Clients that stop reading do not hold workers: a worker whose client
takes nothing for a moment parks the response (connection, iterator, the
chunk or file offset being sent, the framing) in a poll thread and goes back
to the pool; a worker resumes it when the socket is writable again, drops it
after send_timeout, and shutdown finishes or drops it, calling the result's
close() exactly once.  The clients here shrink their receive buffer and
never read (or read only later).  Apps in apps.py."""
import json
import os
import re
import socket
import time

import pytest

import support
from apps import HELLO

MIB = 1 << 20


def small_window_connection(server):
    """A RawConnection whose receive buffer is small from the start (set
    before connect, so the window is negotiated with it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(15)
    sock.connect((server.host, server.port))
    conn = support.RawConnection.__new__(support.RawConnection)
    conn.host, conn.port, conn.sock = server.host, server.port, sock
    conn._buf, conn._consumed, conn.eof = bytearray(), bytearray(), False
    return conn


def stalled_client(server, path):
    """A connection with a small receive buffer that sends one request and
    reads only the start of the response (proof that a worker took it on),
    then nothing more."""
    sock = small_window_connection(server).sock
    sock.sendall(support.build_request("GET", path))
    head = sock.recv(12)
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def closed_tags(server):
    response = server.request("GET", "/closed")
    return json.loads(response.body)["closed"]


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def hello_seconds(server):
    start = time.monotonic()
    with server.connect(timeout=15) as conn:
        response = conn.request("GET", "/hello")
    assert (response.status, response.body) == (200, HELLO), response
    return time.monotonic() - start


@pytest.mark.parametrize("route", ["/big?mib=32&tag=", "/big-file?mib=32&tag="])
def test_clients_that_never_read_do_not_hold_the_workers(start_server, route):
    """4 workers, 8 clients that never read a 32 MiB response: every one of
    them gets its response started (so no worker is left holding one), a
    normal request on a new connection is answered at once, and the
    server's memory does not grow with the stalled responses."""
    server = start_server(workers=4)
    hello_seconds(server)
    rss_before = rss_kib(server.proc.pid)
    clients = [stalled_client(server, route + "c%d" % i) for i in range(8)]
    try:
        took = hello_seconds(server)
        # Generous for a loaded machine; the point is "not send_timeout (60 s)".
        assert took < 10, took
        grown = rss_kib(server.proc.pid) - rss_before
        assert grown < 64 * 1024, "RSS grew by %d KiB" % grown
    finally:
        for sock in clients:
            sock.close()
    if "file" not in route:
        # The clients left: each parked response is dropped, close() once.
        assert wait_until(lambda: len(closed_tags(server)) >= 8), closed_tags(server)
        tags = closed_tags(server)
        assert sorted(tags) == sorted("c%d" % i for i in range(8)), tags


@pytest.mark.parametrize("path", ["/big?mib=4&cl=1", "/big?mib=4&cl=0", "/big-file?mib=4"])
def test_parked_response_resumes_complete_and_framed(start_server, path):
    """One worker: a client that stops reading must not keep the worker
    (another client is answered meanwhile), and once it reads again it gets
    its whole response, framed so that the next request on the connection
    is answered normally."""
    server = start_server(workers=1)
    with small_window_connection(server) as slow:
        slow.send(support.build_request("GET", path))
        assert slow.sock.recv(12).startswith(b"HTTP/1.1 200")
        slow._buf += b"HTTP/1.1 200"
        hello_seconds(server)  # only possible while the response is parked
        response = slow.read_response()
        assert response.status == 200
        assert len(response.body) == 4 * MIB, len(response.body)
        assert set(response.body) == {ord("x")} or set(response.body) == {ord("y")}
        nxt = slow.request("GET", "/hello")
        assert (nxt.status, nxt.body) == (200, HELLO), nxt


def test_parked_response_dropped_after_send_timeout(start_server):
    """send_timeout bounds how long a parked response waits: then the
    connection is closed and close() runs once, without any worker having
    waited for it."""
    server = start_server(workers=1, options={"send_timeout": 1})
    sock = stalled_client(server, "/big?mib=32&tag=timeout")
    try:
        hello_seconds(server)
        assert wait_until(lambda: "timeout" in closed_tags(server)), closed_tags(server)
        assert closed_tags(server).count("timeout") == 1
    finally:
        sock.close()


def test_shutdown_drops_parked_responses_once(start_server):
    """SIGTERM with parked responses: the server stops within
    shutdown_timeout and calls each result's close() exactly once."""
    server = start_server(workers=2, options={"shutdown_timeout": 1})
    clients = [stalled_client(server, "/big?mib=32&tag=shut%d" % i) for i in range(3)]
    try:
        hello_seconds(server)
        assert server.stop() == 0
    finally:
        for sock in clients:
            sock.close()
    for i in range(3):
        assert server.stderr().count("apps: closed shut%d\n" % i) == 1, server.stderr()


def test_parked_response_dropped_at_shutdown_is_logged(start_server):
    """A parked response the shutdown timeout cuts off leaves an access
    record with its status and the bytes sent, like one that send_timeout
    drops (every answer is in the access log)."""
    server = start_server(workers=1, options={"shutdown_timeout": 1, "send_timeout": 120,
                                              "access_log": True})
    sock = stalled_client(server, "/big?mib=32&tag=dropped")
    try:
        hello_seconds(server)  # the only worker is free: the response is parked
        assert server.stop() == 0
    finally:
        sock.close()
    records = re.findall(r'"GET /big\?mib=32&tag=dropped HTTP/1.1" 200 (\d+)', server.stderr())
    assert len(records) == 1, server.stderr()
    assert 0 < int(records[0]) < 32 * MIB, records


def test_second_signal_cuts_the_wait_for_parked_responses(start_server):
    """shutdown_timeout 60 with a parked response: a second SIGTERM stops
    the wait at once; the response is dropped and closed once."""
    import signal

    server = start_server(workers=2, options={"shutdown_timeout": 60})
    sock = stalled_client(server, "/big?mib=32&tag=second")
    try:
        hello_seconds(server)
        server.proc.send_signal(signal.SIGTERM)
        assert wait_until(lambda: "pyruvate stopping" in server.stderr())
        assert server.stop(signal.SIGTERM, timeout=20) == 0
    finally:
        sock.close()
    assert server.stderr().count("apps: closed second\n") == 1, server.stderr()


def read_in_bursts(conn, limit, burst=32, pause=0.05):
    """Makes conn read like a slow client: a pause after every `burst`
    receives (each a pause long enough for the server to park the
    response), and an error past `limit` bytes, so that a body sent more
    than once cannot keep the test reading."""
    fill, count = conn._fill, [0, 0]

    def slow_fill():
        count[0] += 1
        if count[0] % burst == 0:
            time.sleep(pause)
        before = len(conn._buf)
        more = fill()
        count[1] += len(conn._buf) - before
        assert count[1] <= limit, "more than %d bytes received" % limit
        return more

    conn._fill = slow_fill


FILE_MIB = 4
FILE_BYTES = FILE_MIB * MIB


@pytest.mark.parametrize("query, version, prefix, framing", [
    ("", "HTTP/1.1", b"", "length"),
    ("write=HEADER", "HTTP/1.1", b"HEADER", "chunked"),
    ("write=HEADER", "HTTP/1.0", b"HEADER", "close"),
    ("cl=%d" % (FILE_BYTES + 6) + "&write=HEADER", "HTTP/1.1", b"HEADER", "length"),
    ("cl=%d" % (3 * FILE_BYTES), "HTTP/1.1", b"", "short"),
], ids=["file-length", "write-then-chunked", "write-then-close", "app-length", "app-length-3x"])
def test_parked_file_goes_out_exactly_once(start_server, query, version, prefix, framing):
    """A file response parked again and again by a client that reads in
    bursts goes out exactly once, whatever its framing, and no warning
    claims the app sent more than its Content-Length; its access record is
    written once."""
    server = start_server(workers=1, options={"access_log": True})
    with small_window_connection(server) as slow:
        slow.send(support.build_request("GET", "/big-file?mib=%d&%s" % (FILE_MIB, query),
                                        version=version))
        assert slow.sock.recv(12).startswith(b"HTTP/1.1 200")
        slow._buf += b"HTTP/1.1 200"
        hello_seconds(server)  # only possible while the response is parked
        read_in_bursts(slow, limit=2 * FILE_BYTES)
        if framing == "short":
            # Fewer bytes than the app's Content-Length: the connection ends.
            head, _, body = slow.read_available().partition(b"\r\n\r\n")
            assert b"Content-Length: %d" % (3 * FILE_BYTES) in head, head
        else:
            response = slow.read_response()
            assert response.status == 200
            assert response.chunked == (framing == "chunked")
            body = response.body
        assert len(body) == len(prefix) + FILE_BYTES, len(body)
        assert body[:len(prefix)] == prefix and set(body[len(prefix):]) == {ord("y")}
        if framing in ("close", "short"):
            assert slow.wait_closed()
        else:
            nxt = slow.request("GET", "/hello")
            assert (nxt.status, nxt.body) == (200, HELLO), nxt
    assert "more than its Content-Length" not in server.stderr(), server.stderr()[-2000:]
    # Records come out in order: once the last request's is there, all are.
    assert server.request("GET", "/hello?last").status == 200
    assert wait_until(lambda: "GET /hello?last" in server.stderr()), server.stderr()[-2000:]
    assert server.stderr().count("GET /big-file") == 1, server.stderr()[-2000:]


def test_resumed_chunks_are_released(start_server):
    """A generator's chunks sent to a client that reads in bursts are parked
    and resumed many times; once the response is over the server holds no
    reference to them (one chunk per resume was kept before)."""
    server = start_server(workers=1)
    refcount = lambda: json.loads(server.request("GET", "/block-refcount?block=1").body)["refcount"]
    assert server.request("GET", "/big?mib=1&block=1").status == 200  # makes the block
    baseline = refcount()
    with small_window_connection(server) as slow:
        slow.send(support.build_request("GET", "/big?mib=8&block=1"))
        read_in_bursts(slow, limit=9 * MIB, burst=8)
        response = slow.read_response()
        assert response.status == 200 and len(response.body) == 8 * MIB
    assert wait_until(lambda: refcount() == baseline), (refcount(), baseline)


def test_failed_write_sends_nothing_more(start_server):
    """write() to a client that took nothing for send_timeout fails; what
    it had not sent then is not sent later, when the client reads again:
    the body ends with what was on its way, and the connection closes."""
    server = start_server(workers=1, options={"send_timeout": 1})
    with small_window_connection(server) as slow:
        slow.send(support.build_request("GET", "/write-fails"))
        assert slow.sock.recv(12).startswith(b"HTTP/1.1 200")
        assert wait_until(lambda: "write failed" in closed_tags(server)), closed_tags(server)
        received = 12 + len(slow.read_available())
        assert slow.eof
    assert received < 16 * MIB, received


def test_full_park_set_costs_a_worker_only_briefly(start_server):
    """Clients that never read a response whose chunk is one 32 MiB object
    shared by all of them fill the park set's byte budget (256 MiB) with 7
    connections (each counts the chunk and its head buffer). Two more such
    clients find the set full: the worker waits for each only a second
    without progress, then drop them (logged), so a normal request is
    answered long before send_timeout while the parked clients keep their
    connections."""
    # One worker: each response is parked before the next request is taken.
    server = start_server(workers=1, options={"send_timeout": 60})
    parked = [stalled_client(server, "/big?mib=64&block=32&tag=parked%d" % i) for i in range(7)]
    extra = [stalled_client(server, "/big?mib=64&block=32&tag=extra%d" % i) for i in range(2)]
    try:
        took = hello_seconds(server)
        # The dropped clients' workers are free again well before send_timeout (60 s).
        assert took < 30, took
        assert wait_until(lambda: len(closed_tags(server)) >= 2, timeout=30), closed_tags(server)
        assert sorted(closed_tags(server)) == ["extra0", "extra1"], closed_tags(server)
        # Log records reach stderr through serve()'s thread: wait for them.
        assert wait_until(lambda: server.stderr().count("connection dropped") == 2), \
            server.stderr()[-3000:]
        for sock in extra:
            sock.settimeout(15)
            while sock.recv(1 << 20):
                pass  # the dropped connections end
    finally:
        for sock in parked + extra:
            sock.close()
