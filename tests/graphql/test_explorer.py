"""GraphiQL at GET /graphql is served whole by the service: its page names no other host, its files are ours."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from graphql import get_introspection_query

import graphql_service
from graphql_service import create_app
from graphql_service.settings import GraphQLSettings
from testbed.servers import free_port

CONTENT_TYPES = {"script": ("text/javascript", "application/javascript"), "link": ("text/css",)}
VENDORED = Path(graphql_service.__file__).parent / "static" / "graphiql"


class Assets(HTMLParser):
    """The URLs a page loads (`<script src>`, `<link href>`), its title and its inline scripts. A
    `data:` URL loads nothing: it is kept apart (`data_urls`)."""

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.data_urls: list[str] = []
        self.inline_scripts: list[str] = []
        self.title = ""
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if (attributes.get("src") or attributes.get("href") or "").startswith("data:"):
            self.data_urls.append(attributes.get("src") or attributes["href"])
        elif tag == "script" and attributes.get("src"):
            self.urls.append(("script", attributes["src"]))
        elif tag == "link" and attributes.get("href"):
            self.urls.append(("link", attributes["href"]))
        elif tag == "script" and attributes.get("type") != "application/json":
            self._in = "script"
        if tag == "title":
            self._in = "title"

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
        elif self._in == "script" and data.strip():
            self.inline_scripts.append(data)

    def handle_endtag(self, tag):
        self._in = None


def explorer_app(**settings):
    # The page and its files need no REST API.
    return create_app(GraphQLSettings(rest_api_url=f"http://127.0.0.1:{free_port()}", timeout=1, **settings))


def get_page(client):
    response = client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = Assets()
    page.feed(response.get_data(as_text=True))
    return response, page


@pytest.mark.parametrize("introspection", [True, False])
def test_the_page_loads_only_files_the_service_serves(introspection):
    client = explorer_app(introspection=introspection).test_client()
    response, page = get_page(client)
    html = response.get_data(as_text=True)
    assert not re.search(r"https?://", html), "the page names another host"
    assert page.title == "Base B GraphQL" and "Loading Base B GraphQL" in html
    assert {kind for kind, _ in page.urls} == {"script", "link"}
    for kind, url in page.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/graphql/static/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.mimetype in CONTENT_TYPES[kind], (url, asset.mimetype)
        assert asset.cache_control.max_age >= 86400, url  # URLs carry the content's hash
        assert b"https://esm.sh" not in asset.data and b"unpkg.com" not in asset.data, url
    assert not page.inline_scripts  # the policy below allows no inline script
    assert page.data_urls == ["data:,"]  # the empty icon: no /favicon.ico asked (a 404, a console error)
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy


def test_the_page_loads_react_graphiql_and_its_styles_from_the_vendored_files():
    client = explorer_app().test_client()
    _, page = get_page(client)
    paths = [urlsplit(url).path for _, url in page.urls]
    scripts = [urlsplit(url).path.rsplit("/", 1)[1] for kind, url in page.urls if kind == "script"]
    # UMD globals: React, then ReactDOM, then GraphiQL, then the code that renders it.
    assert scripts == ["react.production.min.js", "react-dom.production.min.js", "graphiql.min.js", "explorer.js"]
    assert "/graphql/static/graphiql/graphiql.min.css" in paths
    for name in ("graphiql.min.js", "graphiql.min.css", "react.production.min.js", "react-dom.production.min.js"):
        assert client.get(f"/graphql/static/graphiql/{name}").data == (VENDORED / name).read_bytes()
    for name in ("README.md", "LICENSE.graphiql", "LICENSE.react", "LICENSE.react-dom"):
        assert (VENDORED / name).is_file()


def test_the_page_points_graphiql_at_the_endpoint():
    response, _ = get_page(explorer_app().test_client())
    config = re.search(r'<script type="application/json" id="graphiql-config">(.*?)</script>', response.text, re.S)
    assert json.loads(config.group(1))["url"] == "/graphql"


def test_asset_urls_change_with_the_content_and_unknown_files_are_404():
    client = explorer_app().test_client()
    _, page = get_page(client)
    assert all(re.search(r"\?v=[0-9a-f]{16}$", url) for _, url in page.urls)
    assert client.get("/graphql/static/graphiql/nope.js").status_code == 404
    assert client.get("/graphql/static/../__init__.py").status_code == 404
    assert client.get("/static/explorer.js").status_code == 404  # only under /graphql/static


def test_graphiqls_introspection_query_passes_the_default_limits():
    settings = GraphQLSettings(rest_api_url="http://127.0.0.1:1")
    assert settings.max_depth == 8 and settings.introspection
    client = explorer_app().test_client()
    # GraphiQL 3 asks with these options; the plain query is what most other clients send.
    for query in (
        get_introspection_query(),
        get_introspection_query(descriptions=True, input_value_deprecation=True, schema_description=True),
    ):
        response = client.post("/graphql", json={"query": query})
        assert response.status_code == 200, response.json
        schema = response.json["data"]["__schema"]
        assert schema["queryType"]["name"] == "Query"
        assert {"Article", "Employee"} <= {t["name"] for t in schema["types"]}


# What browsers send for a page they navigate to (Firefox, Chrome).
BROWSER_ACCEPTS = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
    "application/signed-exchange;v=b3;q=0.7",
)


@pytest.mark.parametrize(
    "accept", [None, "*/*", "application/json", "text/html, application/json", "text/html;q=0.5, */*"]
)
def test_a_get_that_does_not_prefer_html_runs_the_query(accept):
    """GraphQL over HTTP: no Accept, or */*, means application/json. Both got the page (200 text/html),
    so `curl` and gql's GET transport (requests sends */*) read "Not a JSON answer"."""
    headers = {"Accept": accept} if accept is not None else {}
    response = explorer_app().test_client().get("/graphql?query={ping}", headers=headers)
    assert (response.status_code, response.mimetype) == (200, "application/json"), response.data[:80]
    assert response.json == {"data": {"ping": True}}


@pytest.mark.parametrize("accept", BROWSER_ACCEPTS)
def test_a_browser_still_gets_the_page(accept):
    client = explorer_app().test_client()
    for url in ("/graphql", "/graphql?query={ping}"):
        response = client.get(url, headers={"Accept": accept})
        assert (response.status_code, response.mimetype) == (200, "text/html"), url
        assert "Content-Security-Policy" in response.headers
