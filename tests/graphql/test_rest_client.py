"""The REST client: one kept-alive connection, requests as the REST API expects them, errors mapped."""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from graphql_service import create_app
from graphql_service.rest_client import RestClient, RestError, WriteOutcomeUnknown
from graphql_service.settings import GraphQLSettings


class _Recorder(BaseHTTPRequestHandler):
    """Answers `/status/<code>` with that status and a problem body, anything else with 200 and `{}`."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the REST API's gunicorn does

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        status = int(self.path.rsplit("/", 1)[1]) if "/status/" in self.path else 200
        payload = b"" if status == 204 else json.dumps({"detail": f"status {status}"}).encode()
        if "/plain/" in self.path:
            payload = b"not json"
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *_args):
        pass


@pytest.fixture
def stub_api():
    """A stub HTTP server on a free port; yields (base URL, list of (method, path, headers, body) it saw)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", server.seen
    server.shutdown()
    server.server_close()


def test_a_mounted_api_gets_its_prefix_and_null_params_are_left_out(stub_api):
    base, seen = stub_api
    client = RestClient(GraphQLSettings(rest_api_url=f"{base}/api/"))
    client.request("GET", "/articles", params={"limit": 5, "author": None, "after": 3})
    assert seen[0][:2] == ("GET", "/api/articles?limit=5&after=3")


def test_writes_send_json_and_the_service_token_when_the_caller_has_none(stub_api):
    base, seen = stub_api
    client = RestClient(GraphQLSettings(rest_api_url=base, service_token="service"))
    client.request("POST", "/articles", json={"title": "é"})
    client.request("PUT", "/articles/1", json={"title": "x"}, token="caller")
    (_, _, headers, body), (_, _, caller_headers, _) = seen
    assert json.loads(body) == {"title": "é"} and headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer service" and caller_headers["Authorization"] == "Bearer caller"


def test_no_content_is_none_and_errors_carry_status_and_detail(stub_api):
    base, _ = stub_api
    client = RestClient(GraphQLSettings(rest_api_url=base))
    assert client.request("DELETE", "/status/204") is None
    with pytest.raises(RestError) as problem:
        client.request("GET", "/status/404")
    assert (problem.value.status, problem.value.detail) == (404, "status 404")
    with pytest.raises(RestError) as plain:
        client.request("GET", "/plain/status/409")
    assert (plain.value.status, plain.value.detail) == (409, "Conflict")


def test_only_reads_are_retried_and_an_exhausted_retry_is_unavailable(stub_api):
    base, seen = stub_api
    client = RestClient(GraphQLSettings(rest_api_url=base))
    observed = []
    client.observe = lambda method, status: observed.append((method, status))
    with pytest.raises(RestError) as read:
        client.request("GET", "/status/503")
    # The last answer's status, counted as such (found from outside: counted as "unreachable").
    assert read.value.status == 503 and len(seen) == 3 and observed == [("GET", "503")]
    with pytest.raises(RestError) as write:
        client.request("POST", "/status/503", json={})
    assert write.value.status == 503 and len(seen) == 4


def test_a_gateways_502_or_504_to_a_write_leaves_its_outcome_unknown(stub_api):
    base, seen = stub_api
    client = RestClient(GraphQLSettings(rest_api_url=base))
    for status in (502, 504):
        with pytest.raises(WriteOutcomeUnknown, match=f"a gateway answered {status}"):
            client.request("PUT", f"/plain/status/{status}", json={})
    assert len(seen) == 2  # sent once each


def test_calls_reuse_one_kept_alive_connection(rest_api):
    client = RestClient(GraphQLSettings(rest_api_url=rest_api))
    for _ in range(5):
        client.request("GET", "/health")
    with pytest.raises(RestError):
        client.request("GET", "/articles/424242")
    client.request("GET", "/articles", params={"limit": 1})
    assert client.calls == 7 and client.pool.num_connections == 1


def test_threads_share_the_pool(rest_api):
    client = RestClient(GraphQLSettings(rest_api_url=rest_api, pool_size=4))
    threads = [threading.Thread(target=lambda: [client.request("GET", "/health") for _ in range(5)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.calls == 20 and client.pool.num_connections <= 4


def test_a_page_where_the_api_should_be_is_a_misconfiguration_not_a_clients_error(stub_api):
    base, _ = stub_api
    client = RestClient(GraphQLSettings(rest_api_url=base))
    for path in ("/plain/status/200", "/plain/status/404"):
        with pytest.raises(RestError) as wrong:
            client.request("GET", path)
        assert wrong.value.status == 502 and "does not answer as the Base B REST API" in wrong.value.detail


@pytest.mark.parametrize("userinfo", ["svc:{secret}@", "{secret}@", "svc:{secret}:@"])
def test_ready_shows_the_address_without_its_userinfo(stub_api, userinfo):
    """GET /ready needs no credentials: a REST_API_URL with user:password@ (a probe's finding) was
    answered as configured when the address did not answer as the API."""
    base, _ = stub_api
    secret = secrets.token_hex(16)
    configured = base.replace("http://", "http://" + userinfo.format(secret=secret)) + "/plain"
    answer = create_app(GraphQLSettings(rest_api_url=configured)).test_client().get("/ready")
    assert answer.status_code == 503
    detail = answer.json["detail"]
    assert secret not in detail, detail
    assert detail.startswith(base.replace("http://", "http://***@") + "/plain does not answer as the Base B REST API")


class _GatewayPage(BaseHTTPRequestHandler):
    """A gateway with no REST API behind it, as nginx answers by default: an HTML 502 page."""

    def do_GET(self):
        page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *_args):
        pass


def test_ready_names_the_status_the_rest_api_answered():
    """Its detail was the bare reason, "Bad Gateway", saying neither who answered nor the status."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GatewayPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = GraphQLSettings(rest_api_url=f"http://127.0.0.1:{server.server_port}")
        answer = create_app(settings).test_client().get("/ready")
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == 503
    assert answer.json == {"status": "unavailable", "detail": "the REST API answered 502 Bad Gateway"}
