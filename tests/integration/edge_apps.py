"""WSGI applications for the edge-path suites (test_wsgi_misuse.py,
test_input.py, test_filewrapper.py).

Loaded in the server subprocess as ``edge_apps:app``.  ``/_/hello`` answers
as strict_apps does (so support.assert_alive works); ``/w/...`` routes
exercise start_response, write() and the result's close(); ``/i/...`` routes
exercise wsgi.input; ``/f/...`` routes exercise pyruvate.FileWrapper.  Any
other path answers with a JSON dump of the environ (str values, and the
sorted list of all keys under "__keys__").

What the apps observe that the client cannot see (an OSError from write(), a
close() call, ...) is kept in module-level state and exposed on ``/x/...``
routes.
"""
import io
import os
import tempfile
import threading
from urllib.parse import parse_qs

from strict_apps import _json, _text  # the same response helpers

HELLO = b"Hello, World!"
FILE_DATA = bytes(range(256)) * 400  # 102400 bytes, every offset distinguishable

_lock = threading.Lock()
_stored_start_responses = []  # (thread id, start_response) seen by /w/sr-store
_stored_write = []  # write callables seen by /w/store-write
_stored_inputs = []  # wsgi.input objects seen by /i/store
_write_lost = []  # what /w/write-lost saw when the client went away
_closed = []  # tags of file-likes whose close() was called
_barriers = {}


def _query(environ, name, default=None):
    values = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).get(name)
    return values[0] if values else default


def _query_all(environ, name):
    return parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).get(name, [])




# --------------------------------------------------------------------------
# environ


def environ_dump(environ, start_response):
    out = {key: value for key, value in environ.items() if isinstance(value, str)}
    out["__keys__"] = sorted(str(key) for key in environ)
    length = int(environ.get("CONTENT_LENGTH") or "0")
    out["__body__"] = environ["wsgi.input"].read(length).decode("latin-1") if length else ""
    return _json(start_response, out)


def hello(environ, start_response):
    return _text(start_response, HELLO)


# --------------------------------------------------------------------------
# /w/: start_response, write(), the result and its close()


def bad_content_length(environ, start_response):
    """start_response raises ValueError for a Content-Length that is not
    digits (?v=...); the app lets it propagate (a 500)."""
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", _query(environ, "v", "abc"))])
    return [b"bad content-length accepted"]


def two_content_lengths(environ, start_response):
    """Two Content-Length fields (?a= and ?b=) around a 20-byte body."""
    start_response("200 OK", [("Content-Length", _query(environ, "a", "20")),
                              ("Content-Type", "text/plain"),
                              ("Content-Length", _query(environ, "b", "20"))])
    return [b"x" * 20]


def connection_close_list(environ, start_response):
    return _text(start_response, b"closing", extra=[("Connection", "keep-alive, close")])


def sr_store(environ, start_response):
    """Keeps this request's start_response for later requests.  ?barrier=N:
    N concurrent requests meet first, so N distinct workers each store
    theirs."""
    parties = int(_query(environ, "barrier", "0"))
    met = None
    if parties:
        with _lock:
            barrier = _barriers.get(parties)
            if barrier is None or barrier.broken:
                barrier = _barriers[parties] = threading.Barrier(parties)
        try:
            barrier.wait(timeout=5)
            met = True
        except threading.BrokenBarrierError:
            met = False
    with _lock:
        if not any(sr is start_response for _, sr in _stored_start_responses):
            _stored_start_responses.append((threading.get_ident(), start_response))
        count = len(_stored_start_responses)
    return _json(start_response, {"stored": count, "met": met})


def sr_call_stored(environ, start_response):
    """Calls a start_response stored by an earlier request: ?which=other one
    stored on another worker thread, ?which=same one stored on this request's
    own thread (the server once reused those).  Reports what the stale call
    did."""
    which = _query(environ, "which", "other")
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


