"""`make bench-zope`: a real Zope and a real Plone site served by pyruvate,
waitress (Zope's default), the Rust Pyruvate and granian, under wrk.

Usage: python tests/bench/bench_zope.py [--quick] [--servers a,b] [--pages a,b]
           [--conns 1,4,16] [--threads 2,4] [--rounds N] [--duration S]
           [--output FILE] [--setup-only] [--reinstall] [--report-from JSON]

Setup (idempotent, skipped when nothing changed), all under build/bench-zope/:
- zope/: a virtualenv with Zope 6 as pinned for the deployment tests
  (ci/requirements-test-deploy.txt) and granian (tests/bench/requirements.txt);
- plone/: a virtualenv with Plone 6 (tests/bench/requirements-plone.txt);
- pyruvate from this tree (`pip install .`) in both, reinstalled when its
  sources change; the Rust Pyruvate (tests/bench/requirements-rust.txt) in
  rust-pyruvate/, put first on PYTHONPATH for that server only, as both
  packages are called pyruvate;
- seed-zope/ and seed-plone/: instances made with mkwsgiinstance; the Plone
  one gets a site /Plone made through Zope's app object (zope_site.py).

Each server runs each site through PasteDeploy: Zope's runwsgi with the
server's [server:NAME] section of the generated zope.ini (pyruvate, the Rust
Pyruvate, waitress) or granian with the app from paste.deploy.loadapp
(zope_app.py). Every server gets its own copy of the instance (a FileStorage
is opened by one process only), fresh for every thread count.

Pages: Zope's root `/` (plain Zope instance), the Plone front page `/Plone`,
a listing of the 50 documents of /Plone/bench-folder, and a write: an
authenticated plone.restapi PATCH of a random document's title and
description (see RESULTS-zope.md's notes for why that endpoint).

Measurement: bench.py's. For each thread count, for each site, all servers
run at once; each round runs every page at every connection count on every
server (order rotated every round); req/s, p50/p99, CPU and context switches
per request are medians of the rounds, errors their sum.

A run with the full default set writes tests/bench/RESULTS-zope.md; any
other run writes build/bench-zope/RESULTS-zope.md. Every run also saves its
raw results to build/bench-zope/last-run.json; --report-from renders the
results file from such a file again (after a change to the report's code).
"""
import argparse
import base64
import datetime
import hashlib
import http.client
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import types

import bench
import zope_cpu

HERE = bench.HERE
ROOT = bench.ROOT
WORK = os.path.join(ROOT, "build", "bench-zope")
LOGS = os.path.join(WORK, "logs")
RUN = os.path.join(WORK, "run")
RAW = os.path.join(WORK, "last-run.json")  # every run's raw results, for --report-from
RUST_PATH = os.path.join(WORK, "rust-pyruvate")
VENV = {"zope": os.path.join(WORK, "zope"), "plone": os.path.join(WORK, "plone")}
SEED = {"zope": os.path.join(WORK, "seed-zope"), "plone": os.path.join(WORK, "seed-plone")}
REQUIREMENTS = {
    "zope": ["-r", os.path.join(ROOT, "ci", "requirements-test-deploy.txt"),
             "-c", os.path.join(HERE, "requirements.txt"), "granian"],
    "plone": ["-r", os.path.join(HERE, "requirements-plone.txt")],
}
LUA_EDIT = os.path.join(HERE, "bench-zope.lua")
ADMIN = ("admin", "admin")
AUTH = "Basic " + base64.b64encode(("%s:%s" % ADMIN).encode()).decode()
FOLDER = "/Plone/bench-folder"
DOCUMENTS = 50  # zope_site.py makes them
REFERENCES = ["waitress", "rust-pyruvate"]
REF_LABEL = {"waitress": "waitress", "rust-pyruvate": "Rust"}

# page: (site, method, path, text)
PAGES = {
    "root": ("zope", "GET", "/", "Zope `/`"),
    "front": ("plone", "GET", "/Plone", "Plone `/Plone`"),
    "listing": ("plone", "GET", FOLDER + "?b_size=%d" % DOCUMENTS, "listing of 50 documents"),
    "edit": ("plone", "PATCH", FOLDER + "/doc-N", "edit (restapi PATCH)"),
}
PAGE_ORDER = ["root", "front", "listing", "edit"]
CONNS = [1, 4, 16]
THREADS = [2, 4]
# The full default run: 2 thread counts x 12 scenarios x 4 servers x 3
# rounds of 2 s, plus start-ups and warm-ups: about 15 minutes.
DEFAULT_ROUNDS = 3
DEFAULT_DURATION = 2
# The slow pages run longer: a run of 2 s completed 12-20 listings, so one
# request more or less moved a row by 5-8 %, and wrk drops the requests
# still in flight when it stops (up to one per connection).
PAGE_DURATION_FACTOR = {"root": 1, "front": 2, "listing": 4, "edit": 2}


def log(msg):
    bench.log(msg)


# ---------------------------------------------------------------- servers

class ZopeServer(bench.Server):
    """One server of one site; phase() picks the instance and thread count."""

    def __init__(self, name, label):
        super().__init__(name, label)
        self.start_timeout = 180  # Plone starts in ~10 s alone, far slower on a busy box
        self.site = None
        self.threads = None
        self.instance = None
        self.logs_started = set()
        self.log_offset = 0  # where this phase's lines start in log_path

    def phase(self, site, threads):
        self.site, self.threads = site, threads
        self.instance = os.path.join(RUN, "%s-%s" % (site, self.name))
        self.log_path = os.path.join(LOGS, "%s-%s.log" % (site, self.name))
        # One log per site and server: truncated at its first start in this run.
        self.log_mode = "ab" if self.log_path in self.logs_started else "wb"
        self.logs_started.add(self.log_path)
        self.log_offset = os.path.getsize(self.log_path) if self.log_mode == "ab" else 0
        self.proc = None

    def python_bin(self, name):
        return os.path.join(VENV[self.site], "bin", name)

    def ini(self):
        return os.path.join(self.instance, "etc", "zope.ini")

    def argv(self, port):
        return [self.python_bin("runwsgi"), "--server-name", self.name, self.ini(),
                "http_port=%d" % port, "bench_threads=%d" % self.threads]

    def env(self):
        env = super().env()
        env.pop("BENCH_FILE", None)
        env["PYTHONPATH"] = HERE  # zope_cpu.py, the filter in every pipeline
        return env


class RustZopeServer(ZopeServer):
    def env(self):
        env = super().env()
        # Before the venv's site-packages, and our pyruvate.
        env["PYTHONPATH"] = os.pathsep.join([RUST_PATH, HERE])
        return env


class GranianZopeServer(ZopeServer):
    """granian has no PasteDeploy server runner: zope_app.py loads the app."""

    def argv(self, port):
        return [self.python_bin("granian"), "--interface", "wsgi", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--blocking-threads",
                str(self.threads), "--no-access-log", "zope_app:application"]

    def env(self):
        env = super().env()
        env["BENCH_ZOPE_INI"] = self.ini()
        return env


