"""Keep-alive connections handed from one request to the next without the acceptor.

An answered connection waits a moment in a set every worker looks at: the
first free worker reads the client's next request itself (a worker with
nothing else to do waits for it while another worker is idle); after that
moment, or while every worker runs an application, the acceptor takes it
back. Whichever of them reads the next request, the answers and the
timeouts must be the same:
these tests send the next request at once, so that it often reaches the
worker, and check what the client sees.
"""
import os
import socket
import threading
import time

import support

ROUNDS = 30


def _echo(body, close=False):
    headers = [("Connection", "close")] if close else None
    return support.build_request("POST", "/echo", headers=headers, body=body)


def test_pipelined_requests_read_by_the_worker_are_answered_in_order(start_server):
    srv = start_server(keepalive=True)
    with srv.connect() as conn:
        for index in range(ROUNDS):
            first = conn.request("POST", "/echo", body=b"first %d" % index)
            assert first.body == b"first %d" % index
            # Sent as soon as the answer is read: two requests in one write.
            conn.send(_echo(b"second %d" % index) + _echo(b"third %d" % index))
            assert conn.read_response().body == b"second %d" % index
            assert conn.read_response().body == b"third %d" % index


def test_request_split_between_worker_and_acceptor_is_parsed_once(start_server):
    srv = start_server(keepalive=True)
    with srv.connect() as conn:
        for index in range(ROUNDS):
            assert conn.request("GET", "/hello").status == 200
            whole = _echo(b"body %02d of the split request" % index)
            cut = 20 + index % (len(whole) - 20)
            conn.send(whole[:cut])  # at once: the worker may still hold it
            threading.Event().wait(0.02)  # an order of events, not a timing
            conn.send(whole[cut:])
            response = conn.read_response()
            assert response.status == 200, response
            assert response.body == b"body %02d of the split request" % index
        # Exactly one answer per request: the next one is this request's.
        assert conn.request("POST", "/echo", body=b"last").body == b"last"


def test_keepalive_timeout_applies_to_a_connection_the_worker_kept(start_server):
    srv = start_server(keepalive=True, options={"keepalive_timeout": 1})
    with srv.connect() as conn:
        for index in range(ROUNDS):
            assert conn.request("POST", "/echo", body=b"%d" % index).status == 200
        assert conn.wait_closed(timeout=15), "idle connection not closed"


def test_request_timeout_applies_to_a_request_begun_after_a_quick_answer(start_server):
    srv = start_server(keepalive=True, options={"request_timeout": 1})
    with srv.connect() as conn:
        for _ in range(ROUNDS):
            assert conn.request("GET", "/hello").status == 200
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # never finished
        response = conn.read_response()
        assert response.status == 408, response
        assert conn.wait_closed(timeout=15)


def test_connections_answered_together_get_their_own_answers(start_server):
    srv = start_server(keepalive=True, workers=2)
    conns = [srv.connect() for _ in range(24)]
    try:
        for index in range(ROUNDS):
            for number, conn in enumerate(conns):
                conn.send(_echo(b"conn %d request %d" % (number, index)))
            for number, conn in enumerate(conns):
                response = conn.read_response()
                assert response.status == 200, response
                assert response.body == b"conn %d request %d" % (number, index)
    finally:
        for conn in conns:
            conn.close()


def test_client_that_closes_after_its_answer_is_closed(start_server):
    srv = start_server(keepalive=True)
    for index in range(ROUNDS):
        with srv.connect() as conn:
            assert conn.request("POST", "/echo", body=b"%d" % index).status == 200
            conn.sock.shutdown(socket.SHUT_WR)
            assert conn.wait_closed(timeout=15)
    with srv.connect() as conn:
        assert conn.request("GET", "/hello").status == 200


def test_next_request_is_not_kept_behind_another_clients_slow_request(start_server, tmp_path):
    """A worker that answered A and then took C's slow request must not keep
    A's connection meanwhile: A's next request goes to the free worker."""
    srv = start_server(keepalive=True, workers=2)
    gate = str(tmp_path / "slow")
    with srv.connect(timeout=30) as quick, srv.connect(timeout=30) as slow:
        # Sent together: one worker may answer A and then take C from the queue.
        quick.send(support.build_request("GET", "/hello"))
        slow.send(support.build_request("GET", "/gated-echo/slow?gate=" + gate))
        assert quick.read_response().status == 200
        deadline = time.monotonic() + 30
        while not os.path.exists(gate + ".entered") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.path.exists(gate + ".entered"), "the slow request never reached the app"
        try:
            for _ in range(5):
                response = quick.request("GET", "/hello")
                assert response.status == 200, response
        finally:
            open(gate, "w").close()
        assert slow.read_response().status == 200


def _wait_entered(gate):
    deadline = time.monotonic() + 30
    while not os.path.exists(gate + ".entered") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.path.exists(gate + ".entered"), "the gated request never reached the app"


def _gated(gate):
    return support.build_request("GET", "/gated-echo/x?gate=" + gate)


def test_next_request_sent_while_every_worker_is_busy_goes_to_the_first_free_one(
        start_server, tmp_path):
    srv = start_server(keepalive=True, workers=2)
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    with srv.connect(timeout=30) as quick, srv.connect(timeout=30) as a, \
            srv.connect(timeout=30) as b:
        # Sent together: a worker may answer quick and then take a's request.
        quick.send(support.build_request("GET", "/hello"))
        a.send(_gated(first))
        assert quick.read_response().status == 200
        _wait_entered(first)
        b.send(_gated(second))
        _wait_entered(second)
        quick.send(support.build_request("GET", "/hello"))
        open(first, "w").close()
        try:
            # Answered while the second request still runs (its gate is shut).
            assert quick.read_response().status == 200
        finally:
            open(second, "w").close()
        assert a.read_response().status == 200
        assert b.read_response().status == 200


def test_health_request_is_answered_while_every_worker_runs_a_slow_request(
        start_server, tmp_path):
    """A connection left in the handoff set while every worker runs an
    application goes back to the acceptor, which answers health itself."""
    srv = start_server(keepalive=True, workers=2, options={"health_path": "/health"})
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    with srv.connect(timeout=30) as quick, srv.connect(timeout=30) as a, \
            srv.connect(timeout=30) as b:
        quick.send(support.build_request("GET", "/hello"))
        a.send(_gated(first))
        assert quick.read_response().status == 200
        b.send(_gated(second))
        _wait_entered(first)
        _wait_entered(second)
        try:
            for _ in range(5):
                response = quick.request("GET", "/health")
                assert (response.status, response.body) == (200, b"ok\n"), response
        finally:
            open(first, "w").close()
            open(second, "w").close()
        assert a.read_response().status == 200
        assert b.read_response().status == 200


def test_more_connections_than_the_handoff_set_holds_are_all_answered(start_server):
    srv = start_server(keepalive=True, workers=2)
    # The set holds 128 (HANDOFF_CAPACITY): the rest go back to the acceptor.
    conns = [srv.connect(timeout=30) for _ in range(160)]
    try:
        for _ in range(5):
            for conn in conns:
                conn.send(support.build_request("GET", "/hello"))
            for conn in conns:
                assert conn.read_response().status == 200
    finally:
        for conn in conns:
            conn.close()
