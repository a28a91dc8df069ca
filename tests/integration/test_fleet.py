"""A Plone/Zope fleet on one machine, made of the real parts and the files of
examples/fleet/: a ZEO server (runzeo), three Zope instances as ZEO clients,
each served by pyruvate through PasteDeploy (runwsgi, egg:pyruvate#main) on
its own Unix socket, and nginx balancing over them (upstream keepalive,
proxy_next_upstream error timeout).

Under a steady, bounded load through nginx (GETs that read the ZODB, POSTs
that each apply one write: deploy_apps/zope_fleet.py):
- a rolling restart (SIGTERM an instance, start it again, wait until it
  serves, then the next) fails no request, loses and duplicates no write,
  and requests in flight on the stopping instance finish (they are held
  in the application until its graceful stop has begun);
- kill -9 of one instance: nginx passes GETs to the others, no GET fails;
  POSTs may fail (502), but none is applied twice or half: the counter
  equals the number of POSTs answered 200, plus those of the POSTs cut by
  the kill that had committed in the ZEO server before it (the client
  cannot know their outcome; the transcript counts them).
A transcript (requests and failures by phase and kind, nginx's upstream
errors, the counter check) is printed: run with -s (`make test-fleet`).

Slow (four Zope processes, about a minute): runs only with
PYRUVATE_TEST_FLEET=1, which `make test-fleet` (ci/fleet.mk) sets.
PYRUVATE_BENCH_FLEET=1 runs the throughput benchmark instead
(`make bench-fleet`): a ~10 ms page through nginx with 1, 2 and 3 instances
under wrk.
"""
import collections
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

import support

FLEET = support.EXAMPLES / "fleet"
INSTANCES = 3
WORKERS = 2
HEALTH_PATH = "/_pyruvate/health"
HOLD_SECONDS = 40  # the longest a held request waits for its gate (see _held)

pytestmark = [pytest.mark.slow]
run_fleet = pytest.mark.skipif(os.environ.get("PYRUVATE_TEST_FLEET") != "1",
                               reason="slow: run with `make test-fleet` (PYRUVATE_TEST_FLEET=1)")
run_bench = pytest.mark.skipif(os.environ.get("PYRUVATE_BENCH_FLEET") != "1",
                               reason="benchmark: run with `make bench-fleet`")


