"""The log queue between the server's threads and Python's logging is
bounded (LOG_QUEUE_LEN records): when the thread relaying it is blocked (a
logging handler that blocks), requests are still served, memory does not
grow, and no record disappears without a trace: the records that did not
fit are counted and reported in one warning, "N log records were dropped".
The queue never makes a worker or the acceptor wait for logging, and access
records cannot crowd out the server's own records."""
import re

RECORD = re.compile(r"INFO pyruvate\.access \S+: (?P<message>.*)$", re.M)
DROPPED = re.compile(r"WARNING pyruvate \S+: (\d+) log records were dropped$", re.M)

REQUESTS = 1500  # more than the queue holds (1024)


def test_blocked_log_handler_costs_records_counted_not_lost(start_server):
    srv = start_server(options={"access_log": True}, keepalive=True)
    with srv.connect(timeout=20) as conn:
        assert conn.request("GET", "/blocking-log").status == 200  # its record blocks the relay
        for i in range(REQUESTS):
            assert conn.request("GET", "/hello?n=%d" % i).status == 200
        assert conn.request("GET", "/blocking-log-release").status == 200
    assert srv.stop() == 0, srv.describe()
    log = srv.stderr()
    logged = RECORD.findall(log)
    dropped = [int(n) for n in DROPPED.findall(log)]
    assert dropped and sum(dropped) > 0, log[-2000:]
    # Every access record is either logged or counted; server records (a
    # reserve of the queue is theirs) are not crowded out.
    assert len(logged) + sum(dropped) == REQUESTS + 2, (len(logged), dropped)
    assert "pyruvate stopping" in log

