"""The compose stack's gateway (deploy/gateway/gateway.conf) in a real nginx: what it answers when
no replica is there, or one fails mid-request, and the /metrics Prometheus scrapes.

The configuration is the file itself; only its ports, its resolver (a stub DNS server here: Docker's
is 127.0.0.11 in a container) and the read timeouts are changed for the test."""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from graphql_service import create_app
from graphql_service.settings import GATEWAY_REQUEST_SECONDS, GraphQLSettings
from testbed.servers import REPO, free_port, require_program

pytestmark = pytest.mark.slow

GATEWAY_CONF = REPO / "deploy" / "gateway" / "gateway.conf"


class StubDns:
    """Docker's DNS as the gateway sees it: a service name has an A record per running replica, or
    none (NXDOMAIN) once none runs. `records` maps a name to its address."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                query, client = self.sock.recvfrom(512)
            except OSError:  # closed
                return
            end = query.index(b"\0", 12) + 5  # the question: its name, type and class
            labels, at = [], 12
            while query[at]:
                labels.append(query[at + 1 : at + 1 + query[at]].decode())
                at += 1 + query[at]
            address = self.records.get(".".join(labels))
            if address is None:
                header = query[:2] + struct.pack(">HHHHH", 0x8183, 1, 0, 0, 0)  # NXDOMAIN
                self.sock.sendto(header + query[12:end], client)
            else:
                header = query[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0)
                answer = struct.pack(">HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(address)
                self.sock.sendto(header + query[12:end] + answer, client)

    def close(self) -> None:
        self.sock.close()


@contextmanager
def gateway_nginx(tmp_path: Path, dns: StubDns, api_port: int, graphql_port: int):
    """nginx with gateway.conf on free ports; yields {"rest": url, "graphql": url, "metrics": url}."""
    nginx = require_program("nginx", "Debian package nginx-light; `make test` installs it when root")
    ports = {"rest": free_port(), "graphql": free_port(), "metrics": free_port()}
    conf = GATEWAY_CONF.read_text()
    for old, new in {
        "resolver 127.0.0.11 ": f"resolver 127.0.0.1:{dns.port} ",
        "listen 5000;": f"listen 127.0.0.1:{ports['rest']};",
        "listen 5001;": f"listen 127.0.0.1:{ports['graphql']};",
        "listen 9113;": f"listen 127.0.0.1:{ports['metrics']};",
        "http://api:5000": f"http://api:{api_port}",
        "http://graphql:5001": f"http://graphql:{graphql_port}",
        "proxy_read_timeout 300s;": "proxy_read_timeout 1s;",
        "proxy_read_timeout 60s;": "proxy_read_timeout 1s;",
    }.items():
        assert old in conf, old
        conf = conf.replace(old, new)
    (tmp_path / "gateway.conf").write_text(conf)
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "".join(f"{kind}_temp_path {tmp_path}/{kind};" for kind in kinds)
    (tmp_path / "nginx.conf").write_text(
        f"daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{ access_log off; {temp} include {tmp_path}/gateway.conf; }}\n"
    )
    process = subprocess.Popen([nginx, "-c", str(tmp_path / "nginx.conf")], stderr=subprocess.PIPE, text=True)
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                requests.get(urls["metrics"] + "/metrics", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield urls
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def dns():
    server = StubDns()
    yield server
    server.close()


@contextmanager
def listener(behaviour: str):
    """A replica that takes connections and then closes each unanswered ("close") or holds it ("hang")."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.recv(65536)
            (held.append if behaviour == "hang" else socket.socket.close)(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()
        for conn in held:
            conn.close()


def assert_problem(answer: requests.Response, status: int, detail: str) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    body = answer.json()
    assert set(body) == {"type", "title", "status", "detail"} and body["status"] == status, body
    assert detail in body["detail"], body
    return body


def test_with_no_replica_running_every_path_is_a_503_problem_with_retry_after(tmp_path, dns):
    """Docker's DNS names no replica: nginx's HTML 502 page was answered on every path, /ready too."""
    with gateway_nginx(tmp_path, dns, api_port=5000, graphql_port=5001) as gateway:
        for path in ("/ready", "/health", "/articles?limit=1"):
            answer = requests.get(gateway["rest"] + path, timeout=10)
            assert_problem(answer, 503, "no REST API replica is reachable through the gateway")
            assert answer.headers["Retry-After"] == "5"
        posted = requests.post(gateway["rest"] + "/articles/bulk", json=[], timeout=10)
        assert_problem(posted, 503, "no REST API replica is reachable")
        graphql = requests.post(gateway["graphql"] + "/graphql", json={"query": "{ ping }"}, timeout=10)
        assert_problem(graphql, 503, "no GraphQL replica is reachable through the gateway")
        assert graphql.headers["Retry-After"] == "5"


def test_a_replica_refusing_connections_is_a_503_and_one_closing_mid_request_a_502_without_retry_after(tmp_path, dns):
    dns.records = {"api": "127.0.0.1", "graphql": "127.0.0.1"}
    with listener("close") as closing, gateway_nginx(tmp_path, dns, api_port=free_port(), graphql_port=closing) as gw:
        refused = requests.get(gw["rest"] + "/ready", timeout=10)
        assert_problem(refused, 503, "no REST API replica is reachable")
        assert refused.headers["Retry-After"] == "5"
        # The replica took the request: a write may have landed, so no "retry shortly".
        closed = requests.post(gw["graphql"] + "/graphql", json={"query": "mutation { x }"}, timeout=10)
        assert_problem(closed, 502, "a GraphQL replica closed the connection without answering")
        assert "Retry-After" not in closed.headers


def test_a_replica_not_answering_in_time_is_a_504_problem(tmp_path, dns):
    dns.records = {"api": "127.0.0.1"}
    with listener("hang") as hanging, gateway_nginx(tmp_path, dns, api_port=hanging, graphql_port=5001) as gw:
        answer = requests.post(gw["rest"] + "/articles", json={}, timeout=10)
        assert_problem(answer, 504, "did not answer the gateway in time; a write may have been applied")
        assert "Retry-After" not in answer.headers


def test_a_graphql_replica_not_answering_in_time_is_a_504_not_a_closed_connection(tmp_path, dns):
    """Review: GraphQL's timeout went to the closed-connection handler, a 502 "closed the connection"."""
    dns.records = {"graphql": "127.0.0.1"}
    with listener("hang") as hanging, gateway_nginx(tmp_path, dns, api_port=5000, graphql_port=hanging) as gw:
        answer = requests.post(gw["graphql"] + "/graphql", json={"query": "{ ping }"}, timeout=10)
        assert_problem(answer, 504, "the GraphQL replica did not answer the gateway in time")
        assert "Retry-After" not in answer.headers


class _ApiNotReady(BaseHTTPRequestHandler):
    def do_GET(self):
        status = 503 if self.path == "/ready" else 404
        body = json.dumps({"type": "about:blank", "title": "Own", "status": status, "detail": "own"})
        self.send_response(status)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_args):
        pass


