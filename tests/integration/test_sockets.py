"""Every kind of socket serve() listens on, and what the application sees of
it: TCP (IPv4, IPv6, a host name), Unix socket paths, systemd socket
activation (TCP and Unix, with systemd-socket-activate and with an
equivalent fork/exec), sd_notify READY=1, and a socket object or fd."""
import json
import os
import shutil
import socket
import stat
import sys
import time

import pytest

import support


def _environ_via(conn):
    return support.environ_of(conn.request("GET", "/environ"))


# -- TCP ---------------------------------------------------------------------

def test_tcp_ipv4(procs):
    proc, port = support.launch_tcp(procs, "127.0.0.1")
    with support.RawConnection("127.0.0.1", port) as conn:
        values, present = _environ_via(conn)
        assert values["SERVER_NAME"] == "127.0.0.1"
        assert values["SERVER_PORT"] == str(port)
        assert values["REMOTE_ADDR"] == "127.0.0.1"
        assert values["REMOTE_PORT"] == str(conn.local_port)
    support.assert_stopped_cleanly(proc)


@pytest.mark.skipif(not support.ipv6_available(), reason="no IPv6 loopback")
def test_tcp_ipv6(procs):
    proc, port = support.launch_tcp(procs, "::1")
    with support.RawConnection("::1", port) as conn:
        values, present = _environ_via(conn)
        assert values["SERVER_NAME"] == "::1"
        assert values["SERVER_PORT"] == str(port)
        assert values["REMOTE_ADDR"] == "::1"
        assert values["REMOTE_PORT"] == str(conn.local_port)
    support.assert_stopped_cleanly(proc)


def test_tcp_hostname(procs):
    """host:port with a name: resolved, SERVER_NAME keeps the name."""
    addresses = {info[4][0] for info in socket.getaddrinfo("localhost", 80, 0, socket.SOCK_STREAM)}
    host = "127.0.0.1" if "127.0.0.1" in addresses else "::1"
    proc, port = support.launch_tcp(procs, host, name_host="localhost")
    with socket.create_connection(("localhost", port), timeout=5):
        pass
    with support.RawConnection(host, port) as conn:
        values, _ = _environ_via(conn)
        assert values["SERVER_NAME"] == "localhost"
        assert values["SERVER_PORT"] == str(port)
        assert values["REMOTE_ADDR"] == host
    support.assert_stopped_cleanly(proc)


# -- Unix socket paths ----------------------------------------------------------

