"""Zope: an instance made with mkwsgiinstance, its zope.ini switched to
`use = egg:pyruvate#main`, started with runwsgi (pyruvate installed by pip).

What the worker threads keep: Zope opens a ZODB connection per request from
the database's pool, which is a stack shared by all threads (DB.open() pops
the connection returned last), so a connection is not tied to a thread; what
a fixed pool of threads guarantees is that no more connections than workers
are ever open, each reused across requests with its object cache, and that
each thread keeps its own thread-local state (transaction manager) for its
whole life. The tests show both, with a PasteDeploy filter in the pipeline
(deploy_apps/zope_probe.py) that records, per request, the thread, id() of
the ZODB connection (the root object's _p_jar) and id() of the thread's
transaction manager.

When workers exceed the ZODB pool size, the runner warns at start-up, and
the test shows why: ZODB itself then complains about too many open
connections."""
import base64
import ctypes.util
import json
import re
import threading
import time

import pytest

import support


def _zope_env(env):
    """Zope calls crypt() (AuthEncoding). Under the sanitizer stage, with
    libasan preloaded, that crashes unless libcrypt is preloaded too (ASan's
    crypt interceptor finds no real crypt otherwise)."""
    if "asan" in env.get("LD_PRELOAD", ""):
        libcrypt = ctypes.util.find_library("crypt")
        if libcrypt:
            env["LD_PRELOAD"] += " " + libcrypt
    return env


def _make_instance(installed_venv, tmp_path, workers, pool_size=None):
    instance = tmp_path / "instance"
    result = support.subprocess.run(
        installed_venv.runner("mkwsgiinstance") + ["-d", str(instance), "-u", "admin:secret"],
        env=_zope_env(installed_venv.env()), cwd=str(tmp_path), capture_output=True,
        text=True,
        timeout=120)
    assert result.returncode == 0, result
    port = support.free_port()
    ini = instance / "etc" / "zope.ini"
    text = ini.read_text()
    server = re.search(r"^\[server:main\]\n(?:(?!\[).*\n)*", text, re.M)
    assert server and "waitress" in server.group(0), text
    text = text.replace(server.group(0), (
        "[server:main]\n"
        "use = egg:pyruvate#main\n"
        "socket = 127.0.0.1:%d\n"
        "workers = %d\n\n"
        "[filter:probe]\n"
        "use = call:zope_probe:make_filter\n\n") % (port, workers))
    text = text.replace("[pipeline:main]\npipeline =\n", "[pipeline:main]\npipeline =\n    probe\n")
    ini.write_text(text)
    if pool_size is not None:
        conf = instance / "etc" / "zope.conf"
        conf_text = conf.read_text()
        assert "<zodb_db main>\n" in conf_text
        conf.write_text(conf_text.replace("<zodb_db main>\n",
                                          "<zodb_db main>\n    pool-size %d\n" % pool_size, 1))
    return instance, ini, port


def _runwsgi(procs, installed_venv, instance, ini, port):
    proc = procs.start(installed_venv.runner("runwsgi") + ["-v", str(ini)],
                       env=_zope_env(installed_venv.env((support.DEPLOY_APPS,))), cwd=instance)
    return proc.wait_tcp("127.0.0.1", port, timeout=60)


def _probe(port):
    return json.loads(support.tcp_request("127.0.0.1", port, target="/__probe__").body)["records"]


