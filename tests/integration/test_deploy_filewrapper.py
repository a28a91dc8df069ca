"""wsgi.file_wrapper / pyruvate.FileWrapper: real files go out with
sendfile(2) (GIL released), honouring the app's Content-Length and the
file's offset; file-likes without a descriptor are iterated; close() is
always called."""
import hashlib
import json
import os
import socket
import time

import pytest

import deploy_support as ds
import httpraw

BIG = 8 << 20  # far more than the socket buffers


@pytest.fixture
def data_file(tmp_path):
    data = os.urandom(BIG)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    return path, data


@pytest.fixture
def server(procs):
    proc, port = ds.launch_tcp(procs, options={"send_timeout": 30})
    yield proc, port
    ds.assert_stopped_cleanly(proc)


def _closed(port):
    return json.loads(ds.tcp_request("127.0.0.1", port, target="/closed").body)["closed"]


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
        sock.sendall(httpraw.build_request("GET", "/file?path=%s" % path))
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
    with httpraw.RawConnection("127.0.0.1", port) as conn:
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
    with httpraw.RawConnection("127.0.0.1", port, timeout=10) as conn:
        response = conn.request("GET", target)
        assert response.status == 200
        assert response.header("Content-Length") == str(len(expected))
        assert response.body == expected
        assert conn.request("GET", "/").body == b"Hello, World!"


def test_file_like_without_fileno_is_iterated(server):
    proc, port = server
    with httpraw.RawConnection("127.0.0.1", port) as conn:
        response = conn.request("GET", "/bytesio?size=100000&blksize=1000")
        assert response.status == 200
        assert len(response.body) == 100000
        assert hashlib.sha256(response.body).hexdigest() == response.header("X-Sha256")
    assert _wait_closed(port, "bytesio", 1), _closed(port)


def test_head_sends_no_body_and_closes_the_file(server, data_file):
    proc, port = server
    path, _ = data_file
    with httpraw.RawConnection("127.0.0.1", port) as conn:
        response = conn.request("HEAD", "/file?path=%s" % path)
        assert response.status == 200
        assert response.body == b""
        assert conn.request("GET", "/").body == b"Hello, World!"
    assert _wait_closed(port, "file", 1), _closed(port)


def test_head_has_the_content_length_of_get(server, data_file):
    proc, port = server
    path, _ = data_file
    with httpraw.RawConnection("127.0.0.1", port) as conn:
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
        sock.sendall(httpraw.build_request("GET", "/file?path=%s" % path))
        _read_head(sock)
        sock.recv(65536)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # The reset makes sendfile fail; the app's file is closed all the same.
    assert _wait_closed(port, "file", before + 1), _closed(port)
    assert ds.tcp_request("127.0.0.1", port, target="/").status == 200
