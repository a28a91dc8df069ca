"""Overload and hostile clients: the acceptor decides, before any worker is
involved, and the server keeps answering normal requests throughout."""
import socket
import threading
import time

import pytest

import support

SLOW = "/slow?ms=%d"


def _get(port, path, timeout=10):
    with support.RawConnection("127.0.0.1", port, timeout=timeout) as conn:
        return conn.request("GET", path)


def _raw(port, data, timeout=10):
    """Sends data, returns everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def _concurrently(count, function):
    results = [None] * count
    def run(index):
        try:
            results[index] = function(index)
        except Exception as error:  # recorded for the assertion
            results[index] = error
    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_full_queue_answers_503_with_retry_after(start_server):
    """When every worker is busy and the queue of complete requests
    is full, the acceptor answers 503 with Retry-After at once instead of
    letting latency grow without bound. A burst at an idle worker is not
    refused because that worker has not woken up yet: of four requests
    sent one after another (the acceptor takes them in that order), the
    first runs, the second waits, the others get 503."""
    srv = start_server(workers=1, options={"max_queue_size": 1})
    conns = []
    try:
        for _ in range(4):
            conn = support.RawConnection("127.0.0.1", srv.port, timeout=30)
            conns.append(conn)
            conn.send(support.build_request("GET", SLOW % 1500,
                                            headers=[("Connection", "close")]))
        responses = [conn.read_response() for conn in conns]
    finally:
        for conn in conns:
            conn.close()
    assert [r.status for r in responses] == [200, 200, 503, 503], responses
    assert responses[2].header("Retry-After") == "1"
    assert _get(srv.port, SLOW % 1).status == 200


def test_requests_for_woken_workers_are_not_refused_as_queue_full(start_server, tmp_path):
    """Workers woken for a request wait for the GIL (held by the app here)
    before they take it; those requests are theirs, not queued: with idle
    workers left, max_queue_size=1 refuses none of them."""
    srv = start_server(workers=4, options={"max_queue_size": 1})
    gate = tmp_path / "gate"
    holder = srv.connect(timeout=60)
    others = []
    try:
        holder.send(support.build_request("GET", "/hold-gil?ms=500&gate=%s" % gate))
        deadline = time.monotonic() + 30
        while not (tmp_path / "gate.entered").exists():
            assert time.monotonic() < deadline, "the app never started"
            time.sleep(0.01)
        for _ in range(3):
            conn = srv.connect(timeout=60)
            others.append(conn)
            conn.send(support.build_request("GET", "/hello"))
            time.sleep(0.02)  # paces the requests; no assertion depends on it
        gate.touch()
        assert holder.read_response().status == 200
        statuses = [conn.read_response().status for conn in others]
        assert statuses == [200, 200, 200], statuses
    finally:
        holder.close()
        for conn in others:
            conn.close()


def _close_request_statuses(port, requests):
    """Sends `requests` GETs of /hello, each on a new connection with
    Connection: close; returns their statuses, or the reason one was not a
    single well-formed response."""
    statuses = []
    for _ in range(requests):
        data = _raw(port, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/1.1 ") else b"none"
        if status == b"200" and body != b"Hello, World!":
            return "body %r" % data
        if data.count(b"HTTP/1.1 ") != 1:
            return "responses %r" % data
        statuses.append(int(status) if status.isdigit() else data)
    return statuses


def test_a_flood_at_a_small_queue_gets_each_request_answered_once(start_server):
    """Many clients on new connections at a small queue: every request gets
    one answer, 200 or 503, and the server goes on. Workers that were done
    with a request and waiting for their client's next one were counted
    twice as free, so the queue took more requests than it holds, and one
    overwrote another that a worker then answered twice, a connection
    already closed (found by an outside attack under ASan)."""
    srv = start_server(workers=4, options={"max_queue_size": 8})
    results = _concurrently(40, lambda _: _close_request_statuses(srv.port, 50))
    for result in results:
        assert isinstance(result, list), result
        assert set(result) <= {200, 503}, result
    assert _get(srv.port, "/hello").status == 200


def test_queue_monitor_warns(start_server):
    """Pyruvate's qmon_warn_threshold: a warning once requests wait."""
    srv = start_server(workers=1, options={"qmon_warn_threshold": 1})
    results = _concurrently(3, lambda i: _get(srv.port, SLOW % 300))
    assert [r.status for r in results] == [200, 200, 200]
    assert "requests are waiting for a worker" in srv.stderr()


def test_queue_wait_is_in_the_environ(server):
    """Pyruvate.queue_wait, the seconds a request waited for a
    worker, is in the environ as a float."""
    response = server.request("GET", "/queue-wait")
    assert response.status == 200
    kind, value = response.body.decode().split()
    assert kind == "float" and 0 <= float(value) < 60


