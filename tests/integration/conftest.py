"""Fixtures for the pyruvate integration tests; the helpers they use are in
support.py.

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
import signal
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # helpers importable under any --import-mode
    sys.path.insert(0, str(HERE))

from support import (  # noqa: E402
    KEEPALIVE_OPTIONS,
    LENIENT_EXIT,
    SERVE_APP,
    SERVER_PYTHON,
    InstalledVenv,
    Procs,
    Server,
    free_port,
)

# A run started in the background by a shell without job control (nohup, a CI
# runner) inherits SIGINT ignored, and an ignored signal stays ignored in
# every server it starts: serve() rightly leaves an ignored SIGINT alone, and
# the SIGINT tests would wait in vain. A handler here is reset to the default
# in each child at exec, so the servers start as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def start_server(tmp_path):
    """Factory: start_server(app="apps:app", workers=2, options=None,
    host="127.0.0.1", keepalive=False) -> Server.

    keepalive=True merges PYRUVATE_TEST_KEEPALIVE_OPTIONS under `options`.

    On teardown the server gets SIGTERM and must exit with code 0 within
    SHUTDOWN_TIMEOUT seconds (unless the test stopped it already and checked
    the exit itself, or set server.expected_returncode)."""
    servers = []

    def factory(app="apps:app", workers=2, options=None, host="127.0.0.1",
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
    """Server running apps:app with 2 workers."""
    return start_server()


# -- deployment tests: pyruvate installed by pip, real servers (support.Procs) --

@pytest.fixture(scope="session")
def installed_venv(tmp_path_factory):
    """A scratch venv with pyruvate installed by `pip install <repository>`
    (built once per session); see support.InstalledVenv."""
    return InstalledVenv.create(tmp_path_factory.mktemp("installed-venv") / "venv")


@pytest.fixture
def procs(tmp_path):
    """Factory for server subprocesses (support.Procs): each one still
    running at teardown gets SIGTERM and must exit with its expected code."""
    started = Procs(tmp_path)
    yield started
    failures = started.finish()
    if failures:
        pytest.fail("\n\n".join(failures))