def _stale_socket_file(path):
    """A socket file nobody listens on, as a crashed server leaves it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


@pytest.mark.parametrize("prefix, perms, mode", [
    ("", "660", 0o660),
    ("unix:", 0o600, 0o600),
])
def test_unix_socket_path(procs, tmp_path, prefix, perms, mode):
    path = tmp_path / "pyruvate.sock"
    _stale_socket_file(path)
    proc = procs.launch("address", arg=prefix + str(path),
                        options={"unix_socket_perms": perms}).wait_unix(path)
    info = os.stat(path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == mode
    values, present = support.environ_of(support.unix_request(path, target="/environ"))
    assert present["REMOTE_ADDR"] and values["REMOTE_ADDR"] == ""
    assert not present["REMOTE_PORT"]
    assert values["SERVER_NAME"] == str(path)
    assert values["SERVER_PORT"] == ""
    assert support.unix_request(path, target="/").body == b"Hello, World!"
    support.assert_stopped_cleanly(proc)
    assert not os.path.exists(path), "socket file left behind"


def test_unix_socket_in_use_is_not_stolen(procs, tmp_path):
    path = tmp_path / "busy.sock"
    first = procs.launch("address", arg=str(path), name="first").wait_unix(path)
    second = procs.launch("address", arg=str(path), name="second", expected_returncode=3)
    assert second.wait_exit() == 3, second.describe()
    assert "SERVE_RAISED OSError" in second.stdout()
    assert "another server is using it" in second.stdout()
    # The first server still owns and serves its socket.
    assert support.unix_request(path, target="/").status == 200
    support.assert_stopped_cleanly(first)
    assert not os.path.exists(path)


# -- socket objects and descriptors ----------------------------------------------

def test_bound_socket_object_tcp(procs):
    proc = procs.launch("socket-object", arg="127.0.0.1").wait_output("LISTENING")
    host, port = json.loads(proc.stdout().split("LISTENING ", 1)[1].splitlines()[0])
    proc.wait_tcp(host, port)
    with support.RawConnection(host, port) as conn:
        values, _ = _environ_via(conn)
    assert values["SERVER_NAME"] == "127.0.0.1"
    assert values["SERVER_PORT"] == str(port)
    assert values["REMOTE_ADDR"] == "127.0.0.1"
    support.assert_stopped_cleanly(proc)
    assert "CALLER_SOCKET_OPEN True" in proc.stdout()


def test_bound_socket_object_unix(procs, tmp_path):
    path = tmp_path / "object.sock"
    proc = procs.launch("socket-object", arg=str(path)).wait_unix(path)
    values, present = support.environ_of(support.unix_request(path, target="/environ"))
    assert values["SERVER_NAME"] == str(path)
    assert values["SERVER_PORT"] == ""
    assert present["REMOTE_ADDR"] and values["REMOTE_ADDR"] == ""
    support.assert_stopped_cleanly(proc)


def test_inherited_fd(procs):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    proc = procs.launch("fd", arg=str(fd), pass_fds=(fd,))
    listener.close()
    proc.wait_tcp("127.0.0.1", port)
    values, _ = support.environ_of(support.tcp_request("127.0.0.1", port, target="/environ"))
    assert values["SERVER_NAME"] == "127.0.0.1"
    assert values["SERVER_PORT"] == str(port)
    support.assert_stopped_cleanly(proc)


# -- systemd socket activation ---------------------------------------------------

def _listening(kind, tmp_path):
    if kind == "tcp":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        name, port = sock.getsockname()
        where = (name, port)
    else:
        path = tmp_path / "activated.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        name, port, where = str(path), "", path
    sock.listen(16)
    return sock, name, port, where


def _request(where, target):
    if isinstance(where, tuple):
        return support.tcp_request(where[0], where[1], target=target)
    return support.unix_request(where, target=target)


def _wait(proc, where):
    return proc.wait_tcp(*where) if isinstance(where, tuple) else proc.wait_unix(where)


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_systemd_socket_activation_fork_exec(procs, tmp_path, kind):
    """As systemd starts a service: socket on fd 3, LISTEN_FDS=1 and
    LISTEN_PID = the service's own pid; serve(app, None, 2)."""
    sock, name, port, where = _listening(kind, tmp_path)
    fd = os.dup(sock.fileno())
    argv = [sys.executable, support.LAUNCH, "systemd-native", "deploy_wsgi:app", "2", "{}"]
    proc = procs.start(support.sh_exec_with_fd3(fd, argv), env=support.repo_env(LISTEN_FDS="1"),
                       pass_fds=(fd,))
    os.close(fd)
    sock.close()  # only the server holds the socket now
    _wait(proc, where)
    values, present = support.environ_of(_request(where, "/environ"))
    assert values["SERVER_NAME"] == name
    assert values["SERVER_PORT"] == str(port)
    if kind == "unix":
        assert present["REMOTE_ADDR"] and values["REMOTE_ADDR"] == ""
        assert not present["REMOTE_PORT"]
    else:
        assert values["REMOTE_ADDR"] == "127.0.0.1"
    proc.wait_stderr("from systemd")
    support.assert_stopped_cleanly(proc)
    if kind == "unix":
        # systemd owns a socket unit's file: the service leaves it alone.
        assert os.path.exists(where)


