"""Starts pyruvate.serve() for the deployment tests (run as a subprocess).

Usage: launch.py MODE MODULE:APP WORKERS JSON_OPTIONS [ARG]

MODE says what serve() gets as its socket argument:
  address         ARG, a string ("127.0.0.1:8000", "[::1]:8000",
                  "localhost:8000", "/path/to.sock", "unix:/path")
  socket-object   a socket this script binds and listens on before serve():
                  ARG is a host (TCP, port 0) or a Unix socket path; prints
                  "LISTENING <address>"
  fd              ARG, an inherited listening descriptor (an int)
  systemd         None, after setting LISTEN_PID to our own pid (the test
                  passed the socket as fd 3 and set LISTEN_FDS), which is
                  what systemd does between fork and exec
  systemd-native  None, environment untouched (under systemd-socket-activate)

Markers on stdout: SERVE_STARTING, SERVE_RETURNED <repr>, then
SIGTERM_HANDLER_AFTER <name> (who handles SIGTERM once serve() is done);
SERVE_KEYBOARDINTERRUPT (exit 130). Any other exception: SERVE_RAISED
<type> [<its classes>]: <message> and THREADS_AFTER_FAILURE <n> (exit 3).
"""
import importlib
import json
import logging
import os
import signal
import socket
import sys
import threading


def handler_name(handler):
    return getattr(handler, "__qualname__", None) or repr(handler)


def main(argv):
    mode, target, workers, options = argv[1], argv[2], int(argv[3]), json.loads(argv[4])
    arg = argv[5] if len(argv) > 5 else ""
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG,
                        format="%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s")
    module_name, _, app_name = target.partition(":")
    application = getattr(importlib.import_module(module_name), app_name or "application")

    import pyruvate

    keep = None
    if mode == "address":
        where = arg
    elif mode == "socket-object":
        if arg.startswith("/"):
            keep = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            keep.bind(arg)
        else:
            family = socket.AF_INET6 if ":" in arg else socket.AF_INET
            keep = socket.socket(family, socket.SOCK_STREAM)
            keep.bind((arg, 0))
        keep.listen(64)
        where = keep
        print("LISTENING %s" % json.dumps(keep.getsockname()), flush=True)
    elif mode == "fd":
        where = int(arg)
    elif mode == "systemd":
        os.environ["LISTEN_PID"] = str(os.getpid())
        where = None
    elif mode == "systemd-native":
        where = None
    else:
        sys.stderr.write(__doc__)
        return 2

    print("SERVE_STARTING %s" % pyruvate.__file__, flush=True)
    try:
        result = pyruvate.serve(application, where, workers, **options)
    except KeyboardInterrupt:
        print("SERVE_KEYBOARDINTERRUPT", flush=True)
        return 130
    except Exception as error:  # noqa: BLE001 - reported to the test
        kinds = ",".join(k.__name__ for k in type(error).__mro__)
        print("SERVE_RAISED %s [%s]: %s" % (type(error).__name__, kinds, error), flush=True)
        print("THREADS_AFTER_FAILURE %d" % threading.active_count(), flush=True)
        return 3
    print("SERVE_RETURNED %r" % (result,), flush=True)
    print("SIGTERM_HANDLER_AFTER %s" % handler_name(signal.getsignal(signal.SIGTERM)),
          flush=True)
    if keep is not None:
        # The caller's socket stays open and listening: serve() used a dup.
        print("CALLER_SOCKET_OPEN %s" % (keep.fileno() >= 0), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