def all_servers():
    return [
        ZopeServer("pyruvate", "**pyruvate (ours)**"),
        RustZopeServer("rust-pyruvate", "Rust Pyruvate"),
        ZopeServer("waitress", "waitress"),
        GranianZopeServer("granian", "granian"),
    ]


# ---------------------------------------------------------------- instances

# The servers' sections; runwsgi fills in http_port and bench_threads. A
# variable given to runwsgi becomes a PasteDeploy default, and a section's
# option of the same name is then dropped as "global" (so `threads =
# %(threads)s` left waitress at its default of 4 threads): the variables
# share no name with an option. Logging as mkwsgiinstance's, without the
# access log (no server under test writes one).
ZOPE_INI = """\
[app:zope]
use = egg:Zope#main
zope_conf = %(here)s/zope.conf

[pipeline:main]
pipeline =
    appcpu
    egg:Zope#httpexceptions
    zope

# Measures the application's own CPU time (zope_cpu.py).
[filter:appcpu]
use = call:zope_cpu:filter_factory

[server:pyruvate]
use = egg:pyruvate#main
socket = 127.0.0.1:%(http_port)s
workers = %(bench_threads)s

# 1.6.1: max_reuse_count=255 wedges it, 1-254 close after each response;
# see tests/bench/serve.py.
[server:rust-pyruvate]
use = egg:pyruvate#main
socket = 127.0.0.1:%(http_port)s
workers = %(bench_threads)s
max_reuse_count = 254
chunked_transfer = True

[server:waitress]
use = egg:waitress#main
listen = 127.0.0.1:%(http_port)s
threads = %(bench_threads)s

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)s [%(name)s:%(lineno)s][%(threadName)s] %(message)s
datefmt = %H:%M:%S
"""


def make_instance(server):
    """A fresh copy of the seed instance for one server."""
    seed = SEED[server.site]
    target = server.instance
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(os.path.join(target, "var", "log"))
    shutil.copytree(os.path.join(seed, "etc"), os.path.join(target, "etc"))
    for name in ("Data.fs", "Data.fs.index"):
        if os.path.exists(os.path.join(seed, "var", name)):
            shutil.copy2(os.path.join(seed, "var", name), os.path.join(target, "var", name))
    cache = os.path.join(seed, "var", "cache")  # compiled templates: a faster start
    if os.path.isdir(cache):
        shutil.copytree(cache, os.path.join(target, "var", "cache"))
    conf = os.path.join(target, "etc", "zope.conf")
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace(seed, target))
    with open(server.ini(), "w") as f:
        f.write(ZOPE_INI)


def seed_zope_conf(seed):
    """plone.recipe.zope2instance's default ZODB cache (30000 objects per
    connection) rather than ZODB's 5000, which a Plone page outgrows."""
    conf = os.path.join(seed, "etc", "zope.conf")
    with open(conf) as f:
        text = f.read()
    if "cache-size" not in text:
        text = text.replace("<zodb_db main>\n", "<zodb_db main>\n   cache-size 30000\n", 1)
        with open(conf, "w") as f:
            f.write(text)


def ensure_seed(site, reinstall):
    seed = SEED[site]
    done = os.path.join(seed, "bench-seed-done")
    if os.path.exists(done) and not reinstall:
        return None
    shutil.rmtree(seed, ignore_errors=True)
    log("creating the %s instance %s" % (site, os.path.relpath(seed, ROOT)))
    rc, out = bench.sh([os.path.join(VENV[site], "bin", "mkwsgiinstance"), "-d", seed,
                        "-u", "%s:%s" % ADMIN], 300, cwd=WORK)
    if rc != 0:
        return "mkwsgiinstance failed: %s" % out.strip()[-300:]
    seed_zope_conf(seed)
    if site == "plone":
        log("creating the Plone site (about a minute)")
        rc, out = bench.sh([os.path.join(VENV[site], "bin", "zconsole"), "run",
                            os.path.join(seed, "etc", "zope.conf"),
                            os.path.join(HERE, "zope_site.py")], 900, cwd=seed)
        with open(os.path.join(LOGS, "create-plone-site.log"), "w") as f:
            f.write(out)
        if rc != 0 or "created /Plone" not in out:
            return "creating the Plone site failed: %s" % out.strip()[-300:]
    with open(done, "w") as f:
        f.write(time.strftime("%Y-%m-%d %H:%M:%S\n"))
    return None


# ---------------------------------------------------------------- setup

