"""The WSGI applications of the integration tests, all in one module.

The server subprocess (serve_app.py) loads ``apps:app``, a router: the first
segment of PATH_INFO names the handler (``/hello``, ``/stream?n=3``,
``/input/readline``: a handler may look at the rest of the path), and a path
whose first segment names no handler answers ``environ_summary`` as JSON
(the environ and the body the app read, for the request-side tests' odd
targets; these calls are counted on ``/calls``).  ``apps:validated`` is the
same router inside wsgiref.validate.  Each handler is registered with
``@route("NAME")`` next to its code; ``ROUTES`` lists them all.

What the apps observe that the client cannot see (close() calls, what
write() raised, stored callables, thread-local counters, ...) is kept in
module-level state and exposed over HTTP by handlers (``/closed-count``,
``/report``, ``/closed``, ...).  Handlers with side effects on the whole
process (a blocking log handler, the validator's warnings filter) set them
up on first use, so loading ``apps:app`` alone changes nothing.

The request-side tests send arbitrary paths that must stay unrouted
(``/``, ``/after``, ``/one``, ``/continue``, ``/cl``, ``/chunked``,
``/env``, ``/put``, ``/del``, ``/ten``, ``/p``, ``/x``, ``/admin``, ...):
give a new handler a name that says what it does.  Every response carries a
Content-Type (except 204/304), so that wsgiref.validate accepts them.
"""
import ctypes
import gc
import io
import json
import logging
import os
import sys
import tempfile
import threading
import time
from urllib.parse import parse_qs

HELLO = b"Hello, World!"
DIGITS = b"0123456789"
FILE_DATA = bytes(range(256)) * 400  # 102400 bytes, every offset distinguishable
# A file whose bytes end a chunked body and start a second response: sent
# without chunk framing it would split the response.
INJECTION = (b"0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n"
             b"X-Injected: yes\r\n\r\ninjected")

ROUTES = {}  # first path segment -> handler


def route(name):
    """Registers the decorated handler for paths whose first segment is name."""
    def register(handler):
        assert name not in ROUTES, "two handlers named %r" % name
        ROUTES[name] = handler
        return handler
    return register


def _segments(environ):
    """PATH_INFO's first segment and the rest: "/input/read" -> ("input", "read")."""
    path = environ.get("PATH_INFO", "")
    if not path.startswith("/"):
        return "", path
    first, _, rest = path[1:].partition("/")
    return first, rest


def _query(environ, name, default=None, keep_blank=False):
    values = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=keep_blank).get(name)
    return values[0] if values else default


def _query_all(environ, name):
    return parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).get(name, [])


def _qint(environ, name, default):
    return int(_query(environ, name, default))


def _json(start_response, obj, status="200 OK", extra=()):
    body = json.dumps(obj, sort_keys=True).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def _text(start_response, body, status="200 OK", extra=()):
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def _read_body(environ):
    # Always with a size: wsgiref.validate forbids read() without one.
    length = int(environ.get("CONTENT_LENGTH") or "0")
    return environ["wsgi.input"].read(length) if length > 0 else b""


