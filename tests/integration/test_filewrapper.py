"""wsgi.file_wrapper / pyruvate.FileWrapper: real files go out with
sendfile(2) (GIL released), honouring the app's Content-Length and the
file's offset; file-likes without a descriptor are iterated; close() is
always called.

Edge paths of pyruvate.FileWrapper (src/filewrapper.c) and of the
server's sendfile decision (try_sendfile in src/wsgi.c): a bad blksize, the
default blksize, file-likes without close() or without a usable fileno(),
pipes, a tell() that fails, a file at its end, and FileWrapper iterated
directly in Python.

Iterated file-likes have no length the server knows, so on HTTP/1.1 they go
out chunked; sendfile always sends a Content-Length.  The framing thus shows
which way a body went.  The apps are in apps.py (FILE_DATA is
bytes(range(256)) * 400)."""
import hashlib
import json
import os
import socket
import time

import pytest

import support
from support import assert_alive, launch, stop_launched, wait_for_log


BIG = 8 << 20  # far more than the socket buffers


@pytest.fixture
def data_file(tmp_path):
    data = os.urandom(BIG)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    return path, data


@pytest.fixture
def server(procs):
    proc, port = support.launch_tcp(procs, options={"send_timeout": 30})
    yield proc, port
    support.assert_stopped_cleanly(proc)


def _closed(port):
    return json.loads(support.tcp_request("127.0.0.1", port, target="/closed").body)["closed"]