def digest_of(paths, extra=b""):
    h = hashlib.sha256(extra + sys.version.encode())
    for path in sorted(paths):
        h.update(path.encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def pyruvate_sources():
    found = []
    for folder, exts in (("src", (".c",)), ("include", (".h",)), ("pyruvate", (".py", ".pyi"))):
        for dirpath, _dirs, files in os.walk(os.path.join(ROOT, folder)):
            found += [os.path.join(dirpath, f) for f in files if f.endswith(exts)]
    return found + [os.path.join(ROOT, "setup.py"), os.path.join(ROOT, "pyproject.toml")]


def stamped(stamp, digest, action, reinstall):
    """Runs action() unless stamp holds digest; returns None or a failure."""
    if not reinstall and os.path.exists(stamp):
        with open(stamp) as f:
            if f.read().strip() == digest:
                return None
    failure = action()
    if failure is None:
        with open(stamp, "w") as f:
            f.write(digest + "\n")
    return failure


def pip(venv, args, timeout=1800):
    rc, out = bench.sh([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check"] + args, timeout)
    if rc != 0:
        tail = [ln for ln in out.splitlines() if ln.strip() and "is ignored" not in ln]
        return " / ".join(tail[-3:])[:300] or "pip exit status %d" % rc
    return None


def ensure_venv(site, reinstall):
    venv = VENV[site]
    reqs = [a for a in REQUIREMENTS[site] if a.endswith(".txt")]

    def install():
        if not os.path.exists(os.path.join(venv, "bin", "python")):
            log("creating %s" % os.path.relpath(venv, ROOT))
            rc, out = bench.sh([sys.executable, "-m", "venv", venv], 300)
            if rc != 0:
                return "venv failed: %s" % out.strip()[-300:]
        log("pip install %s into %s (a few minutes the first time)" % (
            " ".join(os.path.relpath(a, ROOT) if a.endswith(".txt") else a
                     for a in REQUIREMENTS[site]), os.path.relpath(venv, ROOT)))
        return pip(venv, REQUIREMENTS[site])

    failure = stamped(os.path.join(venv, "bench-requirements.sha256"), digest_of(reqs),
                      install, reinstall)
    if failure:
        return failure

    def install_ours():
        log("pip install . into %s" % os.path.relpath(venv, ROOT))
        return pip(venv, ["--no-deps", "--no-build-isolation", ROOT], 600)

    return stamped(os.path.join(venv, "bench-pyruvate.sha256"), digest_of(pyruvate_sources()),
                   install_ours, reinstall)


def ensure_rust(reinstall):
    reqs = os.path.join(HERE, "requirements-rust.txt")

    def install():
        log("pip install --target %s -r %s" % (os.path.relpath(RUST_PATH, ROOT),
                                               os.path.relpath(reqs, ROOT)))
        shutil.rmtree(RUST_PATH, ignore_errors=True)
        return pip(VENV["plone"], ["--no-deps", "--target", RUST_PATH, "-r", reqs], 600)

    os.makedirs(RUST_PATH, exist_ok=True)
    return stamped(os.path.join(WORK, "rust-pyruvate.sha256"), digest_of([reqs]), install,
                   reinstall)


def ensure_wrk():
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        sys.exit("wrk is missing: apt-get install wrk")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    rc, _ = bench.sh(["apt-get", "install", "-y", "--no-install-recommends", "wrk"], 600, env=env)
    if rc != 0:
        bench.sh(["apt-get", "update"], 300, env=env)
        bench.sh(["apt-get", "install", "-y", "--no-install-recommends", "wrk"], 600, env=env)
    if not shutil.which("wrk"):
        sys.exit("wrk is missing and apt-get could not install it")


VERSION_NAMES = ["Zope", "Plone", "Products.CMFPlone", "plone.restapi", "waitress", "granian",
                 "ZODB", "PasteDeploy"]


def venv_versions(site):
    code = ("import json, importlib.metadata as m\nv = {}\nfor n in %r:\n"
            "    try: v[n] = m.version(n)\n    except Exception: pass\nprint(json.dumps(v))"
            % (VERSION_NAMES,))
    rc, out = bench.sh([os.path.join(VENV[site], "bin", "python"), "-I", "-c", code], 60,
                       cwd=WORK)
    try:
        return json.loads(out.strip().splitlines()[-1]) if rc == 0 else {}
    except (ValueError, IndexError):
        return {}


def setup(servers, sites, reinstall):
    """Returns {site: {package: version}} and marks servers that cannot run."""
    os.makedirs(LOGS, exist_ok=True)
    ensure_wrk()
    versions = {}
    for site in sites:
        failure = ensure_venv(site, reinstall) or ensure_seed(site, reinstall)
        if failure:
            log("%s: %s" % (site, failure))
            for s in servers:
                s.notes.append("%s site not set up: %s" % (site, failure))
        versions[site] = venv_versions(site)
    rust_failure = None
    if any(s.name == "rust-pyruvate" for s in servers):
        rust_failure = ensure_rust(reinstall)
    rev = bench.sh(["git", "-C", ROOT, "describe", "--always", "--dirty"], 30)[1].strip()
    for s in servers:
        if s.name == "pyruvate":
            s.version = "this tree (%s)" % rev
        elif s.name == "rust-pyruvate":
            meta = [d for d in os.listdir(RUST_PATH) if d.startswith("pyruvate-")
                    and d.endswith(".dist-info")] if os.path.isdir(RUST_PATH) else []
            s.version = meta[0][len("pyruvate-"):-len(".dist-info")] if meta else "?"
            if rust_failure or not meta:
                s.status = "not installed: %s" % (rust_failure or "pip failed")
        else:
            vs = versions.get(sites[0], {})
            s.version = vs.get(s.name, "?")
    return versions


# ---------------------------------------------------------------- checks

def page_request(port, page, doc=1, title=None):
    site, method, path, _ = PAGES[page]
    headers = {}
    body = None
    if page == "edit":
        path = path.replace("doc-N", "doc-%d" % doc)
        headers = {"Authorization": AUTH, "Accept": "application/json",
                   "Content-Type": "application/json"}
        body = json.dumps({"title": title or "Checked"}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def check_page(port, page):
    """None if the page answers as expected, else what is wrong."""
    status, data = page_request(port, page)
    if page == "root":
        ok = status == 200 and b"Zope" in data
    elif page == "front":
        ok = status == 200 and b"plone" in data.lower()
    elif page == "listing":
        shown = sum(1 for i in range(1, DOCUMENTS + 1)
                    if b"/bench-folder/doc-%d\"" % i in data)
        if status == 200 and shown != DOCUMENTS:
            return "the listing shows %d of %d documents" % (shown, DOCUMENTS)
        ok = status == 200
    else:
        title = "Checked %d" % time.time_ns()
        status, data = page_request(port, "edit", doc=1, title=title)
        if status != 204:
            return "PATCH answered %d: %r" % (status, data[:200])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", FOLDER + "/doc-1", headers={"Accept": "application/json",
                                                            "Authorization": AUTH})
            resp = conn.getresponse()
            got = json.loads(resp.read()).get("title")
        except (ValueError, OSError, http.client.HTTPException) as e:
            return "reading the edit back failed: %s" % e
        finally:
            conn.close()
        return None if got == title else "the edit did not stick (title %r)" % got
    return None if ok else "%s answered %d (%d bytes)" % (PAGES[page][2], status, len(data))


def check_server(server, pages):
    """Checks every page one request at a time, which also compiles the page
    templates before any concurrency (CPython 3.11.7's compile() is not
    thread-safe: two threads compiling at once may fail with "AST constructor
    recursion depth mismatch", and Chameleon keeps that failed template)."""
    problems = []
    for page in pages:
        try:
            problem = check_page(server.port, page)
        except (OSError, http.client.HTTPException) as e:
            problem = "%s failed: %s" % (PAGES[page][3], e)
        if problem:
            problems.append(problem)
    if app_cpu(server.port) is None:
        problems.append("no application CPU counter at %s (zope_cpu.py not in the pipeline)"
                        % zope_cpu.STATS_PATH)
    ka = bench.keepalive_probe(server.port, path=PAGES[pages[0]][2], body_end=None)
    if ka:
        problems.append(ka)
    if server.name in ("pyruvate", "rust-pyruvate"):
        want = RUST_PATH if server.name == "rust-pyruvate" else VENV[server.site]
        rc, out = bench.sh([server.python_bin("python"), "-c",
                            "import pyruvate; print(pyruvate.__file__)"], 60,
                           env=server.env(), cwd=HERE)
        if rc != 0 or not out.strip().startswith(want + "/"):
            problems.append("WRONG pyruvate imported: %s" % out.strip()[-200:])
    return problems


# ---------------------------------------------------------------- wrk

# What the server logs say about the run: (key, text in a log line, heading).
LOG_COUNTS = [
    ("conflicts", "Request will be retried", "ConflictErrors retried"),
    ("no_seek", "has no attribute 'seek'", "retries failed: wsgi.input has no seek()"),
    ("app_errors", "Traceback (most recent call last)", "tracebacks"),
    ("compile", "Compilation failed", "templates failed to compile"),
]


def count_log(path, offset):
    counts = dict.fromkeys((key for key, _, _ in LOG_COUNTS), 0)
    try:
        with open(path, errors="replace") as f:
            f.seek(offset)
            for line in f:
                for key, text, _ in LOG_COUNTS:
                    if text in line:
                        counts[key] += 1
    except OSError:
        pass
    return counts


def task_switches(pgid):
    """Voluntary and involuntary context switches of every thread in the group."""
    vol = invol = threads = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != pgid:
                continue
            tasks = os.listdir("/proc/%s/task" % entry)
        except OSError:
            continue
        for tid in tasks:
            try:
                with open("/proc/%s/task/%s/status" % (entry, tid)) as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            vol += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches:"):
                            invol += int(line.split()[1])
            except OSError:
                continue
            threads += 1
    return vol, invol, threads


def run_wrk(port, page, conns, duration):
    _, method, path, _ = PAGES[page]
    argv = ["wrk", "-t", str(min(2, conns)), "-c", str(conns), "-d", "%ds" % duration,
            "--timeout", "10s"]
    env = dict(os.environ)
    if page == "edit":
        argv += ["-s", LUA_EDIT, "-H", "Authorization: " + AUTH,
                 "-H", "Accept: application/json", "-H", "Content-Type: application/json"]
        env.update(BENCH_LUA=bench.LUA, WRK_EDIT_PREFIX=FOLDER + "/doc-",
                   WRK_EDIT_DOCUMENTS=str(DOCUMENTS))
        path = FOLDER
    else:
        argv += ["-s", bench.LUA]
    argv.append("http://127.0.0.1:%d%s" % (port, path))
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env=env,
                             timeout=duration + 30).stdout
    except subprocess.TimeoutExpired:
        return {"error": "wrk did not finish within %d s" % (duration + 30)}
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    return {"error": "no wrk summary: %s" % out.strip()[-200:]}


def app_cpu(port):
    """(calls, CPU ns, busy ns, now ns, most calls at once, calls now, process
    CPU ns) of the application (zope_cpu.py), or None."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", zope_cpu.STATS_PATH)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            return None
        return tuple(int(x) for x in data.split()[:7])
    except (OSError, http.client.HTTPException, ValueError, IndexError):
        return None
    finally:
        conn.close()


# How long measure() waits for the requests still in the application after
# wrk stopped: a retried edit sleeps up to 1 + 2 + 4 s.
DRAIN_SECONDS = 30


def app_idle(port):
    """The application's counters once no call is in it (or after
    DRAIN_SECONDS), or None without zope_cpu.py."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        stats = app_cpu(port)
        if stats is None or stats[5] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def measure(server, page, conns, duration):
    """One wrk run. CPU is counted from an idle server to an idle server, so
    that it covers exactly the calls counted by zope_cpu.py: the requests in
    flight when wrk stops are finished and counted (per call) rather than
    half-counted (per request of the window)."""
    pgid = server.proc.pid
    app0 = app_idle(server.port)
    cpu0 = bench.group_cpu_seconds(pgid)
    vol0, invol0, _ = task_switches(pgid)
    wrk = run_wrk(server.port, page, conns, duration)
    app_end = app_cpu(server.port)  # queued behind what wrk left: the threads stay busy
    app1 = app_idle(server.port)
    cpu1 = bench.group_cpu_seconds(pgid)
    vol1, invol1, threads = task_switches(pgid)
    result = dict(wrk)
    if "error" in wrk:
        server.events.append("%s, %s: %s" % (server.label, scenario_name((page, conns,
                                                                           server.threads)),
                                             wrk["error"]))
        return result
    n = wrk["requests"]
    result["rps"] = n / (wrk["duration_us"] / 1e6)
    if not n:
        result["p50_us"] = result["p99_us"] = None
    result["errors"] = sum(wrk[k] for k in ("connect", "read", "write", "timeout", "status"))
    calls = app1[0] - app0[0] if None not in (app0, app1) else 0
    per = calls if calls > 0 else n  # without the counter: per request of the window
    if calls > 0:
        # The application's process, read by itself: to the nanosecond.
        result["cpu_us"] = (app1[6] - app0[6]) / 1e3 / calls
    else:
        result["cpu_us"] = (cpu1 - cpu0) * 1e6 / per if per else None
    result["app_us"] = (app1[1] - app0[1]) / 1e3 / calls if n and calls > 0 else None
    # Threads inside the application on average while wrk ran.
    result["app_busy"] = ((app_end[2] - app0[2]) / (app_end[3] - app0[3])
                          if n and calls > 0 and app_end else None)
    result["server_us"] = (result["cpu_us"] - result["app_us"]
                           if result["app_us"] is not None else None)
    result["vcsw"] = (vol1 - vol0) / per if per else None
    result["ivcsw"] = (invol1 - invol0) / per if per else None
    result["threads"] = threads
    return result