def pattern(n):
    """n bytes of 0123456789 repeated: truncation is visible byte for byte."""
    return (DIGITS * (n // 10 + 1))[:n]


_lock = threading.Lock()  # guards the module-level state below
_barriers = {}


def _meet(parties):
    """True once `parties` requests wait here at the same time (so on as
    many worker threads), False after 5 s without them."""
    with _lock:
        barrier = _barriers.get(parties)
        if barrier is None or barrier.broken:
            barrier = _barriers[parties] = threading.Barrier(parties)
    try:
        barrier.wait(timeout=5)
        return True
    except threading.BrokenBarrierError:
        return False


# --------------------------------------------------------------------------
# the router, and the environ as the app sees it

_SIMPLE_TYPES = (bool, int, float, tuple, type(None))
_calls = 0  # requests answered by the environ summary (see /calls)


def environ_summary(environ):
    """All str-valued entries, plus repr() of simple wsgi.* values.

    Other non-str values are described under "__non_str_values__".
    Non-simple wsgi.* values (wsgi.input, wsgi.errors, ...) are listed by
    name under "__wsgi_objects__" so presence can be checked; "__keys__" is
    the sorted list of all keys.
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
    out["__keys__"] = sorted(str(key) for key in environ)
    return out


@route("environ")
def environ_json(environ, start_response):
    """The environ summary and the body read (also any unrouted path)."""
    summary = environ_summary(environ)
    summary["__body__"] = _read_body(environ).decode("latin-1")
    return _json(start_response, summary)


@route("calls")
def calls(environ, start_response):
    with _lock:
        return _json(start_response, {"calls": _calls})


def app(environ, start_response):
    global _calls
    handler = ROUTES.get(_segments(environ)[0])
    if handler is None:
        with _lock:
            _calls += 1
        handler = environ_json
    return handler(environ, start_response)


# --------------------------------------------------------------------------
# plain responses


@route("hello")
def hello(environ, start_response):
    return _text(start_response, HELLO)


@route("echo")
def echo(environ, start_response):
    body = _read_body(environ)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body))),
                              ("X-Request-Method", environ["REQUEST_METHOD"])])
    return [body]


@route("multi-header")
def multi_header(environ, start_response):
    return _text(start_response, b"cookies", extra=[
        ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Custom", "custom value")])


@route("stream")
def stream(environ, start_response):
    """Generator body, no Content-Length.  ?n=COUNT chunks 'chunk-I\\n'."""
    count = _qint(environ, "n", 5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (("chunk-%d\n" % index).encode("ascii") for index in range(count))


@route("generator")
def generator(environ, start_response):
    """A generator without Content-Length: the server picks the framing.
    ?n=COUNT chunks 'chunk-I;'."""
    count = _qint(environ, "n", 3)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (b"chunk-%d;" % i for i in range(count))


@route("big-pattern")
def big_pattern(environ, start_response):
    """?size= bytes (8 MiB) of pattern(), with Content-Length."""
    size = _qint(environ, "size", 8 * 1024 * 1024)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size))])
    block = pattern(65536)
    return (block[:min(65536, size - i)] for i in range(0, size, 65536))


@route("queue-wait")
def queue_wait(environ, start_response):
    value = environ.get("pyruvate.queue_wait")
    return _text(start_response, ("%s %r" % (type(value).__name__, value)).encode())


@route("memory")
def memory(environ, start_response):
    """Live Python objects (after a collection) and the process RSS."""
    gc.collect()
    with open("/proc/self/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return _json(start_response, {"objects": len(gc.get_objects()), "rss_kib": rss})


# --------------------------------------------------------------------------
# errors and close()

_close_count = 0


def _record_close():
    global _close_count
    with _lock:
        _close_count += 1


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


@route("closed-count")
def closed_count(environ, start_response):
    """How many ClosingIterables were closed."""
    with _lock:
        return _json(start_response, {"count": _close_count})


@route("raise-before-start")
def raise_before_start(environ, start_response):
    raise RuntimeError("intentional error before start_response")


@route("raise-in-iteration")
def raise_in_iteration(environ, start_response):
    """Declares 30 bytes (Content-Length), delivers 10, then raises."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "30")])
    return ClosingIterable([b"0123456789", b"abcdefghij", b"ABCDEFGHIJ"], 1)


@route("raise-in-stream")
def raise_in_stream(environ, start_response):
    """Streaming (no Content-Length) response that raises after 2 chunks."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ClosingIterable([b"first-chunk\n", b"second-chunk\n", b"never\n"], 2)


@route("closing")
def closing(environ, start_response):
    body = [b"closing ", b"iterable"]
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(b"".join(body))))])
    return ClosingIterable(body)


@route("big-closing")
def big_closing(environ, start_response):
    """Large streaming body with close(), for early-disconnect tests."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return ClosingIterable([b"x" * 65536] * _qint(environ, "chunks", 256))


@route("fail-after")
def fail_after(environ, start_response):
    """Sends the headers and one chunk, then raises.  ?cl=1 declares a
    Content-Length, otherwise the server streams (chunked on HTTP/1.1)."""
    headers = [("Content-Type", "text/plain")]
    if _query(environ, "cl"):
        headers.append(("Content-Length", "100"))
    start_response("200 OK", headers)

    def body():
        yield b"part1;"
        raise RuntimeError("apps: error after the headers went out")
    return body()


class _CloseRaises:
    def __init__(self, chunks):
        self._chunks = chunks

    def __iter__(self):
        return iter(self._chunks)

    def close(self):
        raise RuntimeError("apps: close() fails on purpose")


class _CloseLookupRaises:
    def __init__(self, chunks):
        self._chunks = chunks

    def __iter__(self):
        return iter(self._chunks)

    @property
    def close(self):
        raise RuntimeError("apps: looking up close fails on purpose")


@route("close-raises")
def close_raises(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])
    return _CloseRaises([b"close ", b"raises"])


@route("close-lookup-raises")
def close_lookup_raises(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "19")])
    return _CloseLookupRaises([b"close lookup ", b"raises"])


# --------------------------------------------------------------------------
# start_response: status, headers, exc_info (PEP 3333)


@route("status")
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


@route("length")
def length(environ, start_response):
    """Declares Content-Length `declared`, sends `send` bytes in chunks of 4."""
    declared = _qint(environ, "declared", 10)
    body = pattern(_qint(environ, "send", 10))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(declared))])
    return iter([body[i:i + 4] for i in range(0, len(body), 4)])


@route("own-date-server")
def own_date_server(environ, start_response):
    return _text(start_response, b"own", extra=[
        ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("Server", "strict-app/1.0")])


@route("hop-by-hop")
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


@route("app-close")
def app_close(environ, start_response):
    return _text(start_response, b"bye", extra=[("Connection", "close")])


@route("connection-close-list")
def connection_close_list(environ, start_response):
    return _text(start_response, b"closing", extra=[("Connection", "keep-alive, close")])


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


@route("split")
def split(environ, start_response):
    """Calls start_response with a status or header that contains CR, LF or
    NUL (?what= names one of BAD_HEADS).  ?catch=1: the app catches what
    start_response raises and answers 200 naming the exception (proving
    that start_response itself raised)."""
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


