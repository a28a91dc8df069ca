"""Minimal raw HTTP/1.x client for byte-exact tests (keep-alive, pipelining).

Responses are parsed from a buffered socket so that several responses on one
connection (pipelined or sequential) are separated exactly: body framing by
Content-Length, chunked transfer coding, or connection close.
"""
import socket

DEFAULT_TIMEOUT = 5.0


class IncompleteResponse(Exception):
    """The connection was closed before a complete response was received."""

    def __init__(self, message, partial=b""):
        super().__init__("%s (received %d bytes: %r)" % (message, len(partial), bytes(partial[:200])))
        self.partial = bytes(partial)


class ResponseTimeout(AssertionError):
    """No (more) data arrived within the socket timeout."""


class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []  # list of (name, value) in received order
        self.body = b""
        self.raw = b""  # all bytes of this response as received
        self.chunked = False
        self.chunk_sizes = []
        self.trailers = []
        self.interim = []  # 1xx responses received before this one

    def header(self, name, default=None):
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    def header_all(self, name):
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]

    def has_token(self, name, token):
        """True if comma-separated header `name` contains `token`."""
        for value in self.header_all(name):
            if token.lower() in [t.strip().lower() for t in value.split(",")]:
                return True
        return False

    def __repr__(self):
        return "<Response %s %s %r headers=%r body=%r>" % (
            self.version, self.status, self.reason, self.headers, self.body[:200])


def build_request(method="GET", path="/", headers=None, body=b"",
                  version="HTTP/1.1", host="localhost", content_length=True):
    """Build raw request bytes. Adds Host (HTTP/1.1) and Content-Length."""
    if isinstance(body, str):
        body = body.encode("latin-1")
    lines = ["%s %s %s" % (method, path, version)]
    names = set()
    for name, value in (headers or []):
        names.add(name.lower())
        lines.append("%s: %s" % (name, value))
    if version == "HTTP/1.1" and "host" not in names:
        lines.append("Host: %s" % host)
    if content_length and "content-length" not in names and "transfer-encoding" not in names \
            and (body or method in ("POST", "PUT", "PATCH")):
        lines.append("Content-Length: %d" % len(body))
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body


class RawConnection:
    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT):
        self.host = host
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self._buf = bytearray()
        self._consumed = bytearray()
        self.eof = False

    # -- context manager -------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    # -- sending ---------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def request(self, *args, **kwargs):
        """Send one request (see build_request) and read its response."""
        method = kwargs.get("method", args[0] if args else "GET")
        self.send(build_request(*args, **kwargs))
        return self.read_response(method=method)

    # -- low level reading -----------------------------------------------
    def _fill(self):
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            raise ResponseTimeout(
                "timed out after %ss waiting for data; this response so far: %r"
                % (self.sock.gettimeout(), bytes(self._consumed + self._buf)[:300]))
        if not data:
            self.eof = True
            return False
        self._buf += data
        return True

    def _take(self, n):
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self._consumed += data
        return data

    def _read_line(self):
        while True:
            index = self._buf.find(b"\r\n")
            if index >= 0:
                return self._take(index + 2)[:-2]
            if not self._fill():
                raise IncompleteResponse("connection closed while reading a line",
                                         self._consumed + self._buf)

    def _read_exact(self, n):
        while len(self._buf) < n:
            if not self._fill():
                raise IncompleteResponse("connection closed after %d of %d body bytes"
                                         % (len(self._buf), n), self._consumed + self._buf)
        return self._take(n)

    def _read_to_close(self):
        while self._fill():
            pass
        return self._take(len(self._buf))

    def read_available(self):
        """Everything received until the peer closes the connection."""
        return self._read_to_close()

    # -- response parsing ------------------------------------------------
    def _read_head(self, response):
        status_line = self._read_line().decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise AssertionError("bad status line: %r" % status_line)
        response.version = parts[0]
        response.status = int(parts[1])
        response.reason = parts[2] if len(parts) > 2 else ""
        while True:
            line = self._read_line()
            if not line:
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or name != name.strip() or not name:
                raise AssertionError("bad header line: %r" % line)
            response.headers.append((name, value.strip(" \t")))

    def _read_chunked(self, response):
        body = bytearray()
        while True:
            size_line = self._read_line().decode("latin-1")
            size = int(size_line.split(";", 1)[0].strip(), 16)
            response.chunk_sizes.append(size)
            if size == 0:
                break
            body += self._read_exact(size)
            crlf = self._read_exact(2)
            if crlf != b"\r\n":
                raise AssertionError("chunk not followed by CRLF: %r" % crlf)
        while True:
            line = self._read_line()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            response.trailers.append((name, value.strip()))
        return bytes(body)

    def read_response(self, method="GET"):
        """Read exactly one (final) response from the connection."""
        self._consumed = bytearray()
        interim = []
        while True:
            response = Response()
            if not self._buf and not self._fill():
                raise IncompleteResponse("connection closed before a response", b"")
            self._read_head(response)
            if 100 <= response.status < 200 and response.status != 101:
                interim.append(response)
                continue
            break
        response.interim = interim
        te = response.header("Transfer-Encoding")
        cl = response.header("Content-Length")
        if method.upper() == "HEAD" or response.status in (204, 304):
            response.body = b""
        elif te is not None and "chunked" in te.lower():
            response.chunked = True
            response.body = self._read_chunked(response)
        elif cl is not None:
            response.body = self._read_exact(int(cl))
        else:
            response.body = self._read_to_close()
        response.raw = bytes(self._consumed)
        return response

    def wait_closed(self, timeout=DEFAULT_TIMEOUT):
        """True if the server closes the connection (EOF/reset) within
        `timeout` without sending more data; False if still open.  Raises
        AssertionError if unexpected data arrives."""
        if self._buf:
            raise AssertionError("unexpected extra data: %r" % bytes(self._buf[:200]))
        if self.eof:
            return True
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)
        if data:
            raise AssertionError("unexpected extra data: %r" % data[:200])
        self.eof = True
        return True


def fetch(host, port, *args, **kwargs):
    """One request on a fresh connection; returns the Response."""
    with RawConnection(host, port) as conn:
        return conn.request(*args, **kwargs)
