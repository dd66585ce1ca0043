"""What gunicorn answers itself, before the app sees a request, is a problem document too."""

from __future__ import annotations

import json
import socket

import pytest

from api_service import migrate
from tests.servers import api_server, graphql_server

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
