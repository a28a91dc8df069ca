"""The one helper module of the integration tests: where things are, free
ports, the environments servers run in, the raw HTTP client, and the server
process wrappers.

- Raw client (RawConnection, Response, build_request, fetch): responses are
  parsed from a buffered socket so that several responses on one connection
  (pipelined or sequential) are separated exactly: body framing by
  Content-Length, chunked transfer coding, or connection close.
- Proc: any server command as a subprocess, with its logs in the test's tmp
  dir; Procs is the bookkeeping behind the `procs` fixture (deploy_apps/
  launch.py, real deployments). Server is a Proc running serve_app.py on a
  TCP port, made by the `start_server` fixture (conftest.py) and by launch()
  for module-scoped servers.
- InstalledVenv: pyruvate installed the way a user installs it
  (`pip install <repository>`), into a scratch virtualenv. The frameworks
  (Zope, Pyramid, PasteDeploy, ...) are not installed a second time: a .pth
  file makes the test venv's site-packages visible to it, and the runners'
  console scripts (pserve, runwsgi, mkwsgiinstance) are run with the scratch
  interpreter. The repository is never on its sys.path, so entry points
  (egg:pyruvate#main, the pyruvate script) come from the installed
  distribution only.
- UnixConnection / unix_request: the raw client over a Unix socket.

The environment variables (PYRUVATE_TEST_*) are described in conftest.py.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SERVE_APP = HERE / "serve_app.py"
DEPLOY_APPS = HERE / "deploy_apps"
EXAMPLES = REPO_ROOT / "examples"
TEST_BIN = Path(sys.executable).parent  # console scripts of the test venv
LAUNCH = DEPLOY_APPS / "launch.py"

SERVER_PYTHON = os.environ.get("PYRUVATE_TEST_PYTHON") or sys.executable
USE_REPO_PATH = os.environ.get("PYRUVATE_TEST_NO_REPO_PATH", "") not in ("1", "true", "yes")
KEEPALIVE_OPTIONS = json.loads(os.environ.get("PYRUVATE_TEST_KEEPALIVE_OPTIONS") or "{}")
LENIENT_EXIT = os.environ.get("PYRUVATE_TEST_LENIENT_EXIT", "") in ("1", "true", "yes")

# Deployment processes (Proc) start slower (pip-installed venvs, Zope) than
# serve_app.py servers (Server).
STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 15.0
SERVER_STARTUP_TIMEOUT = 10.0
SERVER_SHUTDOWN_TIMEOUT = 10.0


# -- the raw HTTP client ----------------------------------------------------

DEFAULT_TIMEOUT = 5.0


class IncompleteResponse(Exception):
    """The connection was closed before a complete response was received."""

    def __init__(self, message, partial=b""):
        super().__init__("%s (received %d bytes: %r)" % (message, len(partial), bytes(partial[:200])))
        self.partial = bytes(partial)


class ResponseTimeout(AssertionError):
    """No (more) data arrived within the socket timeout."""


class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []  # list of (name, value) in received order
        self.body = b""
        self.raw = b""  # all bytes of this response as received
        self.chunked = False
        self.chunk_sizes = []
        self.trailers = []
        self.interim = []  # 1xx responses received before this one

    def header(self, name, default=None):
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    def header_all(self, name):
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]

    def has_token(self, name, token):
        """True if comma-separated header `name` contains `token`."""
        for value in self.header_all(name):
            if token.lower() in [t.strip().lower() for t in value.split(",")]:
                return True
        return False

    def __repr__(self):
        return "<Response %s %s %r headers=%r body=%r>" % (
            self.version, self.status, self.reason, self.headers, self.body[:200])


def build_request(method="GET", path="/", headers=None, body=b"",
                  version="HTTP/1.1", host="localhost", content_length=True):
    """Build raw request bytes. Adds Host (HTTP/1.1) and Content-Length."""
    if isinstance(body, str):
        body = body.encode("latin-1")
    lines = ["%s %s %s" % (method, path, version)]
    names = set()
    for name, value in (headers or []):
        names.add(name.lower())
        lines.append("%s: %s" % (name, value))
    if version == "HTTP/1.1" and "host" not in names:
        lines.append("Host: %s" % host)
    if content_length and "content-length" not in names and "transfer-encoding" not in names \
            and (body or method in ("POST", "PUT", "PATCH")):
        lines.append("Content-Length: %d" % len(body))
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body


class RawConnection:
    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT):
        self.host = host
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self._buf = bytearray()
        self._consumed = bytearray()
        self.eof = False

    # -- context manager -------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    # -- sending ---------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def request(self, *args, **kwargs):
        """Send one request (see build_request) and read its response."""
        method = kwargs.get("method", args[0] if args else "GET")
        self.send(build_request(*args, **kwargs))
        return self.read_response(method=method)

    # -- low level reading -----------------------------------------------
    def _fill(self):
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            raise ResponseTimeout(
                "timed out after %ss waiting for data; this response so far: %r"
                % (self.sock.gettimeout(), bytes(self._consumed + self._buf)[:300]))
        if not data:
            self.eof = True
            return False
        self._buf += data
        return True

    def _take(self, n):
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self._consumed += data
        return data

    def _read_line(self):
        while True:
            index = self._buf.find(b"\r\n")
            if index >= 0:
                return self._take(index + 2)[:-2]
            if not self._fill():
                raise IncompleteResponse("connection closed while reading a line",
                                         self._consumed + self._buf)

    def _read_exact(self, n):
        while len(self._buf) < n:
            if not self._fill():
                raise IncompleteResponse("connection closed after %d of %d body bytes"
                                         % (len(self._buf), n), self._consumed + self._buf)
        return self._take(n)

    def _read_to_close(self):
        while self._fill():
            pass
        return self._take(len(self._buf))

    def read_available(self):
        """Everything received until the peer closes the connection."""
        return self._read_to_close()

    # -- response parsing ------------------------------------------------
    def _read_head(self, response):
        status_line = self._read_line().decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise AssertionError("bad status line: %r" % status_line)
        response.version = parts[0]
        response.status = int(parts[1])
        response.reason = parts[2] if len(parts) > 2 else ""
        while True:
            line = self._read_line()
            if not line:
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or name != name.strip() or not name:
                raise AssertionError("bad header line: %r" % line)
            response.headers.append((name, value.strip(" \t")))

    def _read_chunked(self, response):
        body = bytearray()
        while True:
            size_line = self._read_line().decode("latin-1")
            size = int(size_line.split(";", 1)[0].strip(), 16)
            response.chunk_sizes.append(size)
            if size == 0:
                break
            body += self._read_exact(size)
            crlf = self._read_exact(2)
            if crlf != b"\r\n":
                raise AssertionError("chunk not followed by CRLF: %r" % crlf)
        while True:
            line = self._read_line()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            response.trailers.append((name, value.strip()))
        return bytes(body)

    def read_response(self, method="GET"):
        """Read exactly one (final) response from the connection."""
        self._consumed = bytearray()
        interim = []
        while True:
            response = Response()
            if not self._buf and not self._fill():
                raise IncompleteResponse("connection closed before a response", b"")
            self._read_head(response)
            if 100 <= response.status < 200 and response.status != 101:
                interim.append(response)
                continue
            break
        response.interim = interim
        te = response.header("Transfer-Encoding")
        cl = response.header("Content-Length")
        if method.upper() == "HEAD" or response.status in (204, 304):
            response.body = b""
        elif te is not None and "chunked" in te.lower():
            response.chunked = True
            response.body = self._read_chunked(response)
        elif cl is not None:
            response.body = self._read_exact(int(cl))
        else:
            response.body = self._read_to_close()
        response.raw = bytes(self._consumed)
        return response

    def wait_closed(self, timeout=DEFAULT_TIMEOUT):
        """True if the server closes the connection (EOF/reset) within
        `timeout` without sending more data; False if still open.  Raises
        AssertionError if unexpected data arrives."""
        if self._buf:
            raise AssertionError("unexpected extra data: %r" % bytes(self._buf[:200]))
        if self.eof:
            return True
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)
        if data:
            raise AssertionError("unexpected extra data: %r" % data[:200])
        self.eof = True
        return True


def fetch(host, port, *args, **kwargs):
    """One request on a fresh connection; returns the Response."""
    with RawConnection(host, port) as conn:
        return conn.request(*args, **kwargs)


# -- ports and environments ------------------------------------------------

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


def pyruvate_version():
    """pyruvate.__version__ as its source states it (the one place the
    version is written), without importing the package."""
    namespace = {}
    for line in (REPO_ROOT / "pyruvate" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            exec(line, namespace)  # noqa: S102 - our own source line
    return namespace["__version__"]


def clean_env(pythonpath=(), preload=True, **extra):
    """The environment without the repository on PYTHONPATH. preload=False
    keeps the sanitizer runtime of `make test-asan` out (for tools such as
    pip and its compiler, whose own leaks are not ours to report)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONSAFEPATH", "LISTEN_PID", "LISTEN_FDS",
                        "LISTEN_FDNAMES", "NOTIFY_SOCKET")}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    if preload and os.environ.get("PYRUVATE_TEST_LD_PRELOAD"):
        env["LD_PRELOAD"] = os.environ["PYRUVATE_TEST_LD_PRELOAD"]
    env.update(extra)
    return env


