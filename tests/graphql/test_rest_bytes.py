"""A GraphQL request reads at most GRAPHQL_MAX_REST_BYTES of REST answers. Found from outside: the
cost limit counts rows, not their size, and `{ getArticles(limit: 1000) { content } }` over 1 MB rows
read a 1 GB page whole into the worker, which then held about 3 GB to answer it."""

from __future__ import annotations

import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from graphql_service import create_app
from graphql_service.rest_client import AnswerTooLarge, BoundedClient, ByteBudget, RestClient, RestError
from graphql_service.settings import GraphQLSettings
from testbed.servers import graphql_server
from tests.graphql.conftest import TOKEN, make_settings
from tests.graphql.test_outage import codes, rest_metrics, run

MiB = 2**20
TOO_LARGE = "RESPONSE_TOO_LARGE"


class _LargeAnswers(BaseHTTPRequestHandler):
    """GET /articles: a page of `rows` rows of `row_bytes` of content each, chunked as the REST API
    streams its pages; GET /articles/<id>: one such row, with its Content-Length; GET /broken/<id>: a
    Content-Length its body stops short of. Counts the body bytes the socket took (`sent`)."""

    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.server.connections += 1

    def handle(self):
        try:
            super().handle()
        except ConnectionResetError:  # a connection the client closed with an answer unread
            pass

    def _row(self, row_id: int) -> bytes:
        return b'{"id":%d,"title":"t","content":"%s"}' % (row_id, b"x" * self.server.row_bytes)

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.server.sent += len(data)

    def do_GET(self):
        self.server.seen.append(self.path)
        try:
            if self.path.startswith("/articles?"):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                # Written piece by piece, nothing of the page held: the stub runs in the test's process,
                # whose memory the test measures.
                row = self._row(1)
                for i in range(self.server.rows + 2):
                    part = b'{"items":[' if i == 0 else b'],"next_after":null}' if i > self.server.rows else row
                    comma = b"," if 1 < i <= self.server.rows else b""
                    self._write(b"%x\r\n%s" % (len(comma) + len(part), comma))
                    self._write(part)
                    self._write(b"\r\n")
                self._write(b"0\r\n\r\n")
                return
            body = self._row(int(self.path.rsplit("/", 1)[1]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) + 10 * self.path.startswith("/broken/")))
            self.end_headers()
            self._write(body)
            if self.path.startswith("/broken/"):
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: as it should
            self.close_connection = True
        finally:
            self.server.done.set()

    def log_message(self, *_args):
        pass


@pytest.fixture
def large_api():
    """A stub REST API of large answers; yields (base URL, the server: `rows`, `row_bytes` set its
    answers; `seen`, `sent`, `connections`, `done` tell what it did)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LargeAnswers)
    server.rows, server.row_bytes, server.seen, server.sent, server.connections = 0, 0, [], 0, 0
    server.done = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", server
    server.shutdown()
    server.server_close()


def test_a_page_past_the_budget_is_stopped_while_it_is_read(large_api):
    """128 rows of 1 MB in one chunked page, a budget of 1 MiB: the worker reads about the budget and
    holds no more; the socket takes what the kernel's buffers hold beside it, not the page."""
    base, server = large_api
    server.rows, server.row_bytes = 128, MiB
    app = create_app(GraphQLSettings(rest_api_url=base, max_rest_bytes=MiB))
    tracemalloc.start()
    try:
        answer = run(app, "{ getArticles(limit: 1000) { content } }")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer["data"] is None  # getArticles is non-null
    assert codes(answer) == [TOO_LARGE]
    message = answer["errors"][0]["message"]
    assert f"would pass {MiB} bytes" in message and "a smaller `limit`" in message, message
    assert peak < 8 * MiB, peak  # read whole, the page alone was 128 MiB
    assert server.done.wait(10)
    assert server.sent < 64 * MiB, server.sent  # the page is 128 MiB; loopback buffers hold a few
    assert server.seen == ["/articles?limit=1000"]  # not retried


def test_a_row_whose_length_passes_the_budget_is_not_read(large_api):
    base, server = large_api
    server.row_bytes = 4 * MiB
    bounded = BoundedClient(RestClient(GraphQLSettings(rest_api_url=base)), time.monotonic() + 30, ByteBudget(MiB))
    with pytest.raises(AnswerTooLarge):
        bounded.request("GET", "/articles/1")
    assert bounded.budget.read == 0 and bounded.budget.spent  # its Content-Length said so: no byte read


