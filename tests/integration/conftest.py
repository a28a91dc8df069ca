"""Fixtures for the pyruvate integration tests.

Each test starts a real server in a subprocess (serve_app.py) on an ephemeral
port and talks to it over sockets.

Environment variables:

  PYRUVATE_TEST_PYTHON        interpreter used to run the server subprocess
                              (default: sys.executable, i.e. the interpreter
                              running pytest).
  PYRUVATE_TEST_NO_REPO_PATH  if "1", do NOT put the repository root first on
                              the server's PYTHONPATH.  By default it is put
                              first so `import pyruvate` finds the C extension
                              built in place.  Set it when testing an installed
                              pyruvate, e.g. the Rust reference implementation.
  PYRUVATE_TEST_KEEPALIVE_OPTIONS
                              JSON object of serve() options merged into the
                              options of servers that a test starts with
                              keepalive=True (tests that need keep-alive
                              connections).  Default "{}": our pyruvate keeps
                              connections alive by default.  Rust Pyruvate
                              disables keep-alive unless max_reuse_count > 0
                              (a u8 there), so use '{"max_reuse_count": 100}'.
  PYRUVATE_TEST_LENIENT_EXIT  if "1", the fixture teardown also accepts a
                              server killed by the SIGTERM it sent (Rust
                              Pyruvate does not handle SIGTERM).  The dedicated
                              tests in test_shutdown.py stay strict.

Running against the Rust reference implementation:

  PYRUVATE_TEST_PYTHON=/work/rustvenv/bin/python PYRUVATE_TEST_NO_REPO_PATH=1 \\
  PYRUVATE_TEST_KEEPALIVE_OPTIONS='{"max_reuse_count": 100}' \\
  PYRUVATE_TEST_LENIENT_EXIT=1 \\
      /work/rustvenv/bin/python -m pytest tests/integration
"""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # helpers importable under any --import-mode
    sys.path.insert(0, str(HERE))

import httpraw  # noqa: E402


# A run started in the background by a shell without job control (nohup, a CI
# runner) inherits SIGINT ignored, and an ignored signal stays ignored in
# every server it starts: serve() rightly leaves an ignored SIGINT alone, and
# the SIGINT tests would wait in vain. A handler here is reset to the default
# in each child at exec, so the servers start as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
REPO_ROOT = HERE.parents[1]
SERVE_APP = HERE / "serve_app.py"

SERVER_PYTHON = os.environ.get("PYRUVATE_TEST_PYTHON") or sys.executable
USE_REPO_PATH = os.environ.get("PYRUVATE_TEST_NO_REPO_PATH", "") not in ("1", "true", "yes")
KEEPALIVE_OPTIONS = json.loads(os.environ.get("PYRUVATE_TEST_KEEPALIVE_OPTIONS") or "{}")
LENIENT_EXIT = os.environ.get("PYRUVATE_TEST_LENIENT_EXIT", "") in ("1", "true", "yes")

STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0


