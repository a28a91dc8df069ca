"""The health endpoint (health_path): answered by the server's acceptor
itself, without a worker, so that a load balancer sees a busy instance as
up and a draining one as down."""
import signal
import threading
import time


from support import DEFAULT_TIMEOUT, build_request, json_of, stop_and_wait_refused

HEALTH = {"health_path": "/health"}


def assert_health_head(response, status=200):
    assert response.status == status, response
    assert response.header("Cache-Control") == "no-store"
    assert response.header("Content-Type") == "text/plain"


def test_health_answers_ok_and_keeps_the_connection(start_server):
    server = start_server(options=HEALTH)
    with server.connect() as conn:
        response = conn.request("GET", "/health")
        assert_health_head(response)
        assert response.body == b"ok\n"
        assert not response.has_token("Connection", "close")
        # A query is no part of the path; the same connection goes on.
        response = conn.request("GET", "/health?from=haproxy")
        assert response.status == 200 and response.body == b"ok\n"
        # ... also to the application.
        response = conn.request("GET", "/hello")
        assert response.status == 200 and response.body == b"Hello, World!"


def test_health_between_application_requests_on_one_connection(start_server):
    # A worker that answered the app's request reads the next one itself
    # when it comes quickly; a health request it gives to the acceptor.
    server = start_server(workers=2, options=HEALTH)
    with server.connect() as conn:
        for _ in range(20):
            assert conn.request("GET", "/hello").body == b"Hello, World!"
            assert conn.request("GET", "/health").body == b"ok\n"


def test_health_keeps_an_http_1_0_connection_that_asks_for_it(start_server):
    server = start_server(options=HEALTH)
    with server.connect() as conn:
        conn.send(build_request("GET", "/health", headers=[("Connection", "keep-alive")],
                                version="HTTP/1.0"))
        response = conn.read_response()
        assert response.status == 200 and response.body == b"ok\n"
        assert response.has_token("Connection", "keep-alive")
        response = conn.request("GET", "/health")
        assert response.status == 200


def test_health_answers_pipelined_requests_in_order(start_server):
    server = start_server(options=HEALTH)
    with server.connect() as conn:
        conn.send(build_request("GET", "/health") + build_request("GET", "/hello") +
                  build_request("HEAD", "/health"))
        assert conn.read_response().body == b"ok\n"
        assert conn.read_response().body == b"Hello, World!"
        response = conn.read_response(method="HEAD")
        assert response.status == 200 and response.header("Content-Length") == "3"


def test_health_head_has_the_length_and_no_body(start_server):
    server = start_server(options=HEALTH)
    with server.connect() as conn:
        response = conn.request("HEAD", "/health")
        assert_health_head(response)
        assert response.header("Content-Length") == "3"
        # Nothing but the head came: the next response follows at once.
        response = conn.request("GET", "/health")
        assert response.body == b"ok\n"


def test_health_other_methods_get_405_with_allow(start_server):
    server = start_server(options=HEALTH)
    with server.connect() as conn:
        response = conn.request("POST", "/health", body=b"x=1")
        assert response.status == 405, response
        assert response.header("Allow") == "GET, HEAD"
        response = conn.request("DELETE", "/health")
        assert response.status == 405
        assert conn.request("GET", "/health").status == 200


def test_health_path_is_the_applications_unless_configured(start_server):
    server = start_server()
    response = server.request("GET", "/health")
    assert json_of(response)["PATH_INFO"] == "/health"  # the app's answer


def test_health_path_matches_exactly(start_server):
    server = start_server(options=HEALTH)
    for path in ("/healthz", "/health/", "/Health", "/x/health"):
        response = server.request("GET", path)
        assert json_of(response)["PATH_INFO"] == path  # the app's answer


def test_health_path_must_be_an_absolute_path(start_server, tmp_path):
    from support import run_python
    for bad in ("health", "/he alth", "/health?x", ""):
        result = run_python("import pyruvate\n"
                            "pyruvate.serve(lambda e, s: [], '127.0.0.1:0', 1, "
                            "health_path=%r)" % bad)
        assert result.returncode != 0
        assert "ValueError: health_path must start with '/'" in result.stderr, result.stderr
    result = run_python("import pyruvate\n"
                        "pyruvate.serve(lambda e, s: [], '127.0.0.1:0', 1, "
                        "health_path='/x', metrics_path='/x')")
    assert "ValueError: health_path and metrics_path must differ" in result.stderr


