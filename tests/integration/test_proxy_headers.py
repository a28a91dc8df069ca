"""Proxy support, off by default: trusted_proxy, trusted_proxy_headers,
trusted_proxy_count, url_scheme, url_prefix.

trusted_proxy (str: comma-separated IPs or networks such as 10.0.0.0/8, "*"
for any peer, "unix" for Unix socket peers; default None = off) says which peers are proxies;
trusted_proxy_headers (default "x-forwarded-for", with a start-up warning)
which forwarding headers they set; trusted_proxy_count (default 1) how many
proxies are chained. From a trusted peer, the entry trusted_proxy_count from
the right of all lines of a trusted header combined sets REMOTE_ADDR,
wsgi.url_scheme or HTTP_HOST, if it is valid (an IP literal; http/https; an
RFC 9110 host). Every other forwarding header (Forwarded, X-Forwarded-*,
X-Real-IP, ...) is removed from the environ, and all of them when the peer
is not trusted. url_scheme (default "http") sets wsgi.url_scheme; url_prefix
(default "") sets SCRIPT_NAME and strips the prefix from PATH_INFO when it
starts with it."""
import json
import re
import sys

import pytest

import support

XFF = [("X-Forwarded-For", "203.0.113.7, 198.51.100.2"),
       ("X-Forwarded-Proto", "https"),
       ("X-Forwarded-Host", "shop.example.org")]


def _environ(port, target="/environ", headers=None):
    return support.environ_of(support.tcp_request("127.0.0.1", port, target=target, headers=headers,
                                        timeout=5))


X_HEADERS = "x-forwarded-for x-forwarded-proto x-forwarded-host"
SIBLINGS = [("X-Forwarded-Port", "8443"), ("X-Forwarded-Prefix", "/admin"),
            ("X-Forwarded-Server", "evil"), ("X-Real-IP", "10.0.0.1"),
            ("True-Client-IP", "10.0.0.1")]


@pytest.mark.parametrize("trusted", ["127.0.0.1", "*", "10.0.0.1, 127.0.0.1", "127.0.0.0/8"])
def test_trusted_proxy_x_forwarded(procs, trusted):
    proc, port = support.launch_tcp(procs, options={"trusted_proxy": trusted,
                                               "trusted_proxy_headers": X_HEADERS})
    values, present = _environ(port, headers=XFF)
    assert values["REMOTE_ADDR"] == "198.51.100.2"  # the rightmost entry
    assert not present["REMOTE_PORT"]  # the peer's port was the proxy's
    assert values["wsgi.url_scheme"] == "https"
    assert values["HTTP_HOST"] == "shop.example.org"
    support.assert_stopped_cleanly(proc)


def test_trusted_proxy_forwarded_rfc7239(procs):
    proc, port = support.launch_tcp(procs, options={"trusted_proxy": "127.0.0.1",
                                               "trusted_proxy_headers": "forwarded"})
    forwarded = ('for=192.0.2.43;proto=http;host=old.example, '
                 'for=192.0.2.60;proto=https;host="www.example.com"')
    values, _ = _environ(port, headers=[("Forwarded", forwarded)])
    assert values["REMOTE_ADDR"] == "192.0.2.60"
    assert values["wsgi.url_scheme"] == "https"
    assert values["HTTP_HOST"] == "www.example.com"
    support.assert_stopped_cleanly(proc)


def test_trusted_proxy_forwarded_ipv6_node(procs):
    proc, port = support.launch_tcp(procs, options={"trusted_proxy": "127.0.0.1",
                                               "trusted_proxy_headers": "Forwarded"})
    values, _ = _environ(port, headers=[("Forwarded", 'for="[2001:db8:cafe::17]:4711"')])
    assert values["REMOTE_ADDR"] == "2001:db8:cafe::17"
    assert values["REMOTE_PORT"] == "4711"
    support.assert_stopped_cleanly(proc)


@pytest.mark.parametrize("trusted", ["10.9.9.9", "128.0.0.0/1, ::1/128", "unix"])
def test_untrusted_peer_loses_the_proxy_headers(procs, trusted):
    proc, port = support.launch_tcp(procs, options={"trusted_proxy": trusted,
                                               "trusted_proxy_headers": X_HEADERS})
    values, present = _environ(port, headers=XFF + SIBLINGS + [("Forwarded", "for=192.0.2.60")])
    assert values["REMOTE_ADDR"] == "127.0.0.1" and values["REMOTE_PORT"].isdigit()
    assert values["wsgi.url_scheme"] == "http"
    assert values["HTTP_HOST"] == "localhost"
    forwarding = [name for name in present if name.startswith("HTTP_") and name != "HTTP_HOST"]
    assert len(forwarding) == 16
    for name in forwarding:
        assert not present[name], name
    support.assert_stopped_cleanly(proc)


