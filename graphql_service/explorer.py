"""GraphiQL at `GET /graphql`, served whole by the service: no script, style or font comes from elsewhere.

The page (templates/graphiql.html) loads GraphiQL 3's self-contained UMD build and React 18, vendored in
static/graphiql/ (see its README.md), and static/explorer.js, which renders GraphiQL with a fetcher that
POSTs to the page's own URL. Asset URLs carry a hash of the file's content, so they are cached for a year.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ariadne.explorer.graphiql import DEFAULT_QUERY
from flask import Blueprint, Response, render_template, request, url_for

STATIC = Path(__file__).parent / "static"
STYLES = ("graphiql/graphiql.min.css", "explorer.css")
# In this order: GraphiQL's UMD build reads the globals React and ReactDOM; explorer.js reads GraphiQL.
SCRIPTS = (
    "graphiql/react.production.min.js",
    "graphiql/react-dom.production.min.js",
    "graphiql/graphiql.min.js",
    "explorer.js",
)
ONE_YEAR = 365 * 24 * 3600
# The browser itself refuses any load or request that would leave the service. GraphiQL and CodeMirror set
# inline styles, and GraphiQL's fonts and icons are data: URLs inside its stylesheet.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)


@functools.cache
def _fingerprint(filename: str) -> str:
    return hashlib.sha256((STATIC / filename).read_bytes()).hexdigest()[:16]


class _ExplorerBlueprint(Blueprint):
    def get_send_file_max_age(self, filename: str | None) -> int | None:
        # The page asks for every file by a URL that changes with the file's content (`?v=`).
        return ONE_YEAR


# What GET /graphql answers in JSON (GraphQL over HTTP's GET); the page is for a client ranking text/html above both.
JSON_TYPES = ("application/json", "application/graphql-response+json")


def _wants_page(accepts) -> bool:
    """A browser's Accept (text/html first, */* below it). A missing Accept or */* means JSON (GraphQL
    over HTTP): best_match took them for the page, so `curl` and gql's GET transport got HTML."""
    return accepts.quality("text/html") > max(accepts.quality(kind) for kind in JSON_TYPES)


def explorer_blueprint(title: str, run_query: Callable[[], Any]) -> Blueprint:
    """`GET /graphql` (the GraphiQL page, titled `title`) and its files under `/graphql/static/`; a
    client that does not rank text/html above JSON gets `run_query()`, the query in the URL run."""
    blueprint = _ExplorerBlueprint(
        "explorer",
        __name__,
        static_folder="static",
        static_url_path="/graphql/static",
        template_folder="templates",
    )

    def asset(filename: str) -> str:
        return url_for("explorer.static", filename=filename, v=_fingerprint(filename))

    @blueprint.get("/graphql")
    def explorer():
        if not _wants_page(request.accept_mimetypes):
            return run_query()  # a GraphQL client: GraphQL over HTTP's GET
        page = render_template(
            "graphiql.html",
            title=title,
            styles=[asset(name) for name in STYLES],
            scripts=[asset(name) for name in SCRIPTS],
            # The page's own URL: the same path answers POST with the GraphQL endpoint.
            config={"url": url_for("explorer.explorer"), "defaultQuery": DEFAULT_QUERY},
        )
        response = Response(page, mimetype="text/html")
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response

    return blueprint