def summarize(runs):
    s = bench.summarize(runs)
    ok = [r for r in runs if "rps" in r]
    for key in ("vcsw", "ivcsw", "threads", "app_us", "server_us", "app_busy"):
        vals = [r[key] for r in ok if r.get(key) is not None]
        s[key] = statistics.median(vals) if vals else None
    return s


# ---------------------------------------------------------------- report

def scenario_name(sc):
    page, conns, threads = sc
    return "%s, %d conn%s, %d thr" % (PAGES[page][3], conns, "" if conns == 1 else "s", threads)


def fmt_num(v, digits=1):
    return "–" if v is None else ("%.*f" % (digits, v) if v < 100 else "%.0f" % v)


def fmt_server_cpu(r):
    return fmt_num(r.get("server_us"), 0)


def report(servers, scenarios, results, log_counts, versions, run):
    """The markdown of a run; run: its facts (see main), saved with the raw
    results so that --report-from renders the same file again."""
    lines = []
    out = lines.append
    cpu_model = "?"
    with open("/proc/cpuinfo") as f:
        for ln in f:
            if ln.startswith("model name"):
                cpu_model = ln.split(":", 1)[1].strip()
                break
    wrk_version = bench.sh(["wrk", "-v"], 30)[1].split(" Copyright")[0].strip()
    out("# pyruvate under Zope and Plone")
    out("")
    out("- Date: %s (UTC); run took %.1f min." % (run["date"], run["elapsed"] / 60))
    out("- Machine: nproc %d, %s, Linux %s, Python %s; load average %s at the start, %s at "
        "the end." % (len(os.sched_getaffinity(0)), cpu_model, platform.release(),
                      platform.python_version(), run["load_start"], run["load_end"]))
    for site in sorted(versions):
        vs = versions[site]
        out("- %s site: %s." % (site.capitalize(), ", ".join(
            "%s %s" % (k, vs[k]) for k in VERSION_NAMES if k in vs)))
    out("- Load: %s, keep-alive; %d rounds, each running every scenario on every server "
        "(order rotated each round); %d s per wrk run (%s), wrk threads min(2, conns)." % (
            wrk_version, run["rounds"], run["duration"], ", ".join(
                "%s ×%d" % (PAGES[p][3], f) for p, f in PAGE_DURATION_FACTOR.items()
                if f != 1)))
    out("- Command: `python tests/bench/bench_zope.py%s`." % "".join(" " + a for a in run["argv"]))
    out("- req/s, p50, p99, CPU and context switches: medians of the rounds; errors: summed "
        "over the rounds (wrk socket errors + non-2xx). CPU: user+sys of the process "
        "that runs the application (all its threads; granian's supervisor process not "
        "counted), read by zope_cpu.py to the nanosecond, per application call, from "
        "the server idle before wrk to the server idle again after it (the requests "
        "still in flight when wrk stops are finished and counted). csw: voluntary / involuntary context switches of all "
        "the server's threads per request. ×X: ratio to server X in the same run (req/s: "
        "higher is better; CPU: lower is better).")
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

    def down(s, r):
        return s.status if s.status != "ok" else r.get("failed", "not run")

    out("## Servers")
    out("")
    table(["server", "version", "status and notes", "command (its last start)"],
          [[s.label, s.version, "; ".join([s.status] + sorted(set(s.notes))),
            "`%s`" % s.command if s.command else "–"] for s in servers])

    if any(s.name == "pyruvate" for s in servers):
        out("## Summary: pyruvate against waitress and the Rust Pyruvate")
        out("")
        rows = []
        for sc in scenarios:
            me = get(sc, "pyruvate")
            if "rps" not in me:
                rows.append([scenario_name(sc), me.get("failed", "not run")])
                continue
            rows.append([scenario_name(sc), bench.fmt_rps(me["rps"])] +
                        [bench.fmt_ratio(me["rps"], get(sc, ref).get("rps"))
                         for ref in REFERENCES] +
                        [bench.fmt_ms(me["p50"]), bench.fmt_ms(me["p99"]),
                         bench.fmt_errors(me), fmt_num(me["cpu_us"], 0)] +
                        [bench.fmt_ratio(me["cpu_us"], get(sc, ref).get("cpu_us"))
                         for ref in REFERENCES] +
                        [fmt_num(me["app_us"], 0), fmt_num(me["server_us"], 0)] +
                        [fmt_server_cpu(get(sc, ref)) for ref in REFERENCES])
        table(["scenario", "req/s"] + ["×" + REF_LABEL[r] for r in REFERENCES] +
              ["p50 ms", "p99 ms", "errors", "CPU µs/req"] +
              ["CPU ×" + REF_LABEL[r] for r in REFERENCES] +
              ["app µs/req", "server µs/req"] +
              [REF_LABEL[r] + " server µs/req" for r in REFERENCES], rows)

    out("## All servers")
    out("")
    rows = []
    for sc in scenarios:
        for s in servers:
            r = get(sc, s.name)
            if "rps" not in r:
                rows.append([scenario_name(sc), s.label, down(s, r)])
                continue
            rows.append([scenario_name(sc), s.label, bench.fmt_rps(r["rps"])] +
                        [bench.fmt_ratio(r["rps"], get(sc, ref).get("rps"))
                         for ref in REFERENCES] +
                        [bench.fmt_ms(r["p50"]), bench.fmt_ms(r["p99"]), bench.fmt_errors(r),
                         fmt_num(r["cpu_us"], 0)] +
                        [bench.fmt_ratio(r["cpu_us"], get(sc, ref).get("cpu_us"))
                         for ref in REFERENCES] +
                        [fmt_num(r["app_us"], 0), fmt_num(r["server_us"], 0),
                         fmt_num(r["app_busy"], 2),
                         "%s / %s" % (fmt_num(r["vcsw"]), fmt_num(r["ivcsw"])),
                         "–" if r["threads"] is None else "%d" % r["threads"]])
    table(["scenario", "server", "req/s"] + ["×" + REF_LABEL[r] for r in REFERENCES] +
          ["p50 ms", "p99 ms", "errors", "CPU µs/req"] +
          ["CPU ×" + REF_LABEL[r] for r in REFERENCES] +
          ["app µs/req", "server µs/req", "threads in app", "csw/req vol / invol",
           "threads"],
          rows)

    thread_counts = sorted({sc[2] for sc in scenarios})
    if len(thread_counts) > 1:
        low, high = thread_counts[0], thread_counts[-1]
        out("## Thread scaling: req/s with %d threads ÷ req/s with %d" % (high, low))
        out("")
        out("Above 1: the server gains from the extra threads (a Zope thread waits on "
            "I/O or the GIL is released long enough); about 1 or below: the GIL bounds it.")
        out("")
        rows = []
        for page in [p for p in PAGE_ORDER if any(sc[0] == p for sc in scenarios)]:
            for c in sorted({sc[1] for sc in scenarios}):
                rows.append(["%s, %d conn%s" % (PAGES[page][3], c, "" if c == 1 else "s")] +
                            [bench.fmt_ratio(get((page, c, high), s.name).get("rps"),
                                             get((page, c, low), s.name).get("rps"))
                             for s in servers])
        table(["scenario"] + [s.label for s in servers], rows)

    if any(s.name == "pyruvate" for s in servers):
        where_we_lose(out, table, servers, scenarios, get, log_counts)

    if log_counts:
        out("## Server logs")
        out("")
        out("Lines counted in each server's log for each site and thread count (checks, "
            "warm-up and all rounds): what went wrong inside Zope, e.g. the write "
            "conflicts behind non-2xx answers.")
        out("")
        table(["site, threads", "server"] + [head for _, _, head in LOG_COUNTS],
              [["%s, %d thr" % (site, t), next(s.label for s in servers if s.name == name)] +
               ["%d" % counts[key] for key, _, _ in LOG_COUNTS]
               for (site, t, name), counts in sorted(log_counts.items())])
    out("## Notes")
    out("")
    out("- Sites: Zope `/` is a plain Zope instance (mkwsgiinstance, Zope's own venv); the "
        "Plone pages come from a Plone instance with the site made by "
        "tests/bench/zope_site.py (classic UI, default content, plone.restapi, a published "
        "folder of %d published documents). Both: ZODB FileStorage, pool-size 7, "
        "cache-size 30000 objects per connection (plone.recipe.zope2instance's default), "
        "pipeline `egg:Zope#httpexceptions` + Zope, no access log." % DOCUMENTS)
    out("- The listing is the folder's default view (listing_view) with `b_size=%d`, so "
        "all %d documents are listed: catalog (ZODB) reads on every request." % (
            DOCUMENTS, DOCUMENTS))
    out("- The write: `PATCH %s/doc-<random 1..%d>` with a JSON title and description, "
        "authenticated by basic auth as the Zope admin. plone.restapi is a legitimate "
        "write path that ships with Plone 6: its update service marks the request "
        "IDisableCSRFProtection because a JSON API request with an Authorization header "
        "cannot come from a cross-site form, so plone.protect's auto-CSRF does not reject "
        "it (a browser-view POST would need a CSRF token read from a form first). Each "
        "request commits a transaction (new title every time, reindexed in the catalog). "
        "Concurrent edits may conflict; Zope retries a ConflictError up to 3 times, and "
        "what is still failing counts as non-2xx. Zope's retry (HTTPRequest.retry) "
        "calls `wsgi.input.seek(0)`: a server whose wsgi.input cannot seek turns every "
        "conflict into a 500 (see Server logs); pyruvate's can since this harness "
        "found it could not. A retry first sleeps up to 2^n s (HTTPRequest.delay_retry), "
        "holding its worker thread." % (FOLDER, DOCUMENTS))
    out("- ZODB pool: pool-size 7 is above every thread count measured, so no request "
        "waits for a ZODB connection and none is opened beyond the pool.")
    out("- p99 of the slow Plone pages at 1 connection rests on a few dozen requests "
        "per run: compare p50 there.")
    out("- Every server gets the same thread count: pyruvate/Rust `workers`, waitress "
        "`threads`, granian `--workers 1 --blocking-threads N`; each runs its own copy of "
        "the instance, fresh for each thread count.")
    out("- The Rust Pyruvate 1.6.1 runs with `max_reuse_count=254, chunked_transfer=True` "
        "(see tests/bench/RESULTS.md): it closes every connection after the response while "
        "announcing keep-alive, so wrk counts a read error per request and reconnects; its "
        "rows measure a new connection per request.")
    out("- app µs/req: the CPU time of the application's own calls (tests/bench/zope_cpu.py, "
        "a PasteDeploy filter first in every server's pipeline, time.thread_time around "
        "the call), per call; server µs/req: CPU µs/req minus that, i.e. everything else "
        "in the process: the server's threads, its environ, its writes, its GIL "
        "hand-offs. The application does the same work whichever server calls it, so "
        "differences in app µs/req between servers are the noise of the machine (caches, "
        "preemption), and a server's cost is its server µs/req.")
    out("- threads in app: the wall-clock time spent inside the application over the "
        "run, divided by the run's length: how many worker threads were busy with a "
        "request on average. Under enough load it should be the thread count; below it, "
        "threads waited for requests that the server had not handed over yet.")
    out("- csw: many voluntary switches per request mean threads block (GIL hand-offs, "
        "waits for a worker); involuntary ones, threads preempted by the 2 cores' load. "
        "The threads column counts the server's threads at the end of a run.")
    out("- Server logs of the run: build/bench-zope/logs/.")
    out("")
    events = [e for s in servers for e in s.events]
    if events:
        out("## Events")
        out("")
        for e in events:
            out("- %s" % e)
        out("")
    return "\n".join(lines)


