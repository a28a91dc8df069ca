"""Minimal WSGI application served by pyruvate.

Usage: python examples/hello.py [ADDRESS] [WORKERS]
       (defaults: 127.0.0.1:7878, 4 workers)
   or: python -m pyruvate hello:application --bind 127.0.0.1:7878 (from examples/)
   or: PYTHONPATH=examples pserve examples/paste.ini
"""
import sys

BODY = b"Hello, World!"


def application(environ, start_response):
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(BODY))),
        ],
    )
    return [BODY]


def make_app(global_conf, **settings):
    """PasteDeploy application factory (examples/paste.ini:
    ``use = call:hello:make_app``)."""
    return application


if __name__ == "__main__":
    import logging

    import pyruvate

    # pyruvate says "pyruvate serving on ..." once it really serves.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7878"
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    try:
        pyruvate.serve(application, address, workers)
    except KeyboardInterrupt:  # Ctrl-C: the server has stopped gracefully
        pass
    except OSError as error:  # e.g. the port is taken
        sys.exit("hello.py: cannot serve on %s: %s" % (address, error))
