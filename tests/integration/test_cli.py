"""The command line: `python3 -m pyruvate module:app` (in-place build) and
the `pyruvate` console script of a pip-installed pyruvate."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import support

MODULE = [sys.executable, "-m", "pyruvate"]


def _run(cmd, env=None, cwd=None, timeout=30):
    return subprocess.run([str(c) for c in cmd], env=env or support.repo_env(),
                          cwd=str(cwd or support.DEPLOY_APPS), capture_output=True, text=True,
                          timeout=timeout)


def _start_cli(procs, args, cmd=MODULE, env=None, cwd=None):
    """Starts the CLI on a free port (retrying a lost race); (proc, port)."""
    return support.start_on_free_port(
        lambda port: procs.start(list(cmd) + list(args) + ["--bind", "127.0.0.1:%d" % port],
                                 env=env or support.repo_env(), cwd=cwd or support.DEPLOY_APPS),
        "the command line server")


def _stop(proc, sig=signal.SIGTERM):
    assert proc.stop(sig) == 0, proc.describe()


def test_module_serves_with_workers_and_options(procs):
    proc, port = _start_cli(procs, ["deploy_wsgi:stream", "--workers", "3",
                                    "--no-chunked-transfer", "--keepalive-timeout", "5",
                                    "--max-number-headers", "40"])
    with support.RawConnection("127.0.0.1", port) as conn:
        response = conn.request("GET", "/")
        assert response.status == 200
        assert response.body == b"part 0\npart 1\npart 2\n"
        # --no-chunked-transfer: no length known, so the body ends with the connection.
        assert response.header("Transfer-Encoding") is None
        assert response.header("Connection") == "close"
    assert "pyruvate serving on 127.0.0.1:%d with 3 workers" % port in proc.stderr()
    _stop(proc)


def test_default_is_chunked(procs):
    proc, port = _start_cli(procs, ["deploy_wsgi:stream"])
    response = support.tcp_request("127.0.0.1", port)
    assert response.chunked and response.body == b"part 0\npart 1\npart 2\n"
    _stop(proc)


def test_factory(procs):
    proc, port = _start_cli(procs, ["deploy_wsgi:make_app", "--factory"])
    response = support.tcp_request("127.0.0.1", port, target="/factory")
    assert response.status == 200 and b'"factory_calls": 1' in response.body
    _stop(proc)


def test_dotted_attribute_and_app_dir(procs, tmp_path):
    proc, port = _start_cli(procs, ["deploy_wsgi:make_app.__call__", "--factory",
                                    "--app-dir", support.DEPLOY_APPS],
                            env=support.clean_env((support.REPO_ROOT,)), cwd=tmp_path)
    assert support.tcp_request("127.0.0.1", port, target="/factory").status == 200
    _stop(proc)


def test_sigint_is_a_clean_stop(procs):
    proc, port = _start_cli(procs, ["deploy_wsgi:app"])
    _stop(proc, signal.SIGINT)


def test_help_documents_every_option():
    result = _run(MODULE + ["--help"])
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for flag in ("--bind", "--workers", "--factory", "--app-dir", "--log-level"):
        assert flag in text
    for name in support.serve_keyword_options():
        assert "--" + name.replace("_", "-") in text, name
    assert "systemd" in text and "unix" in text.lower()


@pytest.mark.parametrize("spec, message", [
    ("no_such_module:app", "cannot import module 'no_such_module': No module named"),
    ("deploy_wsgi:no_such_attribute", "module 'deploy_wsgi' has no attribute "
                                      "'no_such_attribute'"),
    ("deploy_wsgi:not_callable", "not a callable WSGI application"),
    ("broken_app:application", "No module named 'not_installed_dependency'"),
    ("raising_app:application", "configuration missing: DATABASE_URL"),
    ("deploy_wsgi", None),  # default attribute "application" is missing
    (":app", "expected MODULE:ATTRIBUTE"),
])
def test_import_errors_are_clear(spec, message):
    result = _run(MODULE + [spec, "--bind", "127.0.0.1:1"])
    assert result.returncode == 2, result
    assert result.stderr.startswith("pyruvate: error: "), result.stderr
    if message:
        assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr.splitlines()[0]


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "argument --workers"),
    (["--keepalive-timeout", "soon"], "keepalive_timeout"),
    (["--max-number-headers", "many"], "max_number_headers"),
    (["--unix-socket-perms", "rwx"], "unix_socket_perms"),
    (["--bind", "127.0.0.1:1", "--bind", "127.0.0.1:2"], "only one --bind"),
    (["--workers", "4294967296"], "workers must be 1 to 1024"),
    (["--max-connections", "4294967296"], "max_connections must be 1 to"),
    (["--bind", "127.0.0.1:99999"], "cannot parse address"),
    (["--app-dir", "/nonexistent/pyruvate-test"], "not a directory"),
])
def test_bad_arguments(args, message):
    result = _run(MODULE + ["deploy_wsgi:app"] + args)
    assert result.returncode == 2, result
    assert message in result.stderr, result.stderr


def test_start_up_failure_exits_non_zero():
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = _run(MODULE + ["deploy_wsgi:app", "--bind", "127.0.0.1:%d" % port])
    assert result.returncode == 1, result
    assert "pyruvate: error:" in result.stderr and "Address already in use" in result.stderr


# -- the console script of the installed distribution -----------------------------

def test_console_script_on_a_unix_socket(procs, installed_venv, tmp_path):
    path = tmp_path / "cli.sock"
    script = installed_venv.script("pyruvate")
    proc = procs.start(script + ["deploy_wsgi:app", "--app-dir", support.DEPLOY_APPS,
                                 "--bind", "unix:%s" % path, "--unix-socket-perms", "600",
                                 "--workers", "2", "--log-level", "debug"],
                       env=installed_venv.env(), cwd=tmp_path).wait_unix(path)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)
    values, present = support.environ_of(support.unix_request(path, target="/environ"))
    assert values["SERVER_NAME"] == str(path)
    _stop(proc)
    assert not path.exists()


def test_console_script_help_and_errors(installed_venv, tmp_path):
    script = installed_venv.script("pyruvate")
    result = _run(script + ["--help"], env=installed_venv.env(), cwd=tmp_path)
    assert result.returncode == 0 and "--trusted-proxy" in result.stdout
    result = _run(script + ["nothing_here:app"], env=installed_venv.env(), cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot import module 'nothing_here'" in result.stderr


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate not installed")
def test_console_script_under_socket_activation(procs, installed_venv, tmp_path):
    """No --bind: the sockets systemd passed (LISTEN_PID is ours)."""
    port = support.free_port()
    cmd = ["systemd-socket-activate", "-l", "127.0.0.1:%d" % port, "-E", "PYTHONNOUSERSITE"]
    cmd += installed_venv.script("pyruvate") + ["deploy_wsgi:app", "--app-dir", support.DEPLOY_APPS]
    proc = procs.start(cmd, env=installed_venv.env(), cwd=tmp_path)
    deadline = time.monotonic() + support.STARTUP_TIMEOUT
    while "Listening on" not in proc.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    values, _ = support.environ_of(support.tcp_request("127.0.0.1", port, target="/environ"))
    assert values["SERVER_PORT"] == str(port)
    proc.wait_stderr("from systemd")
    _stop(proc)


def test_example_service_command_line_parses():
    """examples/pyruvate.service: its ExecStart options are valid."""
    text = (support.EXAMPLES / "pyruvate.service").read_text().replace("\\\n", " ")
    exec_start = [line for line in text.splitlines() if line.startswith("ExecStart=")][0]
    argv = exec_start.split("=", 1)[1].split()[1:]  # without the script path
    code = ("import sys; from pyruvate.__main__ import build_parser; "
            "args = build_parser().parse_args(sys.argv[1:]); "
            "print(args.workers, args.trusted_proxy, args.trusted_proxy_headers, "
            "args.shutdown_timeout, args.bind)")
    result = _run([sys.executable, "-c", code] + argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "4", "unix", "x-forwarded-for,x-forwarded-proto,x-forwarded-host", "30", "None"]