def test_default_passes_proxy_headers_untouched(procs):
    proc, port = support.launch_tcp(procs)
    values, _ = _environ(port, headers=XFF)
    assert values["REMOTE_ADDR"] == "127.0.0.1"
    assert values["wsgi.url_scheme"] == "http"
    assert values["HTTP_HOST"] == "localhost"
    assert values["HTTP_X_FORWARDED_FOR"] == "203.0.113.7, 198.51.100.2"
    support.assert_stopped_cleanly(proc)


def test_url_scheme(procs):
    proc, port = support.launch_tcp(procs, options={"url_scheme": "https"})
    values, _ = _environ(port)
    assert values["wsgi.url_scheme"] == "https"
    support.assert_stopped_cleanly(proc)


@pytest.mark.parametrize("target, script_name, path_info", [
    ("/app/environ", "/app", "/environ"),
    ("/app", "/app", ""),
    ("/other/environ", "/app", "/other/environ"),
])
def test_url_prefix(procs, target, script_name, path_info):
    proc, port = support.launch_tcp(procs, app="deploy_wsgi:environ_anywhere",
                               options={"url_prefix": "/app"})
    values, _ = _environ(port, target=target)
    assert values["SCRIPT_NAME"] == script_name
    assert values["PATH_INFO"] == path_info
    support.assert_stopped_cleanly(proc)


def test_command_line_flags(procs):
    port = support.free_port()
    proc = procs.start([sys.executable, "-m", "pyruvate", "deploy_wsgi:environ_anywhere",
                        "--bind", "127.0.0.1:%d" % port, "--trusted-proxy", "127.0.0.1",
                        "--url-prefix", "/shop", "--url-scheme", "https"],
                       cwd=support.DEPLOY_APPS).wait_tcp("127.0.0.1", port)
    values, _ = _environ(port, target="/shop/x", headers=XFF[:1])
    assert values["REMOTE_ADDR"] == "198.51.100.2"
    assert values["SCRIPT_NAME"] == "/shop" and values["PATH_INFO"] == "/x"
    assert values["wsgi.url_scheme"] == "https"
    assert proc.stop() == 0, proc.describe()


def test_x_forwarded_for_second_line_spoof(procs):
    """HAProxy's option forwardfor adds its own X-Forwarded-For line after
    the client's: all lines are combined, and the proxy's entry (the last)
    is the client's address, not the client's own first line."""
    proc, port = support.launch_tcp(procs, options={"trusted_proxy": "127.0.0.1",
                                               "trusted_proxy_headers": "x-forwarded-for"})
    values, _ = _environ(port, headers=[("X-Forwarded-For", "6.6.6.6"),
                                        ("X-Forwarded-For", "198.51.100.2")])
    assert values["REMOTE_ADDR"] == "198.51.100.2"
    support.assert_stopped_cleanly(proc)


def test_trusted_proxy_count_two_hops(procs):
    """Two proxies, each appending: the client is the second entry from the
    right; what the client sent itself, further left, is ignored; with fewer
    entries than proxies nothing is believed."""
    proc, port = support.launch_tcp(procs, options={"trusted_proxy": "127.0.0.1",
                                               "trusted_proxy_headers": X_HEADERS,
                                               "trusted_proxy_count": 2})
    values, _ = _environ(port, headers=[("X-Forwarded-For", "6.6.6.6, 203.0.113.9"),
                                        ("X-Forwarded-For", "10.0.0.2"),
                                        ("X-Forwarded-Proto", "http, https, http")])
    assert values["REMOTE_ADDR"] == "203.0.113.9"
    assert values["wsgi.url_scheme"] == "https"
    values, _ = _environ(port, headers=[("X-Forwarded-For", "10.0.0.2"),
                                        ("X-Forwarded-Proto", "https")])
    assert values["REMOTE_ADDR"] == "127.0.0.1"
    assert values["wsgi.url_scheme"] == "http"
    support.assert_stopped_cleanly(proc)


