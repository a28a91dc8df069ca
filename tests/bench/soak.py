"""`make soak`: one server, mixed traffic for a bounded time, then a verdict.

Well-formed traffic is checked byte for byte (keep-alive and close, POST
echo with random bodies, chunked uploads, pipelined requests, streamed and
chunked responses); hostile traffic (malformed requests, clients that abort
mid-request or mid-response, slow clients) must get the expected error or
cost nothing. At the end: requests and errors by kind, the server's RSS
after warm-up and at the end, and exit status 1 on any wrong response, any
server crash, or RSS growth beyond --max-rss-growth-mib.

    python tests/bench/soak.py --seconds 600      (make soak SOAK_SECONDS=600)
Only 127.0.0.1; every loop is bounded by the deadline.
"""
import argparse
import collections
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
HELLO = b"Hello, World!"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_response(sock, data=b""):
    """One response: (status, headers dict, body, bytes after it). Handles
    Content-Length and chunked bodies; data holds bytes already received."""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed in the body")
            rest += chunk
        return status, headers, rest[:length], rest[length:]
    if headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                return status, headers, body, rest
    return status, headers, rest, b""


class Soak:
    def __init__(self, port, deadline):
        self.port = port
        self.deadline = deadline
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.wrong = []

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def record(self, kind, ok, detail=""):
        with self.lock:
            self.counts[kind + (" ok" if ok else " WRONG")] += 1
            if not ok and len(self.wrong) < 20:
                self.wrong.append("%s: %s" % (kind, detail))

    # -- well-formed traffic, verified ------------------------------------
    def keepalive_gets(self, rng):
        with self.connect() as sock:
            for _ in range(rng.randint(1, 50)):
                sock.sendall(b"GET /hello HTTP/1.1\r\nHost: soak\r\n\r\n")
                status, _, body, _ = read_response(sock)
                self.record("keep-alive GET", status == 200 and body == HELLO, (status, body[:40]))

    def close_get(self, rng):
        with self.connect() as sock:
            sock.sendall(b"GET /chunked HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
            status, _, body, _ = read_response(sock)
            self.record("close GET chunked", status == 200 and body == HELLO, (status, body[:40]))

    def echo(self, rng):
        body = rng.randbytes(rng.choice([0, 1, 100, 5000, 70000]))
        with self.connect() as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n"
                         % len(body) + body)
            status, _, got, _ = read_response(sock)
            self.record("POST echo", status == 200 and got == body, (status, len(got), len(body)))

    def chunked_upload(self, rng):
        parts = [rng.randbytes(rng.randint(1, 3000)) for _ in range(rng.randint(1, 5))]
        framed = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\nT: x\r\n\r\n"
        with self.connect() as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + framed)
            status, _, got, _ = read_response(sock)
            self.record("chunked upload", status == 200 and got == b"".join(parts),
                        (status, len(got)))

    def pipelined(self, rng):
        with self.connect() as sock:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: soak\r\n\r\n" * 3)
            rest_ok, rest = True, b""
            for _ in range(3):
                status, _, body, rest = read_response(sock, rest)
                rest_ok = rest_ok and status == 200 and body == HELLO
            self.record("pipelined x3", rest_ok)

    def stream(self, rng):
        with self.connect() as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
            status, _, body, _ = read_response(sock)
            self.record("1 MiB stream", status == 200 and body == b"x" * (1 << 20),
                        (status, len(body)))

    # -- hostile traffic --------------------------------------------------
    def malformed(self, rng):
        request = rng.choice([b"GET / HTTP/1.1\r\n\r\n",                      # no Host
                              b"GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n",  # space before colon
                              b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # smuggling
                              b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n"])
        with self.connect() as sock:
            sock.sendall(request)
            status, _, _, _ = read_response(sock)
            self.record("malformed -> 400", status == 400, status)

    def abort_mid_request(self, rng):
        sock = self.connect()
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\nabc")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        sock.close()
        self.record("abort mid-request", True)

    def abort_mid_response(self, rng):
        sock = self.connect()
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: soak\r\n\r\n")
        sock.recv(1000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        sock.close()
        self.record("abort mid-response", True)

    def slow_then_gone(self, rng):
        with self.connect() as sock:
            for byte in b"GET /hello HTTP/1.1\r\nHo":
                sock.sendall(bytes([byte]))
                time.sleep(0.01)
        self.record("slow client gone", True)

    def client(self, seed):
        rng = random.Random(seed)
        actions = [self.keepalive_gets, self.close_get, self.echo, self.chunked_upload,
                   self.pipelined, self.stream, self.malformed, self.abort_mid_request,
                   self.abort_mid_response, self.slow_then_gone]
        weights = [30, 10, 15, 10, 10, 3, 8, 5, 5, 4]
        while time.monotonic() < self.deadline:
            action = rng.choices(actions, weights)[0]
            try:
                action(rng)
            except (OSError, ValueError) as error:
                self.record(action.__name__ + " raised", False, repr(error))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--max-rss-growth-mib", type=float, default=20)
    args = parser.parse_args()

    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE]))
    server = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, pyruvate, apps; pyruvate.serve(apps.application, sys.argv[1], %d)"
         % args.workers, "127.0.0.1:%d" % port],
        env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        warmup = min(10.0, args.seconds / 10)
        soak = Soak(port, time.monotonic() + warmup)
        soak.client(0)
        rss_start = rss_kib(server.pid)
        started = time.monotonic()
        soak.deadline = started + args.seconds
        threads = [threading.Thread(target=soak.client, args=(seed,))
                   for seed in range(1, args.clients + 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(args.seconds + 60)
        elapsed = time.monotonic() - started
        alive = server.poll() is None
        rss_end = rss_kib(server.pid) if alive else 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
    total = sum(soak.counts.values())
    wrong = sum(n for kind, n in soak.counts.items() if "WRONG" in kind)
    print("soak: %.0f s, %d client actions (%.0f/s), server alive: %s, exit code %s"
          % (elapsed, total, total / elapsed, alive, server.returncode))
    for kind, count in sorted(soak.counts.items()):
        print("  %-28s %d" % (kind, count))
    print("RSS after warm-up %d KiB, at the end %d KiB (%+d KiB)"
          % (rss_start, rss_end, rss_end - rss_start))
    for line in soak.wrong:
        print("  wrong: " + line)
    growth_mib = (rss_end - rss_start) / 1024
    ok = alive and wrong == 0 and growth_mib <= args.max_rss_growth_mib and server.returncode == 0
    print("soak: %s" % ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
