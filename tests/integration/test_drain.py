"""The drain on SIGTERM: the listeners close at once (new connections are
refused, so a proxy tries another server), and every request the server
took in before is answered, the last one on each connection with
Connection: close: a request whose body is still arriving, a pipelined one
read with the one before, one waiting for a worker, one sent on an idle
keep-alive connection during shutdown_idle_grace. Idle connections are
closed without a byte. The order of events comes from gate files the app
waits for (/gated-echo on apps:app), never from sleeps."""
import json
import os
import re
import signal
import socket
import time

import pytest

import support


def _wait_for(condition, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


def _gate(tmp_path, name):
    """A gate for /gated-echo: (path, wait_entered, open)."""
    path = str(tmp_path / name)

    def wait_entered():
        _wait_for(lambda: os.path.exists(path + ".entered"), "the app to reach " + name)

    def open_gate():
        open(path, "w").close()

    return path, wait_entered, open_gate


def _assert_last(response, conn):
    assert response.has_token("Connection", "close"), response
    assert conn.wait_closed(20), "the connection stayed open after Connection: close"


def _assert_exits_cleanly(srv):
    assert srv.wait_exit(what="after SIGTERM (drain)") == 0, srv.describe()
    assert "SERVE_RETURNED None" in srv.stdout(), srv.describe()


def _access_records(srv):
    return re.findall(r"pyruvate\.access \S+: (.*)$", srv.stderr(), re.M)


def test_request_body_arriving_during_drain_is_answered_with_close(start_server):
    srv = start_server(options={"access_log": True})
    with srv.connect(timeout=20) as conn:
        conn.send(b"POST /gated-echo/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        support.stop_and_wait_refused(srv)
        conn.send(b"world")
        response = conn.read_response()
        assert (response.status, response.body) == (200, b"helloworld")
        _assert_last(response, conn)
    _assert_exits_cleanly(srv)
    assert any('"POST /gated-echo/upload HTTP/1.1" 200' in r for r in _access_records(srv)), srv.describe()


def test_pipelined_request_read_before_the_stop_is_answered(start_server, tmp_path):
    srv = start_server(workers=1, options={"access_log": True})
    gate, wait_entered, open_gate = _gate(tmp_path, "first")
    with srv.connect(timeout=20) as conn:
        conn.send(support.build_request("GET", "/gated-echo/first?gate=" + gate) +
                  support.build_request("POST", "/gated-echo/second", body=b"2nd"))
        wait_entered()
        support.stop_and_wait_refused(srv)
        open_gate()
        first = conn.read_response()
        assert first.status == 200
        # The second request was sent already: the first response must not
        # promise a close it does not keep.
        assert not first.has_token("Connection", "close"), first
        second = conn.read_response()
        assert (second.status, second.body) == (200, b"2nd")
        _assert_last(second, conn)
    _assert_exits_cleanly(srv)
    records = _access_records(srv)
    assert any('"GET /gated-echo/first' in r and '" 200 ' in r for r in records), records
    assert any('"POST /gated-echo/second HTTP/1.1" 200' in r for r in records), records


def test_queued_request_is_answered(start_server, tmp_path):
    srv = start_server(workers=1)
    gate, wait_entered, open_gate = _gate(tmp_path, "busy")
    with srv.connect(timeout=20) as busy, srv.connect(timeout=20) as queued:
        busy.send(support.build_request("GET", "/gated-echo/busy?gate=" + gate))
        wait_entered()  # the only worker is taken: the next request waits
        queued.send(support.build_request("POST", "/gated-echo/queued", body=b"waited"))
        support.stop_and_wait_refused(srv)
        open_gate()
        for conn, body in ((busy, b""), (queued, b"waited")):
            response = conn.read_response()
            assert (response.status, response.body) == (200, body)
            _assert_last(response, conn)
    _assert_exits_cleanly(srv)


def test_idle_connection_is_closed_without_bytes_while_others_drain(start_server, tmp_path):
    srv = start_server(keepalive=True,
                       options={"shutdown_idle_grace": 0.05})
    gate, wait_entered, open_gate = _gate(tmp_path, "held")
    with srv.connect(timeout=20) as idle, srv.connect(timeout=20) as held:
        assert idle.request("GET", "/gated-echo/before").status == 200
        held.send(support.build_request("GET", "/gated-echo/held?gate=" + gate))
        wait_entered()
        support.stop_and_wait_refused(srv)
        assert idle.wait_closed(20), "the idle connection was not closed"
        assert srv.proc.poll() is None  # closed by the drain, not by the exit
        open_gate()
        response = held.read_response()
        assert response.status == 200
        _assert_last(response, held)
    _assert_exits_cleanly(srv)


def test_request_on_idle_connection_during_grace_is_answered_with_close(start_server):
    # A proxy reusing its cached connection may send a request at the very
    # moment the drain begins: it is answered, not cut off.
    srv = start_server(keepalive=True,
                       options={"shutdown_idle_grace": 60, "shutdown_timeout": 60})
    with srv.connect(timeout=20) as conn:
        assert conn.request("GET", "/gated-echo/before").status == 200
        support.stop_and_wait_refused(srv)
        response = conn.request("POST", "/gated-echo/during", body=b"late")
        assert (response.status, response.body) == (200, b"late")
        _assert_last(response, conn)
    # Nothing is left open: the server does not wait for the grace.
    started = time.monotonic()
    _assert_exits_cleanly(srv)
    assert time.monotonic() - started < 50


def test_clients_connected_before_the_drain_are_answered_when_they_speak(start_server):
    # Connected, first bytes not sent yet when SIGTERM comes (a client
    # between connect() and send(), a proxy's pre-opened connection): the
    # listener's close must not reset them. With TCP_DEFER_ACCEPT the kernel
    # held them outside the backlog, and all 8 got a reset.
    srv = start_server(options={"shutdown_idle_grace": 60, "shutdown_timeout": 60})
    silent = [socket.create_connection(("127.0.0.1", srv.port), timeout=20) for _ in range(8)]
    try:
        support.stop_and_wait_refused(srv)
        for i, sock in enumerate(silent):
            sock.sendall(b"GET /gated-echo/late-%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        for i, sock in enumerate(silent):
            answer = _answer_or_reset(sock)
            assert answer is not None, "connection %d was reset" % i
            assert answer.startswith(b"HTTP/1.1 200 "), (i, answer[:200])
            assert b"Connection: close" in answer, (i, answer[:200])
    finally:
        for sock in silent:
            sock.close()
    _assert_exits_cleanly(srv)


def test_new_connections_are_refused_while_a_request_drains(start_server, tmp_path):
    srv = start_server()
    gate, wait_entered, open_gate = _gate(tmp_path, "long")
    with srv.connect(timeout=20) as conn:
        conn.send(support.build_request("GET", "/gated-echo/long?gate=" + gate))
        wait_entered()
        support.stop_and_wait_refused(srv)
        assert srv.proc.poll() is None
        open_gate()
        response = conn.read_response()
        assert response.status == 200
        _assert_last(response, conn)
    _assert_exits_cleanly(srv)


def test_request_still_incomplete_at_shutdown_timeout_is_answered_503(start_server):
    srv = start_server(
                       options={"access_log": True, "shutdown_timeout": 0.5,
                                "request_timeout": 120})
    with srv.connect(timeout=30) as conn:
        conn.send(b"POST /gated-echo/never HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart")
        srv.proc.send_signal(signal.SIGTERM)
        response = conn.read_response()
        assert response.status == 503
        assert conn.wait_closed(20)
    _assert_exits_cleanly(srv)
    assert any('"POST /gated-echo/never HTTP/1.1" 503' in r for r in _access_records(srv)), srv.describe()


def _start_for(kind, start_server, procs, tmp_path, options):
    """A server on TCP or on a Unix socket: (process, connect)."""
    if kind == "tcp":
        srv = start_server(workers=2, options=options)
        return srv, lambda: socket.create_connection((srv.host, srv.port), timeout=30)
    path = str(tmp_path / "drain.sock")
    proc = procs.start([support.SERVER_PYTHON, str(support.SERVE_APP), "apps:app", path, "2",
                        json.dumps(options)])
    proc.wait_unix(path)

    def connect():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return sock
    return proc, connect


def _answer_or_reset(sock):
    """What came back on sock until it closed: the bytes, or None after a
    reset (or nothing at all)."""
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        return None
    finally:
        sock.close()
    return data if data.startswith(b"HTTP/1.1 ") else None


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_connections_taken_in_as_the_drain_begins_are_answered_not_reset(
        start_server, procs, tmp_path, kind):
    # New connections arrive all along while SIGTERM starts the drain, and
    # an app keeps the GIL in long spans, so the serving thread takes long
    # to get it back. Each connection the kernel took in gets an answer:
    # none is reset by the listener's close (a proxy never retries a POST it
    # sent). A Unix socket's path is gone before its backlog is emptied;
    # TCP has no such step, and the one connection that may come between the
    # last accept() and close() is still reset.
    srv, connect = _start_for(kind, start_server, procs, tmp_path,
                              {"shutdown_timeout": 60, "max_queue_size": 1000})
    gate, wait_entered, open_gate = _gate(tmp_path, "gil")
    holder = connect()
    holder.sendall(support.build_request("GET", "/hold-gil?gate=" + gate,
                                         headers=[("Connection", "close")]))
    wait_entered()
    request = support.build_request("POST", "/echo", headers=[("Connection", "close")],
                                    body=b"sent")
    taken_in = []
    reset_connecting = 0
    deadline = time.monotonic() + 30
    try:
        while len(taken_in) < 2000 and time.monotonic() < deadline:
            if len(taken_in) == 20:
                srv.proc.send_signal(signal.SIGTERM)
            try:
                sock = connect()
            except (ConnectionRefusedError, FileNotFoundError):
                break
            except ConnectionResetError:
                # That one connection: taken in by the kernel and reset by
                # the close before this (loaded) thread's connect() returned.
                reset_connecting += 1
                break
            sock.sendall(request)
            taken_in.append(sock)
            time.sleep(0.002)  # pacing only: a few hundred connections in all
        else:
            pytest.fail("the listener was still open after %d connections" % len(taken_in))
    finally:
        open_gate()
    assert len(taken_in) > 20, "refused before SIGTERM"
    answers = [_answer_or_reset(sock) for sock in taken_in]
    reset = answers.count(None) + reset_connecting
    assert reset <= (1 if kind == "tcp" else 0), (
        "%d of %d connections were reset" % (reset, len(taken_in)))
    assert _answer_or_reset(holder).endswith(b"held")
    assert srv.wait_exit(what="after SIGTERM (drain)") == 0, srv.describe()


def test_requests_still_queued_at_shutdown_timeout_are_answered_503(start_server, tmp_path):
    # The only worker is stuck in the app past the shutdown timeout: the
    # complete requests waiting for it get a 503 to retry elsewhere, and an
    # access record, not a silent close (behind nginx: a 502).
    srv = start_server(workers=1, options={"access_log": True, "shutdown_timeout": 1,
                                           "max_queue_size": 10})
    gate, wait_entered, open_gate = _gate(tmp_path, "stuck")
    busy = srv.connect(timeout=30)
    queued = [srv.connect(timeout=30) for _ in range(3)]
    try:
        busy.send(support.build_request("GET", "/gated-echo/stuck?gate=" + gate))
        wait_entered()
        for i, conn in enumerate(queued):
            conn.send(support.build_request("POST", "/gated-echo/queued-%d" % i, body=b"late"))
        srv.proc.send_signal(signal.SIGTERM)
        for conn in queued:
            response = conn.read_response()
            assert response.status == 503, response
            assert response.header("Retry-After"), response
            assert response.has_token("Connection", "close"), response
            assert conn.wait_closed(20)
        assert srv.wait_exit(what="after SIGTERM (drain)") == 0, srv.describe()
    finally:
        open_gate()
        busy.close()
        for conn in queued:
            conn.close()
    records = _access_records(srv)
    for i in range(3):
        assert any('"POST /gated-echo/queued-%d HTTP/1.1" 503' % i in r for r in records), \
            srv.describe()


def test_stray_empty_line_on_an_idle_connection_neither_408_nor_holds_the_drain(start_server):
    """RFC 9112 §2.2: an empty line before a request line is ignored. Sent on
    its own after an answer, it leaves the connection idle: the drain closes
    it without a byte (it used to wait for request_timeout and answer 408)."""
    srv = start_server(keepalive=True, options={"request_timeout": 30, "shutdown_timeout": 60})
    with srv.connect(timeout=20) as conn:
        assert conn.request("GET", "/hello").status == 200
        time.sleep(0.1)  # the empty line comes in a read of its own (not an assertion)
        conn.send(b"\r\n")
        time.sleep(0.1)
        support.stop_and_wait_refused(srv)
        assert conn.wait_closed(20), "the idle connection was not closed"
    _assert_exits_cleanly(srv)