@route("bad-cl")
def bad_content_length(environ, start_response):
    """start_response raises ValueError for a Content-Length that is not
    digits (?v=...); the app lets it propagate (a 500)."""
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", _query(environ, "v", "abc", keep_blank=True))])
    return [b"bad content-length accepted"]


@route("two-cl")
def two_content_lengths(environ, start_response):
    """Two Content-Length fields (?a= and ?b=) around a 20-byte body."""
    start_response("200 OK", [("Content-Length", _query(environ, "a", "20", keep_blank=True)),
                              ("Content-Type", "text/plain"),
                              ("Content-Length", _query(environ, "b", "20", keep_blank=True))])
    return [b"x" * 20]


@route("bad-type")
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


@route("twice")
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


@route("twice-uncaught")
def twice_uncaught(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"second start_response accepted"]


@route("exc-info")
def exc_info_app(environ, start_response):
    """Replaces the status via start_response(..., exc_info) before any body."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("replaced")
    except ValueError:
        body = b"error replaced by exc_info"
        start_response("500 Internal Server Error",
                       [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
                       sys.exc_info())
    return [body]


@route("exc-before")
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


@route("exc-after")
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


@route("exc-after-uncaught")
def exc_after_uncaught(environ, start_response):
    """As exc-after, but the re-raised exception propagates (PEP 3333's
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


@route("exc-info-not-tuple")
def exc_info_not_tuple(environ, start_response):
    """After the headers went out, exc_info that is not a 3-tuple: the
    TypeError propagates, the response is cut short."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])

    def body():
        yield b"part1;"
        start_response("500 Too Late", [("Content-Type", "text/plain")], "bad")
        yield b"never;"
    return body()


@route("empty-then-replace")
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


@route("empty-chunks")
def empty_chunks(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"", b""]


@route("empty-without-start-response")
def empty_without_start_response(environ, start_response):
    return []


@route("lazy")
def lazy(environ, start_response):
    """start_response called from inside the iterable, before its first
    chunk: PEP 3333 allows it."""
    def body():
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"lazy"
    return body()


@route("yield-before-start-response")
def yield_before_start_response(environ, start_response):
    def body():
        yield b"data before start_response"
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"late"
    return body()


# --------------------------------------------------------------------------
# start_response and write() kept beyond their request

_stored_start_responses = []  # (thread id, start_response) seen by /sr-store
_stored_write = []  # write callables seen by /store-write
_start_response_ids = []  # id(start_response) seen by /start-response-id


@route("sr-store")
def sr_store(environ, start_response):
    """Keeps this request's start_response for later requests.  ?barrier=N:
    N concurrent requests meet first, so N distinct workers each store
    theirs."""
    parties = int(_query(environ, "barrier", "0", keep_blank=True))
    met = _meet(parties) if parties else None
    with _lock:
        if not any(sr is start_response for _, sr in _stored_start_responses):
            _stored_start_responses.append((threading.get_ident(), start_response))
        count = len(_stored_start_responses)
    return _json(start_response, {"stored": count, "met": met})


@route("sr-call-stored")
def sr_call_stored(environ, start_response):
    """Calls a start_response stored by an earlier request: ?which=other one
    stored on another worker thread, ?which=same one stored on this request's
    own thread (the server once reused those).  Reports what the stale call
    did."""
    which = _query(environ, "which", "other", keep_blank=True)
    me = threading.get_ident()
    with _lock:
        if which == "same":
            candidates = [sr for ident, sr in _stored_start_responses if ident == me]
        else:
            candidates = [sr for ident, sr in _stored_start_responses if ident != me]
    if not candidates:
        return _text(start_response, b"no stored start_response")
    try:
        candidates[0]("299 Stale", [("Content-Type", "text/plain"), ("X-Stale", "1")])
    except Exception as exc:  # noqa: BLE001 - the type is what we report
        outcome = "raised " + type(exc).__name__
    else:
        outcome = "accepted"
    body = outcome.encode("ascii")
    # The own start_response (exc_info in case the stale call counted).
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))],
                   (RuntimeError, RuntimeError("replace"), None) if outcome == "accepted"
                   else None)
    return [body]


@route("start-response-id")
def start_response_id(environ, start_response):
    """Remembers id(start_response) (not the object: keeping it would make
    the server replace it) and answers with every id seen so far."""
    with _lock:
        _start_response_ids.append(id(start_response))
        ids = list(_start_response_ids)
    kept = sum(1 for o in gc.get_objects() if type(o).__name__ == "StartResponse")
    return _json(start_response, {"ids": ids, "tracked": kept})


@route("store-write")
def store_write(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("Content-Length", "6")])
    with _lock:
        _stored_write.append(write)
    return [b"stored"]


@route("write-before-start-response")
def write_before_start_response(environ, start_response):
    """Calls a write() kept from an earlier request (/store-write) before
    this request's start_response: RuntimeError, left to propagate (a 500)."""
    with _lock:
        write = _stored_write[-1]
    write(b"written before start_response")
    return _text(start_response, b"write accepted")


# --------------------------------------------------------------------------
# write()

_write_lost = []  # what /write-lost saw when the client went away (see /report)


@route("write")
def write_app(environ, start_response):
    """Uses the legacy write() callable plus a returned iterable."""
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])
    write(b"written-")
    return [b"iter"]