def test_past_the_budget_the_requests_later_calls_are_not_made_and_nothing_is_an_outage(large_api):
    base, server = large_api
    server.row_bytes = 600 * 1024
    app = create_app(GraphQLSettings(rest_api_url=base, max_rest_bytes=MiB))
    answer = run(app, '{ a: getArticle(id: "1") { id } b: getArticle(id: "2") { id } c: getArticle(id: "3") { id } }')
    assert answer["data"] == {"a": {"id": "1"}, "b": None, "c": None}
    assert codes(answer) == [TOO_LARGE] * 2  # neither SERVICE_UNAVAILABLE, which clients retry
    assert server.seen == ["/articles/1", "/articles/2"]  # c was not sent, b not retried
    assert rest_metrics(app) == {
        ("graphql_rest_calls_total", (("method", "GET"), ("status", "200"))): 1.0,
        ("graphql_rest_calls_total", (("method", "GET"), ("status", "too_large"))): 1.0,
    }
    # The budget is the request's: the next one reads again, and not on the connection left unread.
    answer = run(app, '{ a: getArticle(id: "1") { id } }')
    assert answer == {"data": {"a": {"id": "1"}}}
    assert server.connections == 2
    # The outage breaker stays shut: the later calls fail as too large, not as the API unavailable.
    bounded = BoundedClient(RestClient(GraphQLSettings(rest_api_url=base)), time.monotonic() + 30, ByteBudget(1024))
    for _ in range(2):
        with pytest.raises(AnswerTooLarge):
            bounded.request("GET", "/articles/1")
    assert bounded.outage is None and bounded.client.calls == 1


@pytest.mark.parametrize(("row_bytes", "budget"), [(100, MiB), (300_000, 500_000)])
def test_a_body_that_breaks_off_is_still_retried_as_unavailable(large_api, row_bytes, budget):
    """The body is read outside urllib3 now; a read whose body broke off is retried as when urllib3
    read it, then the REST API is unavailable (SERVICE_UNAVAILABLE). A broken attempt's bytes do not
    count against the budget (review: 300 KB broken once passed a 500 KB budget, RESPONSE_TOO_LARGE)."""
    base, server = large_api
    server.row_bytes = row_bytes
    bounded = BoundedClient(RestClient(GraphQLSettings(rest_api_url=base)), time.monotonic() + 30, ByteBudget(budget))
    with pytest.raises(RestError) as broken:
        bounded.request("GET", "/broken/1")
    assert type(broken.value) is RestError and broken.value.status == 0
    assert server.seen == ["/broken/1"] * 3 and bounded.outage is broken.value


def test_answers_under_the_budget_are_unchanged_and_the_budget_is_the_whole_requests(rest_api, rest):
    ids = [rest("/articles", {"title": f"t{i}", "content": f"{i}" * 100_000, "author": "a"})["id"] for i in range(4)]
    query = "{ getArticles(limit: 4) { title content } }"
    whole, bounded = create_app(make_settings(rest_api)), create_app(make_settings(rest_api, max_rest_bytes=MiB))
    expected = gql(whole, query)
    assert expected == gql(bounded, query)
    assert [row["title"] for row in expected["data"]["getArticles"]] == ["t0", "t1", "t2", "t3"]
    # Rows of 100 KB each and 250 KB for the request: the third read passes it, the fourth is not sent.
    app = create_app(make_settings(rest_api, max_rest_bytes=250_000))
    before = app.extensions["rest_client"].calls
    reads = " ".join(f'a{i}: getArticle(id: "{row_id}") {{ title }}' for i, row_id in enumerate(ids))
    answer = gql(app, f"{{ {reads} }}")
    assert answer["data"] == {"a0": {"title": "t0"}, "a1": {"title": "t1"}, "a2": None, "a3": None}
    assert codes(answer) == [TOO_LARGE] * 2
    assert app.extensions["rest_client"].calls - before == 3


def test_writes_are_read_whole(rest_api):
    """A write's answer is its row, and the write was applied: it is not cut at the budget. Its bytes
    count, and stop the request's calls after it, as an outage does."""
    app = create_app(make_settings(rest_api, max_rest_bytes=1024))
    content = "c" * 4096
    for _ in range(2):  # the budget is each request's
        answer = gql(app, f'mutation {{ a: createArticle(title: "a", content: "{content}") {{ content }} }}')
        assert answer == {"data": {"a": {"content": content}}}
    a = f'a: createArticle(title: "a", content: "{content}") {{ id }}'
    answer = gql(app, f'mutation {{ {a} b: createArticle(title: "b") {{ id }} }}')
    assert codes(answer) == [TOO_LARGE]
    titles = requests.get(f"{rest_api}/articles", timeout=30).json()["items"]
    assert [row["title"] for row in titles] == ["a", "a", "a"]  # b was not sent


def gql(app, query: str) -> dict:
    return app.test_client().post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {TOKEN}"}).json


def test_the_service_reads_the_budget_from_its_environment(rest_api, rest, tmp_path):
    rest("/articles", {"title": "t", "content": "c" * 8192, "author": "a"})
    with graphql_server(rest_api, tmp_path / "graphql.log", env={"GRAPHQL_MAX_REST_BYTES": "4096"}) as base:
        query = {"query": "{ getArticles(limit: 1) { title } }"}
        answer = requests.post(f"{base}/graphql", json=query, timeout=30).json()
    assert answer["data"] is None
    assert codes(answer) == [TOO_LARGE] and "would pass 4096 bytes" in answer["errors"][0]["message"]
