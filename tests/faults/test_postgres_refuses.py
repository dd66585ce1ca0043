"""Fault: PostgreSQL refuses connections for a few seconds (a loopback proxy between the API and it goes away)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import orjson
import pytest
import requests
from sqlalchemy.engine import make_url

from api_service import migrate
from base_sync import sync
from base_sync.api_client import ApiError
from base_sync.demo import generate
from base_sync.settings import SyncSettings
from base_sync.source import BaseA
from base_sync.state import MemoryStateStore
from testbed.servers import PG_HOST, PG_PORT
from tests.faults.helpers import (
    TOKEN,
    ApiProcess,
    assert_no_duplicate_keys,
    count_synced,
    in_thread,
    newest_cursor,
    wait_until,
)
from tests.faults.tcp_proxy import TcpProxy
from tests.sync.conftest import assert_in_sync
from tests.sync.test_sync_steps import run_once

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres, pytest.mark.slow]
SETTINGS = SyncSettings(lookback_seconds=0, chunk_size=100, bucket_size=1000)
OUTAGE_SECONDS = 3.0
PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def api_and_proxy(make_postgres_database, tmp_path) -> Iterator[tuple[ApiProcess, TcpProxy]]:
    """The API whose every connection to PostgreSQL goes through a proxy the test can take away."""
    database_url = make_postgres_database()
    migrate.upgrade(database_url)
    with TcpProxy(PG_PORT, target_host=PG_HOST) as proxy:
        through_proxy = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
        api = ApiProcess(database_url, tmp_path / "api.log", connect_url=through_proxy.render_as_string(False))
        api.start()
        try:
            yield api, proxy
        finally:
            api.stop()


def ready_status(api: ApiProcess) -> tuple[int, str]:
    answer = requests.get(f"{api.url}/ready", timeout=10)
    return answer.status_code, answer.headers.get("Content-Type", "")


def test_a_load_through_a_postgresql_outage_converges(base_a_engine, paced_base_a, api_and_proxy):
    api, proxy = api_and_proxy
    generate.seed(base_a_engine, "employees", 3000, seed_value=51)
    store = MemoryStateStore()
    paced = paced_base_a(0.05)  # 30 chunks over 1.5 s or more: the outage lands inside
    load = in_thread(lambda: sync.load("employees", paced, api.client(), store, SETTINGS), "load")
    wait_until(lambda: count_synced(api.database_url, "employees") >= 500, 30, "the load to be under way")

    with proxy.outage(OUTAGE_SECONDS):
        # Readiness tells the truth while PostgreSQL is away: 503, as a problem document.
        assert wait_until(lambda: ready_status(api)[0] == 503, OUTAGE_SECONDS, "/ready to answer 503")
        assert ready_status(api) == (503, PROBLEM_JSON)
    assert wait_until(lambda: ready_status(api)[0] == 200, 15, "/ready to answer 200 again")

    # The client retries 503s for some 15 s, so the load may ride the outage out; if it gave up, it says why.
    error = load.exception(timeout=60)
    assert error is None or isinstance(error, ApiError), f"not a clear API error: {error!r}"
    if error is not None:
        assert store.get("employees") is None, "a failed load moved the watermark"
    paced.close()  # a failed load's traceback holds its Base A read open (see test_api_killed.py)

    retry = run_once("employees", BaseA(base_a_engine), api.client(), store, SETTINGS)
    assert retry["load"]["extracted"] == 3000
    assert assert_in_sync(base_a_engine, api.database_url, "employees") == 3000
    assert_no_duplicate_keys(api.database_url, "employees")
    assert store.get("employees") == newest_cursor(base_a_engine, "employees")


def test_while_postgresql_refuses_every_endpoint_answers_503_never_500(api_and_proxy):
    api, proxy = api_and_proxy
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    record = {"source_id": 1, "source_updated_at": "2026-11-23T12:00:00+00:00", "title": "During the outage"}
    calls = [
        ("GET", "/articles", None),
        ("GET", "/articles/1", None),
        ("GET", "/articles/sync/buckets?size=1000", None),
        ("POST", "/articles/bulk", orjson.dumps([record])),
        ("POST", "/articles", orjson.dumps({"title": "A client's own"})),
    ]
    answers = {}
    with proxy.outage(OUTAGE_SECONDS):
        wait_until(lambda: ready_status(api)[0] == 503, OUTAGE_SECONDS, "/ready to answer 503")
        for method, path, body in calls:
            answer = session.request(method, api.url + path, data=body, timeout=10)
            answers[f"{method} {path}"] = (answer.status_code, answer.headers.get("Content-Type"))
    wait_until(lambda: ready_status(api)[0] == 200, 15, "/ready to answer 200 again")
    after = session.post(f"{api.url}/articles/bulk", data=orjson.dumps([record]), timeout=10)
    assert after.status_code == 200, after.text

    expected = {call: (503, PROBLEM_JSON) for call in answers}
    log = api.log_path.read_text()
    assert answers == expected
    assert not re.search(r'" 500 \d+', log), "a 500 in the access log"
    assert "Traceback" not in log