@route("write-then-iterable")
def write_then_iterable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "16")])
    write(b"written;")
    write(b"")
    return [b"", b"iterable"]


@route("write-str")
def write_str(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write("text, not bytes")
    return [b"write of str accepted"]


@route("write-empty")
def write_empty(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("Content-Length", "9")])
    write(b"abc")
    write(b"")
    write(b"def")
    write(b"")
    return [b"", b"ghi"]


@route("write-lost")
def write_lost(environ, start_response):
    """Writes up to ?blocks=N blocks of 64 KiB; records what write() raised
    once the client went away (see /report)."""
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    block = b"w" * 65536
    blocks = _query(environ, "blocks", "4096", keep_blank=True)
    seen = "no error after %s blocks" % blocks
    for _ in range(int(blocks)):
        try:
            write(block)
        except Exception as exc:  # noqa: BLE001 - the type is what we report
            seen = "%s: %s" % (type(exc).__name__, exc)
            break
    with _lock:
        _write_lost.append(seen)
    return []


_written = []  # the 16 MiB of /write-fails, kept for the whole run


@route("write-fails")
def write_fails(environ, start_response):
    """write()s 16 MiB; when that fails (the client stopped reading for
    send_timeout), records "write failed" in /closed and returns nothing
    more."""
    with _lock:
        if not _written:  # alive for the whole run: a stale send would still find it
            _written.append(b"w" * (16 << 20))
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    try:
        write(_written[0])
    except OSError:
        with _lock:
            _results_closed.append("write failed")
    return []


# --------------------------------------------------------------------------
# large responses with close(), for clients that do not read

_results_closed = []  # tags of /big results whose close() ran, in order (see /closed)
_shared_blocks = {}  # MiB -> one bytes object yielded by every request


class _Result:
    """An iterable result with close(), recording that close() ran."""

    def __init__(self, tag, blocks, block):
        self._tag, self._blocks, self._block = tag, blocks, block

    def __iter__(self):
        for _ in range(self._blocks):
            yield self._block

    def close(self):
        with _lock:
            _results_closed.append(self._tag)
        # Also on stderr: a test can count close() calls after the server exited.
        sys.stderr.write("apps: closed %s\n" % self._tag)


