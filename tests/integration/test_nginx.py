"""A real nginx (Debian's nginx-light) with examples/nginx.conf as a reverse
proxy to pyruvate on a Unix socket, end to end. (With trusted_proxy, the
forwarded headers become REMOTE_ADDR etc.: test_proxy_headers.py.)"""
import hashlib
import json
import os
import time

import pytest

import support

pytestmark = pytest.mark.skipif(support.NGINX is None, reason="nginx not installed (nginx-light)")


@pytest.fixture
def stack(procs, tmp_path):
    sock = tmp_path / "pyruvate.sock"
    app = procs.launch("address", arg=str(sock), options={"unix_socket_perms": "660"},
                       name="pyruvate").wait_unix(sock)
    nginx, port = support.start_nginx(procs, tmp_path, sock)
    yield app, nginx, port, sock
    assert nginx.stop() == 0, nginx.describe()
    support.assert_stopped_cleanly(app)
    assert not sock.exists()


def test_request_through_nginx(stack):
    app, nginx, port, sock = stack
    with support.RawConnection("127.0.0.1", port) as conn:
        response = conn.request("GET", "/environ?x=1", headers=[("Host", "example.org")])
        assert response.status == 200, response
        assert response.header("Server", "").startswith("nginx")
        values, present = support.environ_of(response)
        # pyruvate's side of the Unix socket
        assert values["SERVER_NAME"] == str(sock)
        assert values["SERVER_PORT"] == ""
        assert present["REMOTE_ADDR"] and values["REMOTE_ADDR"] == ""
        # what nginx forwarded (untrusted here: passed on as headers only)
        assert values["HTTP_HOST"] == "example.org"
        assert values["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"
        assert values["HTTP_X_FORWARDED_PROTO"] == "http"
        assert values["QUERY_STRING"] == "x=1"
        # keep-alive from the client through nginx
        assert conn.request("GET", "/").body == b"Hello, World!"


def test_bodies_both_ways_through_nginx(stack, tmp_path):
    app, nginx, port, sock = stack
    upload = os.urandom(3 << 20)
    with support.RawConnection("127.0.0.1", port, timeout=20) as conn:
        response = conn.request("POST", "/echo", body=upload)
        assert response.status == 200
        assert json.loads(response.body) == {"length": len(upload), "method": "POST",
                                             "sha256": hashlib.sha256(upload).hexdigest()}
        # a FileWrapper response (sendfile into the Unix socket)
        data = os.urandom(5 << 20)
        path = tmp_path / "download.bin"
        path.write_bytes(data)
        response = conn.request("GET", "/file?path=%s" % path)
        assert response.status == 200
        assert hashlib.sha256(response.body).digest() == hashlib.sha256(data).digest()
        # a chunked response from pyruvate, re-framed by nginx
        response = conn.request("GET", "/stream")
        assert response.body == b"part 0\npart 1\npart 2\n"


def test_nginx_access_log_and_upstream(stack, tmp_path):
    app, nginx, port, sock = stack
    for _ in range(3):
        assert support.tcp_request("127.0.0.1", port, target="/").status == 200
    access_log = tmp_path / "nginx" / "access.log"
    deadline = time.monotonic() + 10  # nginx logs after the response is out
    while access_log.read_text().count('"GET / HTTP/1.1" 200 13') < 3:
        assert time.monotonic() < deadline, access_log.read_text()
        time.sleep(0.05)
    error_log = (tmp_path / "nginx" / "error.log").read_text()
    assert "upstream" not in error_log, error_log
