"""pyruvate.shutdown(timeout=None): stops every serve() running in the
process as SIGTERM does (drain, then serve() returns None), from any thread
or from a signal handler, without waiting; returns how many servers it
asked (0 when none runs). Each case runs in its own Python process."""
import json
import re

from support import run_python

# Shared by the scripts: an app whose /hold request waits for an event, a
# server on a socket the script bound itself, and a client.
PRELUDE = r"""
import json, logging, os, signal, socket, sys, threading, time
import pyruvate

entered, release, stopping = threading.Event(), threading.Event(), threading.Event()


class StoppingSeen(logging.Handler):
    # "pyruvate stopping" is relayed once the drain has begun.
    def emit(self, record):
        if record.getMessage() == "pyruvate stopping":
            stopping.set()


logging.getLogger("pyruvate").addHandler(StoppingSeen())
logging.getLogger("pyruvate").setLevel(logging.INFO)


def app(environ, start_response):
    if environ["PATH_INFO"] == "/hold":
        entered.set()
        release.wait(60)
    body = environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(64)
address = listener.getsockname()


def get(path, timeout=30):
    # One request; returns (status line, headers in lower case, body).
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("closed before a response")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = [line.lower() for line in lines[1:]]
        length = int(next(h.split(":")[1] for h in headers if h.startswith("content-length:")))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("closed in the body")
            body += chunk
    return lines[0], headers, body


def wait_serving():
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            return get("/up", timeout=5)
        except OSError:
            time.sleep(0.01)
    raise SystemExit("server did not start")


outcome = {}


def run_serve(**options):
    try:
        outcome["returned"] = repr(pyruvate.serve(app, listener, 2, **options))
    except BaseException as exc:
        outcome["raised"] = repr(exc)


def report(**result):
    print("RESULT " + json.dumps(result), flush=True)
"""


def _result(script, timeout=90):
    proc = run_python(PRELUDE + script, timeout=timeout)
    match = re.search(r"^RESULT (.*)$", proc.stdout, re.M)
    assert match, "stdout=%r stderr=%r" % (proc.stdout, proc.stderr[-3000:])
    return json.loads(match.group(1))


def test_shutdown_from_another_thread_makes_serve_return():
    result = _result(r"""
sigterm_before = signal.getsignal(signal.SIGTERM)
server = threading.Thread(target=run_serve)
server.start()
wait_serving()
asked = pyruvate.shutdown()
server.join(60)
report(asked=asked, alive=server.is_alive(), outcome=outcome,
       sigterm_unchanged=signal.getsignal(signal.SIGTERM) is sigterm_before)
""")
    assert result == {"asked": 1, "alive": False, "outcome": {"returned": "None"},
                      "sigterm_unchanged": True}, result


def test_shutdown_drains_the_request_in_progress():
    result = _result(r"""
server = threading.Thread(target=run_serve)
server.start()
wait_serving()
answers = []
client = threading.Thread(target=lambda: answers.append(get("/hold")))
client.start()
assert entered.wait(30)
asked = pyruvate.shutdown()  # returns at once; the serving thread drains
assert stopping.wait(30)
release.set()
client.join(60)
server.join(60)
status, headers, body = answers[0]
report(asked=asked, alive=server.is_alive(), outcome=outcome, status=status,
       close="connection: close" in headers, body=body.decode())
""")
    assert result == {"asked": 1, "alive": False, "outcome": {"returned": "None"},
                      "status": "HTTP/1.1 200 OK", "close": True, "body": "/hold"}, result


def test_shutdown_from_a_signal_handler_stops_serve_in_the_main_thread():
    result = _result(r"""
signal.signal(signal.SIGUSR1, lambda signum, frame: outcome.setdefault(
    "asked", pyruvate.shutdown()))


def poke():
    wait_serving()
    os.kill(os.getpid(), signal.SIGUSR1)


threading.Thread(target=poke, daemon=True).start()
returned = pyruvate.serve(app, listener, 2)
report(returned=repr(returned), asked=outcome.get("asked"))
""")
    assert result == {"returned": "None", "asked": 1}, result


def test_shutdown_with_no_server_running_returns_zero():
    result = _result(r"""
first = pyruvate.shutdown()
# Not remembered: a serve() started afterwards serves until asked.
server = threading.Thread(target=run_serve)
server.start()
status = wait_serving()[0]
still = server.is_alive()
asked = pyruvate.shutdown(timeout=5)
server.join(60)
try:
    pyruvate.shutdown(timeout=-1)
    bad = "accepted"
except ValueError as exc:
    bad = str(exc)
report(first=first, status=status, still=still, asked=asked, outcome=outcome, bad=bad)
""")
    assert result == {"first": 0, "status": "HTTP/1.1 200 OK", "still": True, "asked": 1,
                      "outcome": {"returned": "None"},
                      "bad": "shutdown() timeout must be None or seconds >= 0"}, result


def test_shutdown_twice_stops_once_and_then_finds_nothing():
    result = _result(r"""
server = threading.Thread(target=run_serve)
server.start()
wait_serving()
answers = []
client = threading.Thread(target=lambda: answers.append(get("/hold")))
client.start()
assert entered.wait(30)
asked = [pyruvate.shutdown()]
assert stopping.wait(30)
asked.append(pyruvate.shutdown())  # during the drain
release.set()
client.join(60)
server.join(60)
asked.append(pyruvate.shutdown())
report(asked=asked, alive=server.is_alive(), outcome=outcome, status=answers[0][0])
""")
    assert result == {"asked": [1, 1, 0], "alive": False, "outcome": {"returned": "None"},
                      "status": "HTTP/1.1 200 OK"}, result


def test_shutdown_timeout_overrides_the_servers_shutdown_timeout():
    result = _result(r"""
server = threading.Thread(target=run_serve, kwargs={"shutdown_timeout": 600})
server.start()
wait_serving()
threading.Thread(target=lambda: get("/hold", timeout=120), daemon=True).start()
assert entered.wait(30)
asked = pyruvate.shutdown(timeout=0.2)  # the held request never finishes in time
server.join(60)
alive = server.is_alive()
release.set()  # let the worker go before the process exits
report(asked=asked, alive=alive, outcome=outcome)
""")
    assert result == {"asked": 1, "alive": False, "outcome": {"returned": "None"}}, result


def test_second_serve_while_one_runs_raises_and_shutdown_stops_the_first():
    result = _result(r"""
server = threading.Thread(target=run_serve)
server.start()
wait_serving()
other = socket.socket()
other.bind(("127.0.0.1", 0))
other.listen(8)
try:
    pyruvate.serve(app, other, 1)
    second = "returned"
except RuntimeError as exc:
    second = str(exc)
asked = pyruvate.shutdown()
server.join(60)
report(second=second, asked=asked, alive=server.is_alive(), outcome=outcome)
""")
    assert result == {"second": "pyruvate is already serving in this process", "asked": 1,
                      "alive": False, "outcome": {"returned": "None"}}, result
