"""WSGI applications for `make bench`, one per URL path.

Every server under test loads `apps:application`, so all of them run the
same dispatch: a dict lookup on PATH_INFO, then one of the apps below.

    /hello    13 bytes with Content-Length
    /chunked  13 bytes from a generator, no Content-Length (chunked)
    /stream   1 MiB streamed as 16 chunks of 64 KiB, with Content-Length
    /echo     POST: the request body sent back (the benchmark posts 64 KiB)
    /sleep    time.sleep(0.01), then 13 bytes: bound by the worker threads
    /file     the 100 MiB file through environ['wsgi.file_wrapper']
    /probe    what the server offers (file_wrapper, SERVER_SOFTWARE)
"""
import os
import time

HELLO = b"Hello, World!"
HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
CHUNK = b"x" * 65536
STREAM_CHUNKS = 16
FILE_PATH = os.environ.get(
    "BENCH_FILE",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "bench",
                 "file-100MiB.bin"),
)


def hello(environ, start_response):
    start_response("200 OK", HELLO_HEADERS)
    return [HELLO]


def chunked(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield HELLO


def stream(environ, start_response):
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"),
         ("Content-Length", str(len(CHUNK) * STREAM_CHUNKS))],
    )
    for _ in range(STREAM_CHUNKS):
        yield CHUNK


def echo(environ, start_response):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
    )
    return [body]


def sleep(environ, start_response):
    time.sleep(0.01)
    start_response("200 OK", HELLO_HEADERS)
    return [HELLO]


def file(environ, start_response):
    f = open(FILE_PATH, "rb")
    size = os.fstat(f.fileno()).st_size
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))],
    )
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(f, 65536)
    return _read_file(f)


def _read_file(f):
    # Only for servers without wsgi.file_wrapper; /probe reports them.
    try:
        while True:
            block = f.read(65536)
            if not block:
                return
            yield block
    finally:
        f.close()


def probe(environ, start_response):
    body = "file_wrapper=%s\nserver=%s\n" % (
        "yes" if environ.get("wsgi.file_wrapper") is not None else "no",
        environ.get("SERVER_SOFTWARE", ""),
    )
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def not_found(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]


ROUTES = {
    "/hello": hello,
    "/chunked": chunked,
    "/stream": stream,
    "/echo": echo,
    "/sleep": sleep,
    "/file": file,
    "/probe": probe,
}


def application(environ, start_response):
    return ROUTES.get(environ.get("PATH_INFO"), not_found)(environ, start_response)
