"""serve() options: each one is accepted with a good value and refused with
a clear exception for a bad one, before any socket is opened."""
import json

import pytest

from conftest import run_python

# (option, good value, bad value, exception type)
OPTIONS = [
    ("max_number_headers", 10, 0, "ValueError"),
    ("max_request_line_size", 100, 0, "ValueError"),
    ("max_request_header_size", 1000, -1, "ValueError"),
    ("max_request_body_size", 10, -1, "ValueError"),
    ("keepalive_timeout", 0.5, 0, "ValueError"),
    ("request_timeout", 2, -3, "ValueError"),
    ("send_timeout", 3, "soon", "TypeError"),
    ("shutdown_timeout", 1, 0, "ValueError"),
    ("max_reuse_count", 5, -1, "ValueError"),
    ("max_connections", 50, 0, "ValueError"),
    ("max_queue_size", 8, 0, "ValueError"),
    ("qmon_warn_threshold", 4, 0, "ValueError"),
    ("chunked_transfer", False, None, None),
    ("async_logging", False, None, None),
    ("access_log", True, None, None),
    ("backlog", 16, 0, "ValueError"),
    ("unix_socket_perms", "660", "999", "ValueError"),
    ("trusted_proxy", "127.0.0.1, ::1", "proxy.example", "ValueError"),
    ("url_scheme", "https", "ftp", "ValueError"),
    ("url_prefix", "/site/", "site", "ValueError"),
]

PROBE = """
import json, sys, pyruvate
option, value = sys.argv[1], json.loads(sys.argv[2])
try:
    pyruvate.serve(lambda e, s: [], "127.0.0.1:1", 1, **{option: value})
except Exception as error:
    print(type(error).__name__, error)
"""


REFUSABLE = [o for o in OPTIONS if o[3] is not None]  # the rest take any truth value


@pytest.mark.parametrize("option, good, bad, error", REFUSABLE, ids=[o[0] for o in REFUSABLE])
def test_bad_option_value_is_refused(option, good, bad, error):
    result = run_python(PROBE, args=(option, json.dumps(bad)))
    assert result.stdout.startswith(error), (result.stdout, result.stderr)
    assert option.split("_")[0] in result.stdout or "must" in result.stdout or \
        "invalid" in result.stdout, result.stdout


def test_unknown_option_is_refused():
    result = run_python(PROBE, args=("max_everything", "1"))
    assert result.stdout.startswith("TypeError"), result.stdout
    assert "max_everything" in result.stdout


@pytest.mark.parametrize("option, good, bad, error", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_good_option_value_serves(start_server, option, good, bad, error):
    server = start_server("apps:hello", options={option: good})
    response = server.request("GET", "/site/hello")
    assert response.status == 200
