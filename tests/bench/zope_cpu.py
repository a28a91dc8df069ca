"""A PasteDeploy filter for `make bench-zope` that measures the CPU time the
Zope application itself spends, so that a server's CPU per request splits
into the application's share (the same work whichever server calls it) and
the server's own (everything else in the process).

    [filter:appcpu]
    use = call:zope_cpu:filter_factory

Each call of the application adds its thread's CPU time (time.thread_time,
which a thread waiting for the GIL does not accumulate) to a process-wide
total. GET STATS_PATH answers, without calling the application,

    <calls> <CPU ns> <busy ns> <now ns> <most calls at once> <calls now>
    <process CPU ns>

busy ns: the time spent inside the application by all threads up to now
(monotonic ns), the calls in progress included, so that the difference of
two answers divided by the time between them is how many threads were
inside the application on average: below the thread count under enough
load, threads waited for work that the server had not handed over yet.
The most calls at once must not exceed the server's thread count. The
process's CPU time (all its threads, CLOCK_PROCESS_CPUTIME_ID: to the
nanosecond, where /proc counts 10 ms ticks) is read at the same moment. Zope's result is a tuple of bytes made before the call
returns, so the call covers the application's whole work.
"""
import threading
import time

STATS_PATH = "/__bench_app_cpu__"

_lock = threading.Lock()
_calls = 0
_cpu_ns = 0
_wall_ns = 0  # of the finished calls
_inside = 0
_start_sum = 0  # of the calls in progress: their start times added up
_most_inside = 0


def _stats(start_response):
    with _lock:
        now = time.monotonic_ns()
        busy = _wall_ns + _inside * now - _start_sum
        body = ("%d %d %d %d %d %d %d" % (_calls, _cpu_ns, busy, now, _most_inside,
                                          _inside, time.process_time_ns())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def measure_app_cpu(app):
    def measured(environ, start_response):
        global _calls, _cpu_ns, _wall_ns, _inside, _most_inside, _start_sum
        if environ.get("PATH_INFO") == STATS_PATH:
            return _stats(start_response)
        with _lock:
            started = time.monotonic_ns()
            _inside += 1
            _start_sum += started
            _most_inside = max(_most_inside, _inside)
        cpu = time.thread_time_ns()
        try:
            return app(environ, start_response)
        finally:
            cpu = time.thread_time_ns() - cpu
            with _lock:
                _inside -= 1
                _start_sum -= started
                _calls += 1
                _cpu_ns += cpu
                _wall_ns += time.monotonic_ns() - started

    return measured


def filter_factory(global_conf, **local_conf):
    return measure_app_cpu