# ---------------------------------------------------------------- analysis

# Within this ratio of a reference, pyruvate ties rather than wins.
TIE = 1.05

# What profiling found (2026-11-29; see where_we_lose): kept with the script
# so that a rerun writes the whole file.
FINDINGS = """\
### What profiling found

Investigated on 2026-11-29 (pyruvate at 23ff736, the server code of this
run; the machine as busy as above), with py-spy dumps and records of the
servers under wrk, A/B runs of two or three servers alternating 5 s runs
(the application's CPU per call from zope_cpu.py), and the tables above.

- **The application is the page, and the GIL bounds it.** CPU per request:
  Zope `/` ~0.4-0.7 ms, of which pyruvate's own share is ~0.05-0.08 ms (the
  Rust Pyruvate ~0.1-0.14, granian ~0.15, waitress ~0.25-0.6); Plone
  `/Plone` ~25-30 ms, the listing ~80-100 ms, an edit ~17-27 ms, of which
  pyruvate's own share is ~0.1-0.4 ms (1 %), waitress's 0.5-2 ms. With the
  GIL a process runs at most one core of Python, so a Plone page's req/s
  can be at most 1 / (CPU per request): ~37 req/s for `/Plone` on this
  machine, which every server reaches at 4 connections when the machine
  lets it. A/B at 4 connections and 4 threads, four alternating rounds of
  5 s, load average ~3: pyruvate 31.6-38.1 req/s (CPU per request
  25.3-27.8 ms), the Rust Pyruvate 30.8-36.9 (25.1-27.0 ms), waitress
  34.3-36.7 (25.9-28.0 ms). At 1 connection and 4 threads against granian,
  six rounds: pyruvate 32.9-38.5 req/s, granian 24.3-37.1; the application's
  CPU per call 24.1-26.7 ms under pyruvate, 25.2-27.0 ms under granian, the
  server's own ~0.14 ms and ~0.33 ms. What pyruvate can still win on a
  Plone page is its own ~1 %; the rest of the differences in these tables
  are the machine.
- **App CPU per call moves ±15 % from round to round for every server**
  (same code, same data: preemption and caches of a machine shared with
  compilers), so the rows above where pyruvate is "behind" by 5-30 % on a
  Plone page have the application itself costing more in those rounds, never
  the server (its own share stays among the smallest). One effect
  that is real but small: with 4 threads on 2 cores, pyruvate keeps more of
  them inside the application at once (threads in app 3.4-3.97, waitress
  2.8-3.4), and 4 threads trading the GIL every 5 ms cost a little more CPU
  per call (waitress's application ~5 % cheaper in the A/B, its total CPU
  per request the same as pyruvate's). Fewer threads than configured would
  be the remedy, which is the configuration's choice, not the server's.
- **One thread computes at a time (src/room.c, since 2026-11-30).** Before
  it, on Zope `/` at 16 connections pyruvate kept both of its 2 threads
  inside the application (threads in app 1.92; the Rust Pyruvate 0.85,
  granian 0.90), and the application's own CPU per call rose to 496 µs
  (Rust 377, granian 344; at 1 connection 376): Zope `/` releases the GIL
  often inside a request, and two threads of a CPU-bound page traded it at
  each release (3.3-4.6 voluntary context switches per request). pyruvate
  with 1 thread was faster than with 2 (2100-2426 against 1375-1853
  req/s). Now a worker does not start a request while another computes in
  one (its CPU time grew by at least half the wall-clock time and the GIL
  is not free) for up to CPython's switch interval (5 ms) of the other's
  work on one connection; the busy worker takes the next request itself.
  Zope `/` then runs on one thread at a time (threads in app 0.92-0.95,
  0.5-0.7 switches per request). Pages longer than 5 ms (the Plone pages
  here) still share the GIL as before: waiting for a whole slow page made
  the listing faster in a trial (50 ms: 22-51 switches per request
  instead of ~300, 10.6 to 11.2-13.0 req/s), but held fast requests
  beside it up to that long (an outside attack measured fast requests' p99
  at 58 ms against 7 ms), so the wait stays at the switch interval.
- **The GIL is not held while waiting to write.** Zope returns
  `(stdout, body)`, two byte strings: pyruvate sends them with a
  Content-Length, head and body in one `sendmsg` (16 KB for `/Plone`),
  tried without waiting and with the GIL held (cheaper than two GIL
  hand-offs when the socket takes it all, as it does on loopback); only a
  write that would block releases the GIL (and parks after 20 ms). A py-spy
  record (`--native`) of pyruvate serving `/Plone` at 4 connections found
  ~1.4 % of the worker samples outside the application: that `sendmsg`,
  and the `write` to the acceptor's wake-up pipe that hands a connection
  back. The Rust Pyruvate runs with `max_reuse_count=254,
  chunked_transfer=True` as in tests/bench/serve.py, and closes each
  connection after its response.
- **Threads and the ZODB pool.** 2 or 4 threads against Zope's pool of 7
  ZODB connections: no request waits for a connection.
- **Edits at more than one connection measure Zope's conflict back-off.**
  Concurrent edits of documents in one folder conflict on the catalog's
  BTrees; Zope retries each ConflictError after sleeping uniform(0, 2^n) s
  *in the worker thread* (HTTPRequest.delay_retry; py-spy shows a worker in
  that sleep for seconds), and how many such sleeps fall into a 2 s round
  decides req/s and p99 for every server alike (see Server logs).
- **This harness's own bugs, fixed on the way:** runwsgi's `threads=N`
  variable had the name of waitress's option, and PasteDeploy drops a
  section's option named like a global variable, so waitress ran its
  default 4 threads in every "2 threads" run of earlier versions (the
  variable is `bench_threads` now, and a server that runs more requests at
  once than its threads is reported under Events); CPU per request came
  from /proc's 10 ms ticks per thread, too coarse for the server's share of
  a 30-100 ms page (now CLOCK_PROCESS_CPUTIME_ID, read by zope_cpu.py).
- **On this busy 2-core machine** a 2 s round of a 30 ms page holds 30-70
  requests and the share of a core the scheduler gives each server decides
  more than the server: compare the CPU columns (per request), or rerun
  on a quiet machine (`make bench-zope`, ~25 minutes).
"""


