"""apps:validated, the router of apps.py wrapped in wsgiref.validate.validator:
/hello and /echo.

A validation failure inside the app raises (-> 500); WSGIWarnings are turned
into errors in apps.py.  Failures the validator can only report from __del__
(e.g. close() never called) are collected on /validation-errors.
"""
import json

import support


def _validation_errors(srv):
    response = srv.request("GET", "/validation-errors")
    assert response.status == 200
    return json.loads(response.body)["errors"]


def test_validated_hello(start_server):
    srv = start_server("apps:validated")
    for path in ("/hello", "/hello/x?y=1", "/hello/a%20b"):
        response = srv.request("GET", path)
        assert response.status == 200, response
        assert response.body == b"Hello, World!"
    response = srv.request("HEAD", "/hello")
    assert response.status == 200, response
    assert _validation_errors(srv) == []


def test_validated_echo_post(start_server):
    srv = start_server("apps:validated")
    body = b"validated body\n" * 100
    response = srv.request("POST", "/echo", body=body, headers=[("Content-Type", "text/plain")])
    assert response.status == 200, response
    assert response.body == body
    response = srv.request("POST", "/echo", body=b"")
    assert response.status == 200, response
    assert response.body == b""
    assert _validation_errors(srv) == []


def test_validated_echo_environ(start_server):
    srv = start_server("apps:validated")
    response = srv.request("GET", "/environ?q=1", headers=[("X-Test", "1")])
    assert response.status == 200, response
    env = json.loads(response.body)
    assert env["QUERY_STRING"] == "q=1"
    assert env["HTTP_X_TEST"] == "1"
    assert _validation_errors(srv) == []


def test_validated_echo_pipelined(start_server):
    srv = start_server("apps:validated", keepalive=True)
    with srv.connect() as conn:
        conn.send(support.build_request("POST", "/echo", body=b"one")
                  + support.build_request("POST", "/echo", body=b"two"))
        for expected in (b"one", b"two"):
            response = conn.read_response()
            assert response.status == 200, response
            assert response.body == expected
    assert _validation_errors(srv) == []
