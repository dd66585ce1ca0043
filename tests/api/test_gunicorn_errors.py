"""What gunicorn answers itself, before the app sees a request, is a problem document too."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time

import pytest
import requests

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


HOSTILE_PREFIX = '/a"</script><script>alert(1)</script>'


@pytest.mark.parametrize("service", ["api", "graphql"])
def test_a_script_name_header_is_not_the_mount_prefix(servers, service):
    """Found from outside: gunicorn took SCRIPT_NAME from a header sent from 127.0.0.1, and the API's
    docs page carried it unescaped, a `//evil.com` prefix made Location and /openapi.json's servers
    point to another host, and one the path did not start with was a 500 echoing it."""
    base = servers[service]
    path = "/docs" if service == "api" else "/graphql"
    hostile = (
        f"GET {HOSTILE_PREFIX}{path} HTTP/1.1\r\nHost: x\r\nSCRIPT_NAME: {HOSTILE_PREFIX}\r\nConnection: close\r\n\r\n"
    )
    answered, _, body = _raw_answer(base, hostile.encode())
    assert answered == 404 and b"<script>alert(1)" not in body
    mismatched = (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nSCRIPT_NAME: /nope\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
    )
    answered, _, body = _raw_answer(base, mismatched.encode())
    assert answered == 200 and b"/nope" not in body
    if service == "api":
        document = requests.get(f"{base}/openapi.json", headers={"SCRIPT_NAME": "//evil.com"}, timeout=10).json()
        assert document["servers"][0]["url"] == "/"
        created = requests.post(
            f"{base}/articles",
            json={"title": "prefix"},
            headers={"SCRIPT_NAME": "//evil.com", "Authorization": "Bearer token"},
            timeout=10,
        )
        assert created.status_code == 201 and created.headers["Location"].startswith("/articles/")


def test_a_path_outside_the_operators_mount_prefix_is_a_404(make_postgres_database, tmp_path):
    url = make_postgres_database()
    migrate.upgrade(url)
    with api_server(url, "token", tmp_path / "api.log", env={"SCRIPT_NAME": "/api"}, ready_path="/api/ready") as base:
        assert requests.get(f"{base}/api/docs", timeout=10).status_code == 200
        answered, headers, body = _raw_answer(base, b"GET /docs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answered == 404 and headers["content-type"] == "application/problem+json"
    assert b"SCRIPT_NAME" not in body and b"/api" not in body


@pytest.mark.parametrize(
    ("service", "request_head"),
    [
        ("api", "GET //articles"),
        ("api", "GET ///metrics"),
        ("api", "POST //articles"),
        ("graphql", "GET /graphql//static/explorer.js"),
        ("graphql", "POST //graphql"),
    ],
)
def test_a_path_with_an_empty_segment_is_no_route_on_the_real_server(servers, service, request_head):
    """Found from outside: Werkzeug strips leading slashes, so `//articles` was a 200 and
    `POST //articles` a 201; the test client cannot send such a path (it reads a host from it)."""
    body = '{"title": "double"}' if service == "api" else '{"query": "{ ping }"}'
    request = (
        f"{request_head} HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer token\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    )
    answered, headers, answer = _raw_answer(servers[service], request.encode())
    assert answered == 404 and "location" not in headers
    assert headers["content-type"] == ("application/problem+json" if service == "api" else "application/json")


def test_a_killed_master_lets_go_of_the_port_while_its_workers_finish(make_postgres_database, tmp_path):
    """The API's master killed (SIGKILL: nothing stops its workers): a worker with a request in
    flight finished it within graceful_timeout, holding the listening socket all along, so the
    master its keeper started again could not bind the port, exited three times and was given up
    (CI: a worker held it 31 s). The listeners now close as soon as a worker sees its master gone."""
    database_url = make_postgres_database()
    migrate.upgrade(database_url)
    log = tmp_path / "api.log"
    with api_server(database_url, "token", log, env={"API_REQUEST_HEAD_TIMEOUT": "60"}) as base:
        port = int(base.rsplit(":", 1)[1])
        master = int(re.search(r"Listening at: \S+ \((\d+)\)", log.read_text())[1])
        with socket.create_connection(("127.0.0.1", port)) as in_flight:
            in_flight.sendall(b"GET /health HTTP/1.1\r\nHost: api\r\n")  # its head still arriving
            time.sleep(1)
            os.kill(master, signal.SIGKILL)
            deadline = time.monotonic() + 15  # the worker checks its master every second
            while True:
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        probe.bind(("127.0.0.1", port))  # a listening socket left anywhere refuses it
                        break
                    except OSError:
                        assert time.monotonic() < deadline, f"port {port} still held: {log.read_text()[-2000:]}"
                time.sleep(0.2)