@route("big")
def big(environ, start_response):
    """?mib=N MiB in 64 KiB blocks (a generator with close()), ?cl=1 with
    Content-Length, ?tag= names it in /closed; ?block=M yields one M MiB
    bytes object shared by all requests instead."""
    mib = _qint(environ, "mib", 32)
    headers = [("Content-Type", "application/octet-stream")]
    if _query(environ, "cl", "1") == "1":
        headers.append(("Content-Length", str(mib << 20)))
    start_response("200 OK", headers)
    block_mib = _qint(environ, "block", 0)
    if block_mib:
        with _lock:
            block = _shared_blocks.setdefault(block_mib, b"x" * (block_mib << 20))
        return _Result(_query(environ, "tag", ""), mib // block_mib, block)
    return _Result(_query(environ, "tag", ""), mib * 16, b"x" * 65536)


@route("block-refcount")
def block_refcount(environ, start_response):
    """?block=M: references to the shared M MiB block beyond this call's own
    (a reference the server failed to drop shows here)."""
    block = _shared_blocks.get(_qint(environ, "block", 1))
    return _json(start_response, {"refcount": sys.getrefcount(block) - 1 if block else 0})


@route("closed")
def closed(environ, start_response):
    with _lock:
        return _json(start_response, {"closed": list(_results_closed)})


# --------------------------------------------------------------------------
# waiting: workers held on purpose

_events = {}
_entered = threading.Event()


def _event(name):
    with _lock:
        return _events.setdefault(name, threading.Event())


@route("release")
def release(environ, start_response):
    """Releases the requests waiting on ?id= (/wait, /write-flush)."""
    _event(_query(environ, "id", "")).set()
    return _text(start_response, b"released")


@route("wait")
def wait(environ, start_response):
    """Answers once /release?id=ID was requested (bounded)."""
    released = _event(_query(environ, "id", "")).wait(10)
    return _text(start_response, b"waited released=%s" % str(released).encode())


@route("write-flush")
def write_flush(environ, start_response):
    """write() then wait for /release?id=ID before returning the iterable:
    the written bytes must reach the client while the app still waits."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written;")
    released = _event(_query(environ, "id", "")).wait(10)
    return [b"iterable;released=%s" % str(released).encode()]


@route("slow")
def slow(environ, start_response):
    """Holds the worker ?ms= milliseconds (1000), or with ?gate=PATH until
    the test creates PATH (at most 30 s): an order of events, not a time."""
    _entered.set()
    gate = _query(environ, "gate")
    if gate:
        # Says so in PATH.entered first.
        open(gate + ".entered", "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        threading.Event().wait(_qint(environ, "ms", 1000) / 1000.0)
    return _text(start_response, b"slow done")


@route("slow-entered")
def slow_entered(environ, start_response):
    """Whether any /slow request has started."""
    return _json(start_response, {"entered": _entered.is_set()})


# --------------------------------------------------------------------------
# threads

_local = threading.local()


@route("thread-info")
def thread_info(environ, start_response):
    """The worker thread's ident and its thread-local request count."""
    _local.count = getattr(_local, "count", 0) + 1
    return _json(start_response, {"ident": threading.get_ident(), "count": _local.count})


@route("barrier")
def barrier(environ, start_response):
    """Passes only if ?n= requests run concurrently on distinct threads."""
    met = _meet(_qint(environ, "n", 2))
    return _json(start_response, {"ident": threading.get_ident(),
                                  "barrier": "passed" if met else "broken"})


# --------------------------------------------------------------------------
# wsgi.input

_stored_inputs = []  # wsgi.input objects seen by /input-store


def _read_pieces(stream, op, environ):
    """/input/OP: wsgi.input read in the way OP names, in pieces; None for
    an unknown OP."""
    pieces = []
    if op == "read":
        pieces.append(stream.read())
    elif op == "read-n":
        size = _qint(environ, "n", 4)
        while True:
            data = stream.read(size)
            pieces.append(data)
            if not data:
                break
    elif op == "readline":
        while True:
            line = stream.readline()
            pieces.append(line)
            if not line:
                break
    elif op == "readline-size":
        size = _qint(environ, "n", 4)
        while True:
            line = stream.readline(size)
            pieces.append(line)
            if not line:
                break
    elif op == "readlines":
        pieces.extend(stream.readlines())
        pieces.append(stream.read(1))
    elif op == "iter":
        pieces.extend(iter(stream))
    elif op == "mixed":
        pieces.append(stream.readline())
        pieces.append(stream.read(3))
        pieces.extend(stream.readlines())
    elif op == "seek":
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
    elif op == "seek-errors":
        for args in ((-1,), (0, 3), ("x",), ()):
            try:
                stream.seek(*args)
                pieces.append(b"no error")
            except (TypeError, ValueError) as e:
                pieces.append(type(e).__name__.encode())
        pieces.append(b"%d" % stream.tell())
        pieces.append(stream.read())
    else:
        return None
    return pieces


@route("input")
def input_pieces(environ, start_response):
    """Reads wsgi.input as /input/OP says, returns the pieces as JSON."""
    op = _segments(environ)[1]
    pieces = _read_pieces(environ["wsgi.input"], op, environ)
    if pieces is None:
        return _json(start_response, {"error": op}, "404 Not Found")
    for piece in pieces:
        if not isinstance(piece, bytes):
            return _json(start_response, {"error": "non-bytes: %r" % (piece,)}, "500 Error")
    return _json(start_response, {"pieces": [p.decode("latin-1") for p in pieces]})


def _arg(text):
    if text == "None":
        return None
    if text == "str":
        return "x"
    return int(text)


def _result(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list):
        return [_result(v) for v in value]
    return "non-bytes %s: %r" % (type(value).__name__, value)


@route("input-ops")
def input_ops(environ, start_response):
    """Applies each ?op=NAME[:ARG] to wsgi.input in order; reports the
    results (or "raised TYPE").  NAME is read, readline, readlines, iter
    (list(stream)), next (next(stream)) or read2 (read with two
    arguments); ARG is an int, "None" or "str" (the str "x")."""
    stream = environ["wsgi.input"]
    results = []
    for op in _query_all(environ, "op"):
        name, _, arg = op.partition(":")
        args = (_arg(arg),) if arg else ()
        try:
            if name == "iter":
                value = list(stream)
            elif name == "next":
                value = next(stream, b"<StopIteration>")
            elif name == "read2":
                value = stream.read(1, 2)
            else:
                value = getattr(stream, name)(*args)
        except Exception as exc:  # noqa: BLE001 - the type is what we report
            results.append("raised " + type(exc).__name__)
        else:
            results.append(_result(value))
    return _json(start_response, {"results": results})


@route("input-store")
def input_store(environ, start_response):
    with _lock:
        _stored_inputs.append(environ["wsgi.input"])
    return _text(start_response, b"stored")


@route("input-read-stored")
def input_read_stored(environ, start_response):
    """Reads the wsgi.input of an earlier (finished) request in every way;
    also reads this request's own body, which must be unaffected."""
    with _lock:
        stored = _stored_inputs[-1]
    out = {
        "read": _result(stored.read()),
        "read_n": _result(stored.read(5)),
        "readline": _result(stored.readline()),
        "readlines": _result(stored.readlines()),
        "iter": _result(list(stored)),
        "own": _result(environ["wsgi.input"].read()),
    }
    return _json(start_response, out)


# --------------------------------------------------------------------------
# wsgi.file_wrapper / pyruvate.FileWrapper

_fw_closed = []  # tags of file-likes whose close() was called (see /report)


class _ReadOnly:
    """read() only: no close(), no fileno(), so iterated by blocks."""

    def __init__(self, data):
        self._stream = io.BytesIO(data)

    def read(self, size):
        return self._stream.read(size)


class _FailsOnSecondRead(_ReadOnly):
    def __init__(self, data):
        super().__init__(data)
        self._reads = 0

    def read(self, size):
        self._reads += 1
        if self._reads == 2:
            raise ValueError("apps: read fails on purpose")
        return super().read(size)


class _TrackedBytesIO(io.BytesIO):
    def __init__(self, data, tag):
        super().__init__(data)
        self._tag = tag

    def close(self):
        with _lock:
            _fw_closed.append(self._tag)
        super().close()


class _FilenoRaises(io.FileIO):
    def fileno(self):
        raise io.UnsupportedOperation("apps: no fileno")


class _TellRaises(io.FileIO):
    def tell(self):
        raise OSError("apps: tell fails on purpose")


class _BogusFileno(io.FileIO):
    """fileno() answers .bogus (set by the app) instead of the descriptor."""
    bogus = -1

    def fileno(self):
        return self.bogus


class _BogusTell(io.FileIO):
    """tell() answers .bogus (set by the app) instead of the position."""
    bogus = -1

    def tell(self):
        return self.bogus


class _ReadRaises:
    def read(self, size):
        raise ValueError("apps: read fails on purpose")


class _ReadReturnsInt:
    def read(self, size):
        return 42


class _CloseLookupRaisesFile(_ReadOnly):
    @property
    def close(self):
        raise RuntimeError("apps: looking up the file's close fails on purpose")


def _open_unlinked(opener=lambda path: open(path, "rb"), data=FILE_DATA):
    """opener(path) for a fresh file holding data, unlinked once opened: a
    real file with a descriptor (so sendfile is possible)."""
    fd, path = tempfile.mkstemp(prefix="apps-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        return opener(path)
    finally:
        os.unlink(path)


def _wrap(environ, filelike, blksize=None):
    wrapper = environ["wsgi.file_wrapper"]
    return wrapper(filelike) if blksize is None else wrapper(filelike, blksize)


@route("file")
def file_body(environ, start_response):
    """A FileWrapper after optional start_response/write().

    ?data=digits|injection|N (N digits), ?cl=N adds Content-Length: N,
    ?write=TEXT calls write(TEXT) first, ?status=204..., ?skip=N reads N bytes
    of the file before wrapping it, ?kind=file|nofileno|fails picks the
    file-like, ?start=0 never calls start_response, ?blksize= (4)."""
    data = _query(environ, "data", "digits")
    if data == "injection":
        data = INJECTION
    elif data == "digits":
        data = DIGITS
    else:
        data = pattern(int(data))
    kind = _query(environ, "kind", "file")
    if kind == "file":
        filelike = _open_unlinked(data=data)
    elif kind == "nofileno":
        filelike = _ReadOnly(data)
    else:
        filelike = _FailsOnSecondRead(data)
    skip = _qint(environ, "skip", 0)
    if skip:
        filelike.read(skip)
    write = None
    if _query(environ, "start", "1") == "1":
        headers = [("Content-Type", "application/octet-stream")]
        if _query(environ, "cl") is not None:
            headers.append(("Content-Length", _query(environ, "cl")))
        write = start_response(_query(environ, "status", "200 OK"), headers)
    if _query(environ, "write"):
        write(_query(environ, "write").encode())
    return _wrap(environ, filelike, _qint(environ, "blksize", 4))


@route("big-file")
def big_file(environ, start_response):
    """?mib=N MiB from a real file (sendfile); ?cl=N sends Content-Length: N,
    ?write=B write()s the bytes B before returning the file."""
    mib = _qint(environ, "mib", 32)
    fd, path = tempfile.mkstemp(prefix="apps-")
    block = b"y" * 65536  # written in blocks: the app's own memory stays small
    with os.fdopen(fd, "wb") as f:
        for _ in range(mib * 16):
            f.write(block)
    try:
        filelike = open(path, "rb")
    finally:
        os.unlink(path)
    headers = [("Content-Type", "application/octet-stream")]
    if _query(environ, "cl") is not None:
        headers.append(("Content-Length", _query(environ, "cl")))
    write = start_response("200 OK", headers)
    if _query(environ, "write") is not None:
        write(_query(environ, "write").encode())
    return _wrap(environ, filelike)


@route("fw-no-close")
def fw_no_close(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, _ReadOnly(FILE_DATA[:20000]), 4096)


@route("fw-bytesio")
def fw_bytesio(environ, start_response):
    """A BytesIO whose close() is recorded under ?tag= (see /report)."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    tag = _query(environ, "tag", "", keep_blank=True)
    return _wrap(environ, _TrackedBytesIO(FILE_DATA[:10000], tag), 3000)


@route("fw-fileno-raises")
def fw_fileno_raises(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, _open_unlinked(lambda p: _FilenoRaises(p, "rb")), 8192)


@route("fw-pipe")
def fw_pipe(environ, start_response):
    read_fd, write_fd = os.pipe()
    data = FILE_DATA[:30000]  # below the pipe buffer: written before reading
    with os.fdopen(write_fd, "wb") as writer:
        writer.write(data)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, os.fdopen(read_fd, "rb"), 4096)


@route("fw-tell-raises")
def fw_tell_raises(environ, start_response):
    """A real file at OS offset 1000 whose tell() raises: sendfile starts at
    the descriptor's own offset."""
    f = _open_unlinked(lambda p: _TellRaises(p, "rb"))
    f.seek(1000)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, f)


@route("fw-fileno-bogus")
def fw_fileno_bogus(environ, start_response):
    """fileno() returns -1 or a str: no descriptor, so iterated whole."""
    value = _query(environ, "v", "-1", keep_blank=True)
    f = _open_unlinked(lambda p: _BogusFileno(p, "rb"))
    f.bogus = "not a descriptor" if value == "str" else int(value)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, f)