def exc_info_not_tuple(environ, start_response):
    """After the headers went out, exc_info that is not a 3-tuple: the
    TypeError propagates, the response is cut short."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])

    def body():
        yield b"part1;"
        start_response("500 Too Late", [("Content-Type", "text/plain")], "bad")
        yield b"never;"
    return body()


def store_write(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("Content-Length", "6")])
    with _lock:
        _stored_write.append(write)
    return [b"stored"]


def write_before_start_response(environ, start_response):
    """Calls a write() kept from an earlier request before this request's
    start_response: RuntimeError, left to propagate (a 500)."""
    with _lock:
        write = _stored_write[-1]
    write(b"written before start_response")
    return _text(start_response, b"write accepted")


def write_str(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write("text, not bytes")
    return [b"write of str accepted"]


def write_empty(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("Content-Length", "9")])
    write(b"abc")
    write(b"")
    write(b"def")
    write(b"")
    return [b"", b"ghi"]


def write_lost(environ, start_response):
    """Writes up to ?blocks=N blocks of 64 KiB; records what write() raised
    once the client went away (see /x/write-lost)."""
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    block = b"w" * 65536
    seen = "no error after %s blocks" % _query(environ, "blocks", "4096")
    for _ in range(int(_query(environ, "blocks", "4096"))):
        try:
            write(block)
        except Exception as exc:  # noqa: BLE001 - the type is what we report
            seen = "%s: %s" % (type(exc).__name__, exc)
            break
    with _lock:
        _write_lost.append(seen)
    return []


def yield_before_start_response(environ, start_response):
    def body():
        yield b"data before start_response"
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"late"
    return body()


class _CloseRaises:
    def __init__(self, chunks):
        self._chunks = chunks

    def __iter__(self):
        return iter(self._chunks)

    def close(self):
        raise RuntimeError("edge_apps: close() fails on purpose")


class _CloseLookupRaises:
    def __init__(self, chunks):
        self._chunks = chunks

    def __iter__(self):
        return iter(self._chunks)

    @property
    def close(self):
        raise RuntimeError("edge_apps: looking up close fails on purpose")


def close_raises(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])
    return _CloseRaises([b"close ", b"raises"])


def close_lookup_raises(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "19")])
    return _CloseLookupRaises([b"close lookup ", b"raises"])


def empty_without_start_response(environ, start_response):
    return []


# --------------------------------------------------------------------------
# /i/: wsgi.input


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


def input_store(environ, start_response):
    with _lock:
        _stored_inputs.append(environ["wsgi.input"])
    return _text(start_response, b"stored")


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
# /f/: FileWrapper


class _ReadOnly:
    """read() only: no close(), no fileno()."""

    def __init__(self, data):
        self._stream = io.BytesIO(data)

    def read(self, size):
        return self._stream.read(size)


class _TrackedBytesIO(io.BytesIO):
    def __init__(self, data, tag):
        super().__init__(data)
        self._tag = tag

    def close(self):
        with _lock:
            _closed.append(self._tag)
        super().close()


class _FilenoRaises(io.FileIO):
    def fileno(self):
        raise io.UnsupportedOperation("edge_apps: no fileno")


class _TellRaises(io.FileIO):
    def tell(self):
        raise OSError("edge_apps: tell fails on purpose")


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


def _temp_file(data=FILE_DATA):
    """A path to a fresh file holding data (the caller opens and unlinks)."""
    fd, path = tempfile.mkstemp(prefix="edge-apps-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _open_unlinked(opener, data=FILE_DATA):
    path = _temp_file(data)
    try:
        return opener(path)
    finally:
        os.unlink(path)


def _wrap(environ, filelike, blksize=None):
    wrapper = environ["wsgi.file_wrapper"]
    return wrapper(filelike) if blksize is None else wrapper(filelike, blksize)


def fw_no_close(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, _ReadOnly(FILE_DATA[:20000]), 4096)


def fw_bytesio(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, _TrackedBytesIO(FILE_DATA[:10000], _query(environ, "tag", "")), 3000)


def fw_fileno_raises(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, _open_unlinked(lambda p: _FilenoRaises(p, "rb")), 8192)


def fw_pipe(environ, start_response):
    read_fd, write_fd = os.pipe()
    data = FILE_DATA[:30000]  # below the pipe buffer: written before reading
    with os.fdopen(write_fd, "wb") as writer:
        writer.write(data)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, os.fdopen(read_fd, "rb"), 4096)


def fw_tell_raises(environ, start_response):
    """A real file at OS offset 1000 whose tell() raises: sendfile starts at
    the descriptor's own offset."""
    f = _open_unlinked(lambda p: _TellRaises(p, "rb"))
    f.seek(1000)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, f)


