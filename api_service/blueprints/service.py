"""Service routes: liveness, readiness, the OpenAPI document and its docs page."""

from __future__ import annotations

import html
from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, Response, current_app, request, send_from_directory, url_for
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api_service import db_errors, migrate
from api_service.backends import backend_of
from api_service.blueprints.resources import json_response
from api_service.db import get_connection
from api_service.problems import REFUSED_DETAIL, Problem

bp = Blueprint("service", __name__)
_last_unready: dict[str, str] = {}  # the reason /ready last logged: a probe every few seconds logs it once

# Swagger UI 5's files as the flask-swagger-ui wheel ships them (5.x reads OpenAPI 3.1; 4.x cannot).
SWAGGER_UI_DIST = Path(flask_swagger_ui.__file__).parent / "dist"
# The page runs no inline script (its Content-Security-Policy allows none): swagger-start.js reads the
# document's URL from data-spec. Every URL inserted is HTML-escaped: the mount prefix is in each.
# The empty data: icon spares the browser a /favicon.ico request (a 404 and a console error).
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Base B REST API</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="{css}"></head>
<body><div id="swagger-ui" data-spec="{spec}"></div>
<script src="{js}"></script>
<script src="{start}"></script>
</body></html>"""
# validatorUrl null: the page would otherwise ask validator.swagger.io about the document.
DOCS_START = """SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.spec,
  dom_id: "#swagger-ui",
  validatorUrl: null,
});
"""
# The browser refuses any script but the page's own files, and any load or request off the API.
# Swagger UI sets inline styles, and its stylesheet's icons are data: URLs.
DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


@bp.get("/health")
def health():
    return json_response({"status": "ok"})


@bp.get("/ready")
def ready():
    try:
        conn = get_connection()
        conn.execute(text("SELECT 1"))
        revision = migrate.current_revision(conn)
        unready = backend_of(conn).unready(conn)
    except SQLAlchemyError as exc:
        # The reason (database or role missing, password refused, host away) goes to the log once per
        # change, not to this unauthenticated answer, which would show Base B's host and names.
        # All its lines: libpq's first says what failed, a DETAIL or hint after it why.
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        remedy = db_errors.refusal(exc)
        if _last_unready.get("reason") != reason:
            if remedy is not None:  # no retry ends it: an error, with what to fix
                current_app.logger.error("not ready: Base B refused the API's connection: %s; %s", reason, remedy)
            else:
                current_app.logger.warning("not ready: Base B is not reachable: %s", reason)
            _last_unready["reason"] = reason
        if remedy is not None:
            raise Problem(503, REFUSED_DETAIL, headers={"Retry-After": "30"}) from None
        detail = f"Base B is not reachable: {type(exc).__name__} (the API's log says why)"
        raise Problem(503, detail, headers={"Retry-After": "1"}) from None
    _last_unready.pop("reason", None)
    if unready:
        raise Problem(503, unready, headers={"Retry-After": "30"})
    head = migrate.head_revision()
    if revision != head and (revision is None or migrate.known_revision(revision)):
        held = f"is at {revision}" if revision else "is not there (an empty database)"
        detail = f"Base B's schema {held}, not at {head}: run the migrations"
        raise Problem(503, detail, headers={"Retry-After": "30"})  # as a request meeting the old schema is told
    if revision != head:
        # A newer version migrated Base B (a rolling deploy migrates first; or this code was rolled
        # back): its replicas still serve the tables they know, as migrations add before they remove.
        # "Run the migrations" would be wrong, and unready replicas would take the service down.
        if _last_unready.get("newer") != revision:
            current_app.logger.warning(
                "Base B's schema is at %s, which this version does not know (its newest is %s): a newer version "
                "migrated it; serving the tables this version knows",
                revision,
                head,
            )
            _last_unready["newer"] = revision
        return json_response({"status": "ready", "schema": f"{revision}, newer than this version's {head}"})
    return json_response({"status": "ready"})


@bp.get("/openapi.json")
def openapi_document():
    # Its server is where this request reached the API: under a mount prefix (SCRIPT_NAME=/api) a
    # client generated from the document, and Swagger UI, call /api/..., not the host's root.
    served = {"url": request.script_root or "/", "description": "the server that serves this document"}
    return json_response({**current_app.extensions["openapi_document"], "servers": [served]})


@bp.get("/docs")
def docs():
    urls = {
        "css": url_for("service.docs_static", filename="swagger-ui.css"),
        "js": url_for("service.docs_static", filename="swagger-ui-bundle.js"),
        "start": url_for("service.docs_start"),
        "spec": url_for("service.openapi_document"),
    }
    page = DOCS_PAGE.format(**{name: html.escape(url, quote=True) for name, url in urls.items()})
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
    return response


@bp.get("/docs/swagger-start.js")
def docs_start():
    return Response(DOCS_START, mimetype="text/javascript")


@bp.get("/docs/static/<path:filename>")
def docs_static(filename: str):
    return send_from_directory(SWAGGER_UI_DIST, filename)
