"""Slow clients (slowloris) against both services under real gunicorn: more half-sent requests than
threads must not stop /health, and a normal large bulk upload still goes through.

Found from outside: sockets sending a header line every few seconds, or a body a byte at a time,
held every gthread thread (4 of the API's, 8 of GraphQL's) and /health timed out until they closed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from datetime import UTC, datetime

import pytest
import requests

from api_service import migrate
from testbed.servers import api_server, graphql_server

TOKEN = "slow-clients-token-5e1b"
HEAD_SECONDS = 2
THREADS = {"api": 4, "graphql": 8}  # the launchers' single worker
DEADLINES = {"REQUEST_HEAD_TIMEOUT": str(HEAD_SECONDS), "REQUEST_BODY_MIN_RATE": "65536"}


@pytest.fixture(scope="module")
def servers(make_postgres_database, tmp_path_factory):
    url = make_postgres_database()
    migrate.upgrade(url)
    folder = tmp_path_factory.mktemp("slow-clients")
    api_env = {f"API_{name}": value for name, value in DEADLINES.items()} | {"API_THREADS": "4"}
    graphql_env = {f"GRAPHQL_{name}": value for name, value in DEADLINES.items()} | {"GRAPHQL_THREADS": "8"}
    with (
        api_server(url, TOKEN, folder / "api.log", env=api_env) as api,
        graphql_server(api, folder / "graphql.log", env=graphql_env) as graphql,
    ):
        yield {"api": api, "graphql": graphql}


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _start(base: str, service: str, mode: str) -> socket.socket:
    sock = _connect(base)
    if mode == "head":
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    else:  # a complete head, then a body that never comes (no token needed on GraphQL)
        path = "/articles" if service == "api" else "/graphql"
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{".encode()
        )
    return sock


@contextlib.contextmanager
def _slowloris(base: str, service: str, mode: str, count: int):
    """`count` connections trickling a byte or a header line every half second, each reopened
    as soon as the server closes it (as a real attacker does)."""
    stop = threading.Event()
    answers: list[bytes] = []

    def trickle(sock: socket.socket) -> None:
        while not stop.is_set():
            try:
                sock.sendall(b"X-a: b\r\n" if mode == "head" else b" ")
            except OSError:  # the server gave up on it: read its answer, open another
                with contextlib.suppress(OSError):
                    sock.settimeout(1)
                    answers.append(sock.recv(4096))
                sock.close()
                sock = _start(base, service, mode)
            stop.wait(0.5)
        sock.close()

    workers = [threading.Thread(target=trickle, args=(_start(base, service, mode),)) for _ in range(count)]
    for worker in workers:
        worker.start()
    try:
        yield answers
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)


def _health_seconds(base: str) -> float:
    started = time.monotonic()
    response = requests.get(f"{base}/health", timeout=15)
    assert response.status_code == 200
    return time.monotonic() - started


@pytest.mark.parametrize("mode", ["head", "body"])
@pytest.mark.parametrize("service", ["api", "graphql"])
def test_health_answers_while_more_slow_clients_than_threads_are_connected(servers, service, mode):
    base = servers[service]
    with _slowloris(base, service, mode, count=THREADS[service] * 2) as answers:
        time.sleep(0.5)  # every thread taken
        waits = [_health_seconds(base) for _ in range(4)]
        time.sleep(HEAD_SECONDS * 2)
    # A slow head queued before /health lets go of its thread by /health's own head deadline; a
    # slow body gets its grace from when its thread starts reading it, so with twice as many
    # slow connections as threads /health may wait two of those.
    assert max(waits) < 2 * HEAD_SECONDS + 1, waits
    refusals = [answer for answer in answers if answer.startswith(b"HTTP/1.1 408")]
    assert refusals, answers[:3]
    assert b"did not arrive within" in refusals[0] or b"arrived slower than" in refusals[0]


def test_a_request_head_sent_whole_after_a_pause_is_served(servers):
    # The deadline cuts a head that is incomplete, not one that arrived while the thread was busy.
    with _connect(servers["api"]) as sock:
        time.sleep(HEAD_SECONDS + 1)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_a_large_bulk_upload_still_goes_through(servers):
    stamp = datetime.now(UTC).isoformat()
    rows = [
        {"source_id": key, "source_updated_at": stamp, "title": f"row {key}", "content": "x" * 2000}
        for key in range(1, 10_001)
    ]
    body = json.dumps(rows).encode()  # some 21 MB
    response = requests.post(
        f"{servers['api']}/articles/bulk",
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=120,
    )
    assert response.status_code == 200, response.text[:300]
    assert response.json()["received"] == 10_000
