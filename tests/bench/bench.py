"""`make bench`: pyruvate against its peers under wrk, in one run.

Usage: python tests/bench/bench.py [--quick] [--servers a,b] [--apps a,b]
           [--conns 1,16,100] [--keepalive on,off] [--idle | --no-idle]
           [--all] [--rounds N] [--duration S] [--output FILE] [--setup-only]

Setup (idempotent, skipped when nothing changed): Debian's wrk, nginx and
libev-dev with apt-get when root; the peers in build/bench/peers and the
Rust Pyruvate in build/bench/rust (both pinned in tests/bench/requirements*.txt,
one package at a time so that one failure does not hide the others); the
100 MiB file for /file.

Measurement: every server runs at once on its own free loopback port. For
each round, for each scenario, each server (order rotated every round) gets
one wrk run (keep-alive GET rows also one run of latency_client.c, for
p50/p99); req/s, p50/p99 and CPU per request are the medians of the
rounds, errors their sum. CPU is user+sys of the server's process group
(/proc/PID/stat of every process in it) before and after the wrk run.

The default scenario set fits `make bench` into 12 minutes on 2 cores; --all
runs every app at every load (much longer). A run with the full default set
writes tests/bench/RESULTS.md; any other run writes build/bench/RESULTS.md.
"""
import argparse
import datetime
import glob
import hashlib
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

import idle

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
WORK = os.path.join(ROOT, "build", "bench")
PEERS = os.path.join(WORK, "peers")
RUST = os.path.join(WORK, "rust")
LOGS = os.path.join(WORK, "logs")
BIG_FILE = os.path.join(WORK, "file-100MiB.bin")
BIG_FILE_SIZE = 100 * 1024 * 1024
LUA = os.path.join(HERE, "bench.lua")
LATENCY_CLIENT_SOURCE = os.path.join(HERE, "latency_client.c")


def latency_client():
    """The path of tests/bench/latency_client.c built into the work directory
    (rebuilt when the source is newer)."""
    binary = os.path.join(WORK, "latency_client")
    if (not os.path.exists(binary)
            or os.path.getmtime(binary) < os.path.getmtime(LATENCY_CLIENT_SOURCE)):
        os.makedirs(WORK, exist_ok=True)
        subprocess.run(["cc", "-std=c11", "-O2", "-o", binary, LATENCY_CLIENT_SOURCE,
                        "-lpthread"], check=True, timeout=120)
    return binary


# Keep-alive rows of these apps take p50 and p99 from latency_client.c.
TIMED_APPS = ("hello", "sleep", "stream")
# wrk's error counters, and the latency client's ("client").
ERROR_KINDS = ("connect", "read", "write", "timeout", "status", "client")


def run_latency_client(port, conns, duration, path="/hello"):
    """Latency of keep-alive GETs timed one by one (see latency_client.c):
    a dict with requests, errors, mean_us, p50_us, p99_us, p999_us, max_us."""
    argv = [latency_client(), str(port), str(conns), str(duration), str(min(2, conns)), path]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
    return json.loads(out.strip().splitlines()[-1])
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
WORKERS = 4
IDLE_COUNT = 10000
POST_BYTES = 65536
REFERENCES = ["waitress", "bjoern", "rust-pyruvate", "nginx"]
REF_LABEL = {"waitress": "waitress", "bjoern": "bjoern", "rust-pyruvate": "Rust", "nginx": "nginx"}

APPS = ["hello", "chunked", "stream", "echo", "sleep", "file"]
APP_TEXT = {
    "hello": "hello",
    "chunked": "hello chunked",
    "stream": "1 MiB stream",
    "echo": "POST echo 64 KiB",
    "sleep": "sleep 10 ms",
    "file": "100 MiB file",
    "idle": "hello + 10k idle",
}

# (app, connections, keep-alive): the default set. It covers every app and
# every load at least once and every target of issue 7.
DEFAULT_SCENARIOS = [
    ("hello", 1, True), ("hello", 16, True), ("hello", 100, True),
    ("hello", 1, False), ("hello", 16, False), ("hello", 100, False),
    ("chunked", 100, True),
    ("stream", 16, True),
    ("echo", 16, True),
    ("sleep", 16, True), ("sleep", 100, True), ("sleep", 16, False), ("sleep", 100, False),
    ("file", 1, True),
    ("idle", 100, True),
]
QUICK_SCENARIOS = [("hello", 100, True), ("hello", 100, False)]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- servers

class Server:
    """One server under test; started in its own process group."""

    def __init__(self, name, label, apps=None):
        self.name = name
        self.label = label
        self.apps = apps  # None: all of them
        self.status = "ok"  # or "not installed: ...", "failed to start: ..."
        self.version = "?"
        self.command = ""
        self.notes = []
        self.proc = None
        self.port = None
        self.log_path = os.path.join(LOGS, name + ".log")
        self.restarts = 0
        self.events = []
        self.log_mode = "wb"  # the first start of a run truncates the log
        self.start_timeout = 20  # seconds until it must listen

    def supports(self, app):
        if app == "idle":
            app = "hello"
        return self.apps is None or app in self.apps

    def argv(self, port):
        raise NotImplementedError

    def env(self):
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env["BENCH_FILE"] = BIG_FILE
        return env

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        self.port = free_port()
        argv = self.argv(self.port)
        shown = [os.path.basename(a) if a == sys.executable else a for a in argv]
        self.command = " ".join(a.replace(ROOT + "/", "") for a in shown)
        logf = open(self.log_path, self.log_mode)
        self.log_mode = "ab"
        logf.write(("\n==== %s: %s\n" % (time.strftime("%H:%M:%S"), self.command)).encode())
        logf.flush()
        try:
            self.proc = subprocess.Popen(argv, cwd=HERE, env=self.env(), stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        except OSError as e:
            self.proc = None
            return "cannot run: %s" % e
        finally:
            logf.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited with status %s: %s" % (self.proc.returncode, self.log_tail())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return None
            except OSError:
                time.sleep(0.05)
        self.stop()
        return "not listening after %d s: %s" % (self.start_timeout, self.log_tail())

    def stop(self):
        if self.proc is None:
            return
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.notes.append("did not stop within 5 s of SIGTERM; killed")
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    def log_tail(self, lines=3):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 4000))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
        return " / ".join(tail)[:400]