def where_we_lose(out, table, servers, scenarios, get, log_counts):
    """Each scenario where pyruvate is not ahead of a reference, with what
    the numbers say about why; then the profiling findings."""
    out("## Where we lose, and why")
    out("")
    rows = []
    total = ahead = 0
    for sc in scenarios:
        me = get(sc, "pyruvate")
        if "rps" not in me:
            continue
        for ref in REFERENCES:
            other = get(sc, ref)
            if "rps" not in other or not other["rps"]:
                continue
            total += 1
            ratio = me["rps"] / other["rps"]
            if ratio >= TIE:
                ahead += 1
                continue
            rows.append([scenario_name(sc), REF_LABEL[ref], "%.2f" % ratio,
                         "%s / %s" % (fmt_num(me["app_us"], 0), fmt_num(other["app_us"], 0)),
                         "%s / %s" % (fmt_num(me["server_us"], 0),
                                      fmt_num(other["server_us"], 0)),
                         "%s / %s" % (fmt_num(me["app_busy"], 2),
                                      fmt_num(other["app_busy"], 2)),
                         loss_reason(sc, me, other, ref, log_counts)])
    talk_comparison(out, scenarios, get)
    out("pyruvate's req/s is at least %.2f× the reference's in %d of %d comparisons "
        "(each scenario against waitress and against the Rust Pyruvate). The others, "
        "with pyruvate's value / the reference's:" % (TIE, ahead, total))
    out("")
    if rows:
        table(["scenario", "against", "req/s ×", "app µs/req", "server µs/req",
               "threads in app", "what the numbers say"], rows)
    else:
        out("(none)")
        out("")
    out(FINDINGS)


