"""WSGI applications used by the integration tests.

They run inside the server subprocess (see serve_app.py), loaded as
``apps:NAME``.  Anything the tests need to observe from inside the server
process (close() calls, thread-local counters, ...) is exposed over HTTP by
the apps themselves.
"""
import json
import os
import sys
import time
import threading
from urllib.parse import parse_qs

HELLO_BODY = b"Hello, World!"


def _qs(environ):
    return parse_qs(environ.get("QUERY_STRING", ""))


def _qint(environ, name, default):
    values = _qs(environ).get(name)
    return int(values[0]) if values else default


def _json_response(start_response, obj, status="200 OK"):
    body = json.dumps(obj, sort_keys=True).encode("utf-8")
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def _read_body(environ):
    # Always pass a size: wsgiref.validate forbids read() without argument.
    length = environ.get("CONTENT_LENGTH") or "0"
    length = int(length)
    if length <= 0:
        return b""
    return environ["wsgi.input"].read(length)


# --------------------------------------------------------------------------
# hello


def hello(environ, start_response):
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(HELLO_BODY))),
        ],
    )
    return [HELLO_BODY]


# --------------------------------------------------------------------------
# echo: body echoed back; /environ returns environ details as JSON

_SIMPLE_TYPES = (bool, int, float, tuple, type(None))


def environ_summary(environ):
    """All str-valued entries, plus repr() of simple wsgi.* values.

    Other non-str values are described under "__non_str_values__".
    Non-simple wsgi.* values (wsgi.input, wsgi.errors, ...) are listed by
    name under "__wsgi_objects__" so presence can be checked.
    """
    out = {}
    objects = []
    non_str = {}
    for key, value in environ.items():
        if isinstance(value, str):
            out[key] = value
        elif str(key).startswith("wsgi."):
            if isinstance(value, _SIMPLE_TYPES):
                out[key] = repr(value)
            else:
                objects.append(key)
        elif "." not in str(key):
            # CGI-style variables must be native strings (PEP 3333); dotted
            # names are server extensions and may hold anything.
            non_str[str(key)] = "%s: %r" % (type(value).__name__, value)
    out["__wsgi_objects__"] = sorted(objects)
    out["__non_str_values__"] = non_str
    # Key types are validated here too: PEP 3333 requires native strings.
    out["__non_str_keys__"] = [repr(k) for k in environ if not isinstance(k, str)]
    return out


def echo(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/environ" or path.startswith("/environ/"):
        summary = environ_summary(environ)
        summary["__body__"] = _read_body(environ).decode("latin-1")
        return _json_response(start_response, summary)
    body = _read_body(environ)
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(body))),
            ("X-Request-Method", environ["REQUEST_METHOD"]),
        ],
    )
    return [body]


# --------------------------------------------------------------------------
# errors and close()

_close_lock = threading.Lock()
_close_count = 0


def _record_close():
    global _close_count
    with _close_lock:
        _close_count += 1


def closed_count():
    with _close_lock:
        return _close_count


class ClosingIterable:
    """Iterable with close(); optionally raises after ``raise_after`` chunks."""

    def __init__(self, chunks, raise_after=None):
        self._chunks = list(chunks)
        self._raise_after = raise_after
        self.closed = False

    def __iter__(self):
        for index, chunk in enumerate(self._chunks):
            if self._raise_after is not None and index >= self._raise_after:
                raise RuntimeError("intentional error during iteration")
            yield chunk
        if self._raise_after is not None and self._raise_after >= len(self._chunks):
            raise RuntimeError("intentional error during iteration")

    def close(self):
        self.closed = True
        _record_close()


def raise_before_start(environ, start_response):
    raise RuntimeError("intentional error before start_response")


def raise_in_iteration(environ, start_response):
    """Declares 30 bytes (Content-Length), delivers 10, then raises."""
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", "30")]
    )
    return ClosingIterable([b"0123456789", b"abcdefghij", b"ABCDEFGHIJ"], 1)


