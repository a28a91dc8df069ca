"""Applications for test_descriptors.py (loaded as ``fd_apps:NAME``).

hoard: /hoard?seconds=S opens /dev/null until the process is out of file
descriptors and closes them all S seconds later, so that the server's
accept() meets EMFILE meanwhile; any other path answers "ok".

blocking_log: the first record on logger "pyruvate.access" blocks its
handler (the thread relaying the server's log records) until /release is
requested, so that records pile up in the server's queue.
"""
import logging
import os
import threading
from urllib.parse import parse_qs

OK = b"ok"


def _ok(start_response, body=OK):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _release_later(fds, seconds):
    def release():
        for fd in fds:
            os.close(fd)
    timer = threading.Timer(seconds, release)
    timer.daemon = True
    timer.start()


def hoard(environ, start_response):
    if environ.get("PATH_INFO") != "/hoard":
        return _ok(start_response)
    seconds = float(parse_qs(environ.get("QUERY_STRING", "")).get("seconds", ["2"])[0])
    fds = []
    try:
        while True:
            fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    except OSError:
        pass
    _release_later(fds, seconds)
    return _ok(start_response, str(len(fds)).encode())


_released = threading.Event()


class _BlockingHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.blocked_once = False

    def emit(self, record):
        if not self.blocked_once:
            self.blocked_once = True
            _released.wait(60)  # bounded: the test releases it long before


logging.getLogger("pyruvate.access").addHandler(_BlockingHandler())


def blocking_log(environ, start_response):
    if environ.get("PATH_INFO") == "/release":
        _released.set()
    return _ok(start_response)