def repo_env(pythonpath=(), preload=True, **extra):
    """The environment of the in-place build: repository first on PYTHONPATH
    (as the other integration tests run it)."""
    return clean_env((REPO_ROOT, HERE, DEPLOY_APPS) + tuple(pythonpath), preload, **extra)


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


# -- server processes --------------------------------------------------------

class InstalledVenv:
    """A virtualenv holding pyruvate installed with `pip install REPO`."""

    def __init__(self, root):
        self.root = Path(root)
        self.bin = self.root / "bin"
        self.python = self.bin / "python"

    @classmethod
    def create(cls, root):
        venv = cls(root)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv.root)],
                       check=True, capture_output=True, timeout=120)
        purelib = Path(subprocess.check_output(
            [str(venv.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True).strip())
        # The frameworks of the test venv, after the venv's own packages.
        (purelib / "zz_test_venv_packages.pth").write_text(
            sysconfig.get_paths()["purelib"] + "\n")
        # The user's command, with the test venv's pip acting on this venv.
        result = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(venv.python), "install",
             "--quiet", "--disable-pip-version-check", "--no-deps", str(REPO_ROOT)],
            capture_output=True, text=True, timeout=600, cwd=str(venv.root),
            env=clean_env(preload=False))
        if result.returncode != 0:
            pytest.fail("pip install %s failed:\n%s\n%s"
                        % (REPO_ROOT, result.stdout, result.stderr[-4000:]))
        venv.install_seconds = time.monotonic() - started
        check = subprocess.run(
            [str(venv.python), "-c",
             "import pyruvate, importlib.metadata as m; print(pyruvate.__file__); "
             "print([e.value for e in m.entry_points(group='paste.server_runner') "
             "if e.name == 'main' and e.dist.name == 'pyruvate'])"],
            capture_output=True, text=True, env=clean_env(), cwd=str(venv.root), timeout=60)
        assert check.returncode == 0, check.stderr
        module_file, entry_points = check.stdout.splitlines()
        assert module_file.startswith(str(venv.root)), module_file  # not the repository
        assert entry_points == "['pyruvate.paste:serve_paste']", entry_points
        return venv

    def env(self, pythonpath=(), **extra):
        return clean_env(pythonpath, **extra)

    def script(self, name):
        """A console script of the installed venv (e.g. pyruvate)."""
        return [str(self.bin / name)]

    def runner(self, name):
        """A console script of the test venv (pserve, runwsgi, ...), run by the
        installed venv's interpreter so it sees the installed pyruvate."""
        return [str(self.python), str(TEST_BIN / name)]


