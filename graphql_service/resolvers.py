"""Resolvers: thin calls to the REST API, one set per entity, built from the same names."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ariadne import MutationType, QueryType, ScalarType
from graphql import GraphQLResolveInfo

from graphql_service.entity_schema import ENTITY_NAMES
from graphql_service.errors import UserInputError

query = QueryType()
mutation = MutationType()
datetime_scalar = ScalarType("DateTime")
date_scalar = ScalarType("Date")
decimal_scalar = ScalarType("Decimal")


@query.field("ping")
def resolve_ping(*_):
    return True


@datetime_scalar.value_parser
def parse_datetime(value: Any) -> str:
    try:
        return datetime.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise UserInputError(f"{value!r} is not an ISO 8601 timestamp") from None


@date_scalar.value_parser
def parse_date(value: Any) -> str:
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise UserInputError(f"{value!r} is not an ISO 8601 date") from None


@decimal_scalar.value_parser
def parse_decimal(value: Any) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise UserInputError(f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise UserInputError(f"{value!r} is not a finite number")
    return str(number)


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


def bind_entity(rest_name: str, singular: str, plural: str) -> None:
    """getX/getXs/createX/updateX/deleteX for one REST resource, e.g. ("articles", "Article", "Articles")."""

    @query.field(f"get{plural}")
    def resolve_list(_, info: GraphQLResolveInfo, limit: int = 50, after: int | None = None, filter=None):
        params = {"limit": limit, **_snake(filter)}
        if after is not None:
            params["after"] = after
        return info.context["client"].request("GET", f"/{rest_name}", params=params)

    @query.field(f"get{singular}")
    def resolve_one(_, info: GraphQLResolveInfo, id: str):
        return info.context["loader"].load(rest_name, _row_id(id))

    @mutation.field(f"create{singular}")
    def resolve_create(_, info: GraphQLResolveInfo, input: dict):
        return info.context["client"].request("POST", f"/{rest_name}", json=_snake(input), token=info.context["token"])

    @mutation.field(f"update{singular}")
    def resolve_update(_, info: GraphQLResolveInfo, id: str, input: dict):
        path = f"/{rest_name}/{_row_id(id)}"
        return info.context["client"].request("PUT", path, json=_snake(input), token=info.context["token"])

    @mutation.field(f"delete{singular}")
    def resolve_delete(_, info: GraphQLResolveInfo, id: str):
        info.context["client"].request("DELETE", f"/{rest_name}/{_row_id(id)}", token=info.context["token"])
        return True


for names in ENTITY_NAMES:
    bind_entity(names.rest, names.singular, names.plural)
BINDABLES = [query, mutation, datetime_scalar, date_scalar, decimal_scalar]