def _wait_closed(port, name, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _closed(port).count(name) >= count:
            return True
        time.sleep(0.05)
    return False


def _read_head(sock):
    head = b""
    while b"\r\n\r\n" not in head:
        piece = sock.recv(1)
        assert piece, "connection closed in the response head: %r" % head
        head += piece
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def test_large_file_to_a_slow_reader(server, data_file):
    proc, port = server
    path, data = data_file
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(support.build_request("GET", "/file?path=%s" % path))
        time.sleep(0.5)  # the server fills the buffers and waits in sendfile
        status, headers = _read_head(sock)
        assert status == 200
        assert headers["content-length"] == str(BIG)
        assert "transfer-encoding" not in headers
        digest = hashlib.sha256()
        received = 0
        reads = 0
        while received < BIG:
            piece = sock.recv(min(32768, BIG - received))
            assert piece, "connection closed after %d of %d bytes" % (received, BIG)
            digest.update(piece)
            received += len(piece)
            reads += 1
            if reads % 32 == 0:
                time.sleep(0.01)  # a slow reader, bounded: ~0.1 s per MiB
    assert received == BIG
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert _wait_closed(port, "file", 1), _closed(port)


def test_content_length_from_the_app_is_honoured(server, data_file):
    """Exactly Content-Length bytes, nothing after them: the next response
    on the same connection parses."""
    proc, port = server
    path, data = data_file
    with support.RawConnection("127.0.0.1", port) as conn:
        response = conn.request("GET", "/file?path=%s&length=1000" % path)
        assert response.status == 200
        assert response.header("Content-Length") == "1000"
        assert response.body == data[:1000]
        follow_up = conn.request("GET", "/")
        assert follow_up.status == 200 and follow_up.body == b"Hello, World!"


@pytest.mark.parametrize("offset, length", [(12345, None), (BIG - 10, None), (1000, 500)])
def test_file_offset_is_the_start(server, data_file, offset, length):
    proc, port = server
    path, data = data_file
    target = "/file?path=%s&offset=%d" % (path, offset)
    expected = data[offset:]
    if length is not None:
        target += "&length=%d" % length
        expected = expected[:length]
    with support.RawConnection("127.0.0.1", port, timeout=10) as conn:
        response = conn.request("GET", target)
        assert response.status == 200
        assert response.header("Content-Length") == str(len(expected))
        assert response.body == expected
        assert conn.request("GET", "/").body == b"Hello, World!"


def test_file_like_without_fileno_is_iterated(server):
    proc, port = server
    with support.RawConnection("127.0.0.1", port) as conn:
        response = conn.request("GET", "/bytesio?size=100000&blksize=1000")
        assert response.status == 200
        assert len(response.body) == 100000
        assert hashlib.sha256(response.body).hexdigest() == response.header("X-Sha256")
    assert _wait_closed(port, "bytesio", 1), _closed(port)


def test_head_sends_no_body_and_closes_the_file(server, data_file):
    proc, port = server
    path, _ = data_file
    with support.RawConnection("127.0.0.1", port) as conn:
        response = conn.request("HEAD", "/file?path=%s" % path)
        assert response.status == 200
        assert response.body == b""
        assert conn.request("GET", "/").body == b"Hello, World!"
    assert _wait_closed(port, "file", 1), _closed(port)


def test_head_has_the_content_length_of_get(server, data_file):
    proc, port = server
    path, _ = data_file
    with support.RawConnection("127.0.0.1", port) as conn:
        get = conn.request("GET", "/file?path=%s&length=10" % path)  # app-given length
        assert get.header("Content-Length") == "10"
        response = conn.request("HEAD", "/file?path=%s" % path)  # length known from the file
        assert response.header("Content-Length") == str(BIG)


def test_close_is_called_when_the_client_goes_away(server, data_file):
    proc, port = server
    path, _ = data_file
    before = _closed(port).count("file")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(support.build_request("GET", "/file?path=%s" % path))
        _read_head(sock)
        sock.recv(65536)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # The reset makes sendfile fail; the app's file is closed all the same.
    assert _wait_closed(port, "file", before + 1), _closed(port)
    assert support.tcp_request("127.0.0.1", port, target="/").status == 200


FILE_DATA = bytes(range(256)) * 400


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = launch(tmp_path_factory.mktemp("filewrapper-edges"))
    yield server
    stop_launched(server)


def direct(srv, case):
    response = srv.request("GET", "/fw-direct?case=" + case)
    assert response.status == 200, response
    out = json.loads(response.body)
    assert out["same_type"] is True  # wsgi.file_wrapper is pyruvate.FileWrapper
    return out


def assert_iterated(response, body):
    """Sent by iterating the wrapper: chunked, no Content-Length."""
    assert response.status == 200, response
    assert response.body == body
    assert response.chunked and response.header("Content-Length") is None, response


def assert_sendfile(response, body):
    """Sent with sendfile: exact Content-Length, not chunked."""
    assert response.status == 200, response
    assert response.header_all("Content-Length") == [str(len(body))], response
    assert not response.chunked and response.header("Transfer-Encoding") is None, response
    assert response.body == body


# -- FileWrapper in Python ----------------------------------------------------

@pytest.mark.parametrize("case", ["blksize-zero", "blksize-zero-keyword"])
def test_blksize_zero_is_valueerror(srv, case):
    assert direct(srv, case)["outcome"] == "raised ValueError: blksize must be positive"


def test_default_blksize_is_8192(srv):
    out = direct(srv, "default-blksize")
    assert out["outcome"] == 8192
    assert out["filelike_kept"] is True


def test_iterating_directly_gives_blocks(srv):
    data = "abc" * 10
    assert direct(srv, "blocks")["outcome"] == [data[i:i + 4] for i in range(0, 30, 4)]


def test_read_raising_propagates(srv):
    assert direct(srv, "read-raises")["outcome"] == \
        "raised ValueError: apps: read fails on purpose"


# -- FileWrapper as the result ------------------------------------------------

def test_filelike_without_close(srv):
    """read() only: iterated; closing the wrapper finds no close() and that
    is no error (the next response on the connection comes after close())."""
    with srv.connect() as conn:
        assert_iterated(conn.request("GET", "/fw-no-close"), FILE_DATA[:20000])
        assert conn.request("GET", "/hello").status == 200
    text = srv.stderr()
    assert "_ReadOnly" not in text and "has no attribute 'close'" not in text, text[-3000:]


def test_bytesio_is_iterated_and_closed(srv):
    """io.BytesIO has no file descriptor (fileno() raises): iterated, and
    close() reaches the BytesIO."""
    with srv.connect() as conn:
        assert_iterated(conn.request("GET", "/fw-bytesio?tag=bytesio-1"), FILE_DATA[:10000])
        report = conn.request("GET", "/report")
    assert "bytesio-1" in json.loads(report.body)["closed"], report


def test_real_file_whose_fileno_raises_is_iterated(srv):
    """A real file whose fileno() raises io.UnsupportedOperation: no
    sendfile, iterated whole."""
    assert_iterated(srv.request("GET", "/fw-fileno-raises"), FILE_DATA)


def test_pipe_is_iterated_not_sendfile(srv):
    """A pipe has a descriptor but is no regular file: iterated."""
    assert_iterated(srv.request("GET", "/fw-pipe"), FILE_DATA[:30000])
    assert_alive(srv)


def test_tell_raising_uses_the_descriptor_offset(srv):
    """A real file at offset 1000 whose tell() raises: sendfile from the
    descriptor's offset, so exactly the rest of the file."""
    assert_sendfile(srv.request("GET", "/fw-tell-raises"), FILE_DATA[1000:])


def test_file_at_its_end_is_empty(srv):
    """A real file positioned at its end: an empty body, Content-Length 0,
    and the connection stays usable."""
    with srv.connect() as conn:
        response = conn.request("GET", "/fw-at-end")
        assert_sendfile(response, b"")
        assert not response.has_token("Connection", "close"), response
        assert conn.request("GET", "/hello").status == 200


@pytest.mark.parametrize("value", ["-1", "str"])
def test_unusable_fileno_is_iterated(srv, value):
    """fileno() returning -1 or something that is no int: no descriptor to
    send from, so the file is iterated whole."""
    assert_iterated(srv.request("GET", "/fw-fileno-bogus?v=" + value), FILE_DATA)


def test_negative_tell_is_iterated(srv):
    """tell() reporting -1 (unknown position): no sendfile, the file is
    iterated from where it really is (its start)."""
    assert_iterated(srv.request("GET", "/fw-tell-bogus?v=-1"), FILE_DATA)


def test_position_beyond_the_end_is_empty(srv):
    """A file positioned past its end has nothing left to send: an empty
    200 response, correctly framed, on a connection that stays usable."""
    with srv.connect() as conn:
        response = conn.request("GET", "/fw-beyond-end")
        assert (response.status, response.body) == (200, b""), response
        assert response.header("Content-Length") == "0", response
        assert conn.request("GET", "/hello").status == 200


def test_tell_not_an_int_is_500(srv):
    """tell() returning a str is an application error: a 500 (nothing was
    sent yet), logged, the server goes on."""
    response = srv.request("GET", "/fw-tell-bogus?v=str")
    assert response.status == 500, response
    assert response.has_token("Connection", "close"), response
    assert wait_for_log(srv, "TypeError: 'str' object cannot be interpreted as an integer")
    assert_alive(srv)


# -- more of FileWrapper in Python --------------------------------------------

@pytest.mark.parametrize("case", ["no-arguments", "blksize-str"])
def test_bad_arguments_are_typeerror(srv, case):
    assert direct(srv, case)["outcome"].startswith("raised TypeError: "), case


def test_read_returning_no_sized_object_is_typeerror(srv):
    """read() must return bytes; an int (no length) raises TypeError from
    the iteration instead of ending it silently."""
    assert direct(srv, "read-returns-int")["outcome"].startswith("raised TypeError: ")


def test_close_without_filelike_close_returns_none(srv):
    assert direct(srv, "close-without-close")["outcome"] == "None"


def test_close_lookup_error_propagates(srv):
    """Only a missing close() is ignored; another error while looking it up
    reaches the caller."""
    assert direct(srv, "close-lookup-raises")["outcome"] == (
        "raised RuntimeError: apps: looking up the file's close fails on purpose")


def test_wrapper_is_gc_tracked_and_refers_to_its_filelike(srv):
    """The wrapper takes part in cyclic GC: it is tracked and reports its
    file-like as a referent (tp_traverse)."""
    out = direct(srv, "gc-referents")
    assert out["outcome"] is True and out["tracked"] is True, out
