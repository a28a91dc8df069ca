"""Server launcher used by the integration tests (run as a subprocess).

Usage: serve_app.py MODULE:APP ADDRESS WORKERS [JSON_OPTIONS]

JSON_OPTIONS is a JSON object passed as keyword arguments to
pyruvate.serve().  Prints marker lines on stdout that the tests check:

  SERVE_STARTING <pyruvate module file>   before serve() is called
  SERVE_RETURNED <repr of result>         serve() returned (exit code 0)
  SERVE_KEYBOARDINTERRUPT                 serve() raised KeyboardInterrupt
                                          (exit code 130)
Any other exception propagates (traceback on stderr, exit code 1).
"""
import importlib
import os
import resource
import json
import logging
import sys


def main(argv):
    if len(argv) not in (4, 5):
        sys.stderr.write(__doc__)
        return 2
    target, address, workers = argv[1], argv[2], int(argv[3])
    options = json.loads(argv[4]) if len(argv) == 5 else {}
    # PYRUVATE_TEST_NOFILE: a low descriptor limit, to test running out:
    # "N" (soft and hard) or "SOFT:HARD".
    if os.environ.get("PYRUVATE_TEST_NOFILE"):
        soft, _, hard = os.environ["PYRUVATE_TEST_NOFILE"].partition(":")
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(soft), int(hard or soft)))

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG,
        format="%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s",
    )

    module_name, _, app_name = target.partition(":")
    module = importlib.import_module(module_name)
    application = getattr(module, app_name or "application")

    import pyruvate

    print("SERVE_STARTING %s" % pyruvate.__file__, flush=True)
    try:
        result = pyruvate.serve(application, address, workers, **options)
    except KeyboardInterrupt:
        print("SERVE_KEYBOARDINTERRUPT", flush=True)
        return 130
    print("SERVE_RETURNED %r" % (result,), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