@route("fw-tell-bogus")
def fw_tell_bogus(environ, start_response):
    """tell() returns ?v= (an int, or "str") while the real position is 0."""
    value = _query(environ, "v", "-1", keep_blank=True)
    f = _open_unlinked(lambda p: _BogusTell(p, "rb"))
    f.bogus = "not a position" if value == "str" else int(value)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, f)


@route("fw-beyond-end")
def fw_beyond_end(environ, start_response):
    """A real file positioned past its end (seek beyond EOF is allowed)."""
    f = _open_unlinked()
    f.seek(len(FILE_DATA) + 5000)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, f)


@route("fw-at-end")
def fw_at_end(environ, start_response):
    f = _open_unlinked()
    f.seek(0, os.SEEK_END)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, f)


def _file_wrapper_case(case):
    """The outcome of pyruvate.FileWrapper used directly as ?case= says."""
    from pyruvate import FileWrapper

    out = {}
    if case == "blksize-zero":
        FileWrapper(io.BytesIO(b"abc"), 0)
        out["outcome"] = "accepted"
    elif case == "blksize-zero-keyword":
        FileWrapper(io.BytesIO(b"abc"), blksize=0)
        out["outcome"] = "accepted"
    elif case == "default-blksize":
        wrapper = FileWrapper(io.BytesIO(b"abc"))
        out["outcome"] = wrapper.blksize
        out["filelike_kept"] = wrapper.filelike.getvalue() == b"abc"
    elif case == "blocks":
        out["outcome"] = [b.decode("latin-1") for b in FileWrapper(io.BytesIO(b"abc" * 10), 4)]
    elif case == "read-raises":
        list(FileWrapper(_ReadRaises(), 4))
        out["outcome"] = "no exception"
    elif case == "read-returns-int":
        list(FileWrapper(_ReadReturnsInt(), 4))
        out["outcome"] = "no exception"
    elif case == "no-arguments":
        FileWrapper()
        out["outcome"] = "accepted"
    elif case == "blksize-str":
        FileWrapper(io.BytesIO(b"abc"), "big")
        out["outcome"] = "accepted"
    elif case == "close-without-close":
        out["outcome"] = repr(FileWrapper(_ReadOnly(b"abc")).close())
    elif case == "close-lookup-raises":
        FileWrapper(_CloseLookupRaisesFile(b"abc")).close()
        out["outcome"] = "no exception"
    elif case == "gc-referents":
        filelike = io.BytesIO(b"abc")
        wrapper = FileWrapper(filelike)
        out["outcome"] = any(r is filelike for r in gc.get_referents(wrapper))
        out["tracked"] = gc.is_tracked(wrapper)
    else:
        out["outcome"] = "unknown case %r" % case
    return out