def _hold_workers(server, tmp_path, count):
    """Sends `count` requests that each hold a worker until release() is
    called; returns (release, results) once all of them are in the app."""
    gates = [tmp_path / ("gate-%d" % i) for i in range(count)]
    results = [None] * count

    def client(i):
        with server.connect(timeout=60) as conn:
            results[i] = conn.request("GET", "/slow?gate=%s" % gates[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while not all((gate.parent / (gate.name + ".entered")).exists() for gate in gates):
        assert time.monotonic() < deadline, "the slow requests never reached the app"
        time.sleep(0.02)

    def release():
        for gate in gates:
            gate.touch()
        for thread in threads:
            thread.join(60)
        return results

    return release


def test_health_answered_while_every_worker_is_stuck_in_the_app(start_server, tmp_path):
    server = start_server(workers=2, options=HEALTH)
    release = _hold_workers(server, tmp_path, 2)
    try:
        # Both workers wait in the app: only the acceptor can answer.
        with server.connect(timeout=DEFAULT_TIMEOUT) as conn:
            response = conn.request("GET", "/health")
            assert response.status == 200 and response.body == b"ok\n"
            assert conn.request("HEAD", "/health").status == 200
    finally:
        results = release()
    assert [r.status for r in results] == [200, 200]


def test_health_is_503_with_close_while_draining(start_server, tmp_path):
    server = start_server(workers=2,
                          options=dict(HEALTH, shutdown_timeout=60))
    with server.connect(timeout=30) as conn:
        assert conn.request("GET", "/health").status == 200
        release = _hold_workers(server, tmp_path, 1)
        try:
            server.proc.send_signal(signal.SIGTERM)
            # The slow request holds the server in its drain; the health
            # endpoint says so as soon as the drain began.
            deadline = time.monotonic() + 20
            while True:
                # Asked every 50 ms, the connection is never idle for the
                # drain's grace (shutdown_idle_grace, 1 s): it is answered.
                response = conn.request("GET", "/health")
                if response.status != 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert response.status == 503, response
            assert response.body == b"draining\n"
            assert response.has_token("Connection", "close")
            assert response.header("Cache-Control") == "no-store"
            assert conn.wait_closed()
        finally:
            results = release()
    assert results[0].status == 200
    assert server.wait_exit() == 0


def test_requests_pipelined_behind_health_are_answered_while_draining(start_server, tmp_path):
    """A request a client pipelined behind a health request was taken in
    before the drain: it is answered, and only the last answer says close."""
    server = start_server(workers=1, options=dict(HEALTH, shutdown_timeout=60))
    gate = tmp_path / "gate"
    with server.connect(timeout=30) as conn:
        conn.send(build_request("GET", "/slow?gate=%s" % gate) + build_request("GET", "/health") +
                  build_request("GET", "/hello"))
        deadline = time.monotonic() + 30
        while not (tmp_path / "gate.entered").exists():
            assert time.monotonic() < deadline, "the slow request never reached the app"
            time.sleep(0.02)
        stop_and_wait_refused(server)  # the drain has begun
        gate.touch()
        slow = conn.read_response()
        assert slow.status == 200 and not slow.has_token("Connection", "close"), slow
        health = conn.read_response()
        assert health.status == 503 and not health.has_token("Connection", "close"), health
        last = conn.read_response()
        assert last.status == 200 and last.body == b"Hello, World!", last
        assert last.has_token("Connection", "close")
        assert conn.wait_closed()
    assert server.wait_exit() == 0


def test_health_requests_are_access_logged(start_server):
    server = start_server(options=dict(HEALTH, access_log=True))
    with server.connect() as conn:
        assert conn.request("GET", "/health?probe=1").status == 200
        assert conn.request("POST", "/health", body=b"x").status == 405
    server.wait_stderr('"GET /health?probe=1 HTTP/1.1" 200 3 ')
    server.wait_stderr('"POST /health HTTP/1.1" 405 19 ')


def test_health_and_metrics_paths_from_the_command_line(procs):
    import sys
    import support
    proc, port = support.start_on_free_port(
        lambda port: procs.start([sys.executable, "-m", "pyruvate", "deploy_wsgi:stream",
                                  "--health-path", "/health", "--metrics-path", "/metrics",
                                  "--bind", "127.0.0.1:%d" % port],
                                 env=support.repo_env(), cwd=support.DEPLOY_APPS),
        "the command line server")
    with support.RawConnection("127.0.0.1", port) as conn:
        assert conn.request("GET", "/health").body == b"ok\n"
        response = conn.request("GET", "/metrics")
        assert response.status == 200
        assert b'\npyruvate_endpoint_requests_total{endpoint="health"} 1\n' in response.body
    assert proc.stop() == 0, proc.describe()
