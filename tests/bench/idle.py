"""Hold many idle keep-alive connections open, for the `make bench` idle scenario.

Each connection sends one GET and reads its response before it is counted as
held, so a connection the server never accepted (it sits in the listen
backlog) is not counted. Everything is bounded in time.
"""
import errno
import selectors
import socket
import time

REQUEST = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _response_complete(data):
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = data[:end].lower()
    body = len(data) - end - 4
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip()
        if name == b"content-length":
            try:
                return body >= int(value.strip())
            except ValueError:
                return True
        if name == b"transfer-encoding" and b"chunked" in value:
            return data.endswith(b"0\r\n\r\n")
    return True


class IdleConnections:
    """Open up to `count` keep-alive connections to 127.0.0.1:port."""

    def __init__(self, port, count, window=256, deadline=15.0, stall=1.0):
        self.port = port
        self.count = count
        self.window = window
        self.deadline = deadline
        self.stall = stall
        self.held = []
        self.failed = 0
        self.seconds = 0.0

    def open(self):
        """Returns the number of connections that got a response and are held."""
        sel = selectors.DefaultSelector()
        pending = {}  # socket -> bytes received so far, or None while connecting
        started = 0
        start = last_progress = time.monotonic()
        try:
            while len(self.held) + self.failed < self.count:
                now = time.monotonic()
                if now - start > self.deadline or now - last_progress > self.stall:
                    break
                while len(pending) < self.window and started < self.count:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    started += 1
                    err = s.connect_ex(("127.0.0.1", self.port))
                    if err not in (0, errno.EINPROGRESS):
                        s.close()
                        self.failed += 1
                        continue
                    pending[s] = None
                    sel.register(s, selectors.EVENT_WRITE)
                if not pending:
                    break
                for key, _ in sel.select(timeout=0.2):
                    s = key.fileobj
                    if pending[s] is None:
                        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            self._drop(sel, pending, s)
                            continue
                        try:
                            s.send(REQUEST)
                        except OSError:
                            self._drop(sel, pending, s)
                            continue
                        pending[s] = b""
                        sel.modify(s, selectors.EVENT_READ)
                        continue
                    try:
                        chunk = s.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        chunk = b""
                    if not chunk:
                        self._drop(sel, pending, s)
                        continue
                    pending[s] += chunk
                    if _response_complete(pending[s]):
                        sel.unregister(s)
                        del pending[s]
                        self.held.append(s)
                        last_progress = time.monotonic()
        finally:
            for s in list(pending):
                sel.unregister(s)
                s.close()
            sel.close()
            self.seconds = time.monotonic() - start
        return len(self.held)

    def _drop(self, sel, pending, s):
        sel.unregister(s)
        del pending[s]
        s.close()
        self.failed += 1

    def alive(self):
        """How many held connections the server has not closed."""
        n = 0
        for s in self.held:
            try:
                data = s.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                n += 1
                continue
            except OSError:
                continue
            if data:
                n += 1
        return n

    def close(self):
        for s in self.held:
            s.close()
        self.held = []