class UnixConnection(RawConnection):
    """RawConnection over a Unix stream socket."""

    def __init__(self, path, timeout=DEFAULT_TIMEOUT):  # noqa: super not called
        self.host = str(path)
        self.port = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise
        self._buf = bytearray()
        self._consumed = bytearray()
        self.eof = False


def unix_request(path, method="GET", target="/", headers=None, body=b"", timeout=5.0):
    with UnixConnection(path, timeout=timeout) as conn:
        return conn.request(method, target, headers=headers, body=body)


def tcp_request(host, port, method="GET", target="/", headers=None, body=b"", timeout=5.0):
    with RawConnection(host, port, timeout=timeout) as conn:
        return conn.request(method, target, headers=headers, body=body)


class Proc:
    """A server (or any) command running as a subprocess."""

    startup_timeout = STARTUP_TIMEOUT
    shutdown_timeout = SHUTDOWN_TIMEOUT

    def __init__(self, cmd, log_dir, env, cwd, name, expected_returncode=0, **popen):
        self.cmd = [str(c) for c in cmd]
        self.name = name
        self.expected_returncode = expected_returncode
        self.stdout_path = Path(log_dir) / ("%s.stdout" % name)
        self.stderr_path = Path(log_dir) / ("%s.stderr" % name)
        self._stdout = open(self.stdout_path, "wb")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._stdout, stderr=self._stderr,
                                     stdin=subprocess.DEVNULL, env=env, cwd=str(cwd), **popen)
        self.pid = self.proc.pid
        self.returncode = None

    def stdout(self):
        if not self._stdout.closed:
            self._stdout.flush()
        return self.stdout_path.read_text(errors="replace")

    def stderr(self):
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def output(self):
        return self.stdout() + self.stderr()

    def describe(self):
        return "%s: %r (exit %r)\n--- stdout ---\n%s\n--- stderr (tail) ---\n%s" % (
            self.name, self.cmd, self.proc.poll(), self.stdout()[-4000:], self.stderr()[-8000:])

    def running(self):
        return self.proc.poll() is None

    def _wait(self, probe, what, timeout):
        timeout = timeout or self.startup_timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                self._close_logs()
                pytest.fail("%s exited while waiting for %s\n%s" % (self.name, what,
                                                                   self.describe()))
            if probe():
                return self
            time.sleep(0.05)
        self.kill()
        pytest.fail("%s: no %s within %ss\n%s" % (self.name, what, timeout, self.describe()))

    def wait_tcp(self, host, port, timeout=None):
        def probe():
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return True
            except OSError:
                return False
        return self._wait(probe, "listener on %s:%s" % (host, port), timeout)

    def wait_unix(self, path, timeout=None):
        def probe():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(0.5)
                    sock.connect(str(path))
                    return True
            except OSError:
                return False
        return self._wait(probe, "listener on %s" % path, timeout)

    def wait_output(self, text, timeout=None):
        return self._wait(lambda: text in self.output(), "output %r" % text, timeout)

    def wait_stderr(self, text, timeout=None):
        """Waits (bounded) for `text` on stderr: log records are relayed to
        logging by the serve() thread, a little after the event they tell of."""
        return self._wait(lambda: text in self.stderr(), "stderr %r" % text, timeout)

    def wait_exit(self, timeout=None, what="(no signal sent)"):
        timeout = timeout or self.shutdown_timeout
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("%s did not exit within %ss %s\n%s" % (self.name, timeout, what,
                                                               self.describe()))
        self.returncode = self.proc.returncode
        self._close_logs()
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Send `sig`, wait (bounded) for exit, return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout, "after signal %s" % sig)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=self.shutdown_timeout)
        if self.returncode is None:
            self.returncode = self.proc.returncode
        self._close_logs()

    def _close_logs(self):
        for f in (self._stdout, self._stderr):
            if not f.closed:
                f.close()


