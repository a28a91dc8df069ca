"""What one keep-alive request costs the server: pyruvate and bjoern side by side.

Usage: python tests/bench/per_request.py [--servers pyruvate,bjoern] [--conns 16,100]
           [--rounds 3] [--duration 2] [--callgrind SECONDS] [--base DIR]

req/s is noisy on a busy machine; the figures here are the repeatable ones:

- context switches per request: voluntary + nonvoluntary of every thread of
  the server (/proc/PID/task/*/status) before and after a wrk run;
- syscalls per request: `perf stat -e raw_syscalls:sys_enter -p PID` over the
  same run (left out when perf cannot count it here);
- CPU per request: user+sys of the server's process group;
- latency: p50, p99 and p99.9 of each request timed by latency_client.c
  (one request in flight per connection), in a run of its own after wrk's;
  wrk's own percentiles are not used (see latency_client.c);
- with --callgrind SECONDS: instructions per request (user space), the
  server under `valgrind --tool=callgrind` for SECONDS of wrk load
  (counters zeroed after a warm-up, so start-up does not count).

Each round runs every connection count on every server (order rotated
every round); the table shows the medians and the req/s ratio to bjoern.
Needs wrk, and the peers of `python tests/bench/bench.py --setup-only`
(bjoern in build/bench/peers). Bounded: rounds x conns x servers runs of
--duration seconds against 127.0.0.1.
"""
import argparse
import glob
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import bench

def context_switches(pid):
    total = 0
    for path in glob.glob("/proc/%d/task/*/status" % pid):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass  # a thread that just exited
    return total


def start_perf(pid):
    out = tempfile.NamedTemporaryFile(prefix="perf-", suffix=".csv", delete=False)
    out.close()
    argv = ["perf", "stat", "-x", ",", "-o", out.name, "-e", "raw_syscalls:sys_enter", "-p",
            str(pid)]
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        os.unlink(out.name)
        return None
    time.sleep(0.2)  # perf attaches to every thread
    return proc, out.name


def stop_perf(handle):
    if handle is None:
        return None
    proc, path = handle
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    count = None
    with open(path) as f:
        for line in f:
            fields = line.split(",")
            if len(fields) > 2 and fields[2] == "raw_syscalls:sys_enter" and fields[0].isdigit():
                count = int(fields[0])
    os.unlink(path)
    return count


def run_wrk(port, conns, duration):
    argv = ["wrk", "-t", str(min(2, conns)), "-c", str(conns), "-d", "%ds" % duration,
            "-s", bench.LUA, "http://127.0.0.1:%d/hello" % port]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            return bench.json.loads(line[len("BENCH_JSON "):])
    raise RuntimeError("no wrk summary: %s" % out[-200:])


def measure(server, conns, duration):
    pid = server.proc.pid
    run_wrk(server.port, conns, 1)  # warm up: caches, the idle set, thread start-up
    perf = start_perf(pid)
    ctx0, cpu0 = context_switches(pid), bench.group_cpu_seconds(pid)
    wrk = run_wrk(server.port, conns, duration)
    ctx1, cpu1 = context_switches(pid), bench.group_cpu_seconds(pid)
    syscalls = stop_perf(perf)
    latency = bench.run_latency_client(server.port, conns, duration)
    n = wrk["requests"]
    errors = sum(wrk[k] for k in ("connect", "read", "write", "timeout", "status"))
    errors += latency["errors"]
    return {
        "rps": n / (wrk["duration_us"] / 1e6),
        "p50_ms": latency["p50_us"] / 1000,
        "p99_ms": latency["p99_us"] / 1000,
        "p999_ms": latency["p999_us"] / 1000,
        "ctx": (ctx1 - ctx0) / n,
        # perf's own attach and detach land in the count: a few hundred calls
        "syscalls": syscalls / n if syscalls is not None else None,
        "cpu_us": (cpu1 - cpu0) * 1e6 / n,
        "errors": errors,
    }


class Base(bench.Ours):
    """pyruvate from another checkout (built in place), to compare before and after."""

    def __init__(self, root):
        super().__init__("pyruvate-base", "pyruvate (base)")
        self.root = os.path.abspath(root)

    def env(self):
        env = super().env()
        env["PYTHONPATH"] = self.root
        return env


def timed_roots(servers):
    """The checkouts whose pyruvate these servers run (their build is checked)."""
    return [s.root if isinstance(s, Base) else bench.ROOT
            for s in servers if s.name in ("pyruvate", "pyruvate-base")]


