"""Proxy support, off by default: trusted_proxy, url_scheme, url_prefix.

trusted_proxy (str: comma-separated IPs, or "*" for any peer; default None =
off): when the peer is trusted, X-Forwarded-For (rightmost entry),
X-Forwarded-Proto, X-Forwarded-Host and RFC 7239 Forwarded (for=, proto=,
host= of the last element) set REMOTE_ADDR, wsgi.url_scheme and HTTP_HOST;
when trusted_proxy is set and the peer is not trusted, HTTP_X_FORWARDED_*
and HTTP_FORWARDED are removed from the environ. url_scheme (default
"http") sets wsgi.url_scheme; url_prefix (default "") sets SCRIPT_NAME and
strips the prefix from PATH_INFO when it starts with it."""
import sys

import pytest

import deploy_support as ds
import httpraw

XFF = [("X-Forwarded-For", "203.0.113.7, 198.51.100.2"),
       ("X-Forwarded-Proto", "https"),
       ("X-Forwarded-Host", "shop.example.org")]


def _environ(port, target="/environ", headers=None):
    return ds.environ_of(ds.tcp_request("127.0.0.1", port, target=target, headers=headers,
                                        timeout=5))


@pytest.mark.parametrize("trusted", ["127.0.0.1", "*", "10.0.0.1, 127.0.0.1"])
def test_trusted_proxy_x_forwarded(procs, trusted):
    proc, port = ds.launch_tcp(procs, options={"trusted_proxy": trusted})
    values, _ = _environ(port, headers=XFF)
    assert values["REMOTE_ADDR"] == "198.51.100.2"  # the rightmost entry
    assert values["wsgi.url_scheme"] == "https"
    assert values["HTTP_HOST"] == "shop.example.org"
    ds.assert_stopped_cleanly(proc)


def test_trusted_proxy_forwarded_rfc7239(procs):
    proc, port = ds.launch_tcp(procs, options={"trusted_proxy": "127.0.0.1"})
    forwarded = ('for=192.0.2.43;proto=http;host=old.example, '
                 'for=192.0.2.60;proto=https;host="www.example.com"')
    values, _ = _environ(port, headers=[("Forwarded", forwarded)])
    assert values["REMOTE_ADDR"] == "192.0.2.60"
    assert values["wsgi.url_scheme"] == "https"
    assert values["HTTP_HOST"] == "www.example.com"
    ds.assert_stopped_cleanly(proc)


def test_trusted_proxy_forwarded_ipv6_node(procs):
    proc, port = ds.launch_tcp(procs, options={"trusted_proxy": "127.0.0.1"})
    values, _ = _environ(port, headers=[("Forwarded", 'for="[2001:db8:cafe::17]:4711"')])
    assert values["REMOTE_ADDR"] == "2001:db8:cafe::17"
    ds.assert_stopped_cleanly(proc)


def test_untrusted_peer_loses_the_proxy_headers(procs):
    proc, port = ds.launch_tcp(procs, options={"trusted_proxy": "10.9.9.9"})
    values, present = _environ(port, headers=XFF + [("Forwarded", "for=192.0.2.60")])
    assert values["REMOTE_ADDR"] == "127.0.0.1"
    assert values["wsgi.url_scheme"] == "http"
    assert values["HTTP_HOST"] == "localhost"
    for name in ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                 "HTTP_FORWARDED"):
        assert not present[name], name
    ds.assert_stopped_cleanly(proc)


def test_default_passes_proxy_headers_untouched(procs):
    proc, port = ds.launch_tcp(procs)
    values, _ = _environ(port, headers=XFF)
    assert values["REMOTE_ADDR"] == "127.0.0.1"
    assert values["wsgi.url_scheme"] == "http"
    assert values["HTTP_HOST"] == "localhost"
    assert values["HTTP_X_FORWARDED_FOR"] == "203.0.113.7, 198.51.100.2"
    ds.assert_stopped_cleanly(proc)


def test_url_scheme(procs):
    proc, port = ds.launch_tcp(procs, options={"url_scheme": "https"})
    values, _ = _environ(port)
    assert values["wsgi.url_scheme"] == "https"
    ds.assert_stopped_cleanly(proc)


@pytest.mark.parametrize("target, script_name, path_info", [
    ("/app/environ", "/app", "/environ"),
    ("/app", "/app", ""),
    ("/other/environ", "/app", "/other/environ"),
])
def test_url_prefix(procs, target, script_name, path_info):
    proc, port = ds.launch_tcp(procs, app="deploy_wsgi:environ_anywhere",
                               options={"url_prefix": "/app"})
    values, _ = _environ(port, target=target)
    assert values["SCRIPT_NAME"] == script_name
    assert values["PATH_INFO"] == path_info
    ds.assert_stopped_cleanly(proc)


def test_command_line_flags(procs):
    port = ds.free_port()
    proc = procs.start([sys.executable, "-m", "pyruvate", "deploy_wsgi:environ_anywhere",
                        "--bind", "127.0.0.1:%d" % port, "--trusted-proxy", "127.0.0.1",
                        "--url-prefix", "/shop", "--url-scheme", "https"],
                       cwd=ds.DEPLOY_APPS).wait_tcp("127.0.0.1", port)
    values, _ = _environ(port, target="/shop/x", headers=XFF[:1])
    assert values["REMOTE_ADDR"] == "198.51.100.2"
    assert values["SCRIPT_NAME"] == "/shop" and values["PATH_INFO"] == "/x"
    assert values["wsgi.url_scheme"] == "https"
    assert proc.stop() == 0, proc.describe()


@pytest.mark.skipif(ds.NGINX is None, reason="nginx not installed (nginx-light)")
def test_nginx_with_trusted_proxy_headers(procs, tmp_path):
    """examples/nginx.conf in front of pyruvate with trusted_proxy = *
    (only nginx can reach the Unix socket)."""
    sock = tmp_path / "pyruvate.sock"
    app = procs.launch("address", arg=str(sock), name="pyruvate",
                       options={"trusted_proxy": "*", "unix_socket_perms": "660"})
    app.wait_unix(sock)
    nginx, port = ds.start_nginx(procs, tmp_path, sock)
    with httpraw.RawConnection("127.0.0.1", port) as conn:
        values, present = ds.environ_of(conn.request(
            "GET", "/environ", headers=[("Host", "www.example.org"),
                                        ("X-Forwarded-For", "203.0.113.9")]))
    # nginx appended the address it saw (127.0.0.1): the rightmost entry.
    assert values["REMOTE_ADDR"] == "127.0.0.1"
    assert values["wsgi.url_scheme"] == "http"
    assert values["HTTP_HOST"] == "www.example.org"
    assert nginx.stop() == 0, nginx.describe()
    ds.assert_stopped_cleanly(app)
