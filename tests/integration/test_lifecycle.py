"""Lifecycle beyond test_shutdown.py: the shutdown timeout bounds a stop, a
second signal stops at once, an application's own SIGTERM handler is kept,
and start-up failures raise before any thread starts and leave nothing
behind."""
import errno
import json
import os
import shutil
import signal
import socket
import time

import pytest

import support


def _wait_entered(port, count=1, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = support.tcp_request("127.0.0.1", port, target="/entered").body
        if json.loads(body)["entered"] >= count:
            return True
        time.sleep(0.02)
    return False


def _start_stuck_request(port):
    """A request to an app that sleeps 30 s; returns the open connection."""
    conn = support.RawConnection("127.0.0.1", port, timeout=20)
    conn.send(support.build_request("GET", "/slow?s=30"))
    assert _wait_entered(port), "the slow request never reached the app"
    return conn


# -- stopping ---------------------------------------------------------------

@pytest.mark.parametrize("sig, code, marker", [
    (signal.SIGTERM, 0, "SERVE_RETURNED None"),
    (signal.SIGINT, 130, "SERVE_KEYBOARDINTERRUPT"),
])
def test_second_signal_stops_at_once(procs, sig, code, marker):
    proc, port = support.launch_tcp(procs, options={"shutdown_timeout": 120})
    conn = _start_stuck_request(port)
    with conn:
        proc.proc.send_signal(sig)
        proc.wait_output("pyruvate stopping")
        # Graceful: still waiting for the request (that sleeps 30 s).
        assert proc.running(), proc.describe()
        proc.proc.send_signal(sig)
        # Well before the app's 30 s and the 120 s shutdown timeout.
        assert proc.wait_exit(timeout=10, what="after a second %s" % sig) == code, \
            proc.describe()
    assert marker in proc.stdout(), proc.describe()
    assert "second signal" in proc.stderr()


def test_new_connections_are_refused_during_the_graceful_stop(procs):
    proc, port = support.launch_tcp(procs, options={"shutdown_timeout": 20})
    with _start_stuck_request(port):
        proc.proc.send_signal(signal.SIGTERM)
        proc.wait_output("pyruvate stopping")
        try:
            late = support.RawConnection("127.0.0.1", port, timeout=3)
        except ConnectionRefusedError:
            late = None  # what waitress and gunicorn do: the listener is closed
        except ConnectionResetError:
            late = None  # taken in by the kernel as the listener closed
        if late is not None:
            with late:
                late.send(support.build_request("GET", "/"))
                try:
                    response = late.read_response()
                except (support.IncompleteResponse, ConnectionResetError):
                    response = None  # closed at once: acceptable
                assert response is None or response.status == 503, response
        proc.proc.send_signal(signal.SIGTERM)
        proc.wait_exit()


def test_shutdown_timeout_bounds_the_stop(procs):
    proc, port = support.launch_tcp(procs, options={"shutdown_timeout": 1})
    conn = _start_stuck_request(port)
    with conn:
        proc.proc.send_signal(signal.SIGTERM)
        # The app sleeps 30 s; serve() returns after the 1 s shutdown timeout.
        assert proc.wait_exit(timeout=15, what="after SIGTERM") == 0, proc.describe()
    assert "SERVE_RETURNED None" in proc.stdout(), proc.describe()
    assert "still busy" in proc.stderr(), proc.describe()


def test_app_with_its_own_sigterm_handler_keeps_it(procs):
    """serve() installs its SIGTERM handler only over SIG_DFL: an app's own
    handler stays in charge (here it just counts), so SIGTERM does not stop
    the server; SIGINT still does."""
    env = support.repo_env(APP_INSTALLS_SIGTERM="1")
    proc, port = support.launch_tcp(procs, env=env)
    proc.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        calls = json.loads(support.tcp_request("127.0.0.1", port, target="/sigterm-calls").body)
        if calls["calls"]:
            break
        time.sleep(0.05)
    assert calls == {"calls": [signal.SIGTERM], "handler": "app_sigterm_handler"}, calls
    assert proc.running()
    assert support.tcp_request("127.0.0.1", port, target="/").status == 200
    support.assert_stopped_cleanly(proc, signal.SIGINT)


def test_app_sigterm_handler_raising_systemexit_stops_gracefully(procs):
    """The common pattern `def handler(*a): raise SystemExit(0)`: the
    exception ends serve() through the graceful path (the in-flight request
    completes) and propagates."""
    env = support.repo_env(APP_INSTALLS_SIGTERM="1", APP_SIGTERM_EXITS="1")
    proc, port = support.launch_tcp(procs, env=env)
    with support.RawConnection("127.0.0.1", port, timeout=15) as conn:
        conn.send(support.build_request("GET", "/slow?s=1.5"))
        assert _wait_entered(port)
        proc.proc.send_signal(signal.SIGTERM)
        response = conn.read_response()
        assert response.status == 200 and response.body == b"slow done"
    assert proc.wait_exit() == 0, proc.describe()
    assert "SERVE_RETURNED" not in proc.stdout()  # SystemExit went through serve()


def test_default_sigterm_handler_is_restored(procs):
    proc, port = support.launch_tcp(procs)
    support.assert_stopped_cleanly(proc)
    assert "SIGTERM_HANDLER_AFTER <Handlers.SIG_DFL" in proc.stdout(), proc.stdout()


# -- start-up failures ----------------------------------------------------------

def _assert_failed_cleanly(proc, exception, text):
    assert proc.wait_exit(timeout=15) == 3, proc.describe()
    out = proc.stdout()
    raised = [line for line in out.splitlines() if line.startswith("SERVE_RAISED ")]
    assert raised, proc.describe()
    kinds = raised[0].split("[", 1)[1].split("]", 1)[0].split(",")
    assert exception in kinds, proc.describe()
    assert text in out, proc.describe()
    # Raised before any thread started: only the main thread is left.
    assert "THREADS_AFTER_FAILURE 1" in out, proc.describe()
    assert "pyruvate serving" not in proc.stderr()


def test_port_in_use(procs):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = procs.launch("address", arg="127.0.0.1:%d" % port, expected_returncode=3)
        _assert_failed_cleanly(proc, "OSError", "Address already in use")
        assert "Errno %d" % errno.EADDRINUSE in proc.stdout()


@pytest.mark.parametrize("address, exception, text", [
    ("no-port-here", "ValueError", "cannot parse address"),
    ("256.1.1.1:8000", "OSError", "cannot resolve"),
    ("[::1:8000", "ValueError", "cannot parse address"),
])
def test_bad_address(procs, address, exception, text):
    proc = procs.launch("address", arg=address, expected_returncode=3)
    _assert_failed_cleanly(proc, exception, text)


def test_unix_socket_in_a_missing_directory(procs, tmp_path):
    path = tmp_path / "missing" / "app.sock"
    proc = procs.launch("address", arg=str(path), expected_returncode=3)
    _assert_failed_cleanly(proc, "FileNotFoundError", "No such file or directory")
    assert not path.parent.exists()


def test_bad_unix_socket_perms_leave_no_file(procs, tmp_path):
    path = tmp_path / "app.sock"
    proc = procs.launch("address", arg=str(path), options={"unix_socket_perms": "rw-"},
                        expected_returncode=3)
    _assert_failed_cleanly(proc, "ValueError", "")
    assert not path.exists()


def _without_privileges():
    """A command prefix that takes away what lets root bind port 80 and
    write into any directory (root ignores file modes); empty otherwise."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) not installed")
    return [setpriv, "--bounding-set", "-net_bind_service,-dac_override,-dac_read_search"]


def test_no_permission_for_a_privileged_port(procs):
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) <= 80:
            pytest.skip("unprivileged users may bind port 80 here")
    proc = procs.launch("address", arg="127.0.0.1:80", expected_returncode=3,
                        wrapper=_without_privileges())
    _assert_failed_cleanly(proc, "PermissionError", "Permission denied")


def test_no_permission_for_the_socket_directory(procs, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    wrapper = _without_privileges()
    if not wrapper and os.access(locked, os.W_OK):
        pytest.skip("cannot make a directory unwritable for this user")
    path = locked / "app.sock"
    proc = procs.launch("address", arg=str(path), expected_returncode=3, wrapper=wrapper)
    _assert_failed_cleanly(proc, "PermissionError", "Permission denied")
    assert not path.exists()
