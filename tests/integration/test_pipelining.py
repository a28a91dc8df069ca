"""HTTP/1.1 pipelining: several requests sent at once, answered in order."""
import json

import support


def test_three_pipelined_gets_answered_in_order(start_server):
    srv = start_server(keepalive=True)
    requests = b"".join(support.build_request("GET", "/environ?n=%d" % i) for i in (1, 2, 3))
    with srv.connect() as conn:
        conn.send(requests)  # one send() for all three
        for index in (1, 2, 3):
            response = conn.read_response()
            assert response.status == 200, response
            assert json.loads(response.body)["QUERY_STRING"] == "n=%d" % index
        # Still usable afterwards.
        response = conn.request("GET", "/hello")
        assert response.body == b"Hello, World!"


def test_pipelined_posts_bodies_not_mixed_up(start_server):
    srv = start_server(keepalive=True)
    bodies = [b"first body", b"", b"third\r\n\r\nGET /x HTTP/1.1\r\n\r\n"]
    requests = b"".join(support.build_request("POST", "/echo", body=b) for b in bodies)
    requests += support.build_request("GET", "/hello")
    with srv.connect() as conn:
        conn.send(requests)
        for body in bodies:
            response = conn.read_response()
            assert response.status == 200, response
            assert response.body == body
        response = conn.read_response()
        assert response.body == b"Hello, World!"


def test_pipelined_responses_byte_exact(start_server):
    srv = start_server(keepalive=True)
    with srv.connect() as conn:
        single = conn.request("GET", "/hello")
        conn.send(support.build_request("GET", "/hello") * 3)
        raws = [conn.read_response().raw for _ in range(3)]
    # Each pipelined response is exactly one well-framed response.
    for raw in raws:
        assert raw.startswith(b"HTTP/1.1 200 ")
        assert raw.endswith(b"\r\n\r\nHello, World!")
        assert raw.count(b"HTTP/1.1") == 1
        assert len(raw) == len(single.raw)


def test_pipelined_last_request_closes(start_server):
    srv = start_server(keepalive=True)
    requests = (support.build_request("GET", "/hello")
                + support.build_request("GET", "/hello")
                + support.build_request("GET", "/hello", headers=[("Connection", "close")]))
    with srv.connect() as conn:
        conn.send(requests)
        for _ in range(3):
            response = conn.read_response()
            assert response.status == 200
            assert response.body == b"Hello, World!"
        assert conn.wait_closed()
