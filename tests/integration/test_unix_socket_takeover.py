"""A Unix socket path is only taken over when the socket there is stale
(connecting is refused): a live socket that we may not connect to (another
user's, EACCES) or whose backlog is full is left alone, and serve() says
why instead of unlinking it or hanging."""
import os
import socket
import tempfile
import textwrap

from support import run_python

NOBODY = 65534

SERVE = textwrap.dedent("""
    import os, signal, sys
    import pyruvate  # first: the interpreter's files may be root's only
    if os.geteuid() == 0:  # act as another user than the socket's owner
        os.setgid(%(nobody)d)
        os.setuid(%(nobody)d)

    class Served(Exception):
        pass

    def stop(signum, frame):
        raise Served()

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    signal.signal(signal.SIGALRM, stop)
    signal.alarm(3)  # the old behaviour: serving on a stolen path
    try:
        pyruvate.serve(app, sys.argv[1], 1)
    except OSError as error:
        print("RAISED", error)
    except Served:
        print("SERVED")
""" % {"nobody": NOBODY})


def _shared_dir():
    # World-writable without the sticky bit, so that the other user could
    # unlink the socket file if it wanted to.
    path = tempfile.mkdtemp(prefix="pyruvate-unix-")
    os.chmod(path, 0o777)
    return path


def _still_served(listener, path):
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
        accepted, _ = listener.accept()
        accepted.close()
    return True


def test_socket_we_may_not_connect_to_is_not_unlinked():
    """Regression: any connect() failure counted as stale, so a live socket of
    another user (EACCES) was unlinked and its path taken over."""
    directory = _shared_dir()
    path = os.path.join(directory, "live.sock")
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(path)
        listener.listen(8)
        os.chmod(path, 0o700 if os.geteuid() == 0 else 0)
        result = run_python(SERVE, args=(path,))
        assert "RAISED" in result.stdout, (result.stdout, result.stderr)
        assert "cannot tell whether the socket is in use" in result.stdout, result.stdout
        os.chmod(path, 0o700)
        assert _still_served(listener, path)
    finally:
        listener.close()
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(directory)


def test_socket_with_a_full_backlog_is_in_use():
    """A live server too busy to accept: its backlog is full. The probe
    must neither block on it nor take it for stale."""
    directory = _shared_dir()
    path = os.path.join(directory, "busy.sock")
    listener = socket.socket(socket.AF_UNIX)
    waiting = []
    try:
        listener.bind(path)
        os.chmod(path, 0o777)
        listener.listen(0)
        while True:  # fill the backlog
            client = socket.socket(socket.AF_UNIX)
            client.setblocking(False)
            try:
                client.connect(path)
            except BlockingIOError:
                client.close()
                break
            waiting.append(client)
            assert len(waiting) < 64
        result = run_python(SERVE, args=(path,))
        assert "another server is using it" in result.stdout, (result.stdout, result.stderr)
        assert os.path.exists(path)
    finally:
        for client in waiting:
            client.close()
        listener.close()
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(directory)
