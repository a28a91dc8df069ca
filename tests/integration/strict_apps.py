"""WSGI applications for the strict HTTP/1.1 and PEP 3333 suites
(test_http_requests.py, test_http_responses.py, test_wsgi_start_response.py).

Loaded in the server subprocess as ``strict_apps:app`` (or
``strict_apps:validated``, the same app inside wsgiref.validate).  Any path
not under ``/_/`` answers with a JSON summary of the environ and the body the
app read, so the request-side tests can see exactly what the app was given.
The ``/_/NAME`` routes misbehave or respond in specific ways for the
response-side tests.  Every response carries a Content-Type (except 204/304)
so that wsgiref.validate accepts them.
"""
import json
import sys
import threading
from urllib.parse import parse_qs


HELLO = b"Hello, World!"
DIGITS = b"0123456789"

_calls_lock = threading.Lock()
_calls = 0  # app invocations for paths outside /_/ (see app_calls())
_events = {}
_events_lock = threading.Lock()


def _query(environ, name, default=None):
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return values[0] if values else default


def _read_body(environ):
    # Always with a size: wsgiref.validate forbids read() without one.
    length = int(environ.get("CONTENT_LENGTH") or "0")
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _json(start_response, obj, status="200 OK", extra=()):
    body = json.dumps(obj, sort_keys=True).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def _text(start_response, body, status="200 OK", extra=()):
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def _event(name):
    with _events_lock:
        return _events.setdefault(name, threading.Event())


def pattern(n):
    """n bytes of 0123456789 repeated: truncation is visible byte for byte."""
    return (DIGITS * (n // 10 + 1))[:n]


# --------------------------------------------------------------------------
# the environ as the app sees it


def environ_dump(environ, start_response):
    out = {}
    for key, value in environ.items():
        if isinstance(value, str):
            out[key] = value
        elif key in ("wsgi.input_terminated", "wsgi.version", "wsgi.multithread",
                     "wsgi.multiprocess", "wsgi.run_once"):
            out[key] = repr(value)
    out["__body__"] = _read_body(environ).decode("latin-1")
    return _json(start_response, out)


# --------------------------------------------------------------------------
# /_/ routes


def hello(environ, start_response):
    return _text(start_response, HELLO)


def calls(environ, start_response):
    with _calls_lock:
        return _json(start_response, {"calls": _calls})


def release(environ, start_response):
    _event(_query(environ, "id", "")).set()
    return _text(start_response, b"released")


def length(environ, start_response):
    """Declares Content-Length `declared`, sends `send` bytes in chunks of 4."""
    declared = int(_query(environ, "declared", "10"))
    body = pattern(int(_query(environ, "send", "10")))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(declared))])
    return iter([body[i:i + 4] for i in range(0, len(body), 4)])


def stream(environ, start_response):
    """A generator without Content-Length: the server picks the framing."""
    count = int(_query(environ, "n", "3"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (b"chunk-%d;" % i for i in range(count))


def big(environ, start_response):
    size = int(_query(environ, "size", str(8 * 1024 * 1024)))
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size))])
    block = pattern(65536)
    return (block[:min(65536, size - i)] for i in range(0, size, 65536))


def status(environ, start_response):
    """start_response(code ...) and a body the server must not send when the
    status (or HEAD) forbids one.  ?cl=N adds Content-Length: N, ?gen=1
    returns a generator (length unknown to the server)."""
    code = _query(environ, "code", "200")
    headers = []
    if code not in ("204", "304"):
        headers.append(("Content-Type", "text/plain"))
    if _query(environ, "cl") is not None:
        headers.append(("Content-Length", _query(environ, "cl")))
    start_response("%s Status %s" % (code, code), headers)
    body = b"body-that-must-not-be-sent"
    if _query(environ, "gen"):
        return (piece for piece in [body])
    return [body]


def own_date_server(environ, start_response):
    return _text(start_response, b"own", extra=[
        ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("Server", "strict-app/1.0")])


def hop_by_hop(environ, start_response):
    """Hop-by-hop fields the server must handle itself (RFC 9110 §7.6.1)."""
    headers = [("Content-Type", "text/plain"),
               ("Connection", _query(environ, "connection", "keep-alive")),
               ("Keep-Alive", "timeout=999, max=999"),
               ("Transfer-Encoding", _query(environ, "te", "chunked"))]
    if _query(environ, "cl"):
        headers.append(("Content-Length", "5"))
    start_response("200 OK", headers)
    return (piece for piece in [b"ab", b"cde"])