def raise_in_stream(environ, start_response):
    """Streaming (no Content-Length) response that raises after 2 chunks."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ClosingIterable([b"first-chunk\n", b"second-chunk\n", b"never\n"], 2)


def closing(environ, start_response):
    body = [b"closing ", b"iterable"]
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(b"".join(body))))],
    )
    return ClosingIterable(body)


def big_closing(environ, start_response):
    """Large streaming body with close(), for early-disconnect tests."""
    chunk = b"x" * 65536
    count = _qint(environ, "chunks", 256)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return ClosingIterable([chunk] * count)


def exc_info_app(environ, start_response):
    """Replaces the status via start_response(..., exc_info) before any body."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("replaced")
    except ValueError:
        body = b"error replaced by exc_info"
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            sys.exc_info(),
        )
    return [body]


def write_app(environ, start_response):
    """Uses the legacy write() callable plus a returned iterable."""
    write = start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")]
    )
    write(b"written-")
    return [b"iter"]


def multi_header(environ, start_response):
    body = b"cookies"
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("X-Custom", "custom value"),
        ],
    )
    return [body]


# --------------------------------------------------------------------------
# streaming


def streaming(environ, start_response):
    """Generator body, no Content-Length.  ?n=COUNT chunks 'chunk-I\\n'."""
    count = _qint(environ, "n", 5)
    start_response("200 OK", [("Content-Type", "text/plain")])

    def generate():
        for index in range(count):
            yield ("chunk-%d\n" % index).encode("ascii")

    return generate()


def streaming_body(count):
    return b"".join(("chunk-%d\n" % i).encode("ascii") for i in range(count))


# --------------------------------------------------------------------------
# threads

_local = threading.local()
_barriers = {}
_barriers_lock = threading.Lock()


