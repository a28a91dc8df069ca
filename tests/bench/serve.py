"""Start one server for `make bench`: python serve.py KIND HOST:PORT [WORKERS]

KIND is "pyruvate" (our build or the Rust one, whichever `import pyruvate`
finds on this interpreter's path: bench.py picks it with the virtualenv and
PYTHONPATH) or "bjoern". The other peers have their own command lines.
"""
import os
import sys

import apps


def main():
    kind, address = sys.argv[1], sys.argv[2]
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    if kind == "pyruvate":
        import pyruvate

        print("pyruvate from %s" % pyruvate.__file__, file=sys.stderr, flush=True)
        if os.environ.get("BENCH_PYRUVATE") == "rust":
            # Keep-alive is off unless max_reuse_count > 0; it is a u8. In 1.6.1
            # 255 wedges the server (a second request on a connection is never
            # answered and the workers stay stuck), 1-254 close the connection
            # after each response while announcing keep-alive: 254 is the most
            # keep-alive that still measures something.
            pyruvate.serve(apps.application, address, workers,
                           max_reuse_count=254, chunked_transfer=True)
        else:
            # 10,000 idle connections plus 100 active ones exceed the
            # default max_connections (10000).
            pyruvate.serve(apps.application, address, workers, max_connections=20000)
    elif kind == "bjoern":
        import bjoern

        host, port = address.rsplit(":", 1)
        bjoern.run(apps.application, host, int(port))
    else:
        sys.exit("unknown server kind %r" % kind)


if __name__ == "__main__":
    main()
