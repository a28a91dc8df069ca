"""serve() options: each one is accepted with a good value and refused with
a clear exception for a bad one, before any socket is opened."""
import ast
import json
import pathlib
import re

import pytest

from support import run_python

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
    ("shutdown_idle_grace", 0.5, -1, "ValueError"),
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


# Values that do not fit the C type an option is stored in: refused, never
# wrapped (2**32 workers would be 0 of them and every request would hang).
TOO_LARGE = [(name, 2 ** 32) for name in ("max_number_headers", "max_request_line_size",
                                          "max_request_header_size", "max_connections",
                                          "max_queue_size", "qmon_warn_threshold")] + [
    ("backlog", 2 ** 31)]


@pytest.mark.parametrize("option, value", TOO_LARGE, ids=[o[0] for o in TOO_LARGE])
def test_value_too_large_for_its_type_is_refused(option, value):
    result = run_python(PROBE, args=(option, json.dumps(value)))
    assert result.stdout.startswith("ValueError %s must be 1 to 2147483647" % option), \
        (result.stdout, result.stderr)


@pytest.mark.parametrize("option", ["keepalive_timeout", "shutdown_timeout", "send_timeout"])
def test_seconds_beyond_the_maximum_name_the_maximum(option):
    result = run_python(PROBE, args=(option, json.dumps(3000000)))
    assert result.stdout.startswith(
        "ValueError %s must be a positive number of seconds, at most 2147483" % option), \
        (result.stdout, result.stderr)


WORKERS_PROBE = """
import sys, pyruvate
try:
    pyruvate.serve(lambda e, s: [], "127.0.0.1:1", int(sys.argv[1]))
except Exception as error:
    print(type(error).__name__, error)
"""


@pytest.mark.parametrize("workers", [0, 1025, 2 ** 32, 2 ** 32 + 2])
def test_workers_out_of_range_is_refused(workers):
    result = run_python(WORKERS_PROBE, args=(str(workers),))
    assert result.stdout.startswith("ValueError workers must be 1 to 1024"), \
        (result.stdout, result.stderr)


def test_unknown_option_is_refused():
    result = run_python(PROBE, args=("max_everything", "1"))
    assert result.stdout.startswith("TypeError"), result.stdout
    assert "max_everything" in result.stdout


@pytest.mark.parametrize("option, good, bad, error", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_good_option_value_serves(start_server, option, good, bad, error):
    server = start_server(options={option: good})
    response = server.request("GET", "/site/hello")
    assert response.status == 200


# The table of options (include/pyruvate/options.h, as _pyruvate.OPTIONS) is
# the one source of serve()'s defaults; everything that shows them must agree.
TABLE_PROBE = """
import inspect, json, pyruvate._pyruvate as p
signature = inspect.signature(p.serve)
print(json.dumps({
    "table": [list(row) for row in p.OPTIONS],
    "signature": {name: parameter.default for name, parameter in signature.parameters.items()
                  if parameter.kind is parameter.KEYWORD_ONLY},
}))
"""


def options_table():
    result = run_python(TABLE_PROBE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_signature_defaults_are_the_table_defaults():
    tables = options_table()
    assert tables["signature"] == {name: default for name, _, default, _ in tables["table"]}


def test_every_kind_has_a_converter_and_defaults_round_trip():
    code = """
import json, pyruvate._pyruvate as p
from pyruvate.paste import convert_option
# An ini file leaves these out to get their default None: MODE has no text
# for "no mode", and HEADERS' "none" means "trust no header" ("").
print(json.dumps([[name, default, convert_option(name, str(default))]
                  for name, kind, default, text in p.OPTIONS if kind not in ("MODE", "HEADERS")]))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    for name, default, converted in json.loads(result.stdout):
        assert converted == default, name


def test_command_line_flags_show_the_table_defaults():
    code = """
import ast
import json
import pathlib
import re
from pyruvate.__main__ import build_parser
from pyruvate.paste import OPTIONS
help_text = " ".join(build_parser().format_help().split())
print(json.dumps({name: "--" + name.replace("_", "-") in help_text
                  and f"(default {OPTIONS[name][1]})" in help_text for name in OPTIONS}))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert all(json.loads(result.stdout).values()), result.stdout


def readme_option_rows():
    """{option: default cell} of every README table row naming one option."""
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| ([^|]*) \|", readme, re.MULTILINE)
    return dict(rows)


def test_readme_options_tables_show_the_table_defaults():
    """A default changed in C but not in the README (or the reverse) fails."""
    rows = readme_option_rows()
    for name, _, default, _ in options_table()["table"]:
        assert name in rows, f"README.md has no options table row for {name}"
        shown = rows[name].split()[0].strip("`,:")
        accepted = {str(default), json.dumps(default)}
        assert shown in accepted, (name, rows[name], default)


def test_typing_stub_names_every_option_with_its_default():
    stub = pathlib.Path(__file__).parents[2] / "pyruvate" / "_pyruvate.pyi"
    serve = next(node for node in ast.parse(stub.read_text()).body
                 if isinstance(node, ast.FunctionDef) and node.name == "serve")
    stub_defaults = {arg.arg: ast.literal_eval(default)
                     for arg, default in zip(serve.args.kwonlyargs, serve.args.kw_defaults)}
    assert stub_defaults == {name: default for name, _, default, _ in options_table()["table"]}
