"""Stopping the server: SIGTERM -> serve() returns None, SIGINT ->
KeyboardInterrupt; both graceful (in-flight requests complete)."""
import json
import signal
import socket
import time

import pytest

import httpraw


def _assert_port_closed(srv):
    with pytest.raises(OSError):
        socket.create_connection((srv.host, srv.port), timeout=2).close()


def test_sigterm_serve_returns_none(start_server):
    srv = start_server()
    assert srv.request("GET", "/hello").status == 200
    code = srv.stop(signal.SIGTERM)
    assert code == 0, srv.describe()
    assert "SERVE_RETURNED None" in srv.stdout(), srv.describe()
    _assert_port_closed(srv)


def test_sigterm_idle_keepalive_connection_does_not_block_exit(start_server):
    srv = start_server(keepalive=True)
    with srv.connect() as conn:
        assert conn.request("GET", "/hello").status == 200
        code = srv.stop(signal.SIGTERM)  # bounded wait inside
        assert code == 0, srv.describe()


def test_sigint_raises_keyboard_interrupt(start_server):
    srv = start_server()
    assert srv.request("GET", "/hello").status == 200
    code = srv.stop(signal.SIGINT)
    assert "SERVE_KEYBOARDINTERRUPT" in srv.stdout(), srv.describe()
    assert code == 130, srv.describe()


def _wait_entered(srv, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if json.loads(srv.request("GET", "/entered").body)["entered"]:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("sig, expected_code, marker", [
    (signal.SIGTERM, 0, "SERVE_RETURNED None"),
    (signal.SIGINT, 130, "SERVE_KEYBOARDINTERRUPT"),
])
def test_graceful_stop_completes_in_flight_request(start_server, sig, expected_code, marker):
    srv = start_server("apps:slow", workers=2)
    with srv.connect(timeout=10) as conn:
        conn.send(httpraw.build_request("GET", "/slow?ms=1500"))
        assert _wait_entered(srv), "slow request never reached the app"
        srv.proc.send_signal(sig)
        response = conn.read_response()
        assert response.status == 200
        assert response.body == b"slow done"
    code = srv.wait_exit(what="after signal %s" % sig)  # no second signal
    assert code == expected_code, srv.describe()
    assert marker in srv.stdout(), srv.describe()


def test_sigterm_right_after_the_port_opens_is_graceful(start_server):
    """Regression: the SIGTERM handler used to be installed after listen(),
    so a signal sent as soon as the port accepted connections killed the
    process (exit -15) instead of stopping it."""
    srv = start_server()  # returns as soon as a connect succeeds
    code = srv.stop(signal.SIGTERM)
    assert code == 0, srv.describe()
    assert "SERVE_RETURNED None" in srv.stdout(), srv.describe()