def geomean_ratio(scenarios, get, page, a, b):
    """The geometric mean over page's scenarios of a's req/s ÷ b's, or None."""
    logs = [math.log(get(sc, a)["rps"] / get(sc, b)["rps"]) for sc in scenarios
            if sc[0] == page and get(sc, a).get("rps") and get(sc, b).get("rps")]
    return math.exp(sum(logs) / len(logs)) if logs else None


def talk_comparison(out, scenarios, get):
    """The Plone Conference 2020 talk's observation, against this run."""
    pairs = [("rust-pyruvate", "waitress"), ("pyruvate", "waitress"),
             ("pyruvate", "rust-pyruvate")]
    names = {"pyruvate": "pyruvate", "rust-pyruvate": "Rust", "waitress": "waitress"}
    out("The talk that introduced the Rust Pyruvate (Plone Conference 2020) found it "
        "faster than waitress on Zope's `/` but slower on `/Plone`. In this run "
        "(geometric mean of req/s ratios over connections and thread counts):")
    out("")
    rows = []
    for page in [p for p in PAGE_ORDER if any(sc[0] == p for sc in scenarios)]:
        rows.append([PAGES[page][3]] + [
            "–" if r is None else "%.2f" % r
            for r in (geomean_ratio(scenarios, get, page, a, b) for a, b in pairs)])
    out_table = ["| page | " + " | ".join("%s ÷ %s" % (names[a], names[b]) for a, b in pairs)
                 + " |", "|" + "---|" * (len(pairs) + 1)]
    out_table += ["| " + " | ".join(r) + " |" for r in rows]
    for line in out_table:
        out(line)
    out("")


def loss_reason(sc, me, other, ref, log_counts):
    page, conns, threads = sc
    said = []
    if page == "edit" and conns > 1:
        counts = [log_counts.get(("plone", threads, name), {}).get("conflicts")
                  for name in ("pyruvate", ref)]
        said.append("write conflicts: Zope's retry sleeps in the worker (ConflictErrors "
                    "retried in this phase: %s / %s)" % tuple(
                        "?" if c is None else c for c in counts))
    server_me, server_other = me.get("server_us"), other.get("server_us")
    app_me, app_other = me.get("app_us"), other.get("app_us")
    busy_me, busy_other = me.get("app_busy"), other.get("app_busy")
    server_worse = (server_me is not None and server_other is not None and
                    server_me - server_other > max(50, 0.02 * (app_me or 0)))
    busy_worse = busy_me is not None and busy_other is not None and busy_me < busy_other - 0.05
    if server_worse:
        said.append("pyruvate's own CPU per request is higher: look here")
    if busy_worse:
        said.append("pyruvate's threads were less busy in the application: look at the "
                    "hand-over")
    if app_me and app_other and app_me > app_other * 1.03:
        said.append("the application's own CPU per call was %.0f%% higher under pyruvate "
                    "(same code and data; it moves ±15%% from round to round for every "
                    "server)" % (100 * (app_me / app_other - 1)))
    if not server_worse and not busy_worse:
        said.append("not the server: no more CPU of its own, threads as busy")
    return "; ".join(said)


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 round of 1 s, 4 connections, 2 threads, every page "
                        "and server")
    p.add_argument("--servers", help="comma-separated subset of pyruvate,rust-pyruvate,"
                                     "waitress,granian")
    p.add_argument("--pages", help="comma-separated subset of %s" % ",".join(PAGE_ORDER))
    p.add_argument("--conns", help="comma-separated connection counts (default 1,4,16)")
    p.add_argument("--threads", help="comma-separated thread counts (default 2,4)")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--duration", type=int, default=None, help="seconds per wrk run (integer)")
    p.add_argument("--output", help="results file (default: see above)")
    p.add_argument("--setup-only", action="store_true")
    p.add_argument("--reinstall", action="store_true",
                   help="reinstall the virtualenvs and remake the instances")
    p.add_argument("--report-from", metavar="JSON",
                   help="only render the results file again from a run's raw results "
                        "(every run saves them to %s)" % os.path.relpath(RAW, ROOT))
    args = p.parse_args(argv)
    args.argv = argv
    args.full = not (args.quick or args.servers or args.pages or args.conns or args.threads or
                     args.rounds is not None or args.duration is not None or args.report_from)
    if args.rounds is None:
        args.rounds = 1 if args.quick else DEFAULT_ROUNDS
    if args.duration is None:
        args.duration = 1 if args.quick else DEFAULT_DURATION
    return args


def csv(text, default, cast=str):
    return [cast(x) for x in text.split(",")] if text else list(default)


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


def warm_up(server, pages):
    """Every worker thread's ZODB connection and templates warm before measuring."""
    for page in pages:
        run_wrk(server.port, page, server.threads, 1)


