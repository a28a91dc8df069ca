"""A PasteDeploy filter for `make bench-zope` that measures the CPU time the
Zope application itself spends, so that a server's CPU per request splits
into the application's share (the same work whichever server calls it) and
the server's own (everything else in the process).

    [filter:appcpu]
    use = call:zope_cpu:filter_factory

Each call of the application adds its thread's CPU time (time.thread_time,
which a thread waiting for the GIL does not accumulate) and its wall-clock
time to process-wide totals. GET STATS_PATH answers "<calls> <CPU
nanoseconds> <wall nanoseconds> <most calls at once> <calls now>" without
calling the application; the most calls at once must not exceed the
server's thread count. The
wall-clock total over a window says how many threads were inside the
application on average: below the thread count under enough load, threads
waited for work that the server had not handed over yet. Zope's result is a tuple of bytes made before the call
returns, so the call covers the application's whole work.
"""
import threading
import time

STATS_PATH = "/__bench_app_cpu__"

_lock = threading.Lock()
_calls = 0
_cpu_ns = 0
_wall_ns = 0
_inside = 0
_most_inside = 0


def _stats(start_response):
    with _lock:
        body = ("%d %d %d %d %d" % (_calls, _cpu_ns, _wall_ns, _most_inside,
                                    _inside)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def measure_app_cpu(app):
    def measured(environ, start_response):
        global _calls, _cpu_ns, _wall_ns, _inside, _most_inside
        if environ.get("PATH_INFO") == STATS_PATH:
            return _stats(start_response)
        with _lock:
            _inside += 1
            _most_inside = max(_most_inside, _inside)
        wall = time.monotonic_ns()
        cpu = time.thread_time_ns()
        try:
            return app(environ, start_response)
        finally:
            cpu = time.thread_time_ns() - cpu
            wall = time.monotonic_ns() - wall
            with _lock:
                _inside -= 1
                _calls += 1
                _cpu_ns += cpu
                _wall_ns += wall

    return measured


def filter_factory(global_conf, **local_conf):
    return measure_app_cpu
