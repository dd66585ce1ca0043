"""Writes need a configured bearer token; reads are open unless configured otherwise."""

from __future__ import annotations

import pytest

from api_service import create_app
from tests.api.conftest import AUTH, make_settings

WRITES = [
    ("post", "/articles", {"title": "x"}),
    ("put", "/articles/1", {"title": "x"}),
    ("delete", "/articles/1", None),
    ("post", "/articles/bulk", []),
    ("post", "/articles/bulk/delete", []),
    ("post", "/employees", {"first_name": "a", "last_name": "b", "email": "a@b.co"}),
    ("post", "/employees/bulk", []),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_writes_without_a_token_are_401_with_a_challenge(client, method, path, body):
    response = getattr(client, method)(path, json=body)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_writes_with_a_wrong_token_are_403(client, method, path, body):
    response = getattr(client, method)(path, json=body, headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 403


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "test-token-0123456789"])
def test_malformed_authorization_is_401(client, header):
    assert client.post("/articles", json={"title": "x"}, headers={"Authorization": header}).status_code == 401


def test_every_configured_token_may_write(client):
    response = client.post("/articles", json={"title": "x"}, headers={"Authorization": "Bearer second-token"})
    assert response.status_code == 201


def test_reads_are_open_by_default(client):
    assert client.get("/articles").status_code == 200


def test_reads_can_require_a_token(database_url):
    app = create_app(make_settings(database_url, read_requires_token=True))
    client = app.test_client()
    assert client.get("/articles").status_code == 401
    assert client.get("/articles/1", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/articles", headers=AUTH).status_code == 200
    assert client.get("/health").status_code == 200  # probes stay open
    assert client.get("/openapi.json").json["paths"]["/articles"]["get"]["security"] == [{"bearerAuth": []}]
    app.extensions["base_b_engine"].dispose()


def test_without_configured_tokens_every_write_is_refused(database_url):
    app = create_app(make_settings(database_url).model_copy(update={"tokens": ()}))
    response = app.test_client().post("/articles", json={"title": "x"}, headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403
    app.extensions["base_b_engine"].dispose()