def run_phase(servers, site, threads, pages, conns, args, results_raw, log_counts):
    log("---- %s site, %d threads" % (site, threads))
    running = []
    try:
        for s in servers:
            if s.status != "ok":
                continue
            s.phase(site, threads)
            make_instance(s)
            err = s.start()
            if err:
                s.notes.append("%s, %d threads: failed to start: %s" % (site, threads, err))
                log("%-14s failed to start: %s" % (s.name, err))
                continue
            problems = check_server(s, pages)
            s.notes.extend("%s: %s" % (site, p) for p in problems)
            log("%-14s %-22s port %d%s" % (s.name, s.version, s.port,
                                           ("; " + "; ".join(problems)) if problems else ""))
            warm_up(s, pages)
            running.append(s)
        for rnd in range(args.rounds):
            order = running[rnd % len(running):] + running[:rnd % len(running)] if running else []
            for page in pages:
                for c in conns:
                    sc = (page, c, threads)
                    for s in order:
                        key = (sc, s.name)
                        if not s.alive():
                            results_raw.setdefault(key, []).append(
                                {"down": "exited: %s" % s.log_tail()})
                            continue
                        r = measure(s, page, c, args.duration * PAGE_DURATION_FACTOR[page])
                        results_raw.setdefault(key, []).append(r)
                        if "rps" in r:
                            log("[r%d] %-40s %-14s %8s req/s p99 %7s ms err %d cpu %s µs "
                                "(app %s) in app %s csw %s/%s" % (
                                    rnd + 1, scenario_name(sc), s.name,
                                    bench.fmt_rps(r["rps"]), bench.fmt_ms(r["p99_us"]),
                                    r["errors"], fmt_num(r["cpu_us"], 0),
                                    fmt_num(r["app_us"], 0), fmt_num(r["app_busy"], 2),
                                    fmt_num(r["vcsw"]),
                                    fmt_num(r["ivcsw"])))
                        else:
                            log("[r%d] %-40s %-14s %s" % (rnd + 1, scenario_name(sc), s.name,
                                                          r.get("error")))
        for s in running:
            stats = app_cpu(s.port) if s.alive() else None
            if stats and stats[4] > threads:
                s.events.append("%s ran up to %d requests at once in the application with "
                                "%d threads configured: its thread count is wrong" % (
                                    s.label, stats[4], threads))
            if not s.alive():
                s.events.append("%s exited (status %s) during %s/%d threads: %s" % (
                    s.label, s.proc.returncode if s.proc else None, site, threads,
                    s.log_tail()))
    finally:
        for s in servers:
            s.stop()
    for s in running:
        log_counts[(site, threads, s.name)] = count_log(s.log_path, s.log_offset)


def main(argv):
    args = parse_args(argv)
    if args.report_from:
        return report_from(args.report_from, args.output)
    signal.signal(signal.SIGTERM, on_sigterm)
    servers = all_servers()
    if args.servers:
        names = args.servers.split(",")
        unknown = set(names) - {s.name for s in servers}
        if unknown:
            sys.exit("unknown servers: %s" % ", ".join(sorted(unknown)))
        servers = [s for s in servers if s.name in names]
    pages = csv(args.pages, PAGE_ORDER)
    unknown = set(pages) - set(PAGES)
    if unknown:
        sys.exit("unknown pages: %s (known: %s)" % (", ".join(sorted(unknown)),
                                                    ",".join(PAGE_ORDER)))
    pages = [p for p in PAGE_ORDER if p in pages]
    conns = csv(args.conns, [4] if args.quick else CONNS, int)
    threads = csv(args.threads, [2] if args.quick else THREADS, int)
    sites = [site for site in ("zope", "plone") if any(PAGES[p][0] == site for p in pages)]
    output = args.output or (os.path.join(HERE, "RESULTS-zope.md") if args.full else
                             os.path.join(WORK, "RESULTS-zope.md"))

    os.makedirs(WORK, exist_ok=True)
    versions = setup(servers, sites, args.reinstall)
    if args.setup_only:
        for s in servers:
            log("%-14s %-22s %s" % (s.name, s.version, s.status))
        return 0

    scenarios = [(p, c, t) for t in threads for p in pages for c in conns]
    runs = len(scenarios) * len(servers) * args.rounds
    run_seconds = sum(args.duration * PAGE_DURATION_FACTOR[p] + 0.4 for p, _, _ in scenarios)
    log("%d runs of %d s (slow pages longer), plus %d server starts: about %.0f min" % (
        runs, args.duration, len(threads) * len(sites) * len(servers),
        (run_seconds * len(servers) * args.rounds + len(threads) * len(servers) *
         (len(sites) * 10 + len(pages))) / 60))
    started = time.monotonic()
    run = {"load_start": loadavg(), "rounds": args.rounds, "duration": args.duration,
           "argv": args.argv, "full": args.full}
    results_raw = {}
    log_counts = {}
    for t in threads:
        for site in sites:
            site_pages = [p for p in pages if PAGES[p][0] == site]
            run_phase(servers, site, t, site_pages, conns, args, results_raw, log_counts)
    run.update(load_end=loadavg(), elapsed=time.monotonic() - started,
               date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"))
    save_raw(servers, scenarios, results_raw, log_counts, versions, run)
    write_report(servers, scenarios, results_raw, log_counts, versions, run, output)
    return 0


def loadavg():
    return " ".join("%.2f" % x for x in os.getloadavg())


SERVER_FIELDS = ("name", "label", "version", "status", "notes", "command", "events")


def save_raw(servers, scenarios, results_raw, log_counts, versions, run):
    data = {"servers": [{k: getattr(s, k) for k in SERVER_FIELDS} for s in servers],
            "scenarios": scenarios, "results": [[list(sc), name, runs] for (sc, name), runs
                                                in results_raw.items()],
            "log_counts": [[list(key), counts] for key, counts in log_counts.items()],
            "versions": versions, "run": run}
    with open(RAW, "w") as f:
        json.dump(data, f, indent=1)
    log("raw results saved to %s" % os.path.relpath(RAW, ROOT))


def write_report(servers, scenarios, results_raw, log_counts, versions, run, output):
    results = {key: summarize(r) for key, r in results_raw.items()}
    text = report(servers, scenarios, results, log_counts, versions, run)
    print(text)
    with open(output, "w") as f:
        f.write(text + "\n")
    log("written to %s" % os.path.relpath(output, ROOT))


def report_from(path, output):
    with open(path) as f:
        data = json.load(f)
    servers = [types.SimpleNamespace(**s) for s in data["servers"]]
    scenarios = [tuple(sc) for sc in data["scenarios"]]
    results_raw = {(tuple(sc), name): runs for sc, name, runs in data["results"]}
    log_counts = {tuple(key): counts for key, counts in data["log_counts"]}
    run = data["run"]
    output = output or (os.path.join(HERE, "RESULTS-zope.md") if run["full"] else
                        os.path.join(WORK, "RESULTS-zope.md"))
    write_report(servers, scenarios, results_raw, log_counts, data["versions"], run, output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