def server_env():
    """Environment for server subprocesses (PYTHONPATH per the rules above)."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT)] if USE_REPO_PATH else []
    paths.append(str(HERE))  # apps.py
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONSAFEPATH", None)
    # ci/asan.sh: the sanitizer runtime goes into the servers only, not pytest.
    if os.environ.get("PYRUVATE_TEST_LD_PRELOAD"):
        env["LD_PRELOAD"] = os.environ["PYRUVATE_TEST_LD_PRELOAD"]
    return env


def run_python(code, timeout=20, args=()):
    """Run `code` with the server interpreter/path in a scratch directory
    (an implementation may treat a bad address as a Unix socket path and
    create it in the cwd); returns CompletedProcess."""
    with tempfile.TemporaryDirectory() as scratch:
        try:
            return subprocess.run(
                [SERVER_PYTHON, "-c", code, *args],
                env=server_env(),
                cwd=scratch,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail("python -c did not finish within %ss: stdout=%r stderr=%r"
                        % (timeout, exc.stdout, exc.stderr))


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def ipv6_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


class Server:
    """A running server subprocess."""

    def __init__(self, cmd, host, port, log_dir, expected_returncode=0):
        self.host = host
        self.port = port
        self.address = ("[%s]:%d" % (host, port)) if ":" in host else ("%s:%d" % (host, port))
        self.url = "http://%s/" % self.address
        self.cmd = cmd
        self.expected_returncode = expected_returncode
        self.stdout_path = log_dir / ("server-%d.stdout" % port)
        self.stderr_path = log_dir / ("server-%d.stderr" % port)
        self._stdout = open(self.stdout_path, "wb")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            cmd, stdout=self._stdout, stderr=self._stderr, stdin=subprocess.DEVNULL,
            env=server_env(), cwd=str(HERE),
        )
        self.returncode = None

    # -- logs ------------------------------------------------------------
    def stdout(self):
        if not self._stdout.closed:
            self._stdout.flush()
        return self.stdout_path.read_text(errors="replace")

    def stderr(self):
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def describe(self):
        return "server %r\n--- stdout ---\n%s\n--- stderr (tail) ---\n%s" % (
            self.cmd, self.stdout(), self.stderr()[-6000:])

    # -- lifecycle -------------------------------------------------------
    def wait_ready(self, timeout=STARTUP_TIMEOUT):
        """Connect in a loop until the server accepts; False if it exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.02)
        self.kill()
        pytest.fail("server did not accept connections within %ss\n%s"
                    % (timeout, self.describe()))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=SHUTDOWN_TIMEOUT)
        self._close_logs()

    def stop(self, sig=signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT):
        """Send `sig`, wait (bounded) for exit, return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout, "after signal %s" % sig)

    def wait_exit(self, timeout=SHUTDOWN_TIMEOUT, what="(no signal sent)"):
        """Wait (bounded) for the server to exit by itself; return the exit
        code.  Kills it and fails the test on timeout."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("server did not exit within %ss %s\n%s"
                        % (timeout, what, self.describe()))
        self.returncode = self.proc.returncode
        self._close_logs()
        return self.returncode

    def _close_logs(self):
        for f in (self._stdout, self._stderr):
            if not f.closed:
                f.close()

    # -- client helpers --------------------------------------------------
    def connect(self, timeout=httpraw.DEFAULT_TIMEOUT):
        return httpraw.RawConnection(self.host, self.port, timeout=timeout)

    def request(self, method="GET", path="/", headers=None, body=b"", **kwargs):
        """One request on a fresh connection; returns httpraw.Response."""
        with self.connect() as conn:
            return conn.request(method, path, headers=headers, body=body, **kwargs)

    def get_json(self, path, **kwargs):
        response = self.request("GET", path, **kwargs)
        assert response.status == 200, response
        return json.loads(response.body)

    def send_raw(self, data, shutdown_write=False):
        """Send raw bytes on a fresh connection; return everything received
        until the server closes the connection."""
        with self.connect() as conn:
            conn.send(data)
            if shutdown_write:
                conn.sock.shutdown(socket.SHUT_WR)
            return conn.read_available()


@pytest.fixture
def start_server(tmp_path):
    """Factory: start_server(app="apps:router", workers=2, options=None,
    host="127.0.0.1", keepalive=False) -> Server.

    keepalive=True merges PYRUVATE_TEST_KEEPALIVE_OPTIONS under `options`.

    On teardown the server gets SIGTERM and must exit with code 0 within
    SHUTDOWN_TIMEOUT seconds (unless the test stopped it already and checked
    the exit itself, or set server.expected_returncode)."""
    servers = []

    def factory(app="apps:router", workers=2, options=None, host="127.0.0.1",
                keepalive=False):
        opts = dict(KEEPALIVE_OPTIONS) if keepalive else {}
        opts.update(options or {})
        last = None
        for _attempt in range(5):
            port = free_port(host)
            address = ("[%s]:%d" % (host, port)) if ":" in host else ("%s:%d" % (host, port))
            cmd = [SERVER_PYTHON, str(SERVE_APP), app, address, str(workers), json.dumps(opts)]
            server = Server(cmd, host, port, tmp_path)
            if server.wait_ready():
                servers.append(server)
                return server
            server.kill()
            last = server
            log = server.stderr()
            if "Address already in use" in log or ("Errno %d" % errno.EADDRINUSE) in log:
                continue  # lost a port race; try another port
            break
        pytest.fail("server failed to start\n%s" % last.describe())

    yield factory

    failures = []
    for server in servers:
        if server.returncode is None:
            code = server.stop()
            if LENIENT_EXIT and code == -signal.SIGTERM:
                continue
            if code != server.expected_returncode:
                failures.append("exit code %r (expected %r) after SIGTERM\n%s"
                                % (code, server.expected_returncode, server.describe()))
            elif code == 0 and "SERVE_RETURNED None" not in server.stdout():
                failures.append("serve() did not return None after SIGTERM\n%s"
                                % server.describe())
    if failures:
        pytest.fail("\n\n".join(failures))


@pytest.fixture
def server(start_server):
    """Server running apps:router with 2 workers."""
    return start_server()


# -- deployment tests (test_deploy_*.py; helpers in deploy_support.py) -----

@pytest.fixture(scope="session")
def installed_venv(tmp_path_factory):
    """A scratch venv with pyruvate installed by `pip install <repository>`
    (built once per session); see deploy_support.InstalledVenv."""
    import deploy_support
    return deploy_support.InstalledVenv.create(tmp_path_factory.mktemp("installed-venv") / "venv")


@pytest.fixture
def procs(tmp_path):
    """Factory for server subprocesses (deploy_support.Procs): each one still
    running at teardown gets SIGTERM and must exit with its expected code."""
    import deploy_support
    started = deploy_support.Procs(tmp_path)
    yield started
    failures = started.finish()
    if failures:
        pytest.fail("\n\n".join(failures))
