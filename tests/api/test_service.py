"""Service endpoints: liveness, readiness, the OpenAPI document, the docs page, metrics."""

from __future__ import annotations

import re

from api_service import create_app, migrate
from tests.api.conftest import AUTH, make_settings
from tests.servers import free_port


def test_health_answers_while_the_process_lives(client):
    assert client.get("/health").json == {"status": "ok"}


def test_ready_when_base_b_is_reachable_and_migrated(client):
    assert client.get("/ready").json == {"status": "ready"}


def test_not_ready_when_base_b_is_unreachable():
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2"
    app = create_app(make_settings(url))
    response = app.test_client().get("/ready")
    assert response.status_code == 503 and "not reachable" in response.json["detail"]
    assert app.test_client().get("/health").status_code == 200


def test_not_ready_before_the_migrations(tmp_path):
    app = create_app(make_settings(f"sqlite:///{tmp_path}/empty.sqlite"))
    response = app.test_client().get("/ready")
    assert response.status_code == 503 and "run the migrations" in response.json["detail"]
    migrate.upgrade(f"sqlite:///{tmp_path}/empty.sqlite")
    assert app.test_client().get("/ready").status_code == 200
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
        if rule.endpoint not in ("static", "service.docs", "service.docs_static")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served == documented


def test_openapi_write_operations_declare_bearer_auth(client):
    document = client.get("/openapi.json").json
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("post", "put", "delete"):
                assert operation["security"] == [{"bearerAuth": []}], (method, path)


def test_docs_page_serves_swagger_ui_and_its_assets(client):
    page = client.get("/docs")
    assert page.status_code == 200 and b"SwaggerUIBundle" in page.data and b"/openapi.json" in page.data
    script = client.get("/docs/static/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.data) > 100_000


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
    assert re.search(r'api_bulk_records_total\{entity="articles",operation="upsert",outcome="inserted"\} 1\.0', text)
    assert re.search(r'api_bulk_records_total\{entity="articles",operation="upsert",outcome="rejected"\} 1\.0', text)