def test_systemd_listen_pid_set_by_the_service_itself(procs, tmp_path):
    """The variant where the process sets LISTEN_PID to its own pid before
    calling serve(app, None, 2) (launch.py mode "systemd")."""
    sock, name, port, where = _listening("tcp", tmp_path)
    fd = os.dup(sock.fileno())
    argv = [sys.executable, support.LAUNCH, "systemd", "deploy_wsgi:app", "2", "{}"]
    moves = "" if fd == 3 else "exec 3<&%d %d<&-; " % (fd, fd)
    proc = procs.start(["/bin/bash", "-c", moves + 'exec "$@"', "bash"] + [str(a) for a in argv],
                       env=support.repo_env(LISTEN_FDS="1"), pass_fds=(fd,))
    os.close(fd)
    sock.close()
    _wait(proc, where)
    values, _ = support.environ_of(_request(where, "/environ"))
    assert (values["SERVER_NAME"], values["SERVER_PORT"]) == (name, str(port))
    support.assert_stopped_cleanly(proc)


def test_systemd_variables_for_another_pid_are_ignored(procs):
    """LISTEN_PID names another process (inherited environment): no socket."""
    proc = procs.launch("systemd-native", env=support.repo_env(LISTEN_PID="1", LISTEN_FDS="1"),
                        expected_returncode=3)
    assert proc.wait_exit() == 3, proc.describe()
    assert "SERVE_RAISED ValueError" in proc.stdout()
    assert "no socket passed by systemd" in proc.stdout()


SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate not installed")
@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_systemd_socket_activate_tool(procs, tmp_path, kind):
    """systemd's own test tool: listens, and on the first connection execs
    the service with LISTEN_FDS/LISTEN_PID set."""
    if kind == "tcp":
        port = support.free_port()
        listen, where, name = "127.0.0.1:%d" % port, ("127.0.0.1", port), "127.0.0.1"
    else:
        path = tmp_path / "tool.sock"
        listen, where, name, port = str(path), path, str(path), ""
    # Under `make test-asan` only the service gets the sanitizer runtime,
    # not systemd's tool itself.
    env = support.repo_env(preload=False)
    cmd = [SOCKET_ACTIVATE, "-l", listen]
    for variable in ("PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONNOUSERSITE", "ASAN_OPTIONS",
                     "LSAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONMALLOC"):
        if variable in env:
            cmd += ["-E", variable]
    if os.environ.get("PYRUVATE_TEST_LD_PRELOAD"):
        cmd += ["-E", "LD_PRELOAD=" + os.environ["PYRUVATE_TEST_LD_PRELOAD"]]
    cmd += [sys.executable, support.LAUNCH, "systemd-native", "deploy_wsgi:app", "2", "{}"]
    proc = procs.start(cmd, env=env)
    deadline = time.monotonic() + support.STARTUP_TIMEOUT
    while "Listening on" not in proc.stderr() and time.monotonic() < deadline:
        assert proc.running(), proc.describe()
        time.sleep(0.05)
    # The first connection makes the tool exec the service, which answers it.
    values, present = support.environ_of(_request(where, "/environ"))
    assert values["SERVER_NAME"] == name
    assert values["SERVER_PORT"] == str(port)
    proc.wait_output("SERVE_STARTING")
    proc.wait_stderr("from systemd")
    support.assert_stopped_cleanly(proc)


# -- sd_notify ------------------------------------------------------------------

@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_ready(procs, tmp_path, abstract):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = "@pyruvate-test-%d-%d" % (os.getpid(), time.monotonic_ns())
        notify.bind("\0" + name[1:])
    else:
        name = str(tmp_path / "notify.sock")
        notify.bind(name)
    notify.settimeout(support.STARTUP_TIMEOUT)
    with notify:
        port = support.free_port()
        proc = procs.launch("address", arg="127.0.0.1:%d" % port,
                            env=support.repo_env(NOTIFY_SOCKET=name))
        try:
            message = notify.recv(4096)
        except socket.timeout:
            pytest.fail("no sd_notify message\n%s" % proc.describe())
        assert message == b"READY=1"
        # READY=1 means ready: the very first request succeeds.
        assert support.tcp_request("127.0.0.1", port, target="/").status == 200
        support.assert_stopped_cleanly(proc)
