"""The access log (access_log=True, off by default): one record per request
on logger "pyruvate.access" at INFO, in Common Log Format plus the request
time in seconds as a last field:

  127.0.0.1 - - [26/Nov/2026:19:45:19 +0000] "GET /path?q HTTP/1.1" 200 13 0.000123

The access log never drops a request: whatever bytes a client put in the
request target, the record is written, with bytes that are not printable
ASCII (and '"' and '\\') escaped as \\xHH, the way nginx does. The worker's
records and the acceptor's own (503, 4xx) are escaped by the same code."""
import re
import signal
import socket
import sys
import threading
import time

import pytest

import support


# launch.py logs as "%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s"
RECORD = re.compile(r"^\S+ \S+ (?P<level>\w+) pyruvate\.access \S+: (?P<message>.*)$", re.M)
CLF = re.compile(
    r'^(?P<host>\S+) - (?P<user>\S+) \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} '
    r'[+-]\d{4})\] "(?P<request>[^"]*)" (?P<status>\d{3}) (?P<size>\d+|-) '
    r'(?P<seconds>\d+\.\d+)$')


def _records(text):
    found = []
    for match in RECORD.finditer(text):
        assert match.group("level") == "INFO", match.group(0)
        clf = CLF.match(match.group("message"))
        assert clf, "not Common Log Format + seconds: %r" % match.group("message")
        found.append(clf.groupdict())
    return found


def test_access_log_records(procs):
    proc, port = support.launch_tcp(procs, options={"access_log": True})
    with support.RawConnection("127.0.0.1", port) as conn:
        assert conn.request("GET", "/hello?q=1").status == 200
        assert conn.request("POST", "/echo", body=b"x" * 10).status == 200
        assert conn.request("GET", "/stream").status == 200
    support.assert_stopped_cleanly(proc)
    records = _records(proc.stderr())
    assert [r["request"] for r in records] == [
        "GET /hello?q=1 HTTP/1.1", "POST /echo HTTP/1.1", "GET /stream HTTP/1.1"], records
    first = records[0]
    assert first["host"] == "127.0.0.1" and first["user"] == "-"
    assert (first["status"], first["size"]) == ("200", "13")
    assert records[2]["size"] == str(len(b"part 0\npart 1\npart 2\n"))  # body bytes, not chunks
    assert all(float(r["seconds"]) >= 0 for r in records)


def test_access_log_is_off_by_default(procs):
    proc, port = support.launch_tcp(procs)
    assert support.tcp_request("127.0.0.1", port, target="/hello").status == 200
    support.assert_stopped_cleanly(proc)
    assert "pyruvate.access" not in proc.stderr()


def test_error_statuses_are_logged(procs):
    proc, port = support.launch_tcp(procs, options={"access_log": True,
                                               "max_request_body_size": 100})
    assert support.tcp_request("127.0.0.1", port, "POST", "/echo", body=b"x" * 1000).status == 413
    support.assert_stopped_cleanly(proc)
    statuses = [r["status"] for r in _records(proc.stderr())]
    assert "413" in statuses, proc.stderr()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_no_record_is_lost_at_shutdown(procs, sig):
    proc, port = support.launch_tcp(procs, options={"access_log": True})
    with support.RawConnection("127.0.0.1", port) as conn:
        for i in range(50):
            assert conn.request("GET", "/hello?n=%d" % i).status == 200
    support.assert_stopped_cleanly(proc, sig)  # at once after the last response
    requests = [r["request"] for r in _records(proc.stderr())]
    assert requests == ["GET /hello?n=%d HTTP/1.1" % i for i in range(50)], requests


def test_access_log_flag_of_the_command_line(procs):
    port = support.free_port()
    proc = procs.start([sys.executable, "-m", "pyruvate", "deploy_wsgi:app", "--bind",
                        "127.0.0.1:%d" % port, "--access-log"],
                       cwd=support.DEPLOY_APPS).wait_tcp("127.0.0.1", port)
    assert support.tcp_request("127.0.0.1", port, target="/hello").status == 200
    assert proc.stop() == 0, proc.describe()
    # the CLI's log format: "%(asctime)s %(levelname)s [%(name)s] %(message)s"
    lines = [line for line in proc.stderr().splitlines() if "[pyruvate.access]" in line]
    assert len(lines) == 1, proc.stderr()
    message = lines[0].split("[pyruvate.access] ", 1)[1]
    assert CLF.match(message), message
    assert '"GET /hello HTTP/1.1" 200 13 ' in message


INFO_RECORD = re.compile(r"INFO pyruvate\.access \S+: (?P<message>.*)$", re.M)


def _info_records(srv):
    assert srv.stop() == 0, srv.describe()
    return [m.group("message") for m in INFO_RECORD.finditer(srv.stderr())]


def _exchange(port, raw, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data


def _get(target):
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("async_logging", [True, False])
def test_target_that_is_not_utf8_is_logged_escaped(start_server, async_logging):
    """Regression: "GET /admin/delete?id=1&\\xff" was served but left out of the
    access log (the line failed to decode as UTF-8). With async_logging
    False the worker logs the record itself: the same line."""
    srv = start_server(options={"access_log": True,
                                               "async_logging": async_logging})
    assert _exchange(srv.port, _get(b"/hello?id=1&\xff")).startswith(b"HTTP/1.1 200 ")
    assert _exchange(srv.port, _get(b'/hello?q="x"\\y\xc3\xa9')).startswith(b"HTTP/1.1 200 ")
    assert _exchange(srv.port, _get(b"/hello")).startswith(b"HTTP/1.1 200 ")
    records = _info_records(srv)
    assert len(records) == 3, records
    assert '"GET /hello?id=1&\\xff HTTP/1.1" 200 13 ' in records[0]
    assert '"GET /hello?q=\\x22x\\x22\\x5cy\\xc3\\xa9 HTTP/1.1" 200 13 ' in records[1]
    assert '"GET /hello HTTP/1.1" 200 13 ' in records[2]


def test_acceptor_records_escape_the_target_too(start_server, tmp_path):
    """A 503 the acceptor answers itself (queue full) for a target with a
    byte that is not UTF-8 is logged, escaped the same way."""
    srv = start_server(workers=1, options={"access_log": True, "max_queue_size": 1})
    gate = tmp_path / "gate"
    answers = [None] * 3
    def fetch(index, target):
        answers[index] = _exchange(srv.port, _get(target), timeout=40)
    # The only worker holds the first request until the gate opens; of the
    # two that follow, one waits in the queue (size 1), the other gets 503.
    first = threading.Thread(target=fetch, args=(0, b"/slow?gate=" + str(gate).encode()))
    first.start()
    deadline = time.monotonic() + 30
    while not (tmp_path / "gate.entered").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (tmp_path / "gate.entered").exists(), srv.describe()
    others = [threading.Thread(target=fetch, args=(i, b"/slow?ms=1&\xfe%d" % i)) for i in (1, 2)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 30
    while not any(a is not None and a[9:12] == b"503" for a in answers[1:]) and \
            time.monotonic() < deadline:
        time.sleep(0.01)
    gate.touch()
    for thread in [first] + others:
        thread.join(40)
    statuses = [a[9:12] for a in answers]
    assert b"503" in statuses, answers
    records = _info_records(srv)
    assert len(records) == 3, records
    rejected = [r for r in records if '" 503 ' in r]
    assert rejected and all(re.search(r'"GET /slow\?ms=1&\\xfe[12] HTTP/1\.1" 503 ', r)
                            for r in rejected), records