@route("fw-direct")
def fw_direct(environ, start_response):
    """pyruvate.FileWrapper used directly in Python (no server involved in
    the iteration); ?case= picks the check, the outcome is reported."""
    from pyruvate import FileWrapper

    out = {"same_type": environ["wsgi.file_wrapper"] is FileWrapper}
    try:
        out.update(_file_wrapper_case(_query(environ, "case", keep_blank=True)))
    except Exception as exc:  # noqa: BLE001 - the type is what we report
        out["outcome"] = "raised %s: %s" % (type(exc).__name__, exc)
    return _json(start_response, out)


@route("report")
def report(environ, start_response):
    """What /write-lost saw, and the tags of closed /fw-bytesio file-likes."""
    with _lock:
        return _json(start_response, {"write_lost": list(_write_lost),
                                      "closed": list(_fw_closed)})


# --------------------------------------------------------------------------
# descriptors and the log relay

_hoarded = []


def _release_hoarded():
    # Under the lock, so that the timer and /hoard-release never close one
    # descriptor twice (the number may belong to someone else by then).
    with _lock:
        fds = _hoarded[:]
        del _hoarded[:]
    for fd in fds:
        os.close(fd)


@route("hoard")
def hoard(environ, start_response):
    """Opens /dev/null until the process is out of file descriptors (so
    that the server's accept() meets EMFILE) and answers how many; closes
    them all ?seconds= later, or without seconds on /hoard-release."""
    seconds = _query(environ, "seconds")
    fds = []
    try:
        while True:
            fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    except OSError:
        pass
    with _lock:
        _hoarded.extend(fds)
    if seconds:
        timer = threading.Timer(float(seconds), _release_hoarded)
        timer.daemon = True
        timer.start()
    return _text(start_response, str(len(fds)).encode())


@route("hoard-release")
def hoard_release(environ, start_response):
    _release_hoarded()
    return _text(start_response, b"ok")