@pytest.mark.parametrize("header, value", [
    ("Forwarded", 'for="127.0.0.1 - admin"'),
    ("X-Forwarded-For", "127.0.0.1 - admin"),
    ("X-Forwarded-For", "6.6.6.6, [::1] admin"),
    ("Forwarded", 'for="_hidden", for=unknown'),
])
def test_forwarded_for_garbage_stays_out_of_remote_addr_and_access_log(procs, header, value):
    """A value that is no IP literal is not used (nor is anything left of
    it): REMOTE_ADDR and the access log keep the peer's address."""
    proc, port = support.launch_tcp(procs, options={"trusted_proxy": "127.0.0.1",
                                               "trusted_proxy_headers": "forwarded "
                                                                        "x-forwarded-for",
                                               "access_log": True})
    values, _ = _environ(port, headers=[(header, value)])
    assert values["REMOTE_ADDR"] == "127.0.0.1"
    support.assert_stopped_cleanly(proc)
    lines = re.findall(r"pyruvate\.access \S+: (.*)", proc.stderr())
    assert len(lines) == 1 and lines[0].startswith('127.0.0.1 - - ['), lines
    assert "admin" not in proc.stderr()


@pytest.mark.parametrize("headers", [
    [("X-Forwarded-Proto", "javascript"), ("X-Forwarded-Host", "evil.example/path")],
    [("X-Forwarded-Proto", "https x"), ("X-Forwarded-Host", "a b.example")],
    [("Forwarded", 'proto=ftp;host="evil.example\\"; x"')],
    [("Forwarded", "proto=https;proto=http;host=a.example;host=b.example")],
])
def test_forwarded_scheme_and_host_values_are_validated(procs, headers):
    proc, port = support.launch_tcp(procs, options={"trusted_proxy": "127.0.0.1",
                                               "trusted_proxy_headers": X_HEADERS
                                               + " forwarded"})
    values, _ = _environ(port, headers=headers)
    assert values["wsgi.url_scheme"] == "http"
    assert values["HTTP_HOST"] == "localhost"
    support.assert_stopped_cleanly(proc)


def test_forwarding_headers_not_named_are_removed(procs):
    """From a trusted proxy that sets only X-Forwarded-For, the client's own
    Forwarded, X-Forwarded-Proto/-Host/-Port/-Prefix, X-Real-IP, ... never
    reach the app; a named one (X-Forwarded-Port) is passed on."""
    proc, port = support.launch_tcp(procs, options={"trusted_proxy": "127.0.0.1",
                                               "trusted_proxy_headers": "x-forwarded-for, "
                                                                        "x-forwarded-port"})
    values, present = _environ(port, headers=XFF + SIBLINGS + [
        ("Forwarded", "for=10.0.0.1;proto=https;host=evil.example")])
    assert values["REMOTE_ADDR"] == "198.51.100.2"
    assert values["wsgi.url_scheme"] == "http"
    assert values["HTTP_HOST"] == "localhost"
    assert values["HTTP_X_FORWARDED_FOR"] == "203.0.113.7, 198.51.100.2"
    assert values["HTTP_X_FORWARDED_PORT"] == "8443"
    for name in ("HTTP_FORWARDED", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                 "HTTP_X_FORWARDED_PREFIX", "HTTP_X_FORWARDED_SERVER", "HTTP_X_REAL_IP",
                 "HTTP_TRUE_CLIENT_IP"):
        assert not present[name], name
    support.assert_stopped_cleanly(proc)


LESS_COMMON = [("Client-IP", "6.6.6.6"), ("X-Forwarded", "for=6.6.6.6"),
               ("Forwarded-For", "6.6.6.6"), ("X-Original-Forwarded-For", "6.6.6.6"),
               ("Fastly-Client-IP", "6.6.6.6"), ("X-Host", "evil.example"),
               ("X-Original-Host", "evil.example")]


@pytest.mark.parametrize("trusted", ["127.0.0.1", "10.0.0.1"])
def test_less_common_forwarding_headers_are_removed(procs, trusted):
    """Client-IP, X-Forwarded, Forwarded-For, X-Original-Forwarded-For,
    Fastly-Client-IP, X-Host and X-Original-Host (read by address-guessing
    libraries and host middleware) sent by a client never reach the app,
    through a trusted proxy or from an untrusted peer."""
    proc, port = support.launch_tcp(procs, options={"trusted_proxy": trusted,
                                               "trusted_proxy_headers": X_HEADERS})
    values, present = _environ(port, headers=XFF + LESS_COMMON)
    for name, _ in LESS_COMMON:
        key = "HTTP_" + name.upper().replace("-", "_")
        assert not present[key], (key, values)
    support.assert_stopped_cleanly(proc)


