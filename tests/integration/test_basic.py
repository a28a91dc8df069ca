"""Basic request/response behaviour, the WSGI environ and serve() arguments."""
import json
import re
import signal
import socket
import subprocess

import pytest

import support
from support import run_python

HELLO = b"Hello, World!"


# --------------------------------------------------------------------------
# responses


def test_get_hello(server):
    response = server.request("GET", "/hello")
    assert response.version == "HTTP/1.1"
    assert response.status == 200
    assert response.reason == "OK"
    assert response.body == HELLO
    assert response.header("Content-Length") == "13"
    assert response.header("Content-Type") == "text/plain"


def test_hello_app_directly(start_server):
    # A plain WSGI callable served without the router of apps:app in
    # between: every path reaches it.
    srv = start_server("apps:hello")
    for path in ("/", "/anything?x=1"):
        response = srv.request("GET", path)
        assert response.status == 200
        assert response.body == HELLO


def test_post_body_echoed(server):
    body = bytes(range(256)) * 4 + b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"
    response = server.request("POST", "/echo", body=body)
    assert response.status == 200
    assert response.header("X-Request-Method") == "POST"
    assert response.header("Content-Length") == str(len(body))
    assert response.body == body


def test_put_large_body_echoed(server):
    body = b"".join(b"%08d:" % i + b"y" * 55 + b"\n" for i in range(16384))  # 1 MiB
    response = server.request("PUT", "/echo", body=body)
    assert response.status == 200
    assert response.header("X-Request-Method") == "PUT"
    assert len(response.body) == len(body)
    assert response.body == body


def test_request_sent_in_fragments(server):
    request = support.build_request("POST", "/echo", body=b"fragmented body")
    with server.connect() as conn:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(0, len(request), 7):
            conn.send(request[index:index + 7])
        response = conn.read_response()
    assert response.status == 200
    assert response.body == b"fragmented body"


def test_head_has_no_body(start_server):
    srv = start_server(keepalive=True)
    with srv.connect() as conn:
        conn.send(support.build_request("HEAD", "/hello"))
        head = conn.read_response(method="HEAD")
        assert head.status == 200
        assert head.header("Content-Length") in (None, "13")
        # If the server wrongly sent the body after the HEAD response, the
        # next response on this connection would start with b"Hello, World!".
        if head.has_token("Connection", "close"):
            assert conn.read_available() == b""
            return
        conn.send(support.build_request("GET", "/hello"))
        follow = conn.read_response()
        assert follow.raw.startswith(b"HTTP/1.")
        assert follow.status == 200
        assert follow.body == HELLO


def test_http10_request_answered_and_closed(server):
    with server.connect() as conn:
        conn.send(b"GET /hello HTTP/1.0\r\n\r\n")
        response = conn.read_response()
        assert response.version in ("HTTP/1.0", "HTTP/1.1")
        assert response.status == 200
        assert response.body == HELLO
        assert conn.wait_closed(), "HTTP/1.0 connection without keep-alive left open"


def test_http10_streaming_response_not_chunked(start_server):
    srv = start_server(options={"chunked_transfer": True})
    with srv.connect() as conn:
        conn.send(b"GET /stream?n=4 HTTP/1.0\r\n\r\n")
        response = conn.read_response()
        assert response.status == 200
        assert not response.chunked, "chunked encoding sent to an HTTP/1.0 client"
        assert response.body == b"chunk-0\nchunk-1\nchunk-2\nchunk-3\n"
        assert conn.wait_closed()


def test_write_callable(server):
    response = server.request("GET", "/write")
    assert response.status == 200
    assert response.body == b"written-iter"


def test_repeated_response_headers_kept(server):
    response = server.request("GET", "/multi-header")
    assert response.status == 200
    assert response.header_all("Set-Cookie") == ["a=1", "b=2"]
    assert response.header("X-Custom") == "custom value"
    assert response.body == b"cookies"


def test_start_response_exc_info_replaces_status(server):
    response = server.request("GET", "/exc-info")
    assert response.status == 500
    assert response.body == b"error replaced by exc_info"


