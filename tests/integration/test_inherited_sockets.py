"""serve() only ever takes a descriptor that is a listening stream socket,
and never closes or changes one it did not take: with a wrong environment
(LISTEN_PID set to our pid, LISTEN_FDS counting the application's own
files) or a wrong socket argument, it raises and the descriptors are as
they were."""
import textwrap

from support import run_python

PRELUDE = textwrap.dedent("""
    import os, socket, sys, tempfile
    import pyruvate

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    def app_file(text):
        f = tempfile.TemporaryFile()
        f.write(text)
        f.flush()
        return f

    def still_open(fd, text):
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 100) == text

    def serve_raises(socket_argument):
        try:
            pyruvate.serve(app, socket_argument, 1)
        except (OSError, ValueError) as error:
            print("RAISED", type(error).__name__, error)
            return True
        return False
""")


def _run(body):
    result = run_python(PRELUDE + textwrap.dedent(body))
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def test_systemd_variables_naming_an_app_file_leave_it_open():
    """Regression: LISTEN_PID = our pid, LISTEN_FDS=1 and fd 3 an application's
    file: serve() raised and closed fd 3 under the application."""
    out = _run("""
        f = app_file(b"app data")
        os.dup2(f.fileno(), 3)
        os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
        assert serve_raises(None)
        print("FD3_OPEN", still_open(3, b"app data"))
    """)
    assert "RAISED OSError" in out and "not a listening socket" in out, out
    assert "FD3_OPEN True" in out, out


def test_systemd_fds_are_all_checked_before_any_is_taken():
    """fd 3 a listening socket, fd 4 an application's file: serve() raises,
    and neither descriptor is closed (nor made nonblocking)."""
    out = _run("""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        os.dup2(listener.fileno(), 3)
        f = app_file(b"more data")
        os.dup2(f.fileno(), 4)
        os.set_blocking(3, True)
        os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="2")
        assert serve_raises(None)
        print("FD4_OPEN", still_open(4, b"more data"))
        print("FD3_LISTENING", socket.socket(fileno=os.dup(3)).getsockopt(
            socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
        print("FD3_BLOCKING", os.get_blocking(3))
    """)
    assert "FD4_OPEN True" in out and "FD3_LISTENING 1" in out, out
    assert "FD3_BLOCKING True" in out, out


def test_socket_argument_that_is_not_listening_is_left_alone():
    """A file's fd, an unbound socket object and a datagram socket passed as
    the socket: serve() raises and each stays open and unchanged."""
    out = _run("""
        f = app_file(b"x")
        assert serve_raises(f.fileno())
        print("FILE_OPEN", still_open(f.fileno(), b"x"))
        unbound = socket.socket()
        assert serve_raises(unbound)
        print("UNBOUND_OPEN", unbound.fileno() >= 0 and os.fstat(unbound.fileno()) is not None)
        datagram = socket.socket(type=socket.SOCK_DGRAM)
        datagram.bind(("127.0.0.1", 0))
        assert serve_raises(datagram)
        print("DATAGRAM_BLOCKING", os.get_blocking(datagram.fileno()))
    """)
    assert "FILE_OPEN True" in out and "UNBOUND_OPEN True" in out, out
    assert "DATAGRAM_BLOCKING True" in out, out