BAD_HEADS = {
    # name: (status, headers); each would split the response if copied.
    "status-crlf": ("200 OK\r\nX-Injected: 1", []),
    "status-lf": ("200 OK\nX-Injected: 1", []),
    "status-cr": ("200 OK\rX-Injected: 1", []),
    "status-nul": ("200 OK\0X-Injected: 1", []),
    "name-crlf": ("200 OK", [("X-A\r\nX-Injected", "1")]),
    "name-colon": ("200 OK", [("X-Injected: 1\r\nX-A", "1")]),
    "name-space": ("200 OK", [("X Injected", "1")]),
    "name-nul": ("200 OK", [("X-Injected\0", "1")]),
    "value-crlf": ("200 OK", [("X-A", "1\r\nX-Injected: 1")]),
    "value-lf": ("200 OK", [("X-A", "1\nX-Injected: 1")]),
    "value-cr": ("200 OK", [("X-A", "1\rX-Injected: 1")]),
    "value-nul": ("200 OK", [("X-A", "1\0X-Injected: 1")]),
    "value-not-latin1": ("200 OK", [("X-A", "X-Injected \u20ac")]),
}


def split(environ, start_response):
    """Calls start_response with a status or header that contains CR, LF or
    NUL.  ?catch=1: the app catches what start_response raises and answers
    200 naming the exception (proving that start_response itself raised)."""
    bad_status, bad_headers = BAD_HEADS[_query(environ, "what")]
    headers = [("Content-Type", "text/plain")] + bad_headers
    if not _query(environ, "catch"):
        start_response(bad_status, headers)
        return [b"X-Injected body"]
    try:
        start_response(bad_status, headers)
    except Exception as exc:  # noqa: BLE001 - we report whatever it was
        body = ("raised " + type(exc).__name__).encode("ascii")
        # With exc_info: the failed call may or may not count as a call.
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))], sys.exc_info())
        return [body]
    return [b"X-Injected accepted"]


def write_flush(environ, start_response):
    """write() then wait for /_/release?id=ID before returning the iterable:
    the written bytes must reach the client while the app still waits."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written;")
    released = _event(_query(environ, "id", "")).wait(10)
    return [b"iterable;released=%s" % str(released).encode()]


def write_then_iterable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "16")])
    write(b"written;")
    write(b"")
    return [b"", b"iterable"]


def twice(environ, start_response):
    """A second start_response without exc_info must raise."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
    try:
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Second", "1")])
    except Exception as exc:  # noqa: BLE001
        outcome = "raised " + type(exc).__name__
    else:
        outcome = "accepted"
    return [outcome.encode("ascii")]


def twice_uncaught(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"second start_response accepted"]


def exc_before(environ, start_response):
    """exc_info before any body: the new status and headers replace the old."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Old", "1"),
                              ("Content-Length", "100")])
    try:
        raise ValueError("app error")
    except ValueError:
        start_response("503 Replaced", [("Content-Type", "text/plain"), ("X-New", "1"),
                                        ("Content-Length", "8")], sys.exc_info())
    return [b"replaced"]


class _Marker(Exception):
    pass


def exc_after(environ, start_response):
    """exc_info after the headers went out: start_response re-raises the very
    exception it was given; the app reports what it caught in the body."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"part1;"
        try:
            raise _Marker("after headers")
        except _Marker:
            info = sys.exc_info()
            try:
                start_response("500 Too Late", [("Content-Type", "text/plain")], info)
            except _Marker as again:
                yield b"reraised-same=%s" % str(again is info[1]).encode()
            except Exception as other:  # noqa: BLE001
                yield b"raised-other=" + type(other).__name__.encode()
            else:
                yield b"not-reraised"
    return body()


