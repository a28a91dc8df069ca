"""WSGI applications for test_response_framing.py and test_slow_readers.py:
bodies that leave the server by every path (write(), iteration,
wsgi.file_wrapper with sendfile or by blocks) so the tests can check that
each one is framed the same way, and large responses for clients that do not
read.  Loaded in the server subprocess as ``response_apps:app``."""
import io
import json
import os
import sys
import tempfile
import threading
from urllib.parse import parse_qs

HELLO = b"Hello, World!"
# A file whose bytes end a chunked body and start a second response: sent
# without chunk framing it would split the response.
INJECTION = (b"0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n"
             b"X-Injected: yes\r\n\r\ninjected")
DIGITS = b"0123456789"

_lock = threading.Lock()
_closed = []  # tags of results whose close() ran, in order
_start_response_ids = []


def _query(environ, name, default=None):
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return values[0] if values else default


def _json(start_response, obj):
    body = json.dumps(obj, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _open_unlinked(data):
    """A real file (with a descriptor, so sendfile is possible) holding data."""
    fd, path = tempfile.mkstemp(prefix="response-apps-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        return open(path, "rb")
    finally:
        os.unlink(path)


class _NoFileno:
    """A file-like with read() only: iterated by blocks."""

    def __init__(self, data):
        self._stream = io.BytesIO(data)

    def read(self, size):
        return self._stream.read(size)


class _FailsOnSecondRead(_NoFileno):
    def __init__(self, data):
        super().__init__(data)
        self._reads = 0

    def read(self, size):
        self._reads += 1
        if self._reads == 2:
            raise ValueError("response_apps: read fails on purpose")
        return super().read(size)


def file_body(environ, start_response):
    """A FileWrapper after optional start_response/write().

    ?data=digits|injection|N (N digits), ?cl=N adds Content-Length: N,
    ?write=TEXT calls write(TEXT) first, ?status=204..., ?skip=N reads N bytes
    of the file before wrapping it, ?kind=file|nofileno|fails picks the
    file-like, ?start=0 never calls start_response."""
    data = _query(environ, "data", "digits")
    if data == "injection":
        data = INJECTION
    elif data == "digits":
        data = DIGITS
    else:
        data = (DIGITS * (int(data) // 10 + 1))[:int(data)]
    kind = _query(environ, "kind", "file")
    if kind == "file":
        filelike = _open_unlinked(data)
    elif kind == "nofileno":
        filelike = _NoFileno(data)
    else:
        filelike = _FailsOnSecondRead(data)
    skip = int(_query(environ, "skip", "0"))
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
    return environ["wsgi.file_wrapper"](filelike, int(_query(environ, "blksize", "4")))


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(HELLO)))])
    return [HELLO]


def start_response_id(environ, start_response):
    """Remembers id(start_response) (not the object: keeping it would make
    the server replace it) and answers with every id seen so far."""
    with _lock:
        _start_response_ids.append(id(start_response))
        ids = list(_start_response_ids)
    import gc
    kept = sum(1 for o in gc.get_objects() if type(o).__name__ == "StartResponse")
    return _json(start_response, {"ids": ids, "tracked": kept})


class _Result:
    """An iterable result with close(), recording that close() ran."""

    def __init__(self, tag, blocks, block):
        self._tag, self._blocks, self._block = tag, blocks, block

    def __iter__(self):
        for _ in range(self._blocks):
            yield self._block

    def close(self):
        with _lock:
            _closed.append(self._tag)
        # Also on stderr: a test can count close() calls after the server exited.
        sys.stderr.write("response_apps: closed %s\n" % self._tag)


_shared_blocks = {}  # MiB -> one bytes object yielded by every request


def big(environ, start_response):
    """?mib=N MiB in 64 KiB blocks (a generator with close()), ?cl=1 with
    Content-Length, ?tag= names it in /closed; ?block=M yields one M MiB
    bytes object shared by all requests instead."""
    mib = int(_query(environ, "mib", "32"))
    headers = [("Content-Type", "application/octet-stream")]
    if _query(environ, "cl", "1") == "1":
        headers.append(("Content-Length", str(mib << 20)))
    start_response("200 OK", headers)
    block_mib = int(_query(environ, "block", "0"))
    if block_mib:
        with _lock:
            block = _shared_blocks.setdefault(block_mib, b"x" * (block_mib << 20))
        return _Result(_query(environ, "tag", ""), mib // block_mib, block)
    return _Result(_query(environ, "tag", ""), mib * 16, b"x" * 65536)


def block_refcount(environ, start_response):
    """?block=M: references to the shared M MiB block beyond this call's own
    (a reference the server failed to drop shows here)."""
    block = _shared_blocks.get(int(_query(environ, "block", "1")))
    return _json(start_response, {"refcount": sys.getrefcount(block) - 1 if block else 0})


def big_file(environ, start_response):
    """?mib=N MiB from a real file (sendfile); ?cl=N sends Content-Length: N,
    ?write=B write()s the bytes B before returning the file."""
    mib = int(_query(environ, "mib", "32"))
    fd, path = tempfile.mkstemp(prefix="response-apps-")
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
    return environ["wsgi.file_wrapper"](filelike)


_WRITTEN = b"w" * (16 << 20)  # alive for the whole run: a stale send would still find it


def write_fails(environ, start_response):
    """write()s 16 MiB; when that fails (the client stopped reading for
    send_timeout), records "write failed" in /closed and returns nothing
    more."""
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    try:
        write(_WRITTEN)
    except OSError:
        with _lock:
            _closed.append("write failed")
    return []


def closed(environ, start_response):
    with _lock:
        return _json(start_response, {"closed": list(_closed)})


ROUTES = {
    "/file": file_body,
    "/hello": hello,
    "/start-response-id": start_response_id,
    "/big": big,
    "/big-file": big_file,
    "/write-fails": write_fails,
    "/closed": closed,
    "/block-refcount": block_refcount,
}


def app(environ, start_response):
    return ROUTES.get(environ.get("PATH_INFO", ""), hello)(environ, start_response)
