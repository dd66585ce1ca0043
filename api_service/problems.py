"""One error shape for the whole API: RFC 9457 problem documents (`application/problem+json`)."""

from __future__ import annotations

import logging
from http import HTTPStatus

import orjson
import sqlalchemy.exc
from flask import Flask, Response, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from api_service import db_errors

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An expected failure that becomes a problem document."""

    def __init__(self, status: int, detail: str, errors: list[dict] | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


def field_errors(error: ValidationError, prefix: tuple = ()) -> list[dict[str, str]]:
    """pydantic errors as `{field, message}` pairs, the field as a dotted path."""
    return [
        {"field": ".".join(str(part) for part in (*prefix, *item["loc"])) or "body", "message": item["msg"]}
        for item in error.errors(include_url=False, include_context=False, include_input=False)
    ]


def problem_response(status: int, detail: str, errors: list | None = None, headers: dict | None = None) -> Response:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    response = Response(orjson.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _from_problem(problem: Problem) -> Response:
    return problem_response(problem.status, problem.detail, problem.errors, problem.headers)


def _from_http_exception(exc: HTTPException) -> Response:
    # Keep werkzeug's headers (Allow on 405, WWW-Authenticate on 401) but answer in our shape.
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return problem_response(exc.code or 500, exc.description or "", headers=headers)


def _from_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return problem_response(500, "internal error; the server log has the details")


def _from_database_error(exc: sqlalchemy.exc.SQLAlchemyError) -> Response:
    """503 + Retry-After only for what can succeed when sent again; see db_errors."""
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    kind, known = db_errors.classify(exc), db_errors.cause(exc)
    if kind is db_errors.Kind.TRANSIENT:
        # Base B down, restarting or busy: a 503 the pipelines' client retries after Retry-After.
        if known is not None:  # reachable, and waiting on something that ends (a lock)
            log.warning("Base B: %s: %s", known.setting, first_line)
            return problem_response(503, known.detail, headers={"Retry-After": "1"})
        log.warning("Base B is not reachable: %s", first_line)
        return problem_response(503, "Base B is not reachable; retry shortly", headers={"Retry-After": "1"})
    if kind is db_errors.Kind.REFUSED:
        # Base B answers but refuses the API's credentials, role or database: no retry alone ends it,
        # an operator's fix does (ALTER ROLE, CREATE DATABASE, GRANT) without restarting the API. The
        # pipelines wait for it as for a migration; what to fix goes to the log, not to clients.
        log.error("Base B refused the API: %s; %s", first_line, db_errors.refusal(exc))
        return problem_response(503, REFUSED_DETAIL, headers={"Retry-After": "30"})
    if kind is db_errors.Kind.LIMIT and known is not None:
        # Reachable, but a setting of the DBA cuts this statement however often it is sent: no retry.
        log.error("Base B: the %s of the API's role or database cut a statement: %s", known.setting, first_line)
        return problem_response(500, known.detail)
    if kind is db_errors.Kind.SCHEMA:
        # Not the request's fault, and over once the migrations have run (a deploy runs them first).
        log.error("Base B is not migrated: %s", first_line)
        detail = "Base B is not migrated to this API's schema: run the migrations (flask --app api_service migrate)"
        return problem_response(503, detail, headers={"Retry-After": "30"})
    if kind is db_errors.Kind.CONFLICT:
        log.info("Base B refused a write: %s", first_line)
        return problem_response(409, "the write conflicts with a row Base B holds")
    if kind is db_errors.Kind.DATA and request.method in _WRITES:
        log.info("Base B refused a value: %s", first_line)
        return problem_response(422, "a value of the request cannot be stored in Base B")
    # Deterministic, and not the request's fault: a bug to fix, never worth a retry.
    log.error("Base B failed the request deterministically", exc_info=exc)
    return problem_response(500, "Base B could not answer this request; the server log has the details")


_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REFUSED_DETAIL = (
    "Base B refused the API (the credentials, role or database of its API_DATABASE_URL, or a privilege of "
    "its role): an operator must fix it, retrying alone does not; the API's log says why"
)


def init_app(app: Flask) -> None:
    app.register_error_handler(Problem, _from_problem)
    app.register_error_handler(HTTPException, _from_http_exception)
    app.register_error_handler(sqlalchemy.exc.SQLAlchemyError, _from_database_error)
    app.register_error_handler(Exception, _from_unexpected)