def test_max_connections_answers_503_and_recovers(start_server):
    """Past max_connections, a new connection gets a fast 503 and
    is closed; once others close, connections are served again."""
    srv = start_server(options={"max_connections": 3})
    held = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(3)]
    try:
        for sock in held:  # a first byte: each is a client being read
            sock.sendall(b"G")
        time.sleep(0.3)  # let the acceptor take them (ordering, not timing)
        answer = _raw(srv.port, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
        assert b"Retry-After: 1" in answer
    finally:
        for sock in held:
            sock.close()
    for _ in range(50):  # the acceptor notices the closes on its next wake
        if _get(srv.port, "/hello").status == 200:
            break
        time.sleep(0.1)
    assert _get(srv.port, "/hello").status == 200


def test_out_of_descriptors_does_not_kill_the_acceptor(start_server, monkeypatch):
    """EMFILE from accept() neither kills the acceptor nor makes it
    spin; once descriptors are free again, requests are answered.
    The application takes every free descriptor (connections alone never
    get there: max_connections is sized under the limit), and a kept
    connection with a request begun (so never closed as idle) frees them."""
    monkeypatch.setenv("PYRUVATE_TEST_NOFILE", "48")
    srv = start_server(workers=1, options={"max_connections": 1000})
    held = []
    with support.RawConnection("127.0.0.1", srv.port, timeout=30) as kept:
        hoarded = kept.request("GET", "/hoard")
        assert hoarded.status == 200 and int(hoarded.body) > 0
        release = support.build_request("GET", "/hoard-release")
        kept.send(release[:20])
        try:
            for _ in range(20):
                sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                held.append(sock)
            deadline = time.monotonic() + 30
            while "out of file descriptors" not in srv.stderr() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "cannot accept: out of file descriptors" in srv.stderr()
            assert srv.proc.poll() is None
            kept.send(release[20:])
            assert kept.read_response().status == 200
        finally:
            for sock in held:
                sock.close()
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        try:
            status = _get(srv.port, "/hello", timeout=5).status
        except OSError:
            status = None
        if status == 200:
            break
        time.sleep(0.2)
    assert status == 200


def test_slow_clients_time_out_and_others_are_served(start_server):
    """Slowloris: clients trickling their headers hit the request
    timeout (408 and close) while a normal request is answered meanwhile."""
    srv = start_server(options={"request_timeout": 1})
    slow = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(20)]
    try:
        for sock in slow:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHo")
        assert _get(srv.port, "/hello").status == 200
        answers = []
        for sock in slow:
            data = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            answers.append(data)
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers[:2]
    finally:
        for sock in slow:
            sock.close()


def test_silent_connections_are_closed_after_keepalive_timeout(start_server):
    """Connections that never send a byte cost no worker and are closed
    after keepalive_timeout, counted from their last activity."""
    srv = start_server(options={"keepalive_timeout": 1})
    silent = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(50)]
    try:
        assert _get(srv.port, "/hello").status == 200
        for sock in silent:
            assert sock.recv(1) == b""  # closed by the server, without a response
    finally:
        for sock in silent:
            sock.close()


def test_idle_keepalive_connection_is_served_after_going_quiet(start_server):
    """A keep-alive connection quiet for more than a second moves to the idle
    set; its next request is still answered on the same connection."""
    srv = start_server()
    with support.RawConnection("127.0.0.1", srv.port, timeout=10) as conn:
        assert conn.request("GET", "/hello").status == 200
        time.sleep(1.6)  # past the idle threshold (ordering, not a timing assertion)
        assert conn.request("GET", "/hello").status == 200
        assert conn.request("GET", "/hello").status == 200


def test_endless_header_whitespace_is_431(start_server):
    """A header block that never ends (whitespace llhttp does not count as
    header bytes) is cut off at the acceptor's bound: 431 and close."""
    srv = start_server(options={"max_request_header_size": 1024, "max_request_line_size": 256})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX:")
        answer = b""
        try:
            for _ in range(64):
                sock.sendall(b" " * 1024)
        except OSError:
            pass
        while True:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert _get(srv.port, "/hello").status == 200


def test_request_split_after_a_pipelined_one_is_completed_later(start_server):
    """A complete request followed by the start of the next: the worker
    answers the first and hands the connection back with the partial bytes,
    which the acceptor completes when the rest arrives."""
    srv = start_server()
    with support.RawConnection("127.0.0.1", srv.port, timeout=10) as conn:
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHo")
        assert conn.read_response().status == 200
        time.sleep(0.1)
        conn.send(b"st: x\r\n\r\n")
        assert conn.read_response().status == 200


def test_timeout_and_rejections_are_access_logged(start_server):
    """The responses the acceptor sends itself (408 here) get an access-log
    record too."""
    srv = start_server(options={"request_timeout": 1, "access_log": True})
    answer = _raw(srv.port, b"GET /hello HTTP/1.1\r\nHo")
    assert answer.startswith(b"HTTP/1.1 408 ")
    deadline = time.monotonic() + 5
    while '" 408 ' not in srv.stderr() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert '"-" 408 -' in srv.stderr() or '" 408 ' in srv.stderr(), srv.stderr()


def test_client_resets_mid_request_and_mid_response(start_server):
    """Client faults: a reset while the request is arriving and while a big
    response is being written cost the server nothing lasting."""
    srv = start_server()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # RST
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    body = b"x" * (4 << 20)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    sock.recv(1000)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    assert _get(srv.port, "/hello").status == 200


def test_blocked_app_does_not_block_shutdown(start_server):
    """An app that never returns holds its worker, but SIGTERM still
    ends serve() after shutdown_timeout, and a warning says why."""
    srv = start_server(workers=2, options={"shutdown_timeout": 1})
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    sock.sendall(b"GET /slow?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 5
    while b'"entered": true' not in _get(srv.port, "/slow-entered").body and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    code = srv.stop()
    sock.close()
    assert code == 0, srv.describe()
    assert "workers still busy after the shutdown timeout" in srv.stderr()
