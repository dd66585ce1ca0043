"""The GraphQL types and the REST API's OpenAPI schemas agree on fields and nullability."""

from __future__ import annotations

import pytest
from graphql import GraphQLNonNull, GraphQLObjectType, get_named_type

from api_service.openapi import build_document
from api_service.settings import ApiSettings
from graphql_service import SCHEMA
from graphql_service.errors import camel

COMPONENTS = build_document(ApiSettings(database_url="sqlite://"))["components"]["schemas"]


def _nullable(schema: dict) -> bool:
    return any(branch.get("type") == "null" for branch in schema.get("anyOf", [])) or schema.get("type") == "null"


@pytest.mark.parametrize(("graphql_type", "rest_schema"), [("Article", "Article"), ("Employee", "Employee")])
def test_types_match_the_rest_read_schema(graphql_type, rest_schema):
    gql_type = SCHEMA.type_map[graphql_type]
    assert isinstance(gql_type, GraphQLObjectType)
    rest = COMPONENTS[rest_schema]
    assert set(gql_type.fields) == {camel(name) for name in rest["properties"]}
    for name, schema in rest["properties"].items():
        non_null = isinstance(gql_type.fields[camel(name)].type, GraphQLNonNull)
        assert non_null == (name in rest.get("required", []) and not _nullable(schema)), name


@pytest.mark.parametrize(
    ("graphql_input", "rest_schema"), [("ArticleInput", "ArticleWrite"), ("EmployeeInput", "EmployeeWrite")]
)
def test_inputs_match_the_rest_write_schema(graphql_input, rest_schema):
    gql_input = SCHEMA.type_map[graphql_input]
    rest = COMPONENTS[rest_schema]
    assert set(gql_input.fields) == {camel(name) for name in rest["properties"]}
    for name in rest["properties"]:
        required = isinstance(gql_input.fields[camel(name)].type, GraphQLNonNull)
        assert required == (name in rest.get("required", [])), name


@pytest.mark.parametrize(("mutation", "graphql_input"), [("Article", "ArticleInput"), ("Employee", "EmployeeInput")])
def test_the_flat_write_arguments_are_the_input_fields(mutation, graphql_input):
    # The seed system's flat arguments and the input object must describe the same record.
    fields = {name: get_named_type(f.type).name for name, f in SCHEMA.type_map[graphql_input].fields.items()}
    for verb, fixed in (("create", set()), ("update", {"id"})):
        args = SCHEMA.mutation_type.fields[f"{verb}{mutation}"].args
        flat = {name: get_named_type(a.type).name for name, a in args.items() if name not in fixed | {"input"}}
        assert flat == fields, verb
        assert not any(isinstance(a.type, GraphQLNonNull) for name, a in args.items() if name not in fixed)
