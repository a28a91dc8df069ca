"""WSGI applications for the deployment tests (socket kinds, FileWrapper,
lifecycle). Loaded by launch.py or the CLI as deploy_wsgi:NAME."""
import hashlib
import io
import json
import os
import signal
import threading
import time
from urllib.parse import parse_qs

_lock = threading.Lock()
closed = []          # names of the file-likes whose close() was called
entered = [0]        # requests that reached /slow
sigterm_calls = []   # signals the application's own handler saw


def _json(start_response, obj, status="200 OK"):
    body = json.dumps(obj, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _query(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


class TrackedReader(io.BufferedReader):
    """A real buffered file (it has a fileno) that records close()."""

    def close(self):
        with _lock:
            closed.append("file")
        super().close()


class TrackedBytesIO(io.BytesIO):
    """A file-like without a usable fileno that records close()."""

    def close(self):
        with _lock:
            closed.append("bytesio")
        super().close()


ENVIRON_KEYS = (
    "SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR", "REMOTE_PORT", "HTTP_HOST",
    "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "wsgi.url_scheme",
    "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
    "HTTP_FORWARDED", "HTTP_X_REAL_IP", "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX",
    "HTTP_X_FORWARDED_SERVER", "HTTP_TRUE_CLIENT_IP", "HTTP_CLIENT_IP", "HTTP_X_FORWARDED",
    "HTTP_FORWARDED_FOR", "HTTP_X_ORIGINAL_FORWARDED_FOR", "HTTP_FASTLY_CLIENT_IP",
    "HTTP_X_HOST", "HTTP_X_ORIGINAL_HOST")


def environ_anywhere(environ, start_response):
    """The interesting environ entries, for any path."""
    return _json(start_response, {
        "present": {k: k in environ for k in ENVIRON_KEYS},
        "values": {k: environ[k] for k in ENVIRON_KEYS if k in environ},
        "pid": os.getpid(),
    })


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = _query(environ)
    if path == "/environ":
        return environ_anywhere(environ, start_response)
    if path == "/file":
        # ?path=P&offset=N&length=L (Content-Length) &blksize=B
        f = TrackedReader(io.FileIO(query["path"], "rb"))
        if "offset" in query:
            f.seek(int(query["offset"]))
        headers = [("Content-Type", "application/octet-stream")]
        if "length" in query:
            headers.append(("Content-Length", query["length"]))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f, int(query.get("blksize", "8192")))
    if path == "/bytesio":
        size = int(query.get("size", "100000"))
        data = bytes(i % 251 for i in range(size))
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("X-Sha256", hashlib.sha256(data).hexdigest())])
        return environ["wsgi.file_wrapper"](TrackedBytesIO(data), int(query.get("blksize", "1000")))
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        return _json(start_response, {"length": len(body),
                                      "sha256": hashlib.sha256(body).hexdigest(),
                                      "method": environ["REQUEST_METHOD"]})
    if path == "/stream":
        return stream(environ, start_response)
    if path == "/closed":
        with _lock:
            return _json(start_response, {"closed": list(closed)})
    if path == "/slow":
        with _lock:
            entered[0] += 1
        time.sleep(float(query.get("s", "1")))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"slow done"]
    if path == "/entered":
        return _json(start_response, {"entered": entered[0]})
    if path == "/sigterm-calls":
        return _json(start_response, {"calls": list(sigterm_calls),
                                      "handler": getattr(signal.getsignal(signal.SIGTERM),
                                                         "__qualname__", None)})
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


# -- an application that installs its own SIGTERM handler at import ------

def app_sigterm_handler(signum, frame):
    sigterm_calls.append(signum)
    if os.environ.get("APP_SIGTERM_EXITS") == "1":
        raise SystemExit(0)


def install_own_sigterm_handler():
    signal.signal(signal.SIGTERM, app_sigterm_handler)


if os.environ.get("APP_INSTALLS_SIGTERM") == "1":
    install_own_sigterm_handler()


# -- for the command line ------------------------------------------------

not_callable = {"an": "application"}
factory_calls = []


def make_app():
    """An application factory (pyruvate --factory deploy_wsgi:make_app)."""
    factory_calls.append(1)

    def factory_made(environ, start_response):
        if environ.get("PATH_INFO") == "/factory":
            return _json(start_response, {"factory_calls": len(factory_calls)})
        return app(environ, start_response)

    return factory_made


def stream(environ, start_response):
    """No Content-Length: chunked, or close-delimited without chunked_transfer."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(3):
        yield b"part %d\n" % i
