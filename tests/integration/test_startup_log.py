"""The start-up records ("pyruvate serving on ...", and whatever serve() logs
while it starts) reach the log before the first request is answered, even
when the logging handler is slow: an operator, or a supervisor waiting for
the line, must never see requests served by a server that has not said so."""
import re
import sys
import textwrap

import support as ds


SCRIPT = textwrap.dedent("""
    import logging, sys, time
    import pyruvate

    class SlowHandler(logging.StreamHandler):
        # Each record takes a while to reach stderr (a remote syslog, a
        # full pipe): the GIL is free meanwhile.
        def emit(self, record):
            time.sleep(0.5)
            super().emit(record)

    handler = SlowHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    print("SERVE_RETURNED", pyruvate.serve(app, "127.0.0.1:PORT", 2), flush=True)
""")


def test_serving_record_is_written_before_the_first_response(procs):
    port = ds.free_port()
    proc = procs.start([sys.executable, "-c", SCRIPT.replace("PORT", str(port))], env=ds.repo_env())
    proc.wait_tcp("127.0.0.1", port)
    with ds.RawConnection("127.0.0.1", port) as conn:
        assert conn.request("GET", "/").status == 200
    # The response is in: the record announcing the server must be too.
    assert "pyruvate serving on 127.0.0.1:%d with 2 workers" % port in proc.stderr(), \
        proc.describe()
    ds.assert_stopped_cleanly(proc)


def test_serving_record_names_the_port_the_kernel_chose(procs):
    """With port 0 the record names the port actually bound, so an operator
    (or a script) can find the server."""
    script = SCRIPT.replace("class SlowHandler", "class _Unused").replace(
        "handler = SlowHandler(sys.stderr)", "handler = logging.StreamHandler(sys.stderr)")
    proc = procs.start([sys.executable, "-c", script.replace("PORT", "0")], env=ds.repo_env())
    proc.wait_output("pyruvate serving on")
    found = re.search(r"pyruvate serving on 127\.0\.0\.1:(\d+) with 2 workers", proc.stderr())
    assert found, proc.describe()
    port = int(found.group(1))
    assert port != 0
    with ds.RawConnection("127.0.0.1", port) as conn:
        assert conn.request("GET", "/").status == 200
    ds.assert_stopped_cleanly(proc)
