"""Applications for test_descriptors.py (loaded as ``fd_apps:NAME``).

hoard: /hoard?seconds=S opens /dev/null until the process is out of file
descriptors and closes them all S seconds later (without seconds: when
/release is requested), so that the server's accept() meets EMFILE
meanwhile; any other path answers "ok".

open_when_told: /open?flag=PATH waits (at most 60 s) until the file PATH
exists, then opens four files at once and answers "opened" or the error.

blocking_log: the first record on logger "pyruvate.access" blocks its
handler (the thread relaying the server's log records) until /release is
requested, so that records pile up in the server's queue.
"""
import logging
import os
import threading
import time
from urllib.parse import parse_qs

OK = b"ok"


def _ok(start_response, body=OK):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


_hoarded = []
_hoarded_lock = threading.Lock()


def _release_hoarded():
    # Under the lock, so that the timer and /release never close one
    # descriptor twice (the number may belong to someone else by then).
    with _hoarded_lock:
        fds = _hoarded[:]
        del _hoarded[:]
    for fd in fds:
        os.close(fd)


def hoard(environ, start_response):
    path = environ.get("PATH_INFO")
    if path == "/release":
        _release_hoarded()
        return _ok(start_response)
    if path != "/hoard":
        return _ok(start_response)
    seconds = parse_qs(environ.get("QUERY_STRING", "")).get("seconds")
    fds = []
    try:
        while True:
            fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    except OSError:
        pass
    with _hoarded_lock:
        _hoarded.extend(fds)
    if seconds:
        timer = threading.Timer(float(seconds[0]), _release_hoarded)
        timer.daemon = True
        timer.start()
    return _ok(start_response, str(len(fds)).encode())


def open_when_told(environ, start_response):
    if environ.get("PATH_INFO") != "/open":
        return _ok(start_response)
    flag = parse_qs(environ.get("QUERY_STRING", ""))["flag"][0]
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
    return _ok(start_response, body)


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
