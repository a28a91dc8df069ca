"""Flask and Django on SQLite: each worker thread keeps its own database
connection across requests (the application runs on the same N threads for
the server's whole life)."""
import json
import sqlite3
import sys
import threading
import time

import pytest

import support

WORKERS = 2


def _start(procs, app, tmp_path):
    db = tmp_path / "app.sqlite3"
    env = support.repo_env(DEPLOY_DB=str(db))
    for _attempt in range(5):
        port = support.free_port()
        proc = procs.start([sys.executable, "-m", "pyruvate", app, "--bind",
                            "127.0.0.1:%d" % port, "--workers", str(WORKERS)],
                           env=env, cwd=support.DEPLOY_APPS)
        deadline = time.monotonic() + support.STARTUP_TIMEOUT
        while time.monotonic() < deadline and proc.running():
            try:
                with support.RawConnection("127.0.0.1", port, timeout=0.5):
                    return proc, port, db
            except OSError:
                time.sleep(0.05)
        proc.kill()
        if "Address already in use" not in proc.output():
            break
    pytest.fail("server did not start\n%s" % proc.describe())


def _hammer(port, clients=4, per_client=15):
    """Concurrent clients, each on its own keep-alive connection."""
    results, errors = [], []
    lock = threading.Lock()

    def client():
        try:
            with support.RawConnection("127.0.0.1", port, timeout=20) as conn:
                for _ in range(per_client):
                    response = conn.request("GET", "/conn")
                    assert response.status == 200, response
                    with lock:
                        results.append(json.loads(response.body))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def _assert_one_connection_per_thread(results, key="conn"):
    conn_of = {}
    for r in results:
        conn_of.setdefault(r["thread"], set()).add(r[key])
    assert 1 <= len(conn_of) <= WORKERS, conn_of
    assert all(len(c) == 1 for c in conn_of.values()), conn_of
    # and no connection is shared between threads
    assert len({next(iter(c)) for c in conn_of.values()}) == len(conn_of), conn_of
    return conn_of


def test_flask_thread_local_sqlite_connection(procs, tmp_path):
    proc, port, db = _start(procs, "flask_app:app", tmp_path)
    results = _hammer(port)
    conn_of = _assert_one_connection_per_thread(results)
    assert len(conn_of) == WORKERS  # concurrent clients kept both workers busy
    opened = json.loads(support.tcp_request("127.0.0.1", port, target="/opened").body)["opened"]
    assert sorted(map(tuple, opened)) == sorted((t, next(iter(c))) for t, c in conn_of.items())
    assert max(r["hits"] for r in results) == len(results)
    assert proc.stop() == 0, proc.describe()
    with sqlite3.connect(str(db)) as check:
        assert check.execute("select count(*) from hits").fetchone()[0] == len(results)


def test_django_persistent_connection_per_thread(procs, tmp_path):
    proc, port, db = _start(procs, "django_app:application", tmp_path)
    results = _hammer(port)
    conn_of = _assert_one_connection_per_thread(results, "conn")
    assert len(conn_of) == WORKERS
    # Django's DatabaseWrapper (connections['default']) is per thread too.
    _assert_one_connection_per_thread(results, "wrapper")
    assert {r["scheme"] for r in results} == {"http"}
    assert {r["host"] for r in results} == {"localhost"}
    assert proc.stop() == 0, proc.describe()
    with sqlite3.connect(str(db)) as check:
        rows = check.execute("select thread, conn from hits").fetchall()
    assert len(rows) == len(results)
    assert {(t, c) for t, c in rows} == {(t, next(iter(c))) for t, c in conn_of.items()}
