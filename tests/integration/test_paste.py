"""PasteDeploy: `use = egg:pyruvate#main` through pserve, with pyruvate
installed by pip (the entry point comes from the installed distribution),
for a Pyramid application and a plain paste application; ini option
conversion and its errors; no `socket` means systemd socket activation."""
import json
import shutil
import subprocess
import textwrap
import time

import pytest

import support

PYRAMID_INI = """\
[app:main]
use = call:pyramid_app:main
greeting = hello from pyramid

[server:main]
use = egg:pyruvate#main
{socket_line}
workers = 2
{extra}

[loggers]
keys = root, pyruvate

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[logger_pyruvate]
level = INFO
handlers =
qualname = pyruvate

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)s [%(name)s] %(message)s
"""


def _write_ini(tmp_path, socket_line, extra="", template=PYRAMID_INI, name="app.ini"):
    path = tmp_path / name
    path.write_text(template.format(socket_line=socket_line, extra=textwrap.dedent(extra)))
    return path


def _pserve(procs, installed_venv, ini, tmp_path, **kw):
    return procs.start(installed_venv.runner("pserve") + [ini],
                       env=installed_venv.env((support.DEPLOY_APPS, support.EXAMPLES)), cwd=tmp_path,
                       **kw)


def _start_pserve(procs, installed_venv, tmp_path, extra="", template=PYRAMID_INI):
    def start(port):
        ini = _write_ini(tmp_path, "socket = 127.0.0.1:%d" % port, extra, template)
        return _pserve(procs, installed_venv, ini, tmp_path)
    return support.start_on_free_port(start, "pserve")


def test_pserve_pyramid(procs, installed_venv, tmp_path):
    proc, port = _start_pserve(procs, installed_venv, tmp_path, extra="""
        keepalive_timeout = 5
        max_request_body_size = 1000
        chunked_transfer = off
        """)
    with support.RawConnection("127.0.0.1", port) as conn:
        response = conn.request("GET", "/hello/world")
        assert response.status == 200, response
        data = json.loads(response.body)
        assert data["greeting"] == "hello from pyramid"
        assert data["url"] == "http://localhost/hello/x"
        assert data["server"] == ["127.0.0.1", str(port)]
        body = json.dumps({"a": [1, 2, 3]}).encode()
        response = conn.request("POST", "/echo", body=body,
                                headers=[("Content-Type", "application/json")])
        assert json.loads(response.body) == {"length": len(body), "method": "POST",
                                             "json": {"a": [1, 2, 3]}}
        # max_request_body_size = 1000 came through the ini.
        response = conn.request("POST", "/echo", body=b"x" * 2000)
        assert response.status == 413
    # The installed distribution served it, not the repository.
    assert "pyruvate serving on 127.0.0.1:%d with 2 workers" % port in proc.stderr()
    assert proc.stop() == 0, proc.describe()


def test_pserve_plain_paste_app_from_examples(procs, installed_venv, tmp_path):
    """examples/paste.ini as shipped, with only the port changed."""
    template = (support.EXAMPLES / "paste.ini").read_text().replace("{", "{{").replace("}", "}}")
    template = template.replace("socket = 127.0.0.1:7878", "{socket_line}")
    assert "{socket_line}" in template
    proc, port = _start_pserve(procs, installed_venv, tmp_path, template=template)
    response = support.tcp_request("127.0.0.1", port)
    assert response.status == 200 and response.body == b"Hello, World!"
    assert proc.stop() == 0, proc.describe()


def test_plain_paste_app_gets_its_settings(procs, installed_venv, tmp_path):
    template = PYRAMID_INI.replace("use = call:pyramid_app:main",
                                   "use = call:plain_paste_app:make_app")
    proc, port = _start_pserve(procs, installed_venv, tmp_path, template=template,
                               extra="chunked_transfer = no\nmax_reuse_count = 1")
    data = json.loads(support.tcp_request("127.0.0.1", port).body)
    assert data["greeting"] == "hello from pyramid"
    assert data["here"] == str(tmp_path)
    assert data["multithread"] is True
    assert proc.stop() == 0, proc.describe()


@pytest.mark.parametrize("extra, message", [
    ("bogus_option = 1", "unknown pyruvate option 'bogus_option'"),
    ("chunked_transfer = maybe", "pyruvate option chunked_transfer = 'maybe'"),
    ("keepalive_timeout = soon", "pyruvate option keepalive_timeout = 'soon'"),
    ("max_number_headers = 12abc", "pyruvate option max_number_headers = '12abc'"),
    ("unix_socket_perms = rw-rw----", "pyruvate option unix_socket_perms"),
    ("workers = two", "pyruvate option workers = 'two'"),
    ("workers = 0", "pyruvate option workers = '0'"),
])
def test_ini_option_errors_name_the_option(procs, installed_venv, tmp_path, extra, message):
    ini = _write_ini(tmp_path, "socket = 127.0.0.1:%d" % support.free_port(), extra)
    ini.write_text(ini.read_text().replace("workers = 2\n", "", 1) if "workers" in extra
                   else ini.read_text())
    proc = _pserve(procs, installed_venv, ini, tmp_path, expected_returncode=1)
    assert proc.wait_exit(timeout=30) == 1, proc.describe()
    assert message in proc.stderr(), proc.describe()
    assert "pyruvate serving" not in proc.stderr()


def test_converters_cover_every_serve_option():
    """The ini (and command line) table knows every serve() keyword."""
    code = "import json, pyruvate.paste as p; print(json.dumps(list(p.OPTIONS)))"
    names = json.loads(subprocess.check_output([support.sys.executable, "-c", code],
                                               env=support.repo_env(), text=True))
    assert set(support.serve_keyword_options()) <= set(names)


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate not installed")
def test_ini_without_socket_uses_systemd_sockets(procs, installed_venv, tmp_path):
    port = support.free_port()
    ini = _write_ini(tmp_path, "# no socket: systemd socket activation")
    cmd = ["systemd-socket-activate", "-l", "127.0.0.1:%d" % port,
           "-E", "PYTHONPATH", "-E", "PYTHONNOUSERSITE"]
    proc = procs.start(cmd + installed_venv.runner("pserve") + [ini],
                       env=installed_venv.env((support.DEPLOY_APPS,)), cwd=tmp_path)
    deadline = time.monotonic() + support.STARTUP_TIMEOUT
    while "Listening on" not in proc.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    response = support.tcp_request("127.0.0.1", port, target="/hello/systemd", timeout=20)
    assert response.status == 200, proc.describe()
    assert json.loads(response.body)["server"] == ["127.0.0.1", str(port)]
    proc.wait_stderr("from systemd")
    assert proc.stop() == 0, proc.describe()


def test_ini_without_socket_and_without_systemd_fails_clearly(procs, installed_venv, tmp_path):
    ini = _write_ini(tmp_path, "")
    proc = _pserve(procs, installed_venv, ini, tmp_path, expected_returncode=1)
    assert proc.wait_exit(timeout=30) == 1, proc.describe()
    assert "no socket passed by systemd" in proc.stderr(), proc.describe()
