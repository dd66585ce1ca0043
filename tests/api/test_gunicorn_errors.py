"""What gunicorn answers itself, before the app sees a request, is a problem document too."""

from __future__ import annotations

import json
import socket

import pytest

from api_service import migrate
from testbed.servers import api_server, graphql_server

pytestmark = pytest.mark.slow

BAD_REQUESTS = {
    "request line too long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "bad header bytes": (b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01Name: y\r\n\r\n", 400),
    "bad request line": (b"NOT A REQUEST\r\n\r\n", 400),
}


def _raw_answer(base: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.fixture(scope="module")
def servers(make_postgres_database, tmp_path_factory):
    url = make_postgres_database()
    migrate.upgrade(url)
    folder = tmp_path_factory.mktemp("gunicorn-errors")
    with api_server(url, "token", folder / "api.log") as api, graphql_server(api, folder / "graphql.log") as graphql:
        yield {"api": api, "graphql": graphql}


@pytest.mark.parametrize("service", ["api", "graphql"])
@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_gunicorn_answers_bad_requests_with_problem_documents(servers, service, case):
    request, status = BAD_REQUESTS[case]
    answered, headers, body = _raw_answer(servers[service], request)
    assert answered == status
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["status"] == status and problem["title"] and problem["detail"]


@pytest.mark.parametrize("service", ["api", "graphql"])
def test_a_status_gunicorn_sets_without_its_reason_carries_its_own_title(servers, service):
    # gunicorn answers a transfer coding it does not know with 501 but passes "Bad Request" as the reason.
    request = b"POST /graphql HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\nContent-Length: 2\r\n\r\n{}"
    answered, headers, body = _raw_answer(servers[service], request)
    assert answered == 501
    assert json.loads(body)["title"] == "Not Implemented"
    assert headers["content-type"] == "application/problem+json"


BAD_BODIES = {
    # gunicorn parses a chunked body only when the app reads it: a parse error surfaced in the view.
    "bad chunk size": (b"Transfer-Encoding: chunked", b"zz\r\n{}\r\n0\r\n\r\n", 400, "malformed"),
    "missing chunk terminator": (b"Transfer-Encoding: chunked", b"1\r\n{}\r\n0\r\n\r\n", 400, "malformed"),
    # gzip is not decoded by the server: its bytes would reach the JSON reader.
    "transfer coding not decoded": (b"Transfer-Encoding: gzip, chunked", b"2\r\n{}\r\n0\r\n\r\n", 501, "gzip"),
}


@pytest.mark.parametrize("service", ["api", "graphql"])
@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_body_the_server_cannot_read_is_the_clients_error(servers, service, case):
    framing, body, status, named = BAD_BODIES[case]
    path = b"/articles" if service == "api" else b"/graphql"
    request = (
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer token\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n" + framing + b"\r\n\r\n" + body
    )
    answered, _, answer = _raw_answer(servers[service], request)
    assert answered == status, answer
    document = json.loads(answer)
    detail = document["detail"] if service == "api" else document["errors"][0]["message"]
    assert named in detail
