"""A rolling restart behind nginx: how many POSTs fail.

Two pyruvate instances behind one nginx (`upstream` with `keepalive 16`,
`proxy_next_upstream error timeout`, HTTP/1.1 to the upstreams); CLIENTS
keep-alive clients POST to nginx with a random think time of up to THINK_MS.
Each instance in turn gets SIGTERM and is started again once it has exited,
ROUNDS times. nginx retries a failed POST on the other instance only if it
never reached the first one; every other failure is a 502 to the client.

    .venv/bin/python tests/bench/drain_nginx.py [ROUNDS] [THINK_MS]

PYRUVATE_ROOT=<checkout> measures another build (its serve_app.py and
extension); it needs apps:gated_echo in its tests/integration/apps.py.
Prints the status counts. Bounded: ROUNDS restarts of each instance, all on
127.0.0.1.
"""
import collections
import http.client
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.environ.get("PYRUVATE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SERVE = os.path.join(ROOT, "tests", "integration", "serve_app.py")
CLIENTS = 16
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit("port %d did not open" % port)


def start_instance(port):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.dirname(SERVE)]))
    proc = subprocess.Popen([sys.executable, SERVE, "apps:gated_echo", "127.0.0.1:%d" % port,
                             "2"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


def start_nginx(base, ports):
    port = free_port()
    temp = "".join("    %s_temp_path %s/%s;\n" % (kind, base, kind)
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    servers = "".join("        server 127.0.0.1:%d max_fails=0;\n" % p for p in ports)
    with open(os.path.join(base, "nginx.conf"), "w") as conf:
        conf.write(("user root;\n" if os.geteuid() == 0 else "") +
                   "worker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
                   "events { worker_connections 256; }\n"
                   "http {\n    access_log off;\n%s"
                   "    upstream app {\n%s        keepalive 16;\n    }\n"
                   "    server {\n        listen 127.0.0.1:%d;\n"
                   "        location / {\n            proxy_pass http://app;\n"
                   "            proxy_http_version 1.1;\n"
                   "            proxy_set_header Connection \"\";\n"
                   "            proxy_next_upstream error timeout;\n"
                   "        }\n    }\n}\n" % (base, base, temp, servers, port))
    proc = subprocess.Popen([NGINX, "-p", base, "-c", os.path.join(base, "nginx.conf"),
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port


def client(port, stop, think_ms, counts, lock):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        try:
            conn.request("POST", "/post", body=b"x" * 100)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = "client error"
            conn.close()
        with lock:
            counts[status] += 1
        time.sleep(random.random() * think_ms / 1000)
    conn.close()


def main(argv):
    rounds = min(int(argv[1]) if len(argv) > 1 else 3, 10)
    think_ms = float(argv[2]) if len(argv) > 2 else 50
    base = tempfile.mkdtemp(prefix="drain-nginx-")
    ports = [free_port(), free_port()]
    instances = [start_instance(p) for p in ports]
    nginx, port = start_nginx(base, ports)
    counts, lock, stop = collections.Counter(), threading.Lock(), threading.Event()
    threads = [threading.Thread(target=client, args=(port, stop, think_ms, counts, lock))
               for _ in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        time.sleep(1)
        for _ in range(rounds):
            for i, p in enumerate(ports):
                instances[i].send_signal(15)
                instances[i].wait(60)
                instances[i] = start_instance(p)
                time.sleep(0.5)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        for proc in instances + [nginx]:
            proc.terminate()
            proc.wait(60)
        shutil.rmtree(base, ignore_errors=True)
    print("root=%s rounds=%d think_ms=%g: %s"
          % (ROOT, rounds, think_ms, dict(sorted(counts.items(), key=str))), flush=True)


if __name__ == "__main__":
    main(sys.argv)