def test_underscore_alias_cannot_smuggle_forwarding_header(procs):
    """X_Forwarded_For and X-Forwarded-For would both be
    HTTP_X_FORWARDED_FOR; a proxy that strips only the dash form would let
    the underscore form through, so names with "_" never reach the environ."""
    proc, port = support.launch_tcp(procs, options={"trusted_proxy": "127.0.0.1",
                                               "trusted_proxy_headers": X_HEADERS})
    values, present = _environ(port, headers=[("X_Forwarded_For", "6.6.6.6"),
                                              ("X_Forwarded_Proto", "https"),
                                              ("X_Forwarded_Host", "evil.example")])
    assert values["REMOTE_ADDR"] == "127.0.0.1"
    assert values["wsgi.url_scheme"] == "http"
    assert values["HTTP_HOST"] == "localhost"
    assert not present["HTTP_X_FORWARDED_FOR"]
    support.assert_stopped_cleanly(proc)


def test_trusted_proxy_without_headers_warns_and_uses_x_forwarded_for_only(procs):
    proc, port = support.launch_tcp(procs, options={"trusted_proxy": "127.0.0.1"})
    values, present = _environ(port, headers=XFF + [("Forwarded", "for=10.0.0.1;proto=https")])
    assert values["REMOTE_ADDR"] == "198.51.100.2"
    assert values["wsgi.url_scheme"] == "http"
    assert values["HTTP_HOST"] == "localhost"
    assert not present["HTTP_FORWARDED"] and not present["HTTP_X_FORWARDED_PROTO"]
    support.assert_stopped_cleanly(proc)
    assert "WARNING pyruvate" in proc.stderr()
    assert "trusted_proxy is set without trusted_proxy_headers" in proc.stderr()


PROBE = """
import json, sys, pyruvate
try:
    pyruvate.serve(lambda e, s: [], "127.0.0.1:1", 1, **json.loads(sys.argv[1]))
except Exception as error:
    print(type(error).__name__, error)
"""


@pytest.mark.parametrize("options, message", [
    ({"trusted_proxy_headers": "x-forwarded-for"}, "ValueError trusted_proxy_headers and "
                                                   "trusted_proxy_count need trusted_proxy"),
    ({"trusted_proxy_count": 2}, "ValueError trusted_proxy_headers and trusted_proxy_count "
                                 "need trusted_proxy"),
    ({"trusted_proxy": "*", "trusted_proxy_headers": "x-forwarded-for host"},
     "ValueError trusted_proxy_headers: 'host' is not a forwarding header"),
    ({"trusted_proxy": "*", "trusted_proxy_headers": ["forwarded"]},
     "TypeError trusted_proxy_headers must be a str"),
    ({"trusted_proxy": "*", "trusted_proxy_count": 0}, "ValueError trusted_proxy_count must be"),
    ({"trusted_proxy": "*", "trusted_proxy_count": 33}, "ValueError trusted_proxy_count must be"),
])
def test_proxy_option_errors(options, message):
    from support import run_python
    result = run_python(PROBE, args=(json.dumps(options),))
    assert result.stdout.startswith(message), (result.stdout, result.stderr)


def test_command_line_and_paste_forms(procs, tmp_path):
    port = support.free_port()
    proc = procs.start([sys.executable, "-m", "pyruvate", "deploy_wsgi:environ_anywhere",
                        "--bind", "127.0.0.1:%d" % port, "--trusted-proxy", "127.0.0.1",
                        "--trusted-proxy-headers", "forwarded", "--trusted-proxy-count", "2"],
                       cwd=support.DEPLOY_APPS).wait_tcp("127.0.0.1", port)
    values, _ = _environ(port, headers=[("Forwarded", "for=6.6.6.6, for=192.0.2.5;proto=https"),
                                        ("Forwarded", "for=10.0.0.2")])
    assert values["REMOTE_ADDR"] == "192.0.2.5" and values["wsgi.url_scheme"] == "https"
    assert proc.stop() == 0, proc.describe()
    assert "without trusted_proxy_headers" not in proc.stderr()
    # PasteDeploy ini strings (in a subprocess: the test process must not
    # load the extension, which may be an ASan build)
    from support import run_python
    result = run_python("from pyruvate.paste import convert_options; print(convert_options("
                        "{'trusted_proxy': '*', 'trusted_proxy_headers': ' none ', "
                        "'trusted_proxy_count': '3'}))")
    assert result.stdout.strip() == ("{'trusted_proxy': '*', 'trusted_proxy_headers': '', "
                                     "'trusted_proxy_count': 3}"), result.stderr