def exc_after_uncaught(environ, start_response):
    """As exc_after, but the re-raised exception propagates (PEP 3333's
    recommended pattern): headers are out, so the connection must close."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"part1;"
        try:
            raise _Marker("after headers")
        except _Marker:
            start_response("500 Too Late", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"never"
    return body()


def empty_then_replace(environ, start_response):
    """Empty chunks do not send the headers (PEP 3333), so exc_info may
    still replace them after the app yielded b''."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Old", "1")])

    def body():
        yield b""
        yield b""
        try:
            raise ValueError("late but before any body byte")
        except ValueError:
            start_response("202 Replaced", [("Content-Type", "text/plain"), ("X-New", "1")],
                           sys.exc_info())
        yield b"after"
    return body()


def empty(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"", b""]


def lazy(environ, start_response):
    """start_response called from inside the iterable, before its first
    chunk: PEP 3333 allows it."""
    def body():
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"lazy"
    return body()


def bad_type(environ, start_response):
    """PEP 3333 types: status str, headers a list of (str, str) tuples,
    body chunks bytes.  Anything else must end in a 500."""
    what = _query(environ, "what")
    if what == "status-bytes":
        start_response(b"200 OK", [("Content-Type", "text/plain")])
    elif what == "status-int":
        start_response(200, [("Content-Type", "text/plain")])
    elif what == "headers-tuple":
        start_response("200 OK", (("Content-Type", "text/plain"),))
    elif what == "headers-dict":
        start_response("200 OK", {"Content-Type": "text/plain"})
    elif what == "header-item-list":
        start_response("200 OK", [["Content-Type", "text/plain"]])
    elif what == "header-item-3":
        start_response("200 OK", [("Content-Type", "text/plain", "x")])
    elif what == "header-name-bytes":
        start_response("200 OK", [(b"Content-Type", "text/plain")])
    elif what == "header-value-bytes":
        start_response("200 OK", [("Content-Type", b"text/plain")])
    elif what == "header-value-int":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", 4)])
    elif what == "chunk-str":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["text, not bytes"]
    elif what == "chunk-bytearray":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [bytearray(b"bytearray")]
    elif what == "write-str":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write("text, not bytes")
    elif what == "result-none":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return None
    return [b"BAD-TYPE-ACCEPTED"]


def fail_after(environ, start_response):
    """Sends the headers and one chunk, then raises.  ?cl=1 declares a
    Content-Length, otherwise the server streams (chunked on HTTP/1.1)."""
    headers = [("Content-Type", "text/plain")]
    if _query(environ, "cl"):
        headers.append(("Content-Length", "100"))
    start_response("200 OK", headers)

    def body():
        yield b"part1;"
        raise RuntimeError("strict_apps: error after the headers went out")
    return body()


def app_close(environ, start_response):
    return _text(start_response, b"bye", extra=[("Connection", "close")])


def wait(environ, start_response):
    """Answers once /_/release?id=ID was requested (bounded)."""
    released = _event(_query(environ, "id", "")).wait(10)
    return _text(start_response, b"waited released=%s" % str(released).encode())


ROUTES = {
    "/_/hello": hello,
    "/_/calls": calls,
    "/_/release": release,
    "/_/wait": wait,
    "/_/length": length,
    "/_/stream": stream,
    "/_/big": big,
    "/_/status": status,
    "/_/own-date-server": own_date_server,
    "/_/hop-by-hop": hop_by_hop,
    "/_/split": split,
    "/_/write-flush": write_flush,
    "/_/write-then-iterable": write_then_iterable,
    "/_/twice": twice,
    "/_/twice-uncaught": twice_uncaught,
    "/_/exc-before": exc_before,
    "/_/exc-after": exc_after,
    "/_/exc-after-uncaught": exc_after_uncaught,
    "/_/empty-then-replace": empty_then_replace,
    "/_/empty": empty,
    "/_/lazy": lazy,
    "/_/bad-type": bad_type,
    "/_/fail-after": fail_after,
    "/_/app-close": app_close,
}


def app(environ, start_response):
    global _calls
    path = environ.get("PATH_INFO", "")
    if not path.startswith("/_/"):
        with _calls_lock:
            _calls += 1
    return ROUTES.get(path, environ_dump)(environ, start_response)


def __getattr__(name):
    # strict_apps:validated, built on first use only: apps._validated turns
    # WSGIWarnings into errors process-wide, which strict_apps:app must not
    # inherit.  Validator errors are collected on /__validation-errors.
    if name == "validated":
        from apps import _validated

        globals()["validated"] = wrapped = _validated(app)
        return wrapped
    raise AttributeError(name)
