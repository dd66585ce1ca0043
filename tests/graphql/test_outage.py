"""A REST API that is down or failing: one GraphQL request asks it once (a call and its retries),
not once per field. Found from outside: while the API answered 503, a request of 200 row reads spent
three attempts on each, held a thread for the whole 30 s deadline and sent 313 requests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from graphql_service import create_app
from graphql_service.rest_client import BoundedClient, RestClient, RestError, WriteOutcomeUnknown
from graphql_service.settings import GraphQLSettings
from testbed.servers import free_port
from tests.graphql.conftest import make_settings


class _Failing(BaseHTTPRequestHandler):
    """Answers every request with the server's status for its method (503 by default), a problem body."""

    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.seen.append((self.command, self.path))
        status = self.server.statuses.get(self.command, 503)
        payload = json.dumps({"detail": f"status {status}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *_args):
        pass


@pytest.fixture
def failing_api():
    """A fault injector: a REST API that answers every request with an error status; yields (base URL,
    the server: `seen` lists (method, path) of each HTTP request, `statuses` sets a method's status)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    server.seen, server.statuses = [], {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", server
    server.shutdown()
    server.server_close()


def run(app, query: str) -> dict:
    return app.test_client().post("/graphql", json={"query": query}, headers={"Authorization": "Bearer t"}).json


def codes(answer: dict) -> list[str]:
    return [error["extensions"]["code"] for error in answer["errors"]]


READS = " ".join(f'a{i}: getArticle(id: "{i + 1}") {{ id }}' for i in range(20))


def test_once_a_read_finds_the_api_unavailable_the_requests_other_calls_are_not_sent(failing_api):
    base, server = failing_api
    app = create_app(GraphQLSettings(rest_api_url=base))
    started = time.monotonic()
    answer = run(app, f"{{ {READS} ping }}")
    assert time.monotonic() - started < 3
    assert len(server.seen) == 3, server.seen  # the first read and its two retries, nothing after
    assert answer["data"] == {**{f"a{i}": None for i in range(20)}, "ping": True}
    assert codes(answer) == ["SERVICE_UNAVAILABLE"] * 20
    assert {error["message"] for error in answer["errors"]} == {"the REST API is unavailable; try again later"}
    # Per request: the next one asks the API again (it may have recovered); a list is not sent either.
    answer = run(app, '{ a: getArticle(id: "1") { id } l: getArticles(limit: 1) { id } }')
    assert codes(answer) == ["SERVICE_UNAVAILABLE"] * 2
    assert len(server.seen) == 6


def test_an_unreachable_api_is_tried_by_one_call_of_a_request():
    app = create_app(GraphQLSettings(rest_api_url=f"http://127.0.0.1:{free_port()}"))
    answer = run(app, f"{{ {READS} }}")
    assert codes(answer) == ["SERVICE_UNAVAILABLE"] * 20
    assert app.extensions["rest_client"].calls == 1


# A mutation's fields are non-null: the first that fails ends the mutation. The client's own calls show the rest.


def test_a_write_after_the_api_was_found_unavailable_is_not_sent(failing_api):
    base, server = failing_api
    bounded = BoundedClient(RestClient(GraphQLSettings(rest_api_url=base)), time.monotonic() + 30)
    for method in ("GET", "POST"):
        with pytest.raises(RestError) as unavailable:
            bounded.request(method, "/articles", json={} if method == "POST" else None)
        assert unavailable.value.status == 503
    assert server.seen == [("GET", "/articles")] * 3  # the read and its two retries, the write never


def test_an_unreachable_api_stops_the_writes_after_a_write():
    bounded = BoundedClient(
        RestClient(GraphQLSettings(rest_api_url=f"http://127.0.0.1:{free_port()}")), time.monotonic() + 30
    )
    for _ in range(2):
        with pytest.raises(RestError) as unavailable:
            bounded.request("POST", "/articles", json={})
        assert unavailable.value.status == 0
    assert bounded.client.calls == 1


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_a_writes_503_is_one_rows_and_stops_no_other_write(failing_api, method):
    """Found in review: the REST API answers a write 503 for one row's lock timeout, deadlock or
    serialization failure; `a: updateEmployee(...) b: updateEmployee(...)` whose a deadlocked left b
    "not called again in this request" while the API was healthy."""
    base, server = failing_api
    server.statuses[method] = 503
    bounded = BoundedClient(RestClient(GraphQLSettings(rest_api_url=base)), time.monotonic() + 30)
    with pytest.raises(RestError) as locked:
        bounded.request(method, "/employees/1", json={})
    assert locked.value.status == 503
    server.statuses[method] = 200
    assert bounded.request(method, "/employees/2", json={}) == {"detail": "status 200"}
    assert server.seen == [(method, "/employees/1"), (method, "/employees/2")]


def test_a_write_whose_outcome_is_unknown_keeps_its_meaning_and_stops_nothing(failing_api):
    # A gateway's 502 to a write: it may have been applied, which says nothing of the next call.
    base, server = failing_api
    server.statuses["POST"] = 502
    bounded = BoundedClient(RestClient(GraphQLSettings(rest_api_url=base)), time.monotonic() + 30)
    for _ in range(2):
        with pytest.raises(WriteOutcomeUnknown):
            bounded.request("POST", "/articles", json={})
    assert server.seen == [("POST", "/articles")] * 2


def test_a_clients_error_stops_no_other_call(rest_api):
    app = create_app(make_settings(rest_api))
    before = app.extensions["rest_client"].calls
    answer = run(app, '{ a: getArticle(id: "424242") { id } b: getArticle(id: "424243") { id } c: getArticles { id } }')
    assert codes(answer) == ["NOT_FOUND"] * 2 and answer["data"]["c"] == []
    assert app.extensions["rest_client"].calls - before == 3


def rest_metrics(app) -> dict[tuple[str, tuple], float]:
    """The REST call and retry counters of /metrics: (name, labels) to value."""
    exposition = app.test_client().get("/metrics").data.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name in ("graphql_rest_calls_total", "graphql_rest_retries_total")
    }


def test_every_http_request_to_the_rest_api_is_counted_its_retries_included(failing_api):
    """Found from outside: the stub got 376 requests, graphql_rest_calls_total rose 126 (a call
    counted once, its retries not at all)."""
    base, server = failing_api
    app = create_app(GraphQLSettings(rest_api_url=base))
    for _ in range(2):
        run(app, '{ getArticle(id: "1") { id } }')
    counted = rest_metrics(app)
    assert counted == {
        ("graphql_rest_calls_total", (("method", "GET"), ("status", "503"))): 2.0,
        ("graphql_rest_retries_total", (("method", "GET"), ("reason", "503"))): 4.0,
    }
    assert sum(counted.values()) == len(server.seen) == 6


def test_a_retry_of_a_call_that_could_not_connect_is_counted_as_unreachable():
    app = create_app(GraphQLSettings(rest_api_url=f"http://127.0.0.1:{free_port()}"))
    run(app, '{ getArticle(id: "1") { id } }')
    assert rest_metrics(app) == {
        ("graphql_rest_calls_total", (("method", "GET"), ("status", "unreachable"))): 1.0,
        ("graphql_rest_retries_total", (("method", "GET"), ("reason", "unreachable"))): 2.0,
    }