def fw_fileno_bogus(environ, start_response):
    """fileno() returns -1 or a str: no descriptor, so iterated whole."""
    value = _query(environ, "v", "-1")
    f = _open_unlinked(lambda p: _BogusFileno(p, "rb"))
    f.bogus = "not a descriptor" if value == "str" else int(value)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, f)


def fw_tell_bogus(environ, start_response):
    """tell() returns ?v= (an int, or "str") while the real position is 0."""
    value = _query(environ, "v", "-1")
    f = _open_unlinked(lambda p: _BogusTell(p, "rb"))
    f.bogus = "not a position" if value == "str" else int(value)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, f)


def fw_beyond_end(environ, start_response):
    """A real file positioned past its end (seek beyond EOF is allowed)."""
    f = _open_unlinked(lambda p: open(p, "rb"))
    f.seek(len(FILE_DATA) + 5000)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, f)


def fw_at_end(environ, start_response):
    f = _open_unlinked(lambda p: open(p, "rb"))
    f.seek(0, os.SEEK_END)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _wrap(environ, f)


class _ReadRaises:
    def read(self, size):
        raise ValueError("edge_apps: read fails on purpose")


class _ReadReturnsInt:
    def read(self, size):
        return 42


class _CloseLookupRaisesFile(_ReadOnly):
    @property
    def close(self):
        raise RuntimeError("edge_apps: looking up the file's close fails on purpose")


def fw_direct(environ, start_response):
    """pyruvate.FileWrapper used directly in Python (no server involved in
    the iteration); ?case= picks the check, the outcome is reported."""
    from pyruvate import FileWrapper

    case = _query(environ, "case")
    out = {"same_type": environ["wsgi.file_wrapper"] is FileWrapper}
    try:
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
            out["outcome"] = [b.decode("latin-1")
                              for b in FileWrapper(io.BytesIO(b"abc" * 10), 4)]
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
            import gc
            filelike = io.BytesIO(b"abc")
            wrapper = FileWrapper(filelike)
            out["outcome"] = any(r is filelike for r in gc.get_referents(wrapper))
            out["tracked"] = gc.is_tracked(wrapper)
        else:
            out["outcome"] = "unknown case %r" % case
    except Exception as exc:  # noqa: BLE001 - the type is what we report
        out["outcome"] = "raised %s: %s" % (type(exc).__name__, exc)
    return _json(start_response, out)


# --------------------------------------------------------------------------
# /x/: state observed inside the server


def report(environ, start_response):
    with _lock:
        return _json(start_response, {"write_lost": list(_write_lost), "closed": list(_closed)})


ROUTES = {
    "/_/hello": hello,
    "/w/bad-cl": bad_content_length,
    "/w/two-cl": two_content_lengths,
    "/w/connection-close-list": connection_close_list,
    "/w/sr-store": sr_store,
    "/w/sr-call-stored": sr_call_stored,
    "/w/exc-info-not-tuple": exc_info_not_tuple,
    "/w/store-write": store_write,
    "/w/write-before-start-response": write_before_start_response,
    "/w/write-str": write_str,
    "/w/write-empty": write_empty,
    "/w/write-lost": write_lost,
    "/w/yield-before-start-response": yield_before_start_response,
    "/w/close-raises": close_raises,
    "/w/close-lookup-raises": close_lookup_raises,
    "/w/empty-without-start-response": empty_without_start_response,
    "/i/ops": input_ops,
    "/i/store": input_store,
    "/i/read-stored": input_read_stored,
    "/f/no-close": fw_no_close,
    "/f/bytesio": fw_bytesio,
    "/f/fileno-raises": fw_fileno_raises,
    "/f/pipe": fw_pipe,
    "/f/tell-raises": fw_tell_raises,
    "/f/at-end": fw_at_end,
    "/f/fileno-bogus": fw_fileno_bogus,
    "/f/tell-bogus": fw_tell_bogus,
    "/f/beyond-end": fw_beyond_end,
    "/f/direct": fw_direct,
    "/x/report": report,
}


def app(environ, start_response):
    return ROUTES.get(environ.get("PATH_INFO", ""), environ_dump)(environ, start_response)
