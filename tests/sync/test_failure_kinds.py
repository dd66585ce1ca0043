"""Transient failures are retried, terminal ones fail at once with the reason (base_sync.errors).

The API is the real process over PostgreSQL; the 503s come from a real HTTP server that answers
a scripted sequence of statuses, since making the real API answer 503 means stopping PostgreSQL
(tests/faults does that).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import create_engine, text

from base_sync import sync
from base_sync.airflow_tasks import fail_terminal
from base_sync.api_client import ApiRefused, ApiUnavailable, BaseBApi
from base_sync.demo import generate
from base_sync.errors import TerminalError, TransientError
from base_sync.settings import SyncSettings
from base_sync.state import MemoryStateStore
from testbed.servers import free_port

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres, pytest.mark.slow]
SETTINGS = SyncSettings(lookback_seconds=0, chunk_size=500)
OK = b'{"received": 0, "inserted": 0, "updated": 0, "unchanged": 0, "stale": 0, "rejected": 0, "errors": []}'


class ScriptedApi:
    """An HTTP server answering each request with the next status of a script (the last one repeats)."""

    def __init__(self, statuses: list[int]):
        self.statuses, self.requests = statuses, 0
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = scripted.statuses[min(scripted.requests, len(scripted.statuses) - 1)]
                scripted.requests += 1
                body = OK if status == 200 else b'{"status": %d, "detail": "scripted"}' % status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator:
    servers = []

    def start(statuses: list[int]) -> ScriptedApi:
        servers.append(ScriptedApi(statuses))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_a_422_from_the_api_is_terminal_with_its_reason_and_sent_once(base_b):
    api = base_b.api()
    with pytest.raises(ApiRefused) as refused:
        api.bulk_upsert("employees", b'{"not": "an array"}')
    assert refused.value.status == 422 and isinstance(refused.value, TerminalError)
    assert "must be a JSON array" in str(refused.value)
    with pytest.raises(AirflowFailException, match="ApiRefused: POST .* answered 422: .*must be a JSON array"):
        fail_terminal(api.bulk_upsert)("employees", b'{"not": "an array"}')


def test_a_wrong_token_is_terminal(base_b):
    with pytest.raises(ApiRefused) as refused:
        BaseBApi(base_b.url, "not-the-token").bulk_upsert("employees", b"[]")
    assert refused.value.status == 403 and "bearer token" in str(refused.value)


def test_the_write_check_says_in_its_message_what_it_was_and_where_to_look(base_b):
    """Found from outside in the Airflow UI: a task whose API was down showed 'POST .../articles/bulk/delete
    got no answer' (the events DAG too, which syncs no articles) and no hint; the explanation was
    an exception note, which Airflow 3's log view does not show."""
    with pytest.raises(ApiRefused) as refused:
        BaseBApi(base_b.url, "not-the-token").check_writes("employees")
    assert refused.value.status == 403 and "which deletes nothing" in str(refused.value)
    assert "API_TOKENS" in str(refused.value)
    with pytest.raises(ApiUnavailable) as unavailable:
        BaseBApi(f"http://127.0.0.1:{free_port()}", "token", retries=0).check_writes("employees")
    assert "which deletes nothing: is the API running" in str(unavailable.value)


def test_a_503_is_retried_and_the_request_then_succeeds(scripted):
    server = scripted([503, 503, 200])
    answer = BaseBApi(server.url, None, retries=5).bulk_upsert("employees", b"[]")
    assert answer["received"] == 0 and server.requests == 3


def test_a_503_that_lasts_is_transient_and_left_to_airflow_s_retries(scripted):
    server = scripted([503])
    with pytest.raises(ApiUnavailable) as unavailable:
        fail_terminal(BaseBApi(server.url, None, retries=2).bulk_upsert)("employees", b"[]")
    assert unavailable.value.status == 503 and isinstance(unavailable.value, TransientError)
    assert server.requests == 3  # the first try and two retries, with back-off


@pytest.mark.parametrize("status", [422, 500, 400, 404, 413])
def test_other_refusals_are_terminal_and_sent_once(scripted, status):
    server = scripted([status])
    with pytest.raises(ApiRefused):
        BaseBApi(server.url, None).bulk_upsert("employees", b"[]")
    assert server.requests == 1


def test_an_api_that_does_not_answer_is_transient():
    with pytest.raises(ApiUnavailable, match="unreachable"):
        BaseBApi(f"http://127.0.0.1:{free_port()}", None, retries=1).bulk_upsert("employees", b"[]")


def test_a_verification_mismatch_is_terminal(base_a, base_a_engine, base_b):
    api = base_b.api()
    generate.seed(base_a_engine, "employees", 600, seed_value=11)
    report = sync.load("employees", base_a, api, MemoryStateStore(), SETTINGS)
    engine = create_engine(base_b.database_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM employees WHERE source_id IN (3, 30, 300)"))
    engine.dispose()
    too_strict = SETTINGS.model_copy(update={"repair_limit": 2})
    with pytest.raises(AirflowFailException, match="VerificationError: employees: 3 rows of the window are missing"):
        fail_terminal(sync.verify)("employees", base_a, api, report, too_strict)


def test_an_invalid_setting_is_terminal():
    with pytest.raises(
        AirflowFailException, match="SyncSettings: InvalidSettings: invalid settings: SYNC_CHUNK_SIZE: "
    ):
        fail_terminal(SyncSettings)(chunk_size=0)


def test_a_task_reports_its_peak_memory_under_its_entity_and_step(monkeypatch):
    from base_sync import airflow_tasks

    sent = []
    monkeypatch.setattr(airflow_tasks, "_emit", sent.extend)

    def load(entity: str, partitions: list) -> None:
        return None

    def apply_changes() -> None:
        return None

    fail_terminal(load)("articles", [])
    fail_terminal(load)(entity="employees", partitions=[])
    fail_terminal(apply_changes)()
    names = [name for _, name, _ in sent]
    assert names == [
        "base_sync.task_peak_rss_bytes.articles.load",
        "base_sync.task_peak_rss_bytes.employees.load",
        "base_sync.task_peak_rss_bytes.all.apply_changes",
    ]