def test_the_apis_own_errors_pass_unchanged_and_graphql_ready_names_the_gateways_answer(tmp_path, dns):
    api = ThreadingHTTPServer(("127.0.0.1", 0), _ApiNotReady)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    dns.records = {"api": "127.0.0.1"}
    try:
        with gateway_nginx(tmp_path, dns, api_port=api.server_port, graphql_port=5001) as gateway:
            own = requests.get(gateway["rest"] + "/ready", timeout=10)
            assert_problem(own, 503, "own")
            assert "Retry-After" not in own.headers
            # The gateway's own 404 (below) is for what nginx answers itself: the API's passes as it is.
            missing = requests.get(gateway["rest"] + "/no-such-path", timeout=10)
            assert assert_problem(missing, 404, "own")["title"] == "Own"
            dns.records = {}  # every replica gone; nginx asks again once its 5 s answer is old
            time.sleep(6)
            ready = create_app(GraphQLSettings(rest_api_url=gateway["rest"])).test_client().get("/ready")
    finally:
        api.shutdown()
        api.server_close()
    assert ready.status_code == 503
    assert ready.json["detail"] == (
        "the REST API answered 503 Service Unavailable: no REST API replica is reachable through the gateway;"
        " retry shortly"
    )


def test_the_metrics_prometheus_scrapes_pass_promtools_lint(tmp_path, dns):
    promtool = require_program("promtool", "Debian package prometheus; `make test` installs it when root")
    with gateway_nginx(tmp_path, dns, api_port=5000, graphql_port=5001) as gateway:
        exposition = requests.get(gateway["metrics"] + "/metrics", timeout=10).text
    assert "nginx_connections_active 1\n" in exposition  # this scrape's own connection
    lint = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, check=False)
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr


def _raw(url: str, request: bytes) -> tuple[int, str, dict]:
    """`request` sent as it is (requests would refuse to send most of these); the status, the
    Content-Type and the parsed body of what came back."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += conn.recv(65536)
        head, body = answer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        while len(body) < int(headers["Content-Length"]):  # not to EOF: nginx lingers for the body never sent
            body += conn.recv(65536)
    return int(lines[0].split(" ")[1]), headers["Content-Type"], json.loads(body)


@pytest.mark.parametrize(
    ("port", "request_bytes", "status", "title", "detail"),
    [
        ("rest", b"GARBAGE\r\n\r\n", 400, "Bad Request", "could not read the request"),
        ("rest", b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "Bad Request", "could not read"),  # no Host
        (
            "rest",
            b"POST /articles/bulk HTTP/1.1\r\nHost: x\r\nContent-Length: 70000000\r\nConnection: close\r\n\r\n",
            413,
            "Content Too Large",
            "larger than the gateway accepts (its client_max_body_size",
        ),
        (
            "graphql",  # over the 4 MiB GraphQL takes by default; nginx's own default (1 MiB) cut less
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: 70000000\r\nConnection: close\r\n\r\n",
            413,
            "Content Too Large",
            "client_max_body_size",
        ),
        (
            "rest",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\nConnection: close\r\n\r\n",
            431,  # nginx's bare 400 for it
            "Request Header Fields Too Large",
            "larger than the gateway accepts (large_client_header_buffers)",
        ),
        (
            "graphql",
            b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            414,
            "URI Too Long",
            "request line is longer than the gateway accepts",
        ),
        ("rest", b"TRACE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405, "Method Not Allowed", "TRACE"),
        (
            "rest",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n",
            501,
            "Not Implemented",
            "transfer encoding",
        ),
        ("rest", b"GET / HTTP/2.0\r\nHost: x\r\nConnection: close\r\n\r\n", 505, "HTTP Version Not Supported", ""),
        ("metrics", b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "Not Found", "no such path"),
        (
            "rest",
            b"GET /.gateway-problem HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            404,
            "Not Found",
            "no such path",
        ),
    ],
    ids=lambda value: value.decode()[:12] if isinstance(value, bytes) else None,
)
def test_every_error_nginx_answers_itself_is_a_problem_document_saying_what_was_refused(
    tmp_path, dns, port, request_bytes, status, title, detail
):
    """Found from outside: only 502/503/504 were problem documents; an oversize body, header or URI,
    TRACE or a path of the metrics port got nginx's HTML page."""
    with gateway_nginx(tmp_path, dns, api_port=5000, graphql_port=5001) as gateway:
        got, content_type, body = _raw(gateway[port], request_bytes)
    assert (got, content_type) == (status, "application/problem+json"), body
    assert body == {"type": "about:blank", "title": title, "status": status, "detail": body["detail"]}
    assert detail in body["detail"] and "Error" != body["title"], body


def _server_of(port: str) -> str:
    conf = GATEWAY_CONF.read_text()
    return re.search(rf"\n    listen {port};\n(.*?)\n}}\n", conf, re.S)[1]


def test_the_gateway_waits_for_graphql_longer_than_any_request_deadline_graphql_takes():
    """Review: the gateway cut every GraphQL answer at 60 s with a 504, whatever deadline GraphQL had.
    The default deadline, and the most README says the gateway as shipped serves, stay under the
    gateway's read timeout with room for the answer of a request past its deadline; and the gateway
    takes GraphQL's default body size."""
    graphql = _server_of("5001")
    read_seconds = int(re.search(r"proxy_read_timeout (\d+)s;", graphql)[1])
    assert GraphQLSettings().request_timeout_seconds <= GATEWAY_REQUEST_SECONDS <= read_seconds - 10, read_seconds
    assert (
        f"{GATEWAY_REQUEST_SECONDS} s" in (REPO / "README.md").read_text()
        and f"({read_seconds} s)" in (REPO / "README.md").read_text()
    )
    body_mib = int(re.search(r"client_max_body_size (\d+)m;", graphql)[1])
    assert body_mib * 2**20 >= GraphQLSettings().max_content_length