# --------------------------------------------------------------------------
# environ


def _environ(srv, path="/environ", method="GET", headers=None, body=b"", conn=None):
    if conn is None:
        response = srv.request(method, path, headers=headers, body=body)
    else:
        response = conn.request(method, path, headers=headers, body=body)
    assert response.status == 200, response
    return json.loads(response.body)


def test_environ_cgi_variables(server):
    with server.connect() as conn:
        env = _environ(server, "/environ?x=1&y=%20z", conn=conn,
                       headers=[("X-Custom-Header", "some value")])
        local_port = conn.local_port
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "x=1&y=%20z"
    assert env["SCRIPT_NAME"] == ""
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["SERVER_NAME"]
    assert env["SERVER_PORT"] == str(server.port)
    assert env["HTTP_HOST"] == "localhost"
    assert env["HTTP_X_CUSTOM_HEADER"] == "some value"
    assert env.get("REMOTE_PORT") == str(local_port)


def test_header_names_with_underscores_are_dropped(server):
    """A client's "X_Forwarded_For" must not pose as X-Forwarded-For once both
    become HTTP_X_FORWARDED_FOR; the same names again on one connection go
    through the worker's cache of header keys and stay dropped."""
    with server.connect() as conn:
        for _ in range(3):
            env = _environ(server, "/environ", conn=conn,
                           headers=[("X_Forwarded_For", "6.6.6.6"), ("X-Real", "yes")])
            assert "HTTP_X_FORWARDED_FOR" not in env
            assert env["HTTP_X_REAL"] == "yes"


def test_environ_values_are_native_strings(server):
    env = _environ(server, "/environ", method="POST", body=b"abc")
    assert env["__non_str_keys__"] == []
    assert env["__non_str_values__"] == {}


def test_environ_content_type_and_length(server):
    env = _environ(server, "/environ", method="POST", body=b"hello body",
                   headers=[("Content-Type", "application/x-test; charset=utf-8")])
    assert env["REQUEST_METHOD"] == "POST"
    assert env["CONTENT_TYPE"] == "application/x-test; charset=utf-8"
    assert env["CONTENT_LENGTH"] == "10"
    assert env["__body__"] == "hello body"
    # PEP 3333: these two are never HTTP_ prefixed.
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env


def test_environ_no_query_string(server):
    env = _environ(server, "/environ")
    assert env.get("QUERY_STRING", "") == ""


@pytest.mark.parametrize("raw_path, expected", [
    ("/environ/a%20b", "/environ/a b"),
    ("/environ/caf%C3%A9", "/environ/caf\u00c3\u00a9"),  # bytes decoded as latin-1
    ("/environ/%7euser/x%2By", "/environ/~user/x+y"),
    ("/environ/plain", "/environ/plain"),
])
def test_path_info_percent_decoded(server, raw_path, expected):
    env = _environ(server, raw_path + "?q=%20x")
    assert env["PATH_INFO"] == expected
    assert env["QUERY_STRING"] == "q=%20x"  # not decoded


def test_duplicate_request_headers_joined(server):
    env = _environ(server, headers=[("X-Dup", "first"), ("X-Dup", "second"),
                                    ("X-Single", "only")])
    assert env["HTTP_X_DUP"] == "first, second"
    assert env["HTTP_X_SINGLE"] == "only"


def test_environ_wsgi_variables(server):
    env = _environ(server)
    assert env["wsgi.version"] == "(1, 0)"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] == "True"
    assert env["wsgi.multiprocess"] == "False"
    assert env["wsgi.run_once"] == "False"
    assert "wsgi.input" in env["__wsgi_objects__"]
    assert "wsgi.errors" in env["__wsgi_objects__"]


# --------------------------------------------------------------------------
# addresses


@pytest.mark.skipif(not support.ipv6_available(), reason="no IPv6 loopback")
def test_ipv6_address(start_server):
    srv = start_server(host="::1")
    assert srv.address.startswith("[::1]:")
    response = srv.request("GET", "/environ")
    assert response.status == 200
    env = json.loads(response.body)
    assert env["REMOTE_ADDR"] == "::1"
    assert env["SERVER_PORT"] == str(srv.port)