class Procs:
    """Factory and bookkeeping behind the `procs` fixture."""

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir)
        self.started = []

    def start(self, cmd, env=None, cwd=None, name=None, expected_returncode=0, **popen):
        name = name or "proc%d" % (len(self.started) + 1)
        proc = Proc(cmd, self.log_dir, env if env is not None else repo_env(),
                    cwd or self.log_dir, name, expected_returncode, **popen)
        self.started.append(proc)
        return proc

    def launch(self, mode, app="deploy_wsgi:app", workers=2, options=None, arg="",
               env=None, wrapper=(), **kw):
        """deploy_apps/launch.py: serve() an app (see that file for modes);
        `wrapper` is a command prefix (e.g. setpriv ...)."""
        import json
        cmd = list(wrapper) + [sys.executable, str(LAUNCH), mode, app, str(workers),
                               json.dumps(options or {}), str(arg)]
        return self.start(cmd, env=env if env is not None else repo_env(), **kw)

    def finish(self):
        failures = []
        for proc in self.started:
            if proc.returncode is None:
                code = proc.stop()
                if code != proc.expected_returncode:
                    failures.append("exit code %r (expected %r) after SIGTERM\n%s"
                                    % (code, proc.expected_returncode, proc.describe()))
        return failures


def start_on_free_port(start, what="server", host="127.0.0.1", attempts=5):
    """start(port) -> Proc on a free port of `host`, waited for until it
    accepts connections; a lost race for the port is retried. Returns
    (proc, port)."""
    last = None
    for _attempt in range(attempts):
        port = free_port(host)
        proc = start(port)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and proc.running():
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return proc, port
            except OSError:
                time.sleep(0.05)
        proc.kill()
        last = proc
        if "Address already in use" not in proc.output():
            break
    pytest.fail("%s did not start\n%s" % (what, last.describe()))