@route("open-when-told")
def open_when_told(environ, start_response):
    """Waits (at most 60 s) until the file ?flag=PATH exists, then opens
    four files at once and answers "opened" or the error."""
    flag = _query(environ, "flag")
    for _ in range(1200):  # bounded: the test creates the flag long before
        if os.path.exists(flag):
            break
        time.sleep(0.05)
    try:
        files = [open(os.devnull, "rb") for _ in range(4)]
        for f in files:
            f.close()
        body = b"opened"
    except OSError as error:
        body = repr(error).encode()
    return _text(start_response, body)


_log_released = threading.Event()


class _BlockingHandler(logging.Handler):
    """Blocks on the first record until /blocking-log-release."""

    def __init__(self):
        super().__init__()
        self.blocked_once = False

    def emit(self, record):
        if not self.blocked_once:
            self.blocked_once = True
            _log_released.wait(60)  # bounded: the test releases it long before


_blocking_handler = []


@route("blocking-log")
def blocking_log(environ, start_response):
    """From now on, the first record on logger "pyruvate.access" (this
    request's own, with access_log) blocks its handler, i.e. the thread
    relaying the server's log records, until /blocking-log-release, so
    that records pile up in the server's queue."""
    with _lock:
        if not _blocking_handler:
            _blocking_handler.append(_BlockingHandler())
            logging.getLogger("pyruvate.access").addHandler(_blocking_handler[0])
    return _text(start_response, b"ok")


@route("blocking-log-release")
def blocking_log_release(environ, start_response):
    _log_released.set()
    return _text(start_response, b"ok")


# --------------------------------------------------------------------------
# wsgiref.validate around the router: apps:validated
#
# The validator reports some violations from __del__ (e.g. an iterator that is
# garbage collected without close() having been called); those never reach the
# server, so they are collected via sys.unraisablehook and exposed on
# /validation-errors.

_validation_errors = []


@route("validation-errors")
def validation_errors(environ, start_response):
    gc.collect()
    return _json(start_response, {"errors": list(_validation_errors)})


def _validated(application):
    import warnings
    from wsgiref.validate import WSGIWarning, validator

    previous_hook = sys.unraisablehook

    def unraisablehook(unraisable):
        _validation_errors.append(
            "%s: %s" % (type(unraisable.exc_value).__name__, unraisable.exc_value))
        previous_hook(unraisable)

    # Process-wide (the server subprocess only): validator warnings such as a
    # missing QUERY_STRING become errors, i.e. a 500 response.
    warnings.filterwarnings("error", category=WSGIWarning)
    sys.unraisablehook = unraisablehook
    wrapped = validator(application)

    def outer(environ, start_response):
        # Answered outside the validator: the report is no request under test.
        if _segments(environ)[0] == "validation-errors":
            return validation_errors(environ, start_response)
        return wrapped(environ, start_response)

    return outer


def __getattr__(name):
    # apps:validated, built on first use only: it turns WSGIWarnings into
    # errors process-wide, which apps:app must not inherit.
    if name == "validated":
        globals()["validated"] = wrapped = _validated(app)
        return wrapped
    raise AttributeError(name)


# --------------------------------------------------------------------------
# metrics: pyruvate.stats() seen from inside the server


@route("stats")
def stats(environ, start_response):
    """pyruvate.stats() as JSON (histogram bounds as str, inf too)."""
    import pyruvate
    numbers = pyruvate.stats()
    for name in ("queue_wait_seconds", "request_duration_seconds"):
        numbers[name]["buckets"] = [[repr(bound), count]
                                    for bound, count in numbers[name]["buckets"]]
    numbers["server_responses"] = {str(code): count
                                   for code, count in numbers["server_responses"].items()}
    return _json(start_response, numbers)


@route("hold-gil")
def hold_gil(environ, start_response):
    """Keeps the GIL in spans of ?ms= (default 200) until ?gate=PATH exists
    (at most 60 s), creating PATH.entered first: usleep called through
    ctypes.PyDLL does not let go of it, so every other thread that needs the
    GIL (the serving thread too) waits up to a span each time."""
    gate = _query(environ, "gate")
    span_us = _qint(environ, "ms", 200) * 1000
    libc = ctypes.PyDLL(None)
    open(gate + ".entered", "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        libc.usleep(span_us)
    return _text(start_response, b"held")


@route("compute")
def compute(environ, start_response):
    """Computes in Python, holding the GIL but for a look at the gate now
    and then, until ?gate=PATH exists (at most 60 s), creating
    PATH.entered first: a CPU-bound request whose length is an order of
    events rather than a time."""
    gate = _query(environ, "gate")
    open(gate + ".entered", "w").close()
    deadline = time.monotonic() + 60
    total = 0
    while not os.path.exists(gate) and time.monotonic() < deadline:
        total += sum(i * i for i in range(2000))
    return _text(start_response, b"computed %d" % (total % 10))


@route("gated-echo")
def gated_echo(environ, start_response):
    """echo, after ?gate=PATH (if given) opens: creates PATH.entered, then
    holds the worker until the test creates PATH (at most 60 s), an order of
    events rather than a time."""
    gate = _query(environ, "gate")
    if gate:
        open(gate + ".entered", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
    return echo(environ, start_response)