class Ours(Server):
    def argv(self, port):
        return [sys.executable, os.path.join(HERE, "serve.py"), "pyruvate",
                "127.0.0.1:%d" % port, str(WORKERS)]

    def env(self):
        env = super().env()
        env["PYTHONPATH"] = ROOT
        return env


class RustPyruvate(Server):
    def argv(self, port):
        return [os.path.join(RUST, "bin", "python"), os.path.join(HERE, "serve.py"), "pyruvate",
                "127.0.0.1:%d" % port, str(WORKERS)]

    def env(self):
        env = super().env()
        env["BENCH_PYRUVATE"] = "rust"
        return env


class Bjoern(Server):
    def argv(self, port):
        return [os.path.join(PEERS, "bin", "python"), os.path.join(HERE, "serve.py"), "bjoern",
                "127.0.0.1:%d" % port]


class Granian(Server):
    def argv(self, port):
        return [os.path.join(PEERS, "bin", "granian"), "--interface", "wsgi",
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--blocking-threads", str(WORKERS), "--no-access-log", "apps:application"]


class Waitress(Server):
    def argv(self, port):
        return [os.path.join(PEERS, "bin", "waitress-serve"), "--listen=127.0.0.1:%d" % port,
                "--threads=%d" % WORKERS, "apps:application"]


class Gunicorn(Server):
    def __init__(self, name, label, worker_args):
        super().__init__(name, label)
        self.worker_args = worker_args

    def argv(self, port):
        return ([os.path.join(PEERS, "bin", "gunicorn")] + self.worker_args +
                ["-b", "127.0.0.1:%d" % port, "--log-level", "warning", "apps:application"])


class UWSGI(Server):
    def argv(self, port):
        return [os.path.join(PEERS, "bin", "uwsgi"), "--http-socket", "127.0.0.1:%d" % port,
                "--master", "--processes", "1", "--threads", str(WORKERS),
                "--module", "apps:application", "--pythonpath", HERE, "--die-on-term",
                "--disable-logging", "--need-app", "--max-fd", "20000"]


class Nginx(Server):
    def __init__(self):
        super().__init__("nginx", "nginx (limit)", apps=["hello", "file"])
        self.prefix = os.path.join(WORK, "nginx")

    def argv(self, port):
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        conf = os.path.join(self.prefix, "nginx.conf")
        user = "user root;\n" if os.geteuid() == 0 else ""
        with open(conf, "w") as f:
            f.write(NGINX_CONF % {"user": user, "prefix": self.prefix, "port": port,
                                  "file": BIG_FILE})
        return [shutil.which("nginx") or "/usr/sbin/nginx", "-p", self.prefix, "-c", conf,
                "-e", "stderr"]


NGINX_CONF = """\
%(user)sdaemon off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid %(prefix)s/nginx.pid;
error_log stderr warn;
events { worker_connections 16384; }
http {
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path %(prefix)s/tmp/body;
    proxy_temp_path %(prefix)s/tmp/proxy;
    fastcgi_temp_path %(prefix)s/tmp/fastcgi;
    uwsgi_temp_path %(prefix)s/tmp/uwsgi;
    scgi_temp_path %(prefix)s/tmp/scgi;
    server {
        listen 127.0.0.1:%(port)d;
        location = /hello { default_type text/plain; return 200 "Hello, World!"; }
        location = /file { alias %(file)s; }
    }
}
"""


def all_servers():
    return [
        Ours("pyruvate", "**pyruvate (ours)**"),
        RustPyruvate("rust-pyruvate", "Rust Pyruvate"),
        Bjoern("bjoern", "bjoern"),
        Granian("granian", "granian 1x4"),
        Waitress("waitress", "waitress 4 thr"),
        Gunicorn("gunicorn-gthread", "gunicorn gthread 1x4",
                 ["-k", "gthread", "-w", "1", "--threads", str(WORKERS)]),
        Gunicorn("gunicorn-sync", "gunicorn sync 4 proc", ["-k", "sync", "-w", str(WORKERS)]),
        UWSGI("uwsgi", "uWSGI 1x4"),
        Nginx(),
    ]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- /proc

def group_members(pgid):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[0] is the state (field 3)
            pids.append(fields)
    return pids


def group_cpu_seconds(pgid):
    """user+sys of every live process in the group, plus reaped children."""
    ticks = 0
    for fields in group_members(pgid):
        # utime stime cutime cstime are fields 14-17, here 11-14
        ticks += sum(int(x) for x in fields[11:15])
    return ticks / CLK_TCK


def group_rss_kib(pgid):
    return sum(int(fields[21]) for fields in group_members(pgid)) * PAGE // 1024


# ---------------------------------------------------------------- checks

def request(port, method, path, body=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data
    finally:
        conn.close()


def read_response(s):
    """One response from socket s: (bytes, "complete" | "closed" | "timeout")."""
    data = b""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return data, "timeout"
        except OSError:
            return data, "closed"
        if not chunk:
            return data, "closed"
        data += chunk
        if idle._response_complete(data):
            s.settimeout(0.1)  # bytes arriving right after the body are a framing error
            try:
                data += s.recv(65536)
            except OSError:
                pass
            s.settimeout(2)
            return data, "complete"
    return data, "timeout"


def keepalive_probe(port, path="/hello", body_end=b"Hello, World!"):
    """Two GETs on one connection: None if keep-alive works, else what happens.
    body_end: how the body ends, to spot bytes sent after it (None: unknown)."""
    req = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path.encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(req)
            first, how = read_response(s)
            if how != "complete":
                return "no complete answer to a GET (%s)" % how
            if body_end is not None and not first.endswith(body_end):
                extra = first[first.find(body_end) + len(body_end):]
                return "keep-alive: sends %r after the body" % extra[:20]
            if b"\r\nconnection: close" in first.lower():
                return "closes after each response (says Connection: close)"
            try:
                s.sendall(req)
            except OSError:
                return "keep-alive: closes after each response without Connection: close"
            second, how = read_response(s)
    except OSError as e:
        return "keep-alive probe failed: %s" % e
    if how == "complete":
        return None
    if how == "closed" and not second:
        return "keep-alive: closes after each response without Connection: close"
    return "keep-alive: the 2nd request on a connection gets %s" % (
        "no answer (hangs)" if how == "timeout" and not second else how)


def check_server(server):
    """Warm up and verify each app once; returns a list of problems."""
    problems = []
    expected = {
        "hello": ("GET", None, b"Hello, World!"),
        "chunked": ("GET", None, b"Hello, World!"),
        "stream": ("GET", None, b"x" * (1024 * 1024)),
        "echo": ("POST", b"y" * POST_BYTES, b"y" * POST_BYTES),
        "sleep": ("GET", None, b"Hello, World!"),
        "file": ("GET", None, None),
    }
    ka = keepalive_probe(server.port)
    if ka:
        problems.append(ka)
    for app in APPS:
        if not server.supports(app):
            continue
        method, body, want = expected[app]
        try:
            for _ in range(1 if app in ("file", "sleep") else 20):
                status, data = request(server.port, method, "/" + app, body)
            if status != 200:
                problems.append("/%s answered %d" % (app, status))
            elif want is not None and data != want:
                problems.append("/%s sent a wrong body (%d bytes)" % (app, len(data)))
            elif want is None and len(data) != BIG_FILE_SIZE:
                problems.append("/%s sent %d bytes" % (app, len(data)))
        except (OSError, http.client.HTTPException) as e:
            problems.append("/%s failed: %s" % (app, e))
    if isinstance(server, (Ours, RustPyruvate)):
        where = RUST if isinstance(server, RustPyruvate) else os.path.join(ROOT, "pyruvate")
        with open(server.log_path, errors="replace") as f:
            loaded = [ln for ln in f if ln.startswith("pyruvate from ")]
        if not loaded or not loaded[-1].split(" ", 2)[2].startswith(where):
            problems.append("WRONG pyruvate imported: %s" % (loaded[-1:] or "?"))
    if server.apps is None:
        try:
            status, data = request(server.port, "GET", "/probe")
            if b"file_wrapper=no" in data:
                problems.append("no wsgi.file_wrapper (/file read in Python)")
        except (OSError, http.client.HTTPException) as e:
            problems.append("/probe failed: %s" % e)
    return problems


# ---------------------------------------------------------------- wrk

def run_wrk(port, app, conns, keepalive, duration):
    path = "/hello" if app == "idle" else "/" + app
    argv = ["wrk", "-t", str(min(2, conns)), "-c", str(conns), "-d", "%ds" % duration,
            "-s", LUA]
    if not keepalive:
        argv += ["-H", "Connection: close"]
    argv.append("http://127.0.0.1:%d%s" % (port, path))
    env = dict(os.environ)
    if app == "echo":
        env["WRK_POST_BYTES"] = str(POST_BYTES)
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env=env,
                             timeout=duration + 10).stdout
    except subprocess.TimeoutExpired:
        return {"error": "wrk did not finish within %d s" % (duration + 10)}
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    return {"error": "no wrk summary: %s" % out.strip()[-200:]}


def measure(server, app, conns, keepalive, duration):
    pgid = server.proc.pid
    result = {}
    holder = None
    try:
        if app == "idle":
            rss0 = group_rss_kib(pgid)
            holder = idle.IdleConnections(server.port, IDLE_COUNT)
            holder.open()
            result["open_s"] = holder.seconds
            result["held"] = holder.alive()
            result["rss_per_conn"] = ((group_rss_kib(pgid) - rss0) * 1024 / result["held"]
                                      if result["held"] else None)
        cpu0 = group_cpu_seconds(pgid)
        wrk = run_wrk(server.port, app, conns, keepalive, duration)
        cpu1 = group_cpu_seconds(pgid)
        if holder is not None:
            result["held_after"] = holder.alive()
    finally:
        if holder is not None:
            holder.close()
    result.update(wrk)
    if "error" in wrk:
        try:
            status, _ = request(server.port, "GET", "/hello", timeout=2)
            result["error"] += "; then GET /hello answered %d" % status
        except (OSError, http.client.HTTPException) as e:
            result["error"] += "; then GET /hello failed: %s" % (e or type(e).__name__)
        server.events.append("%s, %s: %s" % (server.label, scenario_name((app, conns, keepalive)),
                                             result["error"]))
        return result
    result["rps"] = wrk["requests"] / (wrk["duration_us"] / 1e6)
    if not wrk["requests"]:  # wrk reports 0 for the percentiles then
        result["p50_us"] = result["p99_us"] = None
    result["client"] = 0
    if keepalive and app in TIMED_APPS:
        # wrk's percentiles overstate (latency_client.c): these rows take
        # theirs from a run of the latency client of the same length.
        timed = run_latency_client(server.port, conns, duration, "/" + app)
        result["client"] = timed["errors"]
        result["p50_us"], result["p99_us"] = timed["p50_us"], timed["p99_us"]
    result["errors"] = sum(result[k] for k in ERROR_KINDS)
    result["cpu_us"] = (cpu1 - cpu0) * 1e6 / wrk["requests"] if wrk["requests"] else None
    return result


# ---------------------------------------------------------------- setup

def sh(argv, timeout, **kw):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
        return p.returncode, (p.stdout + p.stderr)
    except subprocess.TimeoutExpired:
        return -1, "timed out after %d s" % timeout
    except OSError as e:
        return -1, str(e)


def ensure_debian():
    need = {"wrk": shutil.which("wrk"), "nginx-light": shutil.which("nginx") or
            os.path.exists("/usr/sbin/nginx"), "libev-dev": os.path.exists("/usr/include/ev.h")}
    missing = [pkg for pkg, ok in need.items() if not ok]
    if not missing:
        return
    if os.geteuid() != 0:
        log("missing Debian packages (not root, not installing): %s" % " ".join(missing))
        return
    log("apt-get install %s" % " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    rc, out = sh(["apt-get", "install", "-y", "--no-install-recommends"] + missing, 600, env=env)
    if rc != 0:
        sh(["apt-get", "update"], 300, env=env)
        rc, out = sh(["apt-get", "install", "-y", "--no-install-recommends"] + missing, 600,
                     env=env)
    if rc != 0:
        log("apt-get failed: %s" % out.strip()[-300:])


def ensure_venv(path, requirements, reinstall):
    """Install each pinned requirement; returns {package: None or failure text}."""
    stamp = os.path.join(path, "bench-status.json")
    with open(requirements, "rb") as f:
        digest = hashlib.sha256(f.read() + sys.version.encode()).hexdigest()
    if not reinstall and os.path.exists(stamp):
        with open(stamp) as f:
            saved = json.load(f)
        if saved.get("digest") == digest:
            return saved["packages"]
    if not os.path.exists(os.path.join(path, "bin", "python")):
        log("creating %s" % os.path.relpath(path, ROOT))
        rc, out = sh([sys.executable, "-m", "venv", path], 300)
        if rc != 0:
            return {"(virtualenv)": out.strip()[-300:]}
    packages = {}
    with open(requirements) as f:
        lines = [ln.split("#")[0].strip() for ln in f]
    for req in [ln for ln in lines if ln]:
        name = req.split("==")[0].lower()
        log("pip install %s" % req)
        rc, out = sh([os.path.join(path, "bin", "pip"), "install", "-q",
                      "--disable-pip-version-check", "-c", requirements, req], 900)
        failure = None
        if rc != 0:
            tail = [ln for ln in out.splitlines() if ln.strip() and "is ignored" not in ln]
            failure = " / ".join(tail[-3:])[:300] or "pip exit status %d" % rc
            log("  failed: %s" % failure)
        packages[name] = failure
    with open(stamp, "w") as f:
        json.dump({"digest": digest, "packages": packages}, f)
    return packages


def ensure_file():
    if os.path.exists(BIG_FILE) and os.path.getsize(BIG_FILE) == BIG_FILE_SIZE:
        return
    block = bytes(range(256)) * 4096  # 1 MiB
    with open(BIG_FILE + ".tmp", "wb") as f:
        for _ in range(BIG_FILE_SIZE // len(block)):
            f.write(block)
    os.replace(BIG_FILE + ".tmp", BIG_FILE)


def venv_versions(python, names):
    code = ("import json, importlib.metadata as m\nv = {}\nfor n in %r:\n"
            "    try: v[n] = m.version(n)\n    except Exception: pass\nprint(json.dumps(v))"
            % (names,))
    rc, out = sh([python, "-I", "-c", code], 60, cwd=WORK)
    try:
        return json.loads(out.strip().splitlines()[-1]) if rc == 0 else {}
    except (ValueError, IndexError):
        return {}


def _variant_by_symbols(path):
    """For an extension that does not name its variant (built before it did,
    or one that cannot be imported): what its symbols say."""
    with open(path, "rb") as f:
        image = f.read()
    return "coverage" if b"__gcov_" in image else "asan" if b"__asan_" in image else "release"


def pyruvate_build(root):
    """(rc, version, problem) of the pyruvate built in place in `root`:
    problem is the import error when rc != 0, else a reason not to time it
    (an instrumented build, a preloaded library) or ''."""
    preload = os.environ.get("LD_PRELOAD")
    if preload:
        # Every server and wrk would inherit it: a sanitizer runtime left
        # exported from an ASan session cost a release build a third.
        return 0, "?", "LD_PRELOAD is set (%s): unset it, it slows every server" % preload
    rc, out = sh([sys.executable, "-c", "import pyruvate, pyruvate._pyruvate as c; "
                  "print(pyruvate.__version__, getattr(c, 'BUILD_VARIANT', '?'), c.__file__)"],
                 60, env=dict(os.environ, PYTHONPATH=root), cwd=HERE)
    if rc != 0:
        # An ASan build does not even import without its runtime preloaded.
        built = glob.glob(os.path.join(root, "pyruvate", "_pyruvate.*.so"))
        variant = _variant_by_symbols(built[0]) if built else "release"
        if variant == "release":
            return rc, "?", out.strip()[-200:]
        version = "?"
    else:
        version, variant, path = out.strip().splitlines()[-1].split(" ", 2)
        if variant == "?":
            variant = _variant_by_symbols(path)
    if variant != "release":
        # make test leaves a coverage build (-O0) in place: timing one made
        # this benchmark report a third less throughput than the release.
        return 0, version, ("the pyruvate built in %s is a %r build, not release: run `make` "
                            "(or `make bench`) in %s first" % (root, variant, root))
    return rc, version, ""


def setup(servers, reinstall):
    os.makedirs(LOGS, exist_ok=True)
    ensure_debian()
    ensure_file()
    wanted = {s.name for s in servers}
    peer_status = {}
    if wanted & {"bjoern", "granian", "waitress", "gunicorn-gthread", "gunicorn-sync", "uwsgi"}:
        peer_status = ensure_venv(PEERS, os.path.join(HERE, "requirements.txt"), reinstall)
    rust_status = {}
    if "rust-pyruvate" in wanted:
        rust_status = ensure_venv(RUST, os.path.join(HERE, "requirements-rust.txt"), reinstall)
    peer_versions = venv_versions(os.path.join(PEERS, "bin", "python"),
                                  ["bjoern", "granian", "waitress", "gunicorn", "uWSGI"])
    rust_versions = venv_versions(os.path.join(RUST, "bin", "python"), ["pyruvate"])
    package = {"bjoern": "bjoern", "granian": "granian", "waitress": "waitress",
               "gunicorn-gthread": "gunicorn", "gunicorn-sync": "gunicorn", "uwsgi": "uwsgi"}
    for s in servers:
        if s.name == "pyruvate":
            rc, version, problem = pyruvate_build(ROOT)
            rev = sh(["git", "-C", ROOT, "describe", "--always", "--dirty"], 30)[1].strip()
            s.version = "%s (%s)" % (version, rev) if rc == 0 else "?"
            if rc != 0:
                s.status = "not installed: import failed (run make): %s" % problem
            elif problem:
                sys.exit("bench.py: %s" % problem)
        elif s.name == "rust-pyruvate":
            s.version = rust_versions.get("pyruvate", "?")
            if "pyruvate" not in rust_versions:
                s.status = "not installed: %s" % (rust_status.get("pyruvate") or "pip failed")
        elif s.name == "nginx":
            rc, out = sh([shutil.which("nginx") or "/usr/sbin/nginx", "-v"], 30)
            s.version = out.strip().split("/")[-1] if rc == 0 else "?"
            if rc != 0:
                s.status = "not installed: %s" % out.strip()[-200:]
        else:
            pkg = package[s.name]
            key = "uWSGI" if pkg == "uwsgi" else pkg
            s.version = peer_versions.get(key, "?")
            if key not in peer_versions:
                s.status = "not installed: %s" % (peer_status.get(pkg) or "pip failed")


# ---------------------------------------------------------------- report

def fmt_rps(v):
    return "0" if v == 0 else "%.0f" % v if v >= 100 else "%.1f" % v


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    if a == 0:
        return "0"
    return "%.2f" % (a / b)


def fmt_ms(us):
    return "–" if us is None else ("%.2f" % (us / 1000) if us < 100000 else "%.0f" % (us / 1000))


def scenario_name(sc):
    app, conns, keepalive = sc
    if app == "idle":
        return "%s, %d conns" % (APP_TEXT[app], conns)
    return "%s, %d conn%s, %s" % (APP_TEXT[app], conns, "" if conns == 1 else "s",
                                   "keep-alive" if keepalive else "close")


def summarize(runs):
    """Medians over the rounds of one (scenario, server)."""
    ok = [r for r in runs if "rps" in r]
    failures = [r.get("error") or r.get("down") for r in runs if "rps" not in r]
    if not ok:
        return {"failed": failures[0] if failures else "not run"}
    med = statistics.median
    p50 = [r["p50_us"] for r in ok if r["p50_us"] is not None]
    p99 = [r["p99_us"] for r in ok if r["p99_us"] is not None]
    s = {"rps": med([r["rps"] for r in ok]), "p50": med(p50) if p50 else None,
         "p99": med(p99) if p99 else None, "rounds": len(ok), "failures": failures}
    cpu = [r["cpu_us"] for r in ok if r.get("cpu_us") is not None]
    s["cpu_us"] = med(cpu) if cpu else None
    kinds = {}
    for k in ERROR_KINDS:
        n = sum(r.get(k, 0) for r in ok)
        if n:
            kinds[k] = n
    s["errors"] = sum(kinds.values())
    s["error_kinds"] = kinds
    if "held" in ok[0]:
        s["held"] = med([r["held"] for r in ok])
        s["held_after"] = med([r["held_after"] for r in ok])
        per = [r["rss_per_conn"] for r in ok if r.get("rss_per_conn") is not None]
        s["rss_per_conn"] = med(per) if per else None
    return s


def fmt_errors(s):
    if not s["errors"]:
        return "0"
    kinds = ", ".join("%s %d" % (k if k != "status" else "non-2xx", n)
                      for k, n in s["error_kinds"].items())
    return "%d (%s)" % (s["errors"], kinds)


def report(servers, scenarios, results, args, started, load_start, elapsed):
    lines = []
    out = lines.append
    now = datetime.datetime.now(datetime.timezone.utc)
    cpu_model = "?"
    with open("/proc/cpuinfo") as f:
        for ln in f:
            if ln.startswith("model name"):
                cpu_model = ln.split(":", 1)[1].strip()
                break
    wrk_version = [sh(["wrk", "-v"], 30)[1].split(" Copyright")[0].strip()]
    out("# pyruvate benchmark results")
    out("")
    out("- Date: %s (UTC); run took %.1f min." % (now.strftime("%Y-%m-%d %H:%M"), elapsed / 60))
    out("- Machine: nproc %d, %s, Linux %s, Python %s; load average %s at the start, %s at "
        "the end." % (len(os.sched_getaffinity(0)), cpu_model, platform.release(),
                      platform.python_version(), load_start,
                      " ".join("%.2f" % x for x in os.getloadavg())))
    out("- Load: %s; %d rounds, each running every scenario on every server (server "
        "order rotated each round); %d s per wrk run, wrk threads min(2, conns)." % (wrk_version[0] if wrk_version else "wrk ?",
                                        args.rounds, args.duration))
    out("- Command: `python tests/bench/bench.py%s`." % "".join(" " + a for a in args.argv))
    out("- req/s, p50, p99 and CPU: medians of the rounds; errors: summed over the rounds "
        "(wrk socket errors + non-2xx, and the latency client's failed connections). CPU: "
        "user+sys of the server's process group per "
        "request. ×X: ratio to server X in the same run (req/s: higher is better; CPU: "
        "lower is better).")
    out("- p50 and p99 of the keep-alive rows of %s come from `tests/bench/latency_client.c`, "
        "which times each request on its own, in a run of the same length right after "
        "wrk's: wrk's own percentiles overstate here (its mean latency times its req/s "
        "came to several times the number of connections, which Little's law rules out). "
        "The other rows show wrk's." % ", ".join(TIMED_APPS))
    out("")
    def table(header, rows):
        out("| " + " | ".join(header) + " |")
        out("|" + "---|" * len(header))
        for cells in rows:
            cells = [str(c).replace("|", "/") for c in cells]
            cells += [""] * (len(header) - len(cells))
            out("| " + " | ".join(cells) + " |")
        out("")

    def get(sc, name):
        return results.get((sc, name)) or {}

    def cpu_text(r):
        cpu = r.get("cpu_us")
        return "–" if cpu is None else "%.1f" % cpu if cpu < 100 else "%.0f" % cpu

    def rps_text(r):
        text = fmt_rps(r["rps"])
        if r["rounds"] < args.rounds:
            text += " (%d of %d rounds)" % (r["rounds"], args.rounds)
        return text

    def down(s, r):
        return s.status if s.status != "ok" else r.get("failed", "not run")

    out("## Servers")
    out("")
    table(["server", "version", "status and notes", "command"],
          [[s.label, s.version, "; ".join([s.status] + s.notes),
            "`%s`" % s.command if s.command else "–"] for s in servers])

    plain = [sc for sc in scenarios if sc[0] != "idle"]
    if any(s.name == "pyruvate" for s in servers) and plain:
        out("## Summary: pyruvate against the peers")
        out("")
        rows = []
        for sc in plain:
            me = get(sc, "pyruvate")
            if "rps" not in me:
                rows.append([scenario_name(sc), me.get("failed", "not run")])
                continue
            peers = [(get(sc, s.name)["rps"], s.label) for s in servers
                     if s.name != "pyruvate" and "rps" in get(sc, s.name)]
            best = max(peers) if peers else None
            note = "%s: %s req/s" % (best[1], fmt_rps(best[0])) if best else "–"
            if sc[0] == "sleep":
                note += "; ours %.2f× the thread limit" % (me["rps"] / (WORKERS / 0.01))
            rows.append([scenario_name(sc), rps_text(me)] +
                        [fmt_ratio(me["rps"], get(sc, ref).get("rps")) for ref in REFERENCES] +
                        [note, fmt_ms(me["p50"]), fmt_ms(me["p99"]), fmt_errors(me),
                         cpu_text(me)] +
                        [fmt_ratio(me["cpu_us"], get(sc, ref).get("cpu_us"))
                         for ref in ("bjoern", "nginx")])
        table(["scenario", "req/s"] + ["×" + REF_LABEL[r] for r in REFERENCES] +
              ["fastest peer", "p50 ms", "p99 ms", "errors", "CPU µs/req", "CPU ×bjoern",
               "CPU ×nginx"], rows)

    if plain:
        out("## All servers")
        out("")
        rows = []
        for sc in plain:
            for s in servers:
                if not s.supports(sc[0]):
                    continue
                r = get(sc, s.name)
                if "rps" not in r:
                    rows.append([scenario_name(sc), s.label, down(s, r)])
                    continue
                rows.append([scenario_name(sc), s.label, rps_text(r)] +
                            [fmt_ratio(r["rps"], get(sc, ref).get("rps")) for ref in REFERENCES] +
                            [fmt_ms(r["p50"]), fmt_ms(r["p99"]), fmt_errors(r), cpu_text(r)] +
                            [fmt_ratio(r["cpu_us"], get(sc, ref).get("cpu_us"))
                             for ref in REFERENCES])
        table(["scenario", "server", "req/s"] + ["×" + REF_LABEL[r] for r in REFERENCES] +
              ["p50 ms", "p99 ms", "errors", "CPU µs/req"] +
              ["CPU ×" + REF_LABEL[r] for r in REFERENCES], rows)

    for sc in [sc for sc in scenarios if sc[0] == "idle"]:
        base = ("hello", sc[1], True)
        out("## %d idle keep-alive connections held open while %d active ones are measured"
            % (IDLE_COUNT, sc[1]))
        out("")
        out("Held: connections that got a response to one GET and were then left idle, "
            "counted before and after the wrk run. RSS: growth of the server's process "
            "group over the idle connections, per held connection. ×no idle: ratio to "
            "the same server's `%s` row%s. 0 req/s: no active connection got an answer "
            "(wrk counts a timeout only after 2 s, longer than a run)."
            % (scenario_name(base), "" if base in scenarios else " (not measured in this run)"))
        out("")
        rows = []
        for s in servers:
            if not s.supports("idle"):
                continue
            r = get(sc, s.name)
            if "rps" not in r:
                rows.append([s.label, down(s, r)])
                continue
            rss = r.get("rss_per_conn")
            rows.append([s.label, "%d" % r["held"], "%d" % r["held_after"],
                         "–" if rss is None else "%.1f KiB" % (rss / 1024), rps_text(r),
                         fmt_ratio(r["rps"], get(base, s.name).get("rps"))] +
                        [fmt_ratio(r["rps"], get(sc, ref).get("rps")) for ref in REFERENCES] +
                        [fmt_ms(r["p50"]), fmt_ms(r["p99"]), fmt_errors(r), cpu_text(r)])
        table(["server", "held", "held after", "RSS per idle conn", "req/s", "×no idle"] +
              ["×" + REF_LABEL[r] for r in REFERENCES] +
              ["p50 ms", "p99 ms", "errors", "CPU µs/req"], rows)
    out("## Notes")
    out("")
    out("- The keep-alive note in the server table comes from two GETs sent on one "
        "connection before the run. A server that closes without `Connection: close` "
        "or sends bytes after the body makes wrk count a read error per request (and "
        "reconnect), so its keep-alive rows measure a new connection per request.")
    out("- The Rust Pyruvate runs with `max_reuse_count=254, chunked_transfer=True`: "
        "with 255 (the u8 maximum) it answers no second request on a connection and "
        "wedges within two runs; with 1-254 it closes every connection after the "
        "response while announcing keep-alive. With `chunked_transfer=True` it also "
        "sends a chunk terminator after Content-Length bodies. "
        "Ours runs with `max_connections=20000` (its default, 10000, is below 10,000 idle + "
        "100 active connections); every other option is the server's default.")
    out("- wrk reads 8 KiB at a time, so the 100 MiB file rows are bound by wrk: "
        "compare the CPU column there. CPU time is counted in clock ticks (%d ms), "
        "coarse for the slow rows (sleep, file)." % (1000 // CLK_TCK))
    out("- Sleep rows: the thread limit is %d workers / 10 ms = %d req/s; bjoern is "
        "single-threaded." % (WORKERS, WORKERS * 100))
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            autogroup = f.read().strip() == "1"
    except OSError:
        autogroup = False
    out("- Each server runs in a session of its own (as under systemd, in a cgroup of its "
        "own)%s. A server that passes each new connection from one thread to another pays "
        "for it in context switches then: on 2026-11-30 ours made about 1.3-1.7 voluntary "
        "switches per `Connection: close` request started so, against 0.8-0.9 started in "
        "wrk's session, and bjoern (one thread) 0.05-0.15 either way; the keep-alive rows "
        "did not change." % ("; with `kernel.sched_autogroup_enabled=1`, as here, each session is "
                     "its own scheduling group, apart from wrk's" if autogroup else ""))
    out("- Server logs of the run: build/bench/logs/.")
    out("")
    events = [e for s in servers for e in s.events]
    if events:
        out("## Events")
        out("")
        for e in events:
            out("- %s" % e)
        out("")
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="hello at 100 conns, keep-alive on and off, all servers (~1 min)")
    p.add_argument("--all", action="store_true", help="every app at every load (long)")
    p.add_argument("--servers", help="comma-separated subset, e.g. pyruvate,waitress")
    p.add_argument("--apps", help="comma-separated subset of %s,idle" % ",".join(APPS))
    p.add_argument("--conns", help="comma-separated subset of connection counts")
    p.add_argument("--keepalive", help="on, off or on,off")
    p.add_argument("--idle", dest="idle", action="store_true", default=None,
                   help="include the 10k idle connections scenario")
    p.add_argument("--no-idle", dest="idle", action="store_false")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=1, help="seconds per wrk run (integer)")
    p.add_argument("--max-minutes", type=float, default=12,
                   help="stop measuring after this long and report what was measured")
    p.add_argument("--output", help="results file (default: see above)")
    p.add_argument("--setup-only", action="store_true")
    p.add_argument("--reinstall", action="store_true", help="reinstall the virtualenvs")
    args = p.parse_args(argv)
    args.argv = argv
    return args


def select_scenarios(args):
    if args.all:
        scenarios = [(a, c, k) for a in APPS for k in (True, False) for c in (1, 16, 100)]
        scenarios.append(("idle", 100, True))
    elif args.quick:
        scenarios = list(QUICK_SCENARIOS)
    else:
        scenarios = list(DEFAULT_SCENARIOS)
    if args.apps:
        apps = args.apps.split(",")
        scenarios = [sc for sc in scenarios if sc[0] in apps]
        if not scenarios:  # apps not in the chosen set: all their loads
            scenarios = [(a, c, k) for a in apps if a != "idle"
                         for k in (True, False) for c in (1, 16, 100)]
            if "idle" in apps:
                scenarios.append(("idle", 100, True))
    if args.conns:
        conns = [int(c) for c in args.conns.split(",")]
        scenarios = [sc for sc in scenarios if sc[1] in conns or sc[0] == "idle"]
    if args.keepalive:
        wanted = {"on": True, "off": False}
        ka = [wanted[k] for k in args.keepalive.split(",")]
        scenarios = [sc for sc in scenarios if sc[2] in ka]
    if args.idle is True and not any(sc[0] == "idle" for sc in scenarios):
        scenarios.append(("idle", 100, True))
    if args.idle is False:
        scenarios = [sc for sc in scenarios if sc[0] != "idle"]
    return scenarios


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    servers = all_servers()
    if args.servers:
        names = args.servers.split(",")
        unknown = set(names) - {s.name for s in servers}
        if unknown:
            sys.exit("unknown servers: %s (known: %s)" % (
                ", ".join(sorted(unknown)), ", ".join(s.name for s in servers)))
        servers = [s for s in servers if s.name in names]
    scenarios = select_scenarios(args)
    full = not (args.quick or args.all or args.servers or args.apps or args.conns or
                args.keepalive or args.idle is not None or args.rounds != 3 or
                args.duration != 1)
    output = args.output or (os.path.join(HERE, "RESULTS.md") if full else
                             os.path.join(WORK, "RESULTS.md"))
    # 10,000 idle connections need the descriptors; the servers inherit the limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard == resource.RLIM_INFINITY else hard
    want = min(want, 65536) if want != resource.RLIM_INFINITY else 65536
    if soft == resource.RLIM_INFINITY or soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if any(sc[0] == "idle" for sc in scenarios) and want < IDLE_COUNT + 1000:
        log("warning: RLIMIT_NOFILE hard limit %d is too low for %d idle connections"
            % (want, IDLE_COUNT))

    setup(servers, args.reinstall)
    if args.setup_only:
        for s in servers:
            log("%-18s %-12s %s" % (s.name, s.version, s.status))
        return 0

    started = time.monotonic()
    load_start = " ".join("%.2f" % x for x in os.getloadavg())
    results_raw = {}
    try:
        for s in servers:
            if s.status != "ok":
                log("%-18s %s" % (s.name, s.status))
                continue
            err = s.start()
            if err:
                s.status = "failed to start: %s" % err
                log("%-18s %s" % (s.name, s.status))
                continue
            problems = check_server(s)
            s.notes.extend(problems)
            log("%-18s %-12s port %d%s" % (s.name, s.version, s.port,
                                          ("; " + "; ".join(problems)) if problems else ""))
        running = [s for s in servers if s.status == "ok"]
        runs = sum(1 for sc in scenarios for s in running if s.supports(sc[0])) * args.rounds
        log("%d runs of %d s: about %.1f min" % (runs, args.duration,
                                                 runs * (args.duration + 0.35) / 60 +
                                                 sum(1 for sc in scenarios if sc[0] == "idle")
                                                 * len(running) * args.rounds * 2.5 / 60))
        deadline = started + args.max_minutes * 60
        done = 0
        for rnd in range(args.rounds):
            order = running[rnd % len(running):] + running[:rnd % len(running)] if running else []
            for sc in scenarios:
                app, conns, keepalive = sc
                for s in order:
                    if not s.supports(app):
                        continue
                    key = (sc, s.name)
                    if time.monotonic() > deadline:
                        results_raw.setdefault(key, []).append({"down": "skipped: time limit"})
                        continue
                    if not s.alive():
                        code = s.proc.returncode if s.proc else None
                        s.events.append("%s exited (status %s) before round %d, %s: %s" % (
                            s.label, code, rnd + 1, scenario_name(sc), s.log_tail()))
                        s.stop()
                        err = s.start() if s.restarts < 3 else "restarted 3 times already"
                        s.restarts += 1
                        if err:
                            results_raw.setdefault(key, []).append({"down": "down: " + err})
                            continue
                        s.notes.append("restarted after exiting (see Events)")
                    r = measure(s, app, conns, keepalive, args.duration)
                    results_raw.setdefault(key, []).append(r)
                    done += 1
                    if "rps" in r:
                        extra = ""
                        if app == "idle":
                            extra = " held %d→%d in %.1f s, rss/conn %s" % (
                                r["held"], r["held_after"], r["open_s"],
                                "–" if r["rss_per_conn"] is None
                                else "%.0f B" % r["rss_per_conn"])
                        log("[%d/%d r%d] %-34s %-18s %9s req/s p99 %7s ms err %d cpu %s µs%s"
                            % (done, runs, rnd + 1, scenario_name(sc), s.name,
                               fmt_rps(r["rps"]), fmt_ms(r["p99_us"]), r["errors"],
                               "–" if r["cpu_us"] is None else "%.1f" % r["cpu_us"], extra))
                    else:
                        log("[%d/%d r%d] %-34s %-18s %s" % (done, runs, rnd + 1,
                                                           scenario_name(sc), s.name,
                                                           r.get("error")))
        for s in running:
            if not s.alive():
                s.events.append("%s exited (status %s) by the end of the run: %s" % (
                    s.label, s.proc.returncode if s.proc else None, s.log_tail()))
    finally:
        for s in servers:
            s.stop()
    results = {key: summarize(runs) for key, runs in results_raw.items()}
    text = report(servers, scenarios, results, args, started, load_start,
                  time.monotonic() - started)
    print(text)
    with open(output, "w") as f:
        f.write(text + "\n")
    log("written to %s" % os.path.relpath(output, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
