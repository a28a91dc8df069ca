"""The access log (access_log=True, off by default): one record per request
on logger "pyruvate.access" at INFO, in Common Log Format plus the request
time in seconds as a last field:

  127.0.0.1 - - [26/Nov/2026:19:45:19 +0000] "GET /path?q HTTP/1.1" 200 13 0.000123
"""
import re
import signal
import sys

import pytest

import deploy_support as ds
import httpraw

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
    proc, port = ds.launch_tcp(procs, options={"access_log": True})
    with httpraw.RawConnection("127.0.0.1", port) as conn:
        assert conn.request("GET", "/hello?q=1").status == 200
        assert conn.request("POST", "/echo", body=b"x" * 10).status == 200
        assert conn.request("GET", "/stream").status == 200
    ds.assert_stopped_cleanly(proc)
    records = _records(proc.stderr())
    assert [r["request"] for r in records] == [
        "GET /hello?q=1 HTTP/1.1", "POST /echo HTTP/1.1", "GET /stream HTTP/1.1"], records
    first = records[0]
    assert first["host"] == "127.0.0.1" and first["user"] == "-"
    assert (first["status"], first["size"]) == ("200", "13")
    assert records[2]["size"] == str(len(b"part 0\npart 1\npart 2\n"))  # body bytes, not chunks
    assert all(float(r["seconds"]) >= 0 for r in records)


def test_access_log_is_off_by_default(procs):
    proc, port = ds.launch_tcp(procs)
    assert ds.tcp_request("127.0.0.1", port, target="/hello").status == 200
    ds.assert_stopped_cleanly(proc)
    assert "pyruvate.access" not in proc.stderr()


def test_error_statuses_are_logged(procs):
    proc, port = ds.launch_tcp(procs, options={"access_log": True,
                                               "max_request_body_size": 100})
    assert ds.tcp_request("127.0.0.1", port, "POST", "/echo", body=b"x" * 1000).status == 413
    ds.assert_stopped_cleanly(proc)
    statuses = [r["status"] for r in _records(proc.stderr())]
    assert "413" in statuses, proc.stderr()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_no_record_is_lost_at_shutdown(procs, sig):
    proc, port = ds.launch_tcp(procs, options={"access_log": True})
    with httpraw.RawConnection("127.0.0.1", port) as conn:
        for i in range(50):
            assert conn.request("GET", "/hello?n=%d" % i).status == 200
    ds.assert_stopped_cleanly(proc, sig)  # at once after the last response
    requests = [r["request"] for r in _records(proc.stderr())]
    assert requests == ["GET /hello?n=%d HTTP/1.1" % i for i in range(50)], requests


def test_access_log_flag_of_the_command_line(procs):
    port = ds.free_port()
    proc = procs.start([sys.executable, "-m", "pyruvate", "deploy_wsgi:app", "--bind",
                        "127.0.0.1:%d" % port, "--access-log"],
                       cwd=ds.DEPLOY_APPS).wait_tcp("127.0.0.1", port)
    assert ds.tcp_request("127.0.0.1", port, target="/hello").status == 200
    assert proc.stop() == 0, proc.describe()
    # the CLI's log format: "%(asctime)s %(levelname)s [%(name)s] %(message)s"
    lines = [line for line in proc.stderr().splitlines() if "[pyruvate.access]" in line]
    assert len(lines) == 1, proc.stderr()
    message = lines[0].split("[pyruvate.access] ", 1)[1]
    assert CLF.match(message), message
    assert '"GET /hello HTTP/1.1" 200 13 ' in message