def test_example_hello_on_a_taken_port_says_so(tmp_path):
    """The example names the problem in one line, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        script = support.REPO_ROOT / "examples" / "hello.py"
        result = subprocess.run([support.SERVER_PYTHON, str(script), "127.0.0.1:%d" % port],
                                env=support.server_env(), capture_output=True, text=True,
                                timeout=30)
    assert result.returncode == 1, result
    assert "cannot serve on 127.0.0.1:%d" % port in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_example_hello(tmp_path):
    port = support.free_port()
    address = "127.0.0.1:%d" % port
    script = support.REPO_ROOT / "examples" / "hello.py"
    srv = support.Server([support.SERVER_PYTHON, str(script), address, "2"],
                          "127.0.0.1", port, tmp_path)
    try:
        assert srv.wait_ready(), srv.describe()
        response = srv.request("GET", "/")
        assert response.status == 200
        assert response.body == HELLO
        assert response.header("Content-Length") == "13"
        assert response.header("Content-Type") == "text/plain"
    finally:
        code = srv.stop()
    assert "pyruvate serving on %s with 2 workers" % address in srv.stderr()
    allowed = (0, -signal.SIGTERM) if support.LENIENT_EXIT else (0,)
    assert code in allowed, srv.describe()


# --------------------------------------------------------------------------
# bad arguments to serve(), run in a subprocess with the server interpreter

_SERVE_CALL = r"""
import sys, pyruvate
app_kind, address, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = (lambda environ, start_response: []) if app_kind == "callable" else 42
try:
    pyruvate.serve(app, address, workers)
except BaseException as exc:
    print("EXC %s %s" % (type(exc).__name__, exc), flush=True)
    print("ISINSTANCE_OSERROR %s" % isinstance(exc, OSError), flush=True)
else:
    print("RETURNED", flush=True)
"""


def _serve_call(app_kind, address, workers):
    proc = run_python(_SERVE_CALL, timeout=10, args=(app_kind, address, str(workers)))
    match = re.search(r"^EXC (\w+) (.*)$", proc.stdout, re.M)
    assert match, "serve() did not raise: stdout=%r stderr=%r" % (proc.stdout, proc.stderr[-2000:])
    return match.group(1), match.group(2), proc.stdout


def test_serve_non_callable_app_raises_type_error():
    name, message, _ = _serve_call("noncallable", "127.0.0.1:%d" % support.free_port(), 2)
    assert name == "TypeError", message


@pytest.mark.parametrize("workers", [0, -1])
def test_serve_bad_worker_count_raises_value_error(workers):
    name, message, _ = _serve_call("callable", "127.0.0.1:%d" % support.free_port(), workers)
    assert name == "ValueError", message


@pytest.mark.parametrize("address", ["not-an-address", "127.0.0.1:notaport",
                                     "127.0.0.1", "127.0.0.1:99999", ""])
def test_serve_bad_address_raises_value_error(address):
    name, message, _ = _serve_call("callable", address, 2)
    assert name == "ValueError", message


def test_serve_bind_failure_raises_os_error():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        address = "127.0.0.1:%d" % port
        name, message, stdout = _serve_call("callable", address, 2)
    assert "ISINSTANCE_OSERROR True" in stdout, (name, message)
    assert address in message or str(port) in message, message


# --------------------------------------------------------------------------
# limits


def test_max_number_headers(start_server):
    srv = start_server(options={"max_number_headers": 8})
    few = [("X-H%d" % i, "v") for i in range(4)]
    response = srv.request("GET", "/hello", headers=few)
    assert response.status == 200
    many = [("X-H%d" % i, "v") for i in range(40)]
    with srv.connect() as conn:
        conn.send(support.build_request("GET", "/hello", headers=many))
        try:
            response = conn.read_response()
        except support.IncompleteResponse as exc:
            assert exc.partial == b"", exc  # closed without a response: ok
        else:
            assert 400 <= response.status < 500, response
    assert srv.request("GET", "/hello").status == 200