def _concurrently(port, count, target):
    results = [None] * count

    def get(i):
        results[i] = support.tcp_request("127.0.0.1", port, target=target, timeout=20).status

    threads = [threading.Thread(target=get, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_zope_instance_with_runwsgi(procs, installed_venv, tmp_path):
    instance, ini, port = _make_instance(installed_venv, tmp_path, workers=2)
    proc = _runwsgi(procs, installed_venv, instance, ini, port)

    root = support.tcp_request("127.0.0.1", port, target="/")
    assert root.status == 200
    assert b"Zope" in root.body
    manage = support.tcp_request("127.0.0.1", port, target="/manage")
    assert manage.status == 401
    assert manage.header("WWW-Authenticate", "").lower().startswith('basic realm="zope"')
    auth = "Basic " + base64.b64encode(b"admin:secret").decode()
    zmi = support.tcp_request("127.0.0.1", port, target="/manage_main",
                         headers=[("Authorization", auth)])
    assert zmi.status == 200 and b"Control_Panel" in zmi.body

    # Sequential requests on one keep-alive connection, then overlapping
    # ones that keep both workers (and so two ZODB connections) busy.
    with support.RawConnection("127.0.0.1", port) as conn:
        for _ in range(10):
            assert conn.request("GET", "/").status == 200
    for _round in range(3):
        assert _concurrently(port, 2, "/?probe_sleep=0.3") == [200, 200]
    records = [r for r in _probe(port) if r["path"] in ("/", "/manage_main")]
    assert len(records) >= 17

    threads = {r["thread"] for r in records}
    names = {r["thread_name"] for r in records}
    connections = {r["conn"] for r in records}
    assert len(threads) == 2 and names == {"pyruvate-1", "pyruvate-2"}, names
    # Never more ZODB connections than workers: each one is reused across
    # requests (2 were needed while two requests overlapped).
    assert len(connections) == 2, records
    # Each worker thread keeps its own thread-local transaction manager.
    manager_of = {}
    for r in records:
        manager_of.setdefault(r["thread"], set()).add(r["txn_manager"])
    assert all(len(managers) == 1 for managers in manager_of.values()), manager_of
    assert len({next(iter(m)) for m in manager_of.values()}) == 2
    assert {r["db_pool_size"] for r in records} == {7}

    stderr = proc.stderr()
    assert "pyruvate serving on 127.0.0.1:%d with 2 workers" % port in stderr
    assert "ZODB connection pool" not in stderr
    assert "open connections with a pool_size" not in stderr
    assert proc.stop() == 0, proc.describe()


def test_zope_retries_a_conflict_with_the_post_body_read_again(procs, installed_venv, tmp_path):
    # After a ConflictError Zope publishes the request again: HTTPRequest.retry()
    # seeks wsgi.input back to 0 and parses the body anew. Without seek() on
    # wsgi.input the retry itself failed, and every write conflict was a 500.
    instance, ini, port = _make_instance(installed_venv, tmp_path, workers=2)
    proc = _runwsgi(procs, installed_venv, instance, ini, port)
    body = b"probe_conflict=1&probe_value=posted+body"
    response = support.tcp_request("127.0.0.1", port, method="POST", target="/", body=body,
                              headers=[("Content-Type", "application/x-www-form-urlencoded")],
                              timeout=30)
    assert response.status == 200, (response.status, proc.stderr()[-3000:])
    attempts = [r for r in _probe(port) if r["path"] == "/"]
    assert [(r["retry_count"], r["form"].get("probe_value")) for r in attempts] == [
        (0, "posted body"), (1, "posted body")], attempts
    assert "has no attribute 'seek'" not in proc.stderr()
    assert proc.stop() == 0, proc.describe()


def test_zope_warns_when_workers_exceed_the_zodb_pool(procs, installed_venv, tmp_path):
    instance, ini, port = _make_instance(installed_venv, tmp_path, workers=3, pool_size=2)
    proc = _runwsgi(procs, installed_venv, instance, ini, port)
    stderr = proc.stderr()
    assert re.search(r"WARNING \[pyruvate:\d+\]\[MainThread\] 3 workers but the ZODB connection "
                     r"pool of database 'main' holds 2 connections", stderr), stderr

    # Why it matters: three overlapping requests need three connections,
    # one more than the pool keeps, and ZODB complains.
    assert _concurrently(port, 3, "/?probe_sleep=1") == [200, 200, 200]
    records = _probe(port)
    assert len({r["conn"] for r in records}) == 3, records
    deadline = time.monotonic() + 5
    while "open connections with a pool_size of 2" not in proc.stderr():
        assert time.monotonic() < deadline, proc.describe()
        time.sleep(0.05)
    assert proc.stop() == 0, proc.describe()


@pytest.mark.parametrize("workers, warned", [(7, False), (8, True)])
def test_zope_default_pool_size_is_seven(procs, installed_venv, tmp_path, workers, warned):
    instance, ini, port = _make_instance(installed_venv, tmp_path, workers=workers)
    proc = _runwsgi(procs, installed_venv, instance, ini, port)
    assert ("workers but the ZODB connection pool" in proc.stderr()) == warned, proc.describe()
    assert proc.stop() == 0, proc.describe()


def test_example_zope_ini(procs, installed_venv, tmp_path):
    """examples/zope.ini as shipped (only the port changed) in a fresh
    mkwsgiinstance instance."""
    instance, ini, port = _make_instance(installed_venv, tmp_path, workers=2)
    example = (support.EXAMPLES / "zope.ini").read_text()
    assert "socket = 127.0.0.1:8080\n" in example
    ini.write_text(example.replace("socket = 127.0.0.1:8080\n", "socket = 127.0.0.1:%d\n" % port))
    proc = _runwsgi(procs, installed_venv, instance, ini, port)
    assert support.tcp_request("127.0.0.1", port, target="/").status == 200
    assert support.tcp_request("127.0.0.1", port, target="/manage").status == 401
    assert proc.stop() == 0, proc.describe()
    assert "GET /manage" in (instance / "var" / "log" / "Z4.log").read_text()
