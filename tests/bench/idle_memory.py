"""What an idle keep-alive connection costs in server memory, beside bjoern.

    python tests/bench/idle_memory.py [--servers pyruvate,bjoern] [--count 10000]
                                      [--rounds 2] [--wrk-seconds 5]

For each server, in turn and `--rounds` times interleaved: start it, open
`--count` keep-alive connections that each sent one GET and read the answer
(idle.IdleConnections, as in bench.py's idle scenario), and report the growth
of the server's RSS per held connection; then close them all, open them
again and report the RSS growth over the first baseline once more (memory
kept by the allocator after the first wave shows there). With
`--wrk-seconds`, hello keep-alive req/s at 16 connections is measured while
the idle ones are held. bjoern is looked up in build/bench/peers (bench.py
--setup-only) or build/idlebench/venv. IDLE_MEMORY_LOG=FILE keeps the
servers' stderr. Bounded: every step has a deadline,
and everything targets 127.0.0.1.
"""
import argparse
import os
import resource
import signal
import subprocess
import sys
import time

import bench
import idle

PEER_PYTHONS = [os.path.join(bench.PEERS, "bin", "python"),
                os.path.join(bench.ROOT, "build", "idlebench", "venv", "bin", "python")]


def server_argv(name, port):
    serve = os.path.join(bench.HERE, "serve.py")
    if name == "pyruvate":
        return [sys.executable, serve, "pyruvate", "127.0.0.1:%d" % port, str(bench.WORKERS)]
    python = next((p for p in PEER_PYTHONS if os.path.exists(p)), None)
    if python is None:
        sys.exit("bjoern is not installed: run tests/bench/bench.py --setup-only")
    return [python, serve, "bjoern", "127.0.0.1:%d" % port]


def start(name):
    port = bench.free_port()
    env = dict(os.environ, PYTHONPATH=bench.ROOT) if name == "pyruvate" else dict(os.environ)
    if name != "pyruvate":
        env.pop("PYTHONPATH", None)
    proc = subprocess.Popen(server_argv(name, port), cwd=bench.HERE, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(os.environ.get("IDLE_MEMORY_LOG", os.devnull), "wb"),
                            start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("%s exited with status %s" % (name, proc.returncode))
        try:
            bench.request(port, "GET", "/hello", timeout=2)
            return proc, port
        except OSError:
            time.sleep(0.05)
    stop(proc)
    sys.exit("%s is not listening after 20 s" % name)


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def settle(seconds=1.0):
    """Gives the server time to move the connections to its idle set."""
    time.sleep(seconds)


def one_run(name, count, wrk_seconds):
    proc, port = start(name)
    row = {}
    try:
        for _ in range(20):  # warm the worker threads and the app first
            bench.request(port, "GET", "/hello", timeout=5)
        settle()
        rss0 = bench.group_rss_kib(proc.pid)
        holder = idle.IdleConnections(port, count, deadline=60.0, stall=5.0)
        held = holder.open()
        row["held"] = held
        row["first"] = (bench.group_rss_kib(proc.pid) - rss0) * 1024 / max(held, 1)
        settle()
        row["first_settled"] = (bench.group_rss_kib(proc.pid) - rss0) * 1024 / max(held, 1)
        if wrk_seconds:
            wrk = bench.run_wrk(port, "idle", 16, True, wrk_seconds)
            row["rps"] = (wrk["requests"] / (wrk["duration_us"] / 1e6)
                          if "requests" in wrk else None)
        row["alive"] = holder.alive()
        holder.close()
        settle(2.0)
        holder = idle.IdleConnections(port, count, deadline=60.0, stall=5.0)
        held = holder.open()
        settle()
        row["again"] = (bench.group_rss_kib(proc.pid) - rss0) * 1024 / max(held, 1)
        holder.close()
    finally:
        stop(proc)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default="pyruvate,bjoern")
    parser.add_argument("--count", type=int, default=bench.IDLE_COUNT)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--wrk-seconds", type=int, default=0)
    args = parser.parse_args()
    # Both ends of every connection are in this process tree; the server
    # keeps 1024 descriptors for the application.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args.count = min(args.count, (hard - 1200) // 2 if hard > 0 else args.count)
    names = args.servers.split(",")
    print("%-9s %6s %10s %10s %10s %9s" % ("server", "held", "B/conn", "settled", "reopened",
                                          "req/s"))
    for _ in range(args.rounds):
        for name in names:
            r = one_run(name, args.count, args.wrk_seconds)
            rps = "%.0f" % r["rps"] if r.get("rps") else "-"
            print("%-9s %6d %10.0f %10.0f %10.0f %9s" % (name, r["held"], r["first"],
                                                         r["first_settled"], r["again"], rps),
                  flush=True)


if __name__ == "__main__":
    main()
