"""How many requests on idle keep-alive connections a SIGTERM drain cuts off.

A proxy with cached upstream connections (nginx's `keepalive`) may send a
request on one of them at the moment the server closes it; nginx retries an
idempotent request on another server, never a POST. This models such a proxy:
CLIENTS keep-alive connections each send a POST, read the answer, then wait a
random think time watching the connection (as nginx watches its cached ones:
an EOF seen here means the connection is dropped unused, which is safe). After
WARMUP seconds the server gets SIGTERM. A POST that gets no response at all is
"cut" (a 502 behind nginx); one answered with Connection: close ends its
client cleanly.

    DRAIN_THINK_MS=1000 .venv/bin/python tests/bench/drain_race.py [ROUNDS] [GRACE ...]

prints, for each shutdown_idle_grace, the requests answered during the drain,
the connections dropped unused, and the POSTs cut off. Bounded: ROUNDS rounds
(default 5) of one server on 127.0.0.1 each.
"""
import json
import os
import random
import select
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SERVE = os.path.join(ROOT, "tests", "integration", "serve_app.py")
CLIENTS, WARMUP = 64, 1.0
THINK_MS = int(os.environ.get("DRAIN_THINK_MS", "1000"))  # up to this, at random
REQUEST = b"POST /drain HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_response(sock):
    """The response's head (bytes) or None when the connection ended first."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(4096)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    while len(body) < 4:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        body += chunk
    return head


def client(port, stop_at, counts, lock):
    outcome = "unused"
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    except OSError:
        return
    with sock:
        first = True  # like nginx, the first request goes out with the connect
        while time.monotonic() < stop_at:
            think = 0 if first else random.random() * THINK_MS / 1000
            first = False
            readable, _, _ = select.select([sock], [], [], think)
            if readable:  # the server closed it while idle: dropped unused
                outcome = "dropped_idle"
                break
            try:
                sock.sendall(REQUEST)
            except OSError:
                outcome = "cut"
                break
            head = read_response(sock)
            if head is None:
                outcome = "cut"
                break
            if b"connection: close" in head.lower():
                outcome = "answered_with_close"
                break
    with lock:
        counts[outcome] = counts.get(outcome, 0) + 1


def one_round(python, grace):
    port = free_port()
    options = {"shutdown_idle_grace": grace} if grace else {}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.dirname(SERVE)]))
    server = subprocess.Popen(
        [python, SERVE, "apps:gated_echo", "127.0.0.1:%d" % port, "4", json.dumps(options)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        counts, lock = {}, threading.Lock()
        stop_at = time.monotonic() + WARMUP + 30
        threads = [threading.Thread(target=client, args=(port, stop_at, counts, lock))
                   for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(WARMUP)
        server.send_signal(15)
        started = time.monotonic()
        server.wait(60)
        counts["drain_s"] = round(time.monotonic() - started, 3)
        for t in threads:
            t.join(60)
        return counts
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def main(argv):
    rounds = int(argv[1]) if len(argv) > 1 else 5
    graces = [float(g) for g in argv[2:]] or [0.001, 1.0]
    for grace in graces:
        total = {}
        for _ in range(min(rounds, 20)):
            for key, value in one_round(sys.executable, grace).items():
                total[key] = round(total.get(key, 0) + value, 3)
        print("shutdown_idle_grace=%s rounds=%d clients=%d: %s"
              % (grace, rounds, CLIENTS, json.dumps(total, sort_keys=True)), flush=True)


if __name__ == "__main__":
    main(sys.argv)