class Callgrind:
    """Wraps a bench server's command line in callgrind."""

    def __init__(self, server, out_dir):
        self.server = server
        self.out = os.path.join(out_dir, "callgrind.%s" % server.name)
        argv = server.argv
        server.argv = lambda port: ["valgrind", "--tool=callgrind", "--trace-children=no",
                                    "--callgrind-out-file=" + self.out] + argv(port)
        server.start_timeout = 120

    def instructions(self, conns, seconds):
        pid = self.server.proc.pid
        run_wrk(self.server.port, conns, 2)  # warm up
        subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True, timeout=60)
        wrk = run_wrk(self.server.port, conns, seconds)
        before = set(glob.glob(self.out + "*"))
        subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, timeout=60)
        total = 0
        for path in set(glob.glob(self.out + "*")) - before:
            with open(path) as f:
                for line in f:
                    if line.startswith(("summary:", "totals:")):
                        total += int(line.split()[1])
                        break
        return total / wrk["requests"], wrk["requests"]


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--servers", default="pyruvate,bjoern")
    p.add_argument("--conns", default="16,100")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=2)
    p.add_argument("--base", metavar="DIR",
                   help="also run the pyruvate built in this checkout (pyruvate-base)")
    p.add_argument("--callgrind", type=int, default=0, metavar="SECONDS",
                   help="also count instructions per request, SECONDS of load under callgrind")
    args = p.parse_args(argv)
    conns_list = [int(c) for c in args.conns.split(",")]
    servers = [s for s in bench.all_servers() if s.name in args.servers.split(",")]
    if args.base:
        servers.insert(0, Base(args.base))
    for root in timed_roots(servers):
        problem = bench.pyruvate_build(root)[2]
        if problem:
            sys.exit("per_request.py: %s" % problem)
    load0 = os.getloadavg()
    results = {}
    try:
        for s in servers:
            err = s.start()
            if err:
                sys.exit("%s: %s" % (s.name, err))
        for r in range(args.rounds):
            order = servers[r % len(servers):] + servers[:r % len(servers)]
            for conns in conns_list:
                for s in order:
                    results.setdefault((s.name, conns), []).append(
                        measure(s, conns, args.duration))
    finally:
        for s in servers:
            s.stop()
    instructions = {}
    if args.callgrind:
        with tempfile.TemporaryDirectory() as tmp:
            for s in servers:
                cg = Callgrind(s, tmp)
                err = s.start()
                if err:
                    sys.exit("%s under callgrind: %s" % (s.name, err))
                try:
                    for conns in conns_list:
                        instructions[(s.name, conns)] = cg.instructions(conns, args.callgrind)[0]
                finally:
                    s.stop()
    load1 = os.getloadavg()

    print("load average %.2f %.2f %.2f before, %.2f %.2f %.2f after; %d rounds of %d s" %
          (load0 + load1 + (args.rounds, args.duration)))
    print("| server | conns | req/s | ×bjoern | p50 ms | p99 ms | p99.9 ms | ctx sw/req | "
          "syscalls/req | CPU µs/req | instr/req | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for conns in conns_list:
        ref = results.get(("bjoern", conns))
        ref_rps = statistics.median(x["rps"] for x in ref) if ref else None
        for s in servers:
            runs = results[(s.name, conns)]

            def med(key):
                values = [x[key] for x in runs if x[key] is not None]
                return statistics.median(values) if values else None

            ratios = ([x["rps"] / y["rps"] for x, y in zip(runs, ref)] if ref else [])
            instr = instructions.get((s.name, conns))
            print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
                s.name, conns, fmt(med("rps"), ".0f"),
                fmt(statistics.median(ratios) if ratios else None, ".2f"),
                fmt(med("p50_ms"), ".2f"), fmt(med("p99_ms"), ".2f"), fmt(med("p999_ms"), ".2f"),
                fmt(med("ctx"), ".3f"), fmt(med("syscalls"), ".2f"),
                fmt(med("cpu_us"), ".1f"), fmt(instr, ".0f"), sum(x["errors"] for x in runs)))
    if ref_rps is None and "bjoern" in args.servers:
        print("bjoern missing: run python tests/bench/bench.py --servers bjoern --setup-only")


if __name__ == "__main__":
    main(sys.argv[1:])
