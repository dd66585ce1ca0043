"""A slow or hung REST API holds a GraphQL request no longer than its deadline, and /ready no longer
than a short probe: found from outside, 200 row reads of a hung API ran one after another, each with
its timeout and two retries, for about 100 minutes; /ready took 30 s to answer 503."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from graphql_service import create_app
from graphql_service.rest_client import RequestTimedOut, RestClient, RestError, WriteOutcomeUnknown
from graphql_service.settings import GraphQLSettings
from testbed.servers import free_port


class _Hung(BaseHTTPRequestHandler):
    """Reads the request, then answers nothing until the test ends."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.seen.append(self.path)
        self.server.release.wait(60)

    do_POST = do_GET

    def log_message(self, *_args):
        pass


@pytest.fixture
def hung_api():
    """A REST API that accepts connections and never answers; yields (base URL, paths it was asked for)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hung)
    server.seen, server.release = [], threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", server.seen
    server.release.set()
    server.shutdown()
    server.server_close()


def test_a_request_ends_by_its_deadline_and_makes_no_call_after_it(hung_api):
    base, seen = hung_api
    # Each read alone would take three attempts of 1 s: 30 s for the ten of them.
    app = create_app(GraphQLSettings(rest_api_url=base, timeout=1, request_timeout_seconds=2.5))
    reads = " ".join(f'a{i}: getArticle(id: "{i}") {{ id }}' for i in range(10))
    started = time.monotonic()
    answer = app.test_client().post("/graphql", json={"query": f"{{ {reads} ping }}"}).json
    elapsed = time.monotonic() - started
    assert elapsed < 4, elapsed
    assert answer["data"] == {**{f"a{i}": None for i in range(10)}, "ping": True}
    assert len(answer["errors"]) == 10
    for error in answer["errors"]:
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        assert "ran out of time (GRAPHQL_REQUEST_TIMEOUT_SECONDS)" in error["message"]
    assert len(seen) <= 3  # the first read's attempts; none of the others was sent
    assert app.extensions["rest_client"].calls <= 1


def test_ready_probes_a_hung_api_briefly_and_once(hung_api):
    base, seen = hung_api
    client = create_app(GraphQLSettings(rest_api_url=base, timeout=10)).test_client()
    started = time.monotonic()
    answer = client.get("/ready")
    assert answer.status_code == 503 and time.monotonic() - started < 5
    assert answer.json == {"status": "unavailable", "detail": "the REST API did not answer within 3 s"}
    assert seen == ["/ready"]


def test_a_call_past_its_deadline_is_not_made(hung_api):
    base, seen = hung_api
    client = RestClient(GraphQLSettings(rest_api_url=base))
    with pytest.raises(RequestTimedOut):
        client.request("GET", "/articles/1", deadline=time.monotonic() - 1)
    assert seen == [] and client.calls == 0


def test_a_write_sent_and_never_answered_may_have_been_applied(hung_api):
    """Found from outside: a create whose answer timed out (the API wrote it late) was 'unavailable;
    try again later', and the client that did made a second row."""
    base, seen = hung_api
    app = create_app(GraphQLSettings(rest_api_url=base, timeout=1, service_token="t"))
    answer = app.test_client().post("/graphql", json={"query": 'mutation { createArticle(title: "t") { id } }'}).json
    (error,) = answer["errors"]
    assert error["extensions"]["code"] == "WRITE_OUTCOME_UNKNOWN", error
    assert "may have been applied" in error["message"] and "before sending the write again" in error["message"]
    assert seen == ["/articles"]  # sent once, not retried


def test_a_write_that_could_not_connect_was_not_sent():
    client = RestClient(GraphQLSettings(rest_api_url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(RestError) as refused:
        client.request("POST", "/articles", json={})
    assert refused.value.status == 0 and not isinstance(refused.value, WriteOutcomeUnknown)
