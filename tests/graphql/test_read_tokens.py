"""Reads through GraphQL carry the caller's credentials, as writes do: with API_READ_REQUIRES_TOKEN,
the REST API judges the caller's token on every read. Found reading the code: a list or page was read
with GRAPHQL_SERVICE_TOKEN whatever the caller sent, so a caller whose token the REST API refuses
(FORBIDDEN on getArticle) read every row through getArticles."""

from __future__ import annotations

import pytest

from graphql_service import create_app
from testbed.servers import api_server
from tests.graphql.conftest import TOKEN, make_settings


@pytest.fixture(scope="module")
def guarded_api(rest_api, postgres_database, tmp_path_factory) -> str:
    """A second REST API process on the same Base B that requires a token for reads too."""
    log = tmp_path_factory.mktemp("guarded") / "api.log"
    with api_server(postgres_database, TOKEN, log, env={"API_READ_REQUIRES_TOKEN": "true"}) as base:
        yield base


READS = ["{ getArticles { id } }", "{ getArticlesPage { items { id } } }", '{ getArticle(id: "1") { id } }']


@pytest.mark.parametrize("query", READS)
def test_a_read_with_a_refused_token_is_refused_whatever_the_field(guarded_api, query):
    client = create_app(make_settings(guarded_api, service_token=TOKEN)).test_client()
    answer = client.post("/graphql", json={"query": query}, headers={"Authorization": "Bearer wrong"}).json
    assert [error["extensions"]["code"] for error in answer["errors"]] == ["FORBIDDEN"], answer


def test_a_caller_with_no_authorization_reads_with_the_service_token(guarded_api):
    client = create_app(make_settings(guarded_api, service_token=TOKEN)).test_client()
    answer = client.post("/graphql", json={"query": "{ getArticles { id } getArticlesPage { nextAfterId } }"}).json
    assert answer == {"data": {"getArticles": [], "getArticlesPage": {"nextAfterId": None}}}
