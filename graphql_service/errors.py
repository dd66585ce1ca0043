"""REST failures and query problems as GraphQL errors with a code in `extensions`."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from ariadne import format_error
from graphql import GraphQLError

from graphql_service.rest_client import AnswerTooLarge, RequestTimedOut, RestError, WriteOutcomeUnknown

log = logging.getLogger(__name__)

_CODES = {
    400: "BAD_USER_INPUT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    412: "CONFLICT",  # the row changed between a flat update's read and its write
    413: "BAD_USER_INPUT",
    414: "BAD_USER_INPUT",
    415: "BAD_USER_INPUT",
    431: "BAD_USER_INPUT",
    422: "BAD_USER_INPUT",
}


class UserInputError(ValueError):
    """Input the service refuses before calling the REST API."""


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _field_errors(errors: list[dict]) -> list[dict]:
    # REST names fields in snake_case (and list positions as numbers); GraphQL clients see camelCase.
    return [
        {"field": ".".join(camel(part) for part in re.split(r"\.", e.get("field", ""))), "message": e.get("message")}
        for e in errors
    ]


class _RequestErrors(logging.LoggerAdapter):
    """For Ariadne, which logs every error of a request at ERROR with a traceback: a client's mistake
    (an unknown id, a refused value, a query over the limits) is no failure of the service, so those
    lines go to DEBUG; `error_formatter` logs the unexpected ones at ERROR."""

    def error(self, msg, *args, **kwargs):
        kwargs.pop("exc_info", None)
        self.logger.debug(msg, *args, **kwargs)


REQUEST_ERRORS = _RequestErrors(logging.getLogger("graphql_service.requests"), {})


ABORTED = (
    "Validation aborted: the query is too large to check (a field selected many times over, or "
    "nested deeper than the checks go); select each field once, and alias the ones you repeat"
)


def _request_error_code(message: str) -> str:
    """The conventional code of an error the document or the variables caused (Apollo's names): a
    document that does not parse, a variable value that does not coerce (for every scalar, as the
    service's own scalars' refusals are), or any other rule of validation."""
    if message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if message.startswith("Variable '$") and ("invalid value" in message or "was not provided" in message):
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


def _without_cause(error: GraphQLError, formatted: dict, extensions: dict) -> None:
    """The code of an error graphql-core raised itself (no exception of ours or of the REST API under it)."""
    if error.path is not None:
        # Raised completing a field (a value its type cannot carry, a list that is not one): the
        # service's fault, not the client's. The message names only the value or the field: kept.
        path = ".".join(map(str, error.path))
        log.error("resolver failed at %s: %s", path, error.message, exc_info=error.original_error or error)
        extensions["code"] = "INTERNAL_SERVER_ERROR"
        return
    extensions["code"] = _request_error_code(error.message)
    if error.message == "Validation aborted.":  # graphql-core's own limits, which say no more
        formatted["message"] = ABORTED


def _rest_error(original: RestError, formatted: dict, extensions: dict) -> None:
    """The code and message of a REST call that failed: the REST API's answer, or none."""
    if isinstance(original, WriteOutcomeUnknown):
        # Not SERVICE_UNAVAILABLE, which clients retry: sent again, a create made a second row.
        extensions["code"] = "WRITE_OUTCOME_UNKNOWN"
        formatted["message"] = (
            f"{original.detail}: read the row (or list the rows) before sending the write again,"
            " or it may be applied twice"
        )
    elif isinstance(original, AnswerTooLarge):
        # Not SERVICE_UNAVAILABLE: the same query fails again; a smaller one passes.
        extensions["code"] = "RESPONSE_TOO_LARGE"
        formatted["message"] = (
            f"the answer would pass {original.limit} bytes read from the REST API (GRAPHQL_MAX_REST_BYTES):"
            " ask for fewer rows (a smaller `limit`, or fewer list and row fields; a row is read whole,"
            " whatever fields it selects)"
        )
    elif isinstance(original, RequestTimedOut):
        extensions["code"] = "SERVICE_UNAVAILABLE"
        formatted["message"] = (
            "the request ran out of time (GRAPHQL_REQUEST_TIMEOUT_SECONDS) before this field was resolved:"
            " the REST API is slow or not answering; ask for less or try again later"
        )
    elif original.status == 0 or original.status >= 500:
        extensions["code"] = "SERVICE_UNAVAILABLE"
        formatted["message"] = "the REST API is unavailable; try again later"
    else:
        extensions["code"] = _CODES.get(original.status, "BAD_REQUEST")
        extensions["status"] = original.status
        if original.status in (414, 431):  # the REST call's own request line or headers: the arguments
            formatted["message"] = "the arguments are too long for one REST call: shorten the filter values"
        if original.status == 412:  # a flat update's If-Match: the REST API names an ETag no client here saw
            formatted["message"] = (
                "the row changed after this update read it, and was not overwritten:"
                " read the row again and send the update again to apply it to the new version"
            )
        if original.errors:
            extensions["fieldErrors"] = _field_errors(original.errors)
        if original.status == 422 and _REST_REQUEST_PARTS.search(original.detail):
            formatted["message"] = _about_arguments(original.status, extensions.get("fieldErrors") or [])


# A REST refusal of values that speaks of its own request's parts ("the query string has invalid
# fields"): a GraphQL caller sent neither; the service built them from the arguments, which the
# message names. Only a 422: a 413's limit, a 408's stall or a 400 of a body the service built itself
# say something else, kept as the REST API says it (review).
_REST_REQUEST_PARTS = re.compile(r"\b(query string|body)\b")


def _about_arguments(status: int, field_errors: list[dict]) -> str:
    if not field_errors:
        return f"the REST API refused the call made of the arguments ({status}): check the arguments' values"
    return "invalid arguments: " + "; ".join(f"{e['field']}: {e['message']}" for e in field_errors)


def error_formatter(error: GraphQLError, debug: bool = False) -> dict:
    """Ariadne's formatter plus a code; unexpected errors say nothing of the internals."""
    formatted = format_error(error, debug)
    original = error.original_error
    while isinstance(original, GraphQLError):  # coercion errors wrap the scalar parser's error
        original = original.original_error
    # A copy: `formatted` shares the error's own extensions, and the query cache reuses validation errors.
    extensions = formatted["extensions"] = dict(formatted.get("extensions") or {})
    if isinstance(original, RestError):
        _rest_error(original, formatted, extensions)
    elif isinstance(original, UserInputError):
        extensions["code"] = "BAD_USER_INPUT"
    elif original is None:
        _without_cause(error, formatted, extensions)
    else:
        log.error("resolver failed", exc_info=original)
        extensions["code"] = "INTERNAL_SERVER_ERROR"
        if not debug:
            formatted["message"] = "internal error"
    return formatted


# graphql-core's hints (" Did you mean 'salary'?", "... to use an inline fragment on 'Employee'?").
_SUGGESTION = re.compile(r"\s*Did you mean\b[^?]*\?")


def error_formatter_for(introspection: bool) -> Callable[..., dict]:
    """The formatter of a service with introspection on or off."""
    return error_formatter if introspection else _ERROR_FORMATTER_WITHOUT_SUGGESTIONS


def without_suggestions(formatter: Callable[..., dict]) -> Callable[..., dict]:
    """`formatter`, its messages without graphql-core's suggestions: with introspection off they
    told the names it hides (found from outside: `{ getEmployee(id: 1) { salar } }` answered "Did
    you mean 'salary'?", and mistyped types, arguments and mutations were named the same way)."""

    def format_without_suggestions(error: GraphQLError, debug: bool = False) -> dict:
        formatted = formatter(error, debug)
        formatted["message"] = _SUGGESTION.sub("", formatted["message"])
        return formatted

    return format_without_suggestions


_ERROR_FORMATTER_WITHOUT_SUGGESTIONS = without_suggestions(error_formatter)
