"""Resolvers: thin calls to the REST API, one set per entity, built from the same names."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ariadne import MutationType, ObjectType, QueryType, ScalarType
from graphql import FloatValueNode, GraphQLResolveInfo, IntValueNode, StringValueNode, ValueNode, print_ast

from graphql_service.entity_schema import ENTITY_NAMES, LIST_LIMIT, PAGE_LIMIT
from graphql_service.errors import UserInputError
from graphql_service.exact_json import ExactNumber
from graphql_service.rest_client import RestError

query = QueryType()
mutation = MutationType()
datetime_scalar = ScalarType("DateTime")
date_scalar = ScalarType("Date")
decimal_scalar = ScalarType("Decimal")


@query.field("ping")
def resolve_ping(*_):
    return True


# What the REST API reads, and no more: ASCII digits in ISO 8601's extended forms (Python's own
# parsers also take 20240101, week dates, Arabic-Indic digits and 1_000).
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?", re.ASCII)
_DECIMAL = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", re.ASCII)


@datetime_scalar.value_parser
def parse_datetime(value: Any) -> str:
    try:
        if not (isinstance(value, str) and _DATETIME.fullmatch(value)):
            raise ValueError
        return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
    except ValueError:
        raise UserInputError(f"{str(value)[:40]!r} is not an ISO 8601 timestamp (2024-01-31T12:00:00Z)") from None


@date_scalar.value_parser
def parse_date(value: Any) -> str:
    try:
        if not (isinstance(value, str) and _DATE.fullmatch(value)):
            raise ValueError
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise UserInputError(f"{str(value)[:40]!r} is not an ISO 8601 date (2024-01-31)") from None


@decimal_scalar.value_parser
def parse_decimal(value: Any) -> str:
    # A JSON variable's fraction arrives with its text (exact_json.ExactNumber): read that, not the float.
    if isinstance(value, ExactNumber):
        value = value.text
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if not (isinstance(text, str) and _DECIMAL.fullmatch(text)):
        raise UserInputError(f"{str(value)[:40]!r} is not a decimal number (52000.50)")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise UserInputError(f"{text[:40]!r} is not a decimal number") from None
    # A zero keeps its exponent in Python (0E-16384), which no database column takes: plain zero.
    return str(number if number else Decimal(0))


@decimal_scalar.literal_parser
def parse_decimal_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> str:
    """A literal in the query, read from its own text: the default would go through a float."""
    if isinstance(node, IntValueNode | FloatValueNode | StringValueNode):
        return parse_decimal(node.value)
    raise UserInputError(f"{print_ast(node)[:40]} is not a decimal number (52000.50)")


_ROW_ID = re.compile(r"[0-9]{1,30}")


def _row_id(value: str) -> int:
    # ASCII digits, bounded: str.isdigit() also takes "²" (which int() refuses) and int() refuses text
    # over 4,300 digits; both were ValueErrors, answered as INTERNAL_SERVER_ERROR. Beyond any key, the
    # REST API answers 404.
    if not _ROW_ID.fullmatch(str(value)):
        raise UserInputError(f"id {str(value)[:40]!r} is not a positive integer")
    return int(value)


def _snake(values: dict | None) -> dict:
    """GraphQL's camelCase argument names as the REST API's snake_case ones."""
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): value for key, value in (values or {}).items()}


def _as_arguments(error: RestError, arguments: dict[str, str]) -> RestError:
    """A REST refusal whose per-field errors name the GraphQL arguments that gave those fields
    (`arguments`: REST name -> argument path; a name not in it is the argument's own)."""
    if type(error) is not RestError or not error.errors:
        return error
    errors = [item | {"field": arguments.get(item.get("field"), item.get("field"))} for item in error.errors]
    return RestError(error.status, error.detail, errors)


def _one_form(input: dict | None, flat: dict) -> None:
    if input is not None and flat:
        raise UserInputError("give either `input` or the flat field arguments, not both")


def _merged(
    client, path: str, token: str | None, info: GraphQLResolveInfo, input_type: str, flat: dict
) -> tuple[dict, str | None]:
    """The row's writable fields as stored, with the flat arguments given laid over them (a partial
    update), and the ETag of the version read."""
    if not flat:
        raise UserInputError("give `input` or at least one field to change")
    current, etag = client.request_versioned("GET", path, token=token)
    writable = _snake(dict.fromkeys(info.schema.type_map[input_type].fields))
    return {name: current.get(name) for name in writable} | _snake(flat), etag


def page_type(name: str) -> ObjectType:
    """The bindable of one page type, kept for the schema."""
    page = ObjectType(name)
    BINDABLES.append(page)
    return page


def bind_entity(rest_name: str, singular: str, plural: str) -> None:
    """The root fields of one REST resource, e.g. ("articles", "Article", "Articles").

    The seed system's shapes keep its names: getXs is a list and create/updateX take flat field
    arguments. The paginated getXsPage and the `input` argument serve the same calls beside them.
    """

    def fetch_page(info: GraphQLResolveInfo, limit: int, filter, after: int | None, after_id: str | None) -> dict:
        params = {"limit": limit, **_snake(filter)}
        if after is not None and after_id is not None:
            raise UserInputError("give `afterId` or `after`, not both")
        if after is not None or after_id is not None:
            params["after"] = after if after_id is None else _row_id(after_id)
        # With the caller's token, as a row read (the REST API may require one for reads too), and
        # shared by the request's fields asking for the same page.
        try:
            return info.context["loader"].load_list(rest_name, params)
        except RestError as error:  # its fields are query-string names: the caller gave arguments
            arguments = {"after": "after_id" if after_id is not None else "after"}
            raise _as_arguments(error, arguments | {name: f"filter.{name}" for name in _snake(filter)}) from None

    # `limit: null` is the default, as the cost prices it (left to the REST API, it was its own 50).
    @query.field(f"get{plural}")
    def resolve_list(
        _, info: GraphQLResolveInfo, limit: int | None = LIST_LIMIT, filter=None, after=None, after_id=None
    ):
        # The REST API bounds `limit` (1 to 1000) and answers 422 beyond: BAD_USER_INPUT here.
        return fetch_page(info, LIST_LIMIT if limit is None else limit, filter, after, after_id)["items"]

    @query.field(f"get{plural}Page")
    def resolve_page(
        _, info: GraphQLResolveInfo, limit: int | None = PAGE_LIMIT, filter=None, after=None, after_id=None
    ):
        return fetch_page(info, PAGE_LIMIT if limit is None else limit, filter, after, after_id)

    # A page's cursor as an ID: Base B's ids are 64-bit, and ids pass 2^31 in a table's life (every
    # upsert draws one from the sequence): `nextAfter`, an Int, then failed and a client stopped there.
    @page_type(f"{singular}Page").field("nextAfterId")
    def resolve_next_after_id(page: dict, _info):
        return page.get("next_after")  # ID writes a number as its digits

    @query.field(f"get{singular}")
    def resolve_one(_, info: GraphQLResolveInfo, id: str):
        return info.context["loader"].load(rest_name, _row_id(id))

    @mutation.field(f"create{singular}")
    def resolve_create(_, info: GraphQLResolveInfo, input: dict | None = None, **flat):
        _one_form(input, flat)
        body = _snake(input if input is not None else flat)
        return info.context["client"].request("POST", f"/{rest_name}", json=body, token=info.context["token"])

    @mutation.field(f"update{singular}")
    def resolve_update(_, info: GraphQLResolveInfo, id: str, input: dict | None = None, **flat):
        _one_form(input, flat)
        client, token, path = info.context["client"], info.context["token"], f"/{rest_name}/{_row_id(id)}"
        if input is not None:
            return client.request("PUT", path, json=_snake(input), token=token)
        # Flat arguments read the row and write it back whole (PUT), only if it is still the version
        # read (If-Match): a write to another field between the two calls is a CONFLICT, not overwritten.
        body, etag = _merged(client, path, token, info, f"{singular}Input", flat)
        return client.request("PUT", path, json=body, token=token, if_match=etag)

    @mutation.field(f"delete{singular}")
    def resolve_delete(_, info: GraphQLResolveInfo, id: str):
        info.context["client"].request("DELETE", f"/{rest_name}/{_row_id(id)}", token=info.context["token"])
        return True


BINDABLES: list = [query, mutation, datetime_scalar, date_scalar, decimal_scalar]
for names in ENTITY_NAMES:
    bind_entity(names.rest, names.singular, names.plural)
