"""REST API over Base B: CRUD for clients, bulk upsert and delete for the pipelines."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from api_service.settings import ApiSettings


def create_app(settings: ApiSettings | None = None) -> Flask:
    """The app factory: the one place an API app is built. Its parts are imported here, as in
    Flask's tutorial app, so importing a submodule (`api_service.migrate`) does not load the app."""
    from flask import Flask
    from werkzeug.routing import IntegerConverter

    class AsciiInt(IntegerConverter):
        regex = r"[0-9]+"

    import http_headers
    from api_service import db, metrics, migrate, problems
    from api_service.blueprints import resources, service
    from api_service.cli import register
    from api_service.openapi import build_document
    from api_service.settings import ApiSettings
    from baseab_contract.entities import ENTITIES
    from http_methods import refuse_unknown_methods
    from http_paths import refuse_empty_segments

    settings = settings or ApiSettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask(__name__)
    app.url_map.converters["int"] = AsciiInt  # \d (werkzeug's) also matches other scripts' digits: /articles/١٢٣
    # /articles//1 is no route: a 404 problem document, not a 308 HTML redirect the document cannot list.
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.extensions["api_settings"] = settings
    app.extensions["openapi_document"] = build_document(settings)

    problems.init_app(app)
    http_headers.init_app(app)
    app.wsgi_app = refuse_empty_segments(
        refuse_unknown_methods(app, problems.problem_response), problems.problem_response
    )
    db.init_app(app, settings)
    metrics.init_app(app, settings)
    app.register_blueprint(service.bp)
    for entity in ENTITIES.values():
        app.register_blueprint(resources.make_blueprint(entity))

    register(app)
    migrate.head_revision()  # this code's migrations, read now: /ready compares Base B's with them
    return app


def warn_if_read_only(app: Flask) -> None:
    """Said where the API serves (api_service.wsgi), not in create_app: `flask --app api_service purge`
    and `migrate` build the app for its database and commands only, and the warning in the housekeeping
    container's every purge read as a misconfiguration of a process that serves no request."""
    if not app.extensions["api_settings"].tokens:
        app.logger.warning("API_TOKENS is empty: every write will be refused with 403")