NGINX_HEADERS = "x-forwarded-for x-forwarded-proto x-forwarded-host"  # examples/nginx.conf


@pytest.fixture
def nginx_stack(procs, tmp_path):
    """examples/nginx.conf in front of pyruvate on a Unix socket; yields a
    function that starts them with the given serve() options."""
    started = []

    def start(options):
        sock = tmp_path / "pyruvate.sock"
        app = procs.launch("address", arg=str(sock), name="pyruvate",
                           options=dict(options, unix_socket_perms="660"))
        app.wait_unix(sock)
        nginx, port = support.start_nginx(procs, tmp_path, sock)
        started.append((app, nginx))
        return app, port

    yield start
    for app, nginx in started:
        assert nginx.stop() == 0, nginx.describe()
        support.assert_stopped_cleanly(app)


def _through_nginx(port, headers):
    with support.RawConnection("127.0.0.1", port) as conn:
        return support.environ_of(conn.request(
            "GET", "/environ", headers=[("Host", "www.example.org")] + headers))


@pytest.mark.skipif(support.NGINX is None, reason="nginx not installed (nginx-light)")
@pytest.mark.parametrize("options", [
    {"trusted_proxy": "*", "trusted_proxy_headers": NGINX_HEADERS},
    {"trusted_proxy": "unix", "trusted_proxy_headers": NGINX_HEADERS},
    {"trusted_proxy": "*"},
], ids=["star", "unix", "default-headers"])
def test_forwarded_spoof_through_nginx(nginx_stack, options):
    """The README's nginx passes a client's Forwarded header on unchanged:
    it must not set the client address, scheme or host, nor reach the app."""
    app, port = nginx_stack(options)
    values, present = _through_nginx(port, [
        ("Forwarded", "for=10.0.0.1;proto=https;host=evil.example"),
        ("X-Real-IP", "10.0.0.1"), ("X-Forwarded-Prefix", "/admin")])
    assert values["REMOTE_ADDR"] == "127.0.0.1"  # the address nginx saw
    assert values["wsgi.url_scheme"] == "http"
    assert values["HTTP_HOST"] == "www.example.org"
    assert not present["HTTP_FORWARDED"]
    assert not present["HTTP_X_REAL_IP"] and not present["HTTP_X_FORWARDED_PREFIX"]


@pytest.mark.skipif(support.NGINX is None, reason="nginx not installed (nginx-light)")
def test_x_forwarded_spoof_through_nginx(nginx_stack):
    """A client's X-Forwarded-* through nginx: its X-Forwarded-For entries
    sit left of the one nginx appends, its -Proto/-Host are replaced by
    nginx, and its underscore aliases are dropped (by nginx and by us)."""
    app, port = nginx_stack({"trusted_proxy": "*", "trusted_proxy_headers": NGINX_HEADERS})
    values, present = _through_nginx(port, [
        ("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "7.7.7.7"),
        ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example"),
        ("X_Forwarded_For", "8.8.8.8"), ("X_Forwarded_Proto", "https")])
    assert values["REMOTE_ADDR"] == "127.0.0.1"
    assert values["wsgi.url_scheme"] == "http"
    assert values["HTTP_HOST"] == "www.example.org"
    assert "8.8.8.8" not in values["HTTP_X_FORWARDED_FOR"]


@pytest.mark.skipif(support.NGINX is None, reason="nginx not installed (nginx-light)")
def test_nginx_with_trusted_proxy_headers(procs, tmp_path):
    """examples/nginx.conf in front of pyruvate with trusted_proxy = *
    (only nginx can reach the Unix socket)."""
    sock = tmp_path / "pyruvate.sock"
    app = procs.launch("address", arg=str(sock), name="pyruvate",
                       options={"trusted_proxy": "*", "trusted_proxy_headers": NGINX_HEADERS,
                                "unix_socket_perms": "660"})
    app.wait_unix(sock)
    nginx, port = support.start_nginx(procs, tmp_path, sock)
    with support.RawConnection("127.0.0.1", port) as conn:
        values, present = support.environ_of(conn.request(
            "GET", "/environ", headers=[("Host", "www.example.org"),
                                        ("X-Forwarded-For", "203.0.113.9")]))
    # nginx appended the address it saw (127.0.0.1): the rightmost entry.
    assert values["REMOTE_ADDR"] == "127.0.0.1"
    assert values["wsgi.url_scheme"] == "http"
    assert values["HTTP_HOST"] == "www.example.org"
    assert nginx.stop() == 0, nginx.describe()
    support.assert_stopped_cleanly(app)
