"""Service endpoints: liveness, readiness, the OpenAPI document, the docs page, metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, make_url, text

from api_service import create_app, db, migrate
from testbed.servers import REPO, free_port
from tests.api.conftest import AUTH, make_settings


def test_health_answers_while_the_process_lives(client):
    assert client.get("/health").json == {"status": "ok"}


def test_ready_when_base_b_is_reachable_and_migrated(client):
    assert client.get("/ready").json == {"status": "ready"}


def test_not_ready_when_base_b_is_unreachable():
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2"
    app = create_app(make_settings(url))
    response = app.test_client().get("/ready")
    assert response.status_code == 503 and "not reachable" in response.json["detail"]
    assert response.headers["Retry-After"] == "1"  # as the document says (found from outside: none was sent)
    assert app.test_client().get("/health").status_code == 200


def test_not_ready_logs_why_once_and_does_not_show_it(caplog):
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/no_such_database_here"
    app = create_app(make_settings(url))
    for _ in range(3):  # a probe asks every few seconds
        response = app.test_client().get("/ready")
        assert response.status_code == 503 and "no_such_database_here" not in response.json["detail"]
    said = [r.getMessage() for r in caplog.records if "not ready" in r.getMessage()]
    assert len(said) == 1 and 'database "no_such_database_here" does not exist' in said[0]
    app.extensions["base_b_engine"].dispose()


def test_not_ready_before_the_migrations(tmp_path):
    app = create_app(make_settings(f"sqlite:///{tmp_path}/empty.sqlite"))
    response = app.test_client().get("/ready")
    assert response.status_code == 503 and "run the migrations" in response.json["detail"]
    assert response.headers["Retry-After"] == "30"
    migrate.upgrade(f"sqlite:///{tmp_path}/empty.sqlite")
    assert app.test_client().get("/ready").status_code == 200
    app.extensions["base_b_engine"].dispose()


def test_ready_on_a_schema_a_newer_version_migrated_and_says_so_once(tmp_path, caplog):
    """Found from outside: /ready said "run the migrations" (503) on a Base B a newer version had
    migrated: a rolling deploy, which migrates first, took every old replica out of service (and
    an image rolled back could not serve)."""
    url = f"sqlite:///{tmp_path}/newer.sqlite"
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed0099'"))  # a revision of tomorrow
    engine.dispose()
    app = create_app(make_settings(url))
    answers = [app.test_client().get("/ready") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert answers[0].json["schema"] == f"f00dfeed0099, newer than this version's {migrate.head_revision()}"
    said = [r.getMessage() for r in caplog.records if "which this version does not know" in r.getMessage()]
    assert len(said) == 1
    app.extensions["base_b_engine"].dispose()


NEWER_ON_DISK = """
import shutil, subprocess, sys
from pathlib import Path
copy, url = Path(sys.argv[1]), sys.argv[2]
sys.path.insert(0, str(copy))
from api_service import create_app, migrate
from tests.api.conftest import make_settings
migrate.upgrade(url)
app = create_app(make_settings(url))  # the API runs: its code's migrations end at the head
versions = copy / "api_service" / "migrations" / "versions"
head = migrate.head_revision()
(versions / "9999_tomorrow.py").write_text(
    f"revision = 'f00d9999'\\ndown_revision = '{head}'\\ndef upgrade():\\n    pass\\ndef downgrade():\\n    pass\\n"
)
# `git pull` and `flask migrate` by the new code, beside the old process
code = f"import sys; sys.path.insert(0, {str(copy)!r}); from api_service import migrate; migrate.upgrade({url!r})"
subprocess.run([sys.executable, "-c", code], check=True)
answer = app.test_client().get("/ready")
print(answer.status_code, answer.json.get("schema") or answer.json.get("detail"))
app.extensions["base_b_engine"].dispose()
"""


def test_a_running_api_is_ready_after_a_newer_version_on_disk_migrated_base_b(tmp_path):
    """Found from outside: `git pull` and the new code's migration beside a running API: it read the
    new migration from disk as one it knew, and /ready said "run the migrations" (503), which could
    not help. The code's migrations are read once, at start."""
    copy = tmp_path / "code"
    shutil.copytree(REPO / "api_service", copy / "api_service", ignore=shutil.ignore_patterns("__pycache__"))
    for package in ("tests/__init__.py", "tests/api/__init__.py", "tests/api/conftest.py"):
        (copy / package).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / package, copy / package)
    url = f"sqlite:///{tmp_path}/base_b.sqlite"
    ran = subprocess.run(
        [sys.executable, "-c", NEWER_ON_DISK, str(copy), url], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert ran.stdout.strip().splitlines()[-1] == f"200 f00d9999, newer than this version's {migrate.head_revision()}"


def test_an_empty_base_b_is_said_so(tmp_path):
    app = create_app(make_settings(f"sqlite:///{tmp_path}/empty.sqlite"))
    detail = app.test_client().get("/ready").json["detail"]
    assert (
        detail
        == f"Base B's schema is not there (an empty database), not at {migrate.head_revision()}: run the migrations"
    )
    app.extensions["base_b_engine"].dispose()


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def test_openapi_documents_every_route_and_method(app, client):
    document = client.get("/openapi.json").json
    assert document["openapi"].startswith("3.1")
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item if method != "parameters"
    }
    served = {
        (_openapi_path(rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in ("static", "service.docs", "service.docs_static", "service.docs_start")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served == documented


def test_openapi_write_operations_declare_bearer_auth(client):
    document = client.get("/openapi.json").json
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("post", "put", "delete"):
                assert operation["security"] == [{"bearerAuth": []}], (method, path)


def test_the_documents_server_is_where_the_request_reached_the_api(client):
    """Under a mount prefix, generated clients and Swagger UI must call the prefix, not the host's root."""
    assert client.get("/openapi.json").json["servers"][0]["url"] == "/"
    mounted = client.get("/openapi.json", environ_overrides={"SCRIPT_NAME": "/api"})
    assert mounted.json["servers"][0]["url"] == "/api"
    page = client.get("/docs", environ_overrides={"SCRIPT_NAME": "/api"})
    assert b'data-spec="/api/openapi.json"' in page.data


def test_docs_page_serves_swagger_ui_and_its_assets(client):
    page = client.get("/docs")
    assert page.status_code == 200 and b'data-spec="/openapi.json"' in page.data
    script = client.get("/docs/static/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.data) > 100_000
    start = client.get("/docs/swagger-start.js")
    assert start.status_code == 200 and b"SwaggerUIBundle" in start.data


def test_the_docs_page_escapes_the_mount_prefix_and_runs_only_its_own_scripts(client):
    """Found from outside: a SCRIPT_NAME of `/a"</script><script>alert(1)</script>` was on the page as is."""
    hostile = '/a"</script><script>alert(1)</script>'
    page = client.get("/docs", environ_overrides={"SCRIPT_NAME": hostile})
    assert page.status_code == 200
    assert b"<script>alert(1)" not in page.data and b'"</script>' not in page.data
    assert page.data.count(b"<script") == 2 and b"<script>" not in page.data  # files only, no inline script
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy


def test_metrics_count_requests_by_route_template_and_bulk_outcomes(client):
    client.get("/articles/123456")
    client.post(
        "/articles/bulk",
        json=[{"source_id": 1, "source_updated_at": "2024-01-01T00:00:00Z", "title": "t"}, {"source_id": "bad"}],
        headers=AUTH,
    )
    text = client.get("/metrics").data.decode()
    route = r'api_http_request_duration_seconds_count\{[^}]*status="404"[^}]*url_rule="/articles/<int:row_id>"\} 1'
    assert re.search(route, text)
    assert "/articles/123456" not in text  # raw ids never become label values
    for outcome in ("inserted", "rejected"):
        assert (
            sample(text, "api_bulk_records_total", entity="articles", path="api", operation="upsert", outcome=outcome)
            == 1
        )


def test_probes_are_not_counted_as_traffic(client):
    """An outside probe: /ready, which orchestrators call every few seconds, counted in the request
    rate and the latency percentiles."""
    for path in ("/ready", "/health"):
        client.get(path)
    metrics = client.get("/metrics").data.decode()
    assert 'url_rule="/ready"' not in metrics and 'url_rule="/health"' not in metrics


def test_metrics_count_bulk_records_by_sync_path_from_a_bounded_set(client):
    def send(source_id: int, path: str) -> None:
        record = {"source_id": source_id, "source_updated_at": "2024-01-01T00:00:00Z", "title": "t"}
        answer = client.post("/articles/bulk", json=[record], headers={**AUTH, "X-Sync-Path": path})
        assert answer.status_code == 200

    send(1, "batch")
    send(2, "Events")
    send(3, "anything-else")  # a client cannot make up label values
    text = client.get("/metrics").data.decode()
    for path in ("batch", "events", "api"):
        assert (
            sample(text, "api_bulk_records_total", entity="articles", path=path, operation="upsert", outcome="inserted")
            == 1
        )
        assert time.time() - sample(text, "api_bulk_last_write_timestamp_seconds", entity="articles", path=path) < 600
    assert "anything-else" not in text


def test_the_last_write_gauge_moves_only_when_a_request_changed_rows(client):
    """An outside probe: it moved for requests whose records were all unchanged or all rejected, so a
    pipeline whose every record is refused looked fresh."""
    record = {"source_id": 1, "source_updated_at": "2024-01-01T00:00:00Z", "title": "t"}

    def send(*records: dict) -> float | None:
        assert (
            client.post("/articles/bulk", json=list(records), headers={**AUTH, "X-Sync-Path": "batch"}).status_code
            == 200
        )
        text = client.get("/metrics").data.decode()
        return sample(text, "api_bulk_last_write_timestamp_seconds", entity="articles", path="batch")

    written = send(record)
    time.sleep(0.01)
    assert send(record) == send({**record, "source_id": 0}) == written  # unchanged; rejected
    assert send({**record, "source_updated_at": "2024-02-01T00:00:00Z"}) > written  # updated


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition (label order does not matter)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


@pytest.mark.postgres
def test_a_connection_lost_after_the_answer_is_dropped_not_turned_into_an_error(postgres_database):
    """PostgreSQL ends the request's session after its last statement: closing the connection at
    teardown then fails, which must not become an error after the answer (gunicorn's bare 500)."""
    migrate.upgrade(postgres_database)
    app = create_app(make_settings(postgres_database))
    with app.app_context():
        conn = db.get_connection()
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(make_url(postgres_database).set(drivername="postgresql").render_as_string(False)) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    # the app context ended without raising; the next request gets a new, working connection
    assert app.test_client().get("/articles").status_code == 200
    app.extensions["base_b_engine"].dispose()


def _date_time(schema: dict) -> bool:
    return schema.get("format") == "date-time" or any(map(_date_time, schema.get("anyOf", [])))


def test_every_date_time_a_request_carries_says_one_without_an_offset_is_utc(client):
    """The API reads 2024-01-01T00:00:00 as UTC on purpose: a client must learn it from the document."""
    document = client.get("/openapi.json").json
    components = document["components"]["schemas"]
    noted = []
    for item in document["paths"].values():
        for operation in (op for op in item.values() if isinstance(op, dict)):
            noted += [p for p in operation.get("parameters", []) if _date_time(p["schema"])]
            for media in operation.get("requestBody", {}).get("content", {}).values():
                items = media["schema"].get("items", {})
                for branch in items.get("anyOf", [items]):  # a bulk item: the record, or any other value
                    properties = components[branch["$ref"].rpartition("/")[2]] if "$ref" in branch else branch
                    noted += [prop for prop in properties.get("properties", {}).values() if _date_time(prop)]
    assert len(noted) > 10
    assert all("without an offset is read as UTC" in holder["description"] for holder in noted), noted


def test_bulk_operations_say_invalid_items_are_rejected_in_a_200(client):
    document = client.get("/openapi.json").json
    for path in ("/articles/bulk", "/articles/bulk/delete", "/articles/bulk/delete/plan"):
        description = document["paths"][path]["post"]["description"]
        assert "breaks the record schema" in description and "200" in description and "`rejected`" in description


def test_a_bucket_key_sum_warns_int64_clients(client):
    """A sum of keys passes 2**63: a client that reads it into an int64 overflows (wire shape unchanged)."""
    key_sum = client.get("/openapi.json").json["components"]["schemas"]["SyncBucket"]["properties"]["key_sum"]
    assert key_sum["type"] == "integer" and "format" not in key_sum
    assert "64 bits" in key_sum["description"] and "not an int64" in key_sum["description"]


def test_not_ready_when_base_b_refuses_the_password_says_it_is_no_outage(password_base_b, caplog):
    """A wrong password is no Base B away: /ready says it was refused (Retry-After 30, as for a
    migration), and the log says what to fix once, naming neither password."""
    app = create_app(make_settings(password_base_b.wrong_password_url))
    for _ in range(2):
        response = app.test_client().get("/ready")
        assert response.status_code == 503 and response.headers["Retry-After"] == "30"
        assert "Base B refused the API" in response.json["detail"] and "127.0.0.1" not in response.json["detail"]
    app.extensions["base_b_engine"].dispose()
    said = [r for r in caplog.records if "not ready" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "ERROR", said
    assert "password authentication failed" in said[0].getMessage() and "ALTER ROLE" in said[0].getMessage()
    assert password_base_b.wrong_password not in caplog.text and "first-password" not in caplog.text


@pytest.mark.parametrize(
    ("grant", "said"),
    [("NOLOGIN", "is not permitted to log in"), ("LOGIN", "permission denied for database")],
    ids=["role without login", "no CONNECT privilege"],
)
def test_not_ready_when_base_b_refuses_the_role(make_postgres_database, grant, said, caplog):
    url = make_url(make_postgres_database())
    role = f"{url.database}_{grant.lower()}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" {grant}')
        conn.exec_driver_sql(f'REVOKE CONNECT ON DATABASE "{url.database}" FROM PUBLIC')
    app = create_app(make_settings(url.set(username=role).render_as_string(hide_password=False)))
    try:
        response = app.test_client().get("/ready")
    finally:
        app.extensions["base_b_engine"].dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
        admin.dispose()
    assert response.status_code == 503 and response.headers["Retry-After"] == "30", response.json
    assert any(said in r.getMessage() and r.levelname == "ERROR" for r in caplog.records), caplog.text