def thread_info(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    result = {"ident": threading.get_ident()}
    if path == "/barrier":
        # Succeeds only if `n` requests run concurrently on distinct threads.
        parties = _qint(environ, "n", 2)
        with _barriers_lock:
            barrier = _barriers.get(parties)
            if barrier is None or barrier.broken:
                barrier = _barriers[parties] = threading.Barrier(parties)
        try:
            barrier.wait(timeout=5)
            result["barrier"] = "passed"
        except threading.BrokenBarrierError:
            result["barrier"] = "broken"
        return _json_response(start_response, result)
    _local.count = getattr(_local, "count", 0) + 1
    result["count"] = _local.count
    return _json_response(start_response, result)


# --------------------------------------------------------------------------
# wsgi.input


def input_app(environ, start_response):
    """Reads wsgi.input according to PATH_INFO, returns the pieces as JSON."""
    path = environ.get("PATH_INFO", "/")
    stream = environ["wsgi.input"]
    pieces = []
    if path == "/read":
        pieces.append(stream.read())
    elif path == "/read-n":
        size = _qint(environ, "n", 4)
        while True:
            data = stream.read(size)
            pieces.append(data)
            if not data:
                break
    elif path == "/readline":
        while True:
            line = stream.readline()
            pieces.append(line)
            if not line:
                break
    elif path == "/readline-size":
        size = _qint(environ, "n", 4)
        while True:
            line = stream.readline(size)
            pieces.append(line)
            if not line:
                break
    elif path == "/readlines":
        pieces.extend(stream.readlines())
        pieces.append(stream.read(1))
    elif path == "/iter":
        pieces.extend(iter(stream))
    elif path == "/mixed":
        pieces.append(stream.readline())
        pieces.append(stream.read(3))
        pieces.extend(stream.readlines())
    elif path == "/seek":
        # What Zope does to retry a request after a ConflictError (read the
        # body, seek back to 0, read it again), then the other whences.
        pieces.append(stream.read())
        pieces.append(b"%d" % stream.tell())
        pieces.append(b"%d" % stream.seek(0))
        pieces.append(stream.read())
        pieces.append(b"%d" % stream.seek(-4, 2))
        pieces.append(stream.read())
        pieces.append(b"%d" % stream.seek(5))
        pieces.append(b"%d" % stream.seek(3, 1))
        pieces.append(stream.readline())
        pieces.append(b"%d" % stream.seek(1000))
        pieces.append(stream.read())
        pieces.append(b"%d" % stream.seek(-1000, 1))
        pieces.append(b"%r" % stream.seekable())
    elif path == "/seek-errors":
        for args in ((-1,), (0, 3), ("x",), ()):
            try:
                stream.seek(*args)
                pieces.append(b"no error")
            except (TypeError, ValueError) as e:
                pieces.append(type(e).__name__.encode())
        pieces.append(b"%d" % stream.tell())
        pieces.append(stream.read())
    else:
        return _json_response(start_response, {"error": path}, "404 Not Found")
    for piece in pieces:
        if not isinstance(piece, bytes):
            return _json_response(
                start_response, {"error": "non-bytes: %r" % (piece,)}, "500 Error"
            )
    return _json_response(
        start_response, {"pieces": [p.decode("latin-1") for p in pieces]}
    )


# --------------------------------------------------------------------------
# slow request, for graceful shutdown

_entered = threading.Event()


def slow(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/entered":
        return _json_response(start_response, {"entered": _entered.is_set()})
    _entered.set()
    gate = _qs(environ).get("gate")
    if gate:
        # ?gate=PATH: say so in PATH.entered, then hold the worker until the
        # test creates PATH (at most 30 s): an order of events, not a time.
        open(gate[0] + ".entered", "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists(gate[0]) and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        threading.Event().wait(_qint(environ, "ms", 1000) / 1000.0)
    body = b"slow done"
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


# --------------------------------------------------------------------------
# wsgiref.validate wrappers
#
# The validator reports some violations from __del__ (e.g. an iterator that is
# garbage collected without close() having been called); those never reach the
# server, so they are collected via sys.unraisablehook and exposed on
# /__validation-errors.

_validation_errors = []
_previous_unraisablehook = sys.unraisablehook


def _unraisablehook(unraisable):
    _validation_errors.append(
        "%s: %s" % (type(unraisable.exc_value).__name__, unraisable.exc_value)
    )
    _previous_unraisablehook(unraisable)


def _validated(app):
    import gc
    import warnings
    from wsgiref.validate import WSGIWarning, validator

    # Process-wide (the server subprocess only): validator warnings such as a
    # missing QUERY_STRING become errors, i.e. a 500 response.
    warnings.filterwarnings("error", category=WSGIWarning)
    sys.unraisablehook = _unraisablehook
    wrapped = validator(app)

    def outer(environ, start_response):
        if environ.get("PATH_INFO") == "/__validation-errors":
            gc.collect()
            return _json_response(start_response, {"errors": list(_validation_errors)})
        return wrapped(environ, start_response)

    return outer


validated_hello = _validated(hello)
validated_echo = _validated(echo)


# --------------------------------------------------------------------------
# router combining everything, used by most tests

_ROUTES = {
    "/hello": hello,
    "/raise-before-start": raise_before_start,
    "/raise-in-iteration": raise_in_iteration,
    "/raise-in-stream": raise_in_stream,
    "/closing": closing,
    "/big-closing": big_closing,
    "/exc-info": exc_info_app,
    "/write": write_app,
    "/multi-header": multi_header,
    "/stream": streaming,
}


def queue_wait(environ, start_response):
    value = environ.get("pyruvate.queue_wait")
    body = ("%s %r" % (type(value).__name__, value)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def memory(environ, start_response):
    """Live Python objects (after a collection) and the process RSS."""
    import gc
    gc.collect()
    with open("/proc/self/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return _json_response(start_response, {"objects": len(gc.get_objects()), "rss_kib": rss})


def router(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/memory":
        return memory(environ, start_response)
    if path == "/queue-wait":
        return queue_wait(environ, start_response)
    if path == "/closed-count":
        return _json_response(start_response, {"count": closed_count()})
    if path in _ROUTES:
        return _ROUTES[path](environ, start_response)
    return echo(environ, start_response)


def gated_echo(environ, start_response):
    """echo, after ?gate=PATH (if given) opens: creates PATH.entered, then
    holds the worker until the test creates PATH (at most 60 s), an order of
    events rather than a time."""
    gate = _qs(environ).get("gate")
    if gate:
        open(gate[0] + ".entered", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(gate[0]) and time.monotonic() < deadline:
            time.sleep(0.01)
    return echo(environ, start_response)
