"""Helpers for the deployment tests (test_deploy_*.py).

- InstalledVenv: pyruvate installed the way a user installs it
  (`pip install <repository>`), into a scratch virtualenv. The frameworks
  (Zope, Pyramid, PasteDeploy, ...) are not installed a second time: a .pth
  file makes the test venv's site-packages visible to it, and the runners'
  console scripts (pserve, runwsgi, mkwsgiinstance) are run with the scratch
  interpreter. The repository is never on its sys.path, so entry points
  (egg:pyruvate#main, the pyruvate script) come from the installed
  distribution only.
- Proc: any server command as a subprocess, with logs in the test's tmp dir.
- UnixConnection / unix_request: httpraw over a Unix socket.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

import httpraw

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DEPLOY_APPS = HERE / "deploy_apps"
EXAMPLES = REPO_ROOT / "examples"
TEST_BIN = Path(sys.executable).parent  # console scripts of the test venv
LAUNCH = DEPLOY_APPS / "launch.py"

STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 15.0


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


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


class UnixConnection(httpraw.RawConnection):
    """httpraw.RawConnection over a Unix stream socket."""

    def __init__(self, path, timeout=httpraw.DEFAULT_TIMEOUT):  # noqa: super not called
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
    with httpraw.RawConnection(host, port, timeout=timeout) as conn:
        return conn.request(method, target, headers=headers, body=body)


class Proc:
    """A server (or any) command running as a subprocess."""

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

    def wait_tcp(self, host, port, timeout=STARTUP_TIMEOUT):
        def probe():
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return True
            except OSError:
                return False
        return self._wait(probe, "listener on %s:%s" % (host, port), timeout)

    def wait_unix(self, path, timeout=STARTUP_TIMEOUT):
        def probe():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(0.5)
                    sock.connect(str(path))
                    return True
            except OSError:
                return False
        return self._wait(probe, "listener on %s" % path, timeout)

    def wait_output(self, text, timeout=STARTUP_TIMEOUT):
        return self._wait(lambda: text in self.output(), "output %r" % text, timeout)

    def wait_exit(self, timeout=SHUTDOWN_TIMEOUT, what="(no signal sent)"):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("%s did not exit within %ss %s\n%s" % (self.name, timeout, what,
                                                               self.describe()))
        self.returncode = self.proc.returncode
        self._close_logs()
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout, "after signal %s" % sig)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=SHUTDOWN_TIMEOUT)
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


def ipv6_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def launch_tcp(procs, host="127.0.0.1", name_host=None, attempts=5, **kw):
    """launch.py in address mode on a free port of `host` (retrying a lost
    port race); `name_host` is the host part written in the address
    (default: host, bracketed for IPv6). Returns (proc, port)."""
    last = None
    for _attempt in range(attempts):
        port = free_port(host)
        shown = name_host or ("[%s]" % host if ":" in host else host)
        proc = procs.launch("address", arg="%s:%d" % (shown, port), **kw)
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
    pytest.fail("server did not start\n%s" % last.describe())


def assert_stopped_cleanly(proc, sig=signal.SIGTERM):
    code = proc.stop(sig)
    if sig == signal.SIGTERM:
        assert code == 0, proc.describe()
        assert "SERVE_RETURNED None" in proc.stdout(), proc.describe()
    else:
        assert code == 130, proc.describe()
        assert "SERVE_KEYBOARDINTERRUPT" in proc.stdout(), proc.describe()
    return code


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


def start_nginx(procs, tmp_path, socket_path):
    """A private nginx (examples/nginx.conf, with its port and socket path
    replaced) in front of pyruvate's Unix socket. Returns (proc, port)."""
    site = (EXAMPLES / "nginx.conf").read_text()
    assert "listen 80;" in site and "unix:/run/pyruvate/pyruvate.sock" in site
    base = Path(tmp_path) / "nginx"
    base.mkdir()
    for last in range(5):
        port = free_port()
        (base / "site.conf").write_text(
            site.replace("listen 80;", "listen 127.0.0.1:%d;" % port)
                .replace("unix:/run/pyruvate/pyruvate.sock", "unix:%s" % socket_path))
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