class Instance:
    """Zope instance N: examples/fleet/zope.conf and zope.ini in base/instanceN."""

    def __init__(self, fleet, number):
        self.fleet = fleet
        self.number = number
        self.home = fleet.base / ("instance%d" % number)
        self.socket = self.home / "var" / "http.sock"
        self.proc = None
        self.starts = 0
        for sub in ("etc", "var/cache", "var/log"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        conf = (FLEET / "zope.conf").read_text()
        assert "%define INSTANCE /srv/plone/instance1\n" in conf
        assert "%define ZEO 127.0.0.1:8100\n" in conf
        (self.home / "etc" / "zope.conf").write_text(
            conf.replace("/srv/plone/instance1", str(self.home))
                .replace("127.0.0.1:8100", fleet.zeo_address))
        ini = (FLEET / "zope.ini").read_text()
        assert "workers = 2\n" in ini
        ini = ini.replace("workers = 2\n", "workers = %d\n" % fleet.workers)
        pipeline = "pipeline =\n    egg:Zope#httpexceptions\n"
        assert pipeline in ini
        ini = ini.replace(pipeline, pipeline + "    hold\n") + (
            "\n[filter:hold]\nuse = call:zope_fleet:make_filter\n")
        assert "health_path = %s\n" % HEALTH_PATH in ini
        (self.home / "etc" / "zope.ini").write_text(ini)

    def start(self):
        self.starts += 1
        venv = self.fleet.venv
        env = venv.env((support.DEPLOY_APPS,), FLEET_INSTANCE=str(self.number),
                       FLEET_MARK_DIR=str(self.fleet.marks))
        self.proc = self.fleet.procs.start(
            venv.runner("runwsgi") + [str(self.home / "etc" / "zope.ini")], env=env,
            cwd=self.home, name="instance%d-%d" % (self.number, self.starts))
        return self

    def wait_ready(self, timeout=90):
        """Until the instance answers 200 on its health_path (on its own socket)."""
        target = HEALTH_PATH

        def healthy():
            try:
                return support.unix_request(self.socket, target=target, timeout=10).status == 200
            except (OSError, support.IncompleteResponse, AssertionError):
                return False

        self.proc._wait(healthy, "200 on %s" % target, timeout)
        return self

    def request(self, method, target, body=b"", timeout=30):
        headers = [("Content-Type", "application/x-www-form-urlencoded")] if body else []
        return support.unix_request(self.socket, method, target, headers=headers, body=body,
                                    timeout=timeout)


class Fleet:
    def __init__(self, procs, venv, base, instances=INSTANCES, workers=WORKERS):
        self.procs = procs
        self.venv = venv
        self.base = base
        self.workers = workers
        self.marks = base / "marks"
        self.marks.mkdir()
        self.zeo = self._start_zeo()
        self.instances = [Instance(self, n) for n in range(1, instances + 1)]
        self._setup_content()
        for instance in self.instances:
            instance.start()
        for instance in self.instances:
            instance.wait_ready()
        self.nginx, self.port = self._start_nginx(self.instances)
        self.nginx_log = self.base / "nginx" / "error.log"

    def _start_zeo(self):
        conf = (FLEET / "zeo.conf").read_text()
        home = self.base / "zeo"
        (home / "var").mkdir(parents=True)
        assert "address 127.0.0.1:8100\n" in conf and "/srv/plone/zeo/var/Data.fs" in conf

        def start(port):
            self.zeo_address = "127.0.0.1:%d" % port
            (home / "zeo.conf").write_text(
                conf.replace("127.0.0.1:8100", self.zeo_address)
                    .replace("/srv/plone/zeo", str(home)))
            return self.procs.start([sys.executable, str(support.TEST_BIN / "runzeo"), "-C",
                                     str(home / "zeo.conf")], env=self.venv.env(), cwd=home,
                                    name="zeo")

        proc, _port = support.start_on_free_port(start, "ZEO server")
        return proc

    def _setup_content(self):
        script = self.base / "setup_fleet.py"
        script.write_text("import zope_fleet\nzope_fleet.setup(app)\n")
        result = subprocess.run(
            self.venv.runner("zconsole") + ["run", str(self.instances[0].home / "etc" / "zope.conf"),
                                            str(script)],
            env=self.venv.env((support.DEPLOY_APPS,)), cwd=str(self.base),
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "fleet ready" in result.stdout, result

    def _start_nginx(self, instances, directory=None):
        """nginx (examples/fleet/nginx.conf) balancing over `instances`, its
        files in `directory` (default: the fleet's base)."""
        site = (FLEET / "nginx.conf").read_text()
        for n in range(1, 4):
            line = re.search(r"\n    server unix:/srv/plone/instance%d/var/http.sock.*;\n" % n,
                             site)
            assert line, site
            used = n <= len(instances)
            site = site.replace(line.group(0), line.group(0).replace(
                "/srv/plone/instance%d/var/http.sock" % n, str(instances[n - 1].socket))
                if used else "\n")
        if directory is None:
            directory = self.base
        directory.mkdir(exist_ok=True)
        return support.start_nginx(self.procs, directory, None, site=site)

    def wait_balanced(self, instance, timeout=60):
        """Until nginx passes requests to `instance` again (after a failed
        connect it skips an instance for the upstream's fail_timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                response = support.tcp_request("127.0.0.1", self.port, target="/fleet",
                                               timeout=30)
                if response.header("X-Fleet-Instance") == str(instance.number):
                    return
            except (OSError, support.IncompleteResponse):
                pass
            time.sleep(0.05)
        pytest.fail("nginx did not pass requests to instance %d again within %ss"
                    % (instance.number, timeout))

    def nginx_errors(self):
        """nginx's error log lines about the upstreams (not the [info] ones
        about clients)."""
        if not self.nginx_log.exists():
            return []
        return [line for line in self.nginx_log.read_text().splitlines()
                if "upstream" in line and "[info]" not in line]


@pytest.fixture
def fleet(procs, installed_venv, tmp_path):
    if support.NGINX is None:
        pytest.skip("nginx is not installed")
    return Fleet(procs, installed_venv, tmp_path)


# -- the load ------------------------------------------------------------------

class Load:
    """Client threads through nginx (http.client, keep-alive, a new
    connection after any error): GET /fleet and POST /fleet/increment with a
    unique write id each. Every request is recorded with the phase it was
    sent in. Bounded: at most max_requests per thread, and stop()."""

    def __init__(self, port, getters=4, posters=4, pause=0.0, max_requests=20000):
        self.port = port
        self.pause = pause
        self.max_requests = max_requests
        self.phase = "warm-up"
        self.records = []  # (phase, kind, outcome, write_id, instance)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(kind,), daemon=True)
                         for kind in ["GET"] * getters + ["POST"] * posters]

    def start(self):
        for thread in self._threads:
            thread.start()
        return self

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self._threads), "a client thread hangs"

    def _one(self, conn, kind, write_id):
        if kind == "GET":
            conn.request("GET", "/fleet")
        else:
            conn.request("POST", "/fleet/increment", body="write_id=" + write_id,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        body = response.read()
        ok = response.status == 200 and (kind == "GET" or write_id.encode() in body)
        outcome = "200" if ok else "status %d" % response.status
        return outcome, response.getheader("X-Fleet-Instance", "-")

    def _run(self, kind):
        conn = None
        for _ in range(self.max_requests):
            if self._stop.is_set():
                break
            phase = self.phase
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            write_id = uuid.uuid4().hex if kind == "POST" else None
            try:
                outcome, instance = self._one(conn, kind, write_id)
            except (OSError, http.client.HTTPException) as exc:
                outcome, instance = type(exc).__name__, "-"
                conn.close()
                conn = None
            with self._lock:
                self.records.append((phase, kind, outcome, write_id, instance))
            self._stop.wait(self.pause)
        if conn is not None:
            conn.close()

    def snapshot(self):
        with self._lock:
            return list(self.records)


def _read_back(instance):
    """(count, {write id: times applied}) read from the ZODB."""
    response = instance.request("GET", "/fleet/report")
    assert response.status == 200, response
    lines = response.body.decode().splitlines()
    count = int(lines[0].split()[1])
    applied = {}
    for line in lines[1:]:
        write_id, times = line.split()
        applied[write_id] = int(times)
    return count, applied


def _held(fleet, method, tag, send):
    """Sends a request that Zope's pipeline holds (deploy_apps/zope_fleet.py)
    with send(method, target, body) in a thread, until the test opens its
    gate (open_gate) or for at most HOLD_SECONDS. Returns (number of the
    instance holding it, result, open_gate): the request is in flight there
    when this returns; result() waits for its outcome, a dict with
    "response" or "error" (and "write_id" for a POST)."""
    mark = "%s-%s" % (tag, uuid.uuid4().hex)
    gate = "gate-" + mark
    outcome = {}
    query = "sleep=%s&mark=%s&gate=%s" % (HOLD_SECONDS, mark, gate)
    if method == "GET":
        target, body = "/fleet?" + query, b""
    else:
        outcome["write_id"] = "held-" + mark
        target = "/fleet/increment?" + query
        body = ("write_id=%s" % outcome["write_id"]).encode()

    def run():
        try:
            outcome["response"] = send(method, target, body)
        except Exception as exc:  # reported by result()
            outcome["error"] = repr(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (fleet.marks / mark).exists():
        assert time.monotonic() < deadline and thread.is_alive(), outcome
        time.sleep(0.02)

    def result():
        thread.join(HOLD_SECONDS + 30)
        assert not thread.is_alive(), "no outcome for %s %s" % (method, target)
        return outcome

    def open_gate():
        (fleet.marks / gate).write_text("open")
    return int((fleet.marks / mark).read_text()), result, open_gate


def _in_flight(instance, fleet, method):
    """A held request sent to the instance's own socket (see _held)."""
    def send(method, target, body):
        return instance.request(method, target, body=body, timeout=HOLD_SECONDS + 30)
    number, result, open_gate = _held(fleet, method, "%s%d" % (method, instance.number), send)
    assert number == instance.number
    return result, open_gate


def _in_flight_through_nginx(victim, fleet, method, attempts=30):
    """A held request sent through nginx that the victim instance holds
    (nginx picks the instance: held requests are sent until one lands on
    the victim; the others are let go at once and finish on the other
    instances). Returns its result, its open_gate and the others' results."""
    def send(method, target, body):
        headers = [("Content-Type", "application/x-www-form-urlencoded")] if body else []
        return support.tcp_request("127.0.0.1", fleet.port, method, target, headers=headers,
                                   body=body, timeout=HOLD_SECONDS + 30)
    others = []
    for _ in range(attempts):
        number, result, open_gate = _held(fleet, method, "lb-%s" % method, send)
        if number == victim.number:
            return result, open_gate, others
        open_gate()
        others.append(result)
    pytest.fail("nginx passed none of %d requests to instance %d" % (attempts, victim.number))


def _stop_while_held(instance, gates):
    """SIGTERM, then, once the instance's listener is closed (its graceful
    stop has begun), opens the gates of the requests it holds: they finish
    during the stop. Returns the exit code."""
    instance.proc.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(1)
                probe.connect(str(instance.socket))
        except OSError:
            break
        assert time.monotonic() < deadline, "the listener stayed open after SIGTERM"
        time.sleep(0.02)
    for open_gate in gates:
        open_gate()
    return instance.proc.wait_exit(60, "after SIGTERM")


def _described(outcome):
    """The status of a held request's response (and the instance that sent
    it), or its error."""
    if "response" not in outcome:
        return outcome.get("error")
    response = outcome["response"]
    return "%d from instance %s" % (response.status, response.header("X-Fleet-Instance", "-"))


def _summary(records, phases):
    lines = []
    for phase in phases:
        kinds = collections.Counter((r[1], r[2]) for r in records if r[0] == phase)
        total = collections.Counter(r[1] for r in records if r[0] == phase)
        served = collections.Counter((r[1], r[4]) for r in records
                                     if r[0] == phase and r[2] == "200")
        failed = {k: v for k, v in kinds.items() if k[1] != "200"}
        lines.append("  %-15s GET %5d  POST %5d   failed: %s" % (
            phase, total["GET"], total["POST"],
            ", ".join("%s %s x%d" % (k[0], k[1], v) for k, v in sorted(failed.items()))
            or "none"))
        lines.append("  %-15s served 200 by instance: %s" % ("", " ".join(
            "%s@%s=%d" % (k[0], k[1], v) for k, v in sorted(served.items()))))
    return lines


def _nginx_kinds(lines):
    kinds = collections.Counter()
    for line in lines:
        match = re.search(r"\] \d+#\d+: \*\d+ (.*?) while ", line) or \
            re.search(r"\] \d+#\d+: (.*?)(, client|$)", line)
        text = match.group(1) if match else line
        kinds[re.sub(r"unix:\S+|\d+", "N", text)[:120]] += 1
    return kinds


@run_fleet
def test_rolling_restart_and_kill_under_load(fleet):
    transcript = ["fleet: ZEO + %d Zope instances x %d workers (pyruvate via runwsgi) behind "
                  "nginx; readiness by %s" % (len(fleet.instances), fleet.workers,
                                               HEALTH_PATH)]
    load = Load(fleet.port).start()
    in_flight = []
    phase_errors = {}
    try:
        time.sleep(3)  # steady load before the first restart (not an assertion)
        load.phase = "rolling restart"
        errors_before = len(fleet.nginx_errors())
        for instance in fleet.instances:
            started = time.monotonic()
            get, open_get = _in_flight(instance, fleet, "GET")
            post, open_post = _in_flight(instance, fleet, "POST")
            code = _stop_while_held(instance, [open_get, open_post])
            stopped = time.monotonic()
            in_flight.append((instance.number, get(), post()))
            assert code == 0, instance.proc.describe()
            instance.start().wait_ready()
            fleet.wait_balanced(instance)
            transcript.append("  instance %d: SIGTERM -> exit %d after %.1fs, serving again "
                              "after %.1fs" % (instance.number, code, stopped - started,
                                               time.monotonic() - started))
        time.sleep(2)  # load on the renewed fleet
        phase_errors["rolling restart"] = fleet.nginx_errors()[errors_before:]

        load.phase = "kill -9"
        errors_before = len(fleet.nginx_errors())
        victim = fleet.instances[1]
        time.sleep(1)
        killed_get, open_get, passed_by = _in_flight_through_nginx(victim, fleet, "GET")
        killed_post, open_post, more = _in_flight_through_nginx(victim, fleet, "POST")
        victim.proc.proc.kill()  # SIGKILL, mid-load
        victim.proc.wait_exit(30, "after SIGKILL")
        open_get()  # for the held requests nginx passed on to another instance
        open_post()
        killed_get, killed_post = killed_get(), killed_post()
        passed_by = [result() for result in passed_by + more]
        time.sleep(3)  # load on two instances; nginx finds the dead one
        victim.start().wait_ready()
        fleet.wait_balanced(victim)
        time.sleep(2)
        phase_errors["kill -9"] = fleet.nginx_errors()[errors_before:]
        load.phase = "after"
        time.sleep(1)
    finally:
        load.stop()

    records = load.snapshot()
    count, applied = _read_back(fleet.instances[0])
    answered = {r[3] for r in records if r[1] == "POST" and r[2] == "200"}
    posted = collections.Counter(r[0] for r in records if r[1] == "POST")
    failed_posts = [r for r in records if r[1] == "POST" and r[2] != "200"]
    cut_by_kill = {r[3] for r in failed_posts if r[0] == "kill -9"}
    for post in [p for _n, _g, p in in_flight] + [killed_post] + passed_by:
        if "write_id" in post and post.get("response") is not None \
                and post["response"].status == 200:
            answered.add(post["write_id"])
    twice = {k: v for k, v in applied.items() if v != 1}
    lost = answered - set(applied)
    unanswered = set(applied) - answered

    transcript.append("requests through nginx by phase (outcome of each):")
    transcript.extend(_summary(records, ["warm-up", "rolling restart", "kill -9", "after"]))
    transcript.append("in flight on the instance at its SIGTERM (sent to its socket):")
    for number, get, post in in_flight:
        transcript.append("  instance %d: GET %s, POST %s" % (number, _described(get),
                                                               _described(post)))
    transcript.append("held by instance %d at its kill -9 (sent through nginx): GET %s, "
                      "POST %s (%d held requests that went to the other instances: %s)" % (
                          victim.number, _described(killed_get), _described(killed_post),
                          len(passed_by), ", ".join(sorted({_described(o) for o in passed_by}))
                          or "-"))
    for phase, lines in phase_errors.items():
        transcript.append("nginx upstream errors during %s: %d" % (phase, len(lines)))
        for text, n in sorted(_nginx_kinds(lines).items()):
            transcript.append("  %4d x %s" % (n, text))
    transcript.append("writes: %d POSTs sent (%s), %d answered 200 (with the held ones), "
                      "%d failed; ZODB counter %d, %d distinct write ids applied; lost %d, "
                      "applied twice %d, applied without a 200 %d (%d of them among the POSTs cut by the kill)" % (
                          sum(posted.values()), ", ".join("%s %d" % kv for kv in posted.items()),
                          len(answered), len(failed_posts), count, len(applied), len(lost),
                          len(twice), len(unanswered), len(unanswered & cut_by_kill)))
    print("\n--- fleet transcript ---\n" + "\n".join(transcript) + "\n---")

    by_phase = collections.Counter((r[0], r[1]) for r in records if r[2] != "200")
    # The rolling restart fails nothing, in flight or through nginx.
    assert by_phase[("rolling restart", "GET")] == 0, "\n".join(transcript)
    assert by_phase[("rolling restart", "POST")] == 0, "\n".join(transcript)
    for number, get, post in in_flight:
        assert "response" in get and get["response"].status == 200, (number, get)
        assert "response" in post and post["response"].status == 200, (number, post)
    # kill -9: nginx passes every GET to a live instance, also the one the
    # killed instance was answering; the POST it held is either failed and
    # not applied or, if passed on, answered 200 and applied once.
    assert by_phase[("kill -9", "GET")] == 0, "\n".join(transcript)
    assert "response" in killed_get and killed_get["response"].status == 200, killed_get
    assert killed_get["response"].header("X-Fleet-Instance") != str(victim.number)
    assert "response" in killed_post, killed_post
    # The held requests that nginx gave to the other instances meanwhile.
    assert all(o.get("response") and o["response"].status == 200 for o in passed_by), passed_by
    assert (killed_post["response"].status == 200) == (killed_post["write_id"] in applied)
    assert by_phase[("warm-up", "GET")] + by_phase[("after", "GET")] == 0
    # Every write answered 200 is applied exactly once; none twice, none
    # half (the counter and the write ids agree).
    assert not twice and not lost, (twice, lost)
    assert count == sum(applied.values()) == len(applied), "\n".join(transcript)
    # A write without a 200 can only be one whose answer died with the
    # killed instance: committed in the ZEO server, then SIGKILL before the
    # response left (the client cannot know; the lead reports how many).
    assert unanswered <= cut_by_kill, "\n".join(transcript)
    assert count == len(answered) + len(unanswered)
    assert posted["rolling restart"] > 0 and posted["kill -9"] > 0


# -- the throughput benchmark (`make bench-fleet`) ------------------------------

def _wrk(port, seconds, connections):
    """wrk on GET /fleet/work through nginx: the summary of tests/bench/bench.lua."""
    import json
    bench_lua = support.REPO_ROOT / "tests" / "bench" / "bench.lua"
    result = subprocess.run(
        ["wrk", "-t2", "-c%d" % connections, "-d%ds" % seconds, "--latency", "-s",
         str(bench_lua), "http://127.0.0.1:%d/fleet/work" % port],
        capture_output=True, text=True, timeout=seconds + 60)
    line = [x for x in result.stdout.splitlines() if x.startswith("BENCH_JSON ")]
    assert result.returncode == 0 and line, result
    return json.loads(line[0].split(" ", 1)[1])


def _cpu_seconds(pid):
    """User + system CPU seconds of process `pid` (all its threads)."""
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@run_bench
def test_throughput_by_instance_count(procs, installed_venv, tmp_path):
    """Not a pass/fail test: req/s and p99 of a thread-bound page (~10 ms of
    ZODB reads and CPU) through nginx with 1, 2 and 3 instances of 2
    workers, under wrk for FLEET_BENCH_SECONDS (default 10) at 8
    connections; and the limit that the CPU time per request sets on this
    machine: min(instances, cores) / CPU seconds per request, as one
    instance runs Python on one core at a time."""
    if shutil.which("wrk") is None or support.NGINX is None:
        pytest.skip("needs wrk and nginx")
    seconds = int(os.environ.get("FLEET_BENCH_SECONDS", "10"))
    connections = 8
    fleet = Fleet(procs, installed_venv, tmp_path)
    cpu = []
    for _ in range(30):
        response = fleet.instances[0].request("GET", "/fleet/work")
        assert response.status == 200, response
        cpu.append(float(re.search(rb"cpu=([0-9.]+)", response.body).group(1)))
    cpu_per_request = sorted(cpu)[len(cpu) // 2]
    cores = os.cpu_count() or 1
    lines = ["fleet throughput: GET /fleet/work (median CPU %.1f ms per request, measured "
             "in the worker thread), %d workers per instance, wrk -c%d for %ds, %d cores"
             % (cpu_per_request * 1000, fleet.workers, connections, seconds, cores),
             "ceiling: min(instances, %d cores) / (instance CPU per request, Zope's "
             "publishing included); nginx and wrk share the cores too" % cores,
             "| instances | req/s | ceiling req/s | p50 ms | p99 ms | errors "
             "| instance CPU ms/request | cores busy in instances |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for count in (1, 2, 3):
        used = fleet.instances[:count]
        nginx, port = fleet._start_nginx(used, tmp_path / ("lb%d" % count))
        _wrk(port, 2, connections)  # warm the caches of every instance
        cpu_before = sum(_cpu_seconds(i.proc.pid) for i in used)
        summary = _wrk(port, seconds, connections)
        cpu_used = sum(_cpu_seconds(i.proc.pid) for i in used) - cpu_before
        errors = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
        per_request = cpu_used / max(summary["requests"], 1)
        # One instance runs Python on one core at a time (the GIL), however
        # many workers it has: the ceiling is min(instances, cores) cores.
        lines.append("| %d | %.0f | %.0f | %.1f | %.1f | %d | %.1f | %.2f |" % (
            count, summary["requests"] / (summary["duration_us"] / 1e6),
            min(count, cores) / per_request, summary["p50_us"] / 1000,
            summary["p99_us"] / 1000, errors, per_request * 1000,
            cpu_used / (summary["duration_us"] / 1e6)))
        assert nginx.stop() == 0, nginx.describe()
    lines.append("load average at the end: %.1f %.1f %.1f" % os.getloadavg())
    print("\n--- fleet benchmark ---\n" + "\n".join(lines) + "\n---")