def launch_tcp(procs, host="127.0.0.1", name_host=None, attempts=5, **kw):
    """launch.py in address mode on a free port of `host` (retrying a lost
    port race); `name_host` is the host part written in the address
    (default: host, bracketed for IPv6). Returns (proc, port)."""
    shown = name_host or ("[%s]" % host if ":" in host else host)
    return start_on_free_port(
        lambda port: procs.launch("address", arg="%s:%d" % (shown, port), **kw),
        host=host, attempts=attempts)


def assert_stopped_cleanly(proc, sig=signal.SIGTERM):
    code = proc.stop(sig)
    if sig == signal.SIGTERM:
        assert code == 0, proc.describe()
        assert "SERVE_RETURNED None" in proc.stdout(), proc.describe()
    else:
        assert code == 130, proc.describe()
        assert "SERVE_KEYBOARDINTERRUPT" in proc.stdout(), proc.describe()
    return code


def _refuses_connections(srv):
    try:
        socket.create_connection((srv.host, srv.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False  # queued in the backlog as the listener closed: ask again
    return False


def stop_and_wait_refused(srv, timeout=30.0):
    """SIGTERM, then wait until new connections are refused: the server's
    graceful drain has begun (its listener is closed)."""
    srv.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not _refuses_connections(srv):
        assert time.monotonic() < deadline, "the listener stayed open after SIGTERM"
        time.sleep(0.01)


def environ_of(response):
    import json
    assert response.status == 200, response
    data = json.loads(response.body)
    return data["values"], data["present"]


def sh_exec_with_fd3(fd, argv):
    """A command that runs `argv` the way systemd starts a socket-activated
    service: the listening socket `fd` becomes descriptor 3, and LISTEN_PID
    is the pid of the process that execs argv (bash sets it to its own pid,
    $$, and then execs, which keeps the pid)."""
    moves = "" if fd == 3 else " 3<&%d %d<&-" % (fd, fd)
    script = 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"' + moves
    return ["/bin/bash", "-c", script, "bash"] + [str(a) for a in argv]


def serve_keyword_options():
    """The keyword-only options of pyruvate.serve() (in-place build), from
    its signature."""
    import json
    code = ("import inspect, json, pyruvate; print(json.dumps([p.name for p in "
            "inspect.signature(pyruvate.serve).parameters.values() "
            "if p.kind == p.KEYWORD_ONLY]))")
    out = subprocess.check_output([sys.executable, "-c", code], env=repo_env(), text=True,
                                  timeout=60)
    return json.loads(out)


NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def start_nginx(procs, tmp_path, socket_path, site=None):
    """A private nginx (examples/nginx.conf, with its port and socket path
    replaced) in front of pyruvate's Unix socket; or `site`, the text of
    another site file with "listen 80;", its upstreams already in place.
    Returns (proc, port)."""
    if site is None:
        site = (EXAMPLES / "nginx.conf").read_text()
        assert "unix:/run/pyruvate/pyruvate.sock" in site
        site = site.replace("unix:/run/pyruvate/pyruvate.sock", "unix:%s" % socket_path)
    assert "listen 80;" in site
    base = Path(tmp_path) / "nginx"
    base.mkdir()
    for last in range(5):
        port = free_port()
        (base / "site.conf").write_text(
            site.replace("listen 80;", "listen 127.0.0.1:%d;" % port))
        temp = "".join("    %s_temp_path %s;\n" % (kind, base / kind)
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (base / "nginx.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + "worker_processes 1;\n"
            "pid %s;\n"
            "error_log %s info;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            "    access_log %s;\n"
            "%s"
            "    include %s;\n"
            "}\n" % (base / "nginx.pid", base / "error.log", base / "access.log", temp,
                     base / "site.conf"))
        proc = procs.start([NGINX, "-p", str(base), "-c", str(base / "nginx.conf"),
                            "-g", "daemon off;"], env=clean_env(), cwd=base, name="nginx")
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and proc.running():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return proc, port
            except OSError:
                time.sleep(0.05)
        proc.kill()
        error_log = (base / "error.log").read_text() if (base / "error.log").exists() else ""
        if "Address already in use" not in error_log + proc.output():
            break
    pytest.fail("nginx did not start\n%s\n%s" % (proc.describe(), error_log))


class Server(Proc):
    """serve_app.py serving an app on host:port: made by the start_server
    fixture (conftest.py) and by launch()."""

    startup_timeout = SERVER_STARTUP_TIMEOUT
    shutdown_timeout = SERVER_SHUTDOWN_TIMEOUT

    def __init__(self, cmd, host, port, log_dir, expected_returncode=0):
        self.host = host
        self.port = port
        self.address = ("[%s]:%d" % (host, port)) if ":" in host else ("%s:%d" % (host, port))
        self.url = "http://%s/" % self.address
        super().__init__(cmd, log_dir, server_env(), HERE, "server-%d" % port,
                         expected_returncode)

    def wait_ready(self, timeout=None):
        """Connect in a loop until the server accepts; False if it exited."""
        timeout = timeout or self.startup_timeout
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
        """Unlike Proc.kill, leaves returncode unset: a killed server fails
        the fixture's teardown unless the test expected it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=self.shutdown_timeout)
        self._close_logs()

    # -- client helpers --------------------------------------------------
    def connect(self, timeout=DEFAULT_TIMEOUT):
        return RawConnection(self.host, self.port, timeout=timeout)

    def request(self, method="GET", path="/", headers=None, body=b"", **kwargs):
        """One request on a fresh connection; returns a Response."""
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


def launch(log_dir, options=None, app="apps:app", workers=2):
    """Start a server outside the function-scoped start_server fixture, for
    module-scoped fixtures shared by many short tests (same command line,
    environment and keep-alive options as the start_server fixture).  Stop it with
    stop_launched()."""
    opts = dict(KEEPALIVE_OPTIONS)
    opts.update(options or {})
    for _attempt in range(5):
        port = free_port()
        cmd = [SERVER_PYTHON, str(SERVE_APP), app, "127.0.0.1:%d" % port,
               str(workers), json.dumps(opts)]
        server = Server(cmd, "127.0.0.1", port, log_dir)
        if server.wait_ready():
            return server
        server.kill()
    raise RuntimeError("server failed to start\n%s" % server.describe())


def stop_launched(server):
    """SIGTERM; the exit must be clean (as in the start_server fixture's teardown)."""
    code = server.stop()
    if LENIENT_EXIT and code == -signal.SIGTERM:
        return
    assert code == 0, "exit code %r after SIGTERM\n%s" % (code, server.describe())


def wait_for_log(srv, text, timeout=5.0):
    """True once `text` appears in the server's stderr (bounded poll)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in srv.stderr():
            return True
        time.sleep(0.05)
    return text in srv.stderr()


# -- raw exchanges with apps:app (apps.py) --------------------------------------

HOST = b"Host: example.test\r\n"
CLOSE = b"Connection: close\r\n"


def raw_get(path=b"/", headers=b"", version=b"HTTP/1.1", method=b"GET", host=HOST):
    """The bytes of one request: the request line, `host`, then `headers`
    (raw header lines) and the empty line."""
    return method + b" " + path + b" " + version + b"\r\n" + host + headers + b"\r\n"


HTTP_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                        r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                        r"\d\d:\d\d:\d\d GMT$")


def strict_server(start_server, options=None, app="apps:app", workers=2):
    """A server for the strict suites (keep-alive options merged in)."""
    return start_server(app, workers=workers, options=options, keepalive=True)


def parse_responses(raw, methods=()):
    """Every response in `raw` (all bytes the server sent), in order; 1xx
    interim responses end up in .interim of the response that follows.
    `methods` gives the request method per response (HEAD has no body)."""
    conn = RawConnection.__new__(RawConnection)
    conn.sock = None
    conn._buf = bytearray(raw)
    conn._consumed = bytearray()
    conn.eof = True
    methods = list(methods)
    responses = []
    while conn._buf:
        method = methods[len(responses)] if len(responses) < len(methods) else "GET"
        responses.append(conn.read_response(method=method))
    return responses


def send_all(conn, data):
    """Send, tolerating a server that already answered and closed."""
    try:
        conn.send(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def exchange(srv, data, timeout=5.0, pieces_pause=None):
    """Send `data` (bytes, or a list of pieces sent `pieces_pause` seconds
    apart) on a NEW connection and return everything the server sends until
    it closes.  A server that neither answers nor closes within `timeout`
    fails the test (no hang)."""
    with srv.connect(timeout=timeout) as conn:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pieces = data if isinstance(data, list) else [data]
        for index, piece in enumerate(pieces):
            if index and pieces_pause:
                time.sleep(pieces_pause)
            if not send_all(conn, piece):
                break
        try:
            return conn.read_available()
        except ResponseTimeout as exc:
            raise AssertionError("server neither finished answering nor closed within %ss "
                                 "(a hang): %s" % (timeout, exc)) from None


def assert_alive(srv):
    """The server still answers a normal request on a new connection."""
    with RawConnection(srv.host, srv.port, timeout=5) as conn:
        response = conn.request("GET", "/hello")
    from apps import HELLO

    assert (response.status, response.body) == (200, HELLO), response


def expect_error(srv, data, status, **kwargs):
    """`data` on a new connection gets exactly one HTTP/1.1 `status`
    response with Connection: close, then the connection is closed; a normal
    request on a new connection then still gets its 200."""
    raw = exchange(srv, data, **kwargs)
    assert raw.startswith(b"HTTP/1.1 %d " % status), raw[:300]
    responses = parse_responses(raw)
    assert len(responses) == 1, "expected one response then close: %r" % raw[:600]
    response = responses[0]
    assert response.has_token("Connection", "close"), response
    assert not response.interim, response.interim
    assert b'"PATH_INFO"' not in raw, "the app was called: %r" % raw[:600]
    assert_alive(srv)
    return response


def app_calls(srv):
    """How many requests reached apps.py's environ summary (unrouted paths)."""
    with RawConnection(srv.host, srv.port, timeout=5) as conn:
        response = conn.request("GET", "/calls")
    assert response.status == 200, response
    return json.loads(response.body)["calls"]


def json_of(response):
    """The JSON body of a 200 response."""
    assert response.status == 200, response
    return json.loads(response.body)


def read_until(conn, marker, timeout=5.0):
    """Block (bounded) until `marker` is in the connection's receive buffer;
    the bytes stay buffered for read_response()."""
    conn.sock.settimeout(timeout)
    while marker not in conn._buf:
        if not conn._fill():
            raise IncompleteResponse("closed before %r" % marker, conn._buf)
    return bytes(conn._buf)
