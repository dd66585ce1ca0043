"""Security suite fixtures: a real REST API (gunicorn) over each Base B backend, a real GraphQL server in
front of it, canary rows, and helpers that derive requests from the API's own /openapi.json.

Built on testbed/servers.py (api_server, free_port, wait_for_http) and the root conftest's
make_postgres_database; the suite has its own databases, so its "nothing changed" checks see only
its own requests.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, create_engine, inspect, text

from api_service import migrate
from testbed.servers import api_server, graphql_server

# Long and distinctive, so that prefixes, case changes and extensions are clearly different tokens.
TOKEN = "security-suite-token-4f9c2a7e"
OTHER_TOKEN = "security-suite-second-token-81d3"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRITE_METHODS = ("post", "put", "patch", "delete")
PROBLEM_JSON = "application/problem+json"

# What a database error or a traceback looks like in a body. None of these appears in the payloads,
# so an echo of the caller's input (which is fine) is never mistaken for a leak.
LEAK_MARKERS = (
    "psycopg",
    "sqlalchemy",
    "sqlite3",
    "traceback",
    "syntax error",
    "operationalerror",
    "programmingerror",
    "dataerror",
    "integrityerror",
    "internalerror",
    "undefinedtable",
    "unterminated quoted string",
    "line 1:",
    "[sql:",
    "background on this error",
    'file "/',
)


@dataclass
class BaseB:
    """One backend of Base B with its REST API process."""

    backend: str
    url: str
    engine: Engine
    api: str  # REST base URL
    logs: Path


@dataclass
class Canaries:
    """Rows seeded before each test; they must be there, unchanged, afterwards."""

    client_owned: dict[str, int] = field(default_factory=dict)  # entity -> id of a row created through the API
    synced: dict[str, int] = field(default_factory=dict)  # entity -> id of a row synced from Base A
    literal: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # entity -> (column, value, id)


@pytest.fixture(scope="session", params=["postgresql", "sqlite"])
def base_b(request, tmp_path_factory) -> Iterator[BaseB]:
    """Base B on a fresh database of each backend, migrated, behind the REST API under gunicorn."""
    logs = tmp_path_factory.mktemp(f"security-{request.param}")
    if request.param == "postgresql":
        url = request.getfixturevalue("make_postgres_database")()
    else:
        url = f"sqlite:///{logs}/base_b.sqlite"
    migrate.upgrade(url)
    # Two configured tokens: the comma-joined list must not work as a token itself.
    with api_server(url, f"{TOKEN},{OTHER_TOKEN}", logs / "api.log") as api:
        engine = create_engine(url)
        try:
            yield BaseB(request.param, url, engine, api, logs)
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def openapi(base_b) -> dict:
    """The API's own document, as served: the source of every endpoint and parameter tested here."""
    response = requests.get(f"{base_b.api}/openapi.json", timeout=10)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="session")
def graphql_api(base_b) -> Iterator[str]:
    """GraphQL without a service token: a caller's mutation carries the caller's token or none."""
    with graphql_server(base_b.api, base_b.logs / "graphql.log") as base:
        yield base


@pytest.fixture(scope="session")
def graphql_api_with_service_token(base_b) -> Iterator[str]:
    """GraphQL with a service token configured (used only when the caller sends no token at all)."""
    with graphql_server(base_b.api, base_b.logs / "graphql-service-token.log", service_token=TOKEN) as base:
        yield base


# --- request bodies from the document's schemas --------------------------------------------------------

_counter = itertools.count(1)


def resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def example(document: dict, schema: dict, name: str = "value") -> Any:
    """A valid value for a JSON schema of this API (every property filled, unique keys and emails)."""
    schema = resolve(document, schema)
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            branches = [b for b in schema[combinator] if resolve(document, b).get("type") != "null"]
            return example(document, branches[0], name)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):  # OpenAPI 3.1's nullable form, ["string", "null"]
        kind = next(k for k in kind if k != "null")
    if kind == "string":
        return _example_string(schema, name)
    if kind == "object":
        return {prop: example(document, sub, prop) for prop, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [example(document, schema.get("items", {}), name)]
    if kind == "integer":
        if name == "source_id" or name.endswith("_id"):
            return 900_000 + next(_counter)  # keys must be unique across the suite's writes
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return True
    return "canary"


def _example_string(schema: dict, name: str) -> str:
    fmt = schema.get("format")
    if fmt == "date":
        return "2024-01-02"
    if fmt == "date-time":
        return "2024-01-02T03:04:05Z"
    if "email" in name or "@" in schema.get("pattern", ""):
        return f"canary{next(_counter)}@example.com"
    return f"canary-{name}"[: schema.get("maxLength", 64)]


def request_body(document: dict, operation: Operation) -> Any:
    """A valid JSON body for a write operation, or None when it takes none."""
    content = operation.spec.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    return example(document, content["application/json"]["schema"])


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # as in the document, with {parameters}
    spec: dict

    @property
    def entity(self) -> str:
        return self.path.strip("/").split("/")[0]

    @property
    def path_parameters(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


def operations(document: dict, methods: tuple[str, ...]) -> list[Operation]:
    found = []
    for path, item in document["paths"].items():
        for method, spec in item.items():
            if method in methods:
                found.append(Operation(method, path, spec))
    return found


def fill_path(operation: Operation, ids: dict[str, int], value: str | None = None) -> str:
    """The operation's path with every path parameter filled: `value` if given (already URL-quoted),
    else the id of the entity's client-owned canary (so a write that got through would change it)."""
    path = operation.path
    for name in operation.path_parameters:
        path = path.replace(f"{{{name}}}", value if value is not None else str(ids.get(operation.entity, 1)))
    return path


# --- Base B state ------------------------------------------------------------------------------------------


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of every table, tombstones and timestamps included: any write shows as a difference."""
    tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    with engine.connect() as conn:
        return {t: sorted(map(tuple, conn.execute(text(f'SELECT * FROM "{t}"'))), key=repr) for t in tables}


def row_counts(state: dict[str, list[tuple]]) -> dict[str, int]:
    return {table: len(rows) for table, rows in state.items()}


def _reset(engine: Engine) -> None:
    tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    with engine.begin() as conn:
        for table in tables:
            conn.execute(text(f'DELETE FROM "{table}"'))


LITERAL_PAYLOAD = "' OR '1'='1"


@pytest.fixture
def canaries(base_b, openapi) -> Canaries:
    """Empty Base B, then through the API (with the real token): per entity a client-owned row, a row
    synced from Base A, and a row whose first string filter column literally holds an injection string."""
    _reset(base_b.engine)
    seeded = Canaries()
    session = requests.Session()
    session.headers.update(AUTH)
    for create in operations(openapi, ("post",)):
        if create.path.count("/") != 1:  # collection creates only, e.g. POST /articles
            continue
        entity = create.entity
        response = session.post(f"{base_b.api}{create.path}", json=request_body(openapi, create), timeout=10)
        assert response.status_code == 201, (str(create), response.text)
        seeded.client_owned[entity] = response.json()["id"]

        bulk = openapi["paths"].get(f"/{entity}/bulk", {}).get("post")
        if bulk is not None:
            record = request_body(openapi, Operation("post", f"/{entity}/bulk", bulk))
            response = session.post(f"{base_b.api}/{entity}/bulk", json=record, timeout=10)
            assert response.status_code == 200 and response.json()["inserted"] == 1, response.text
            listed = session.get(f"{base_b.api}/{entity}", params={"source_id": record[0]["source_id"]}, timeout=10)
            seeded.synced[entity] = listed.json()["items"][0]["id"]

        write_schema = resolve(openapi, create.spec["requestBody"]["content"]["application/json"]["schema"])
        list_parameters = openapi["paths"][create.path].get("get", {}).get("parameters", [])
        string_filters = [
            p["name"]
            for p in list_parameters
            if p["schema"].get("type") == "string"
            and "format" not in p["schema"]
            and "@" not in p["schema"].get("pattern", "")
            and p["name"] in write_schema.get("properties", {})
        ]
        if string_filters:
            column = string_filters[0]
            body = {**request_body(openapi, create), column: LITERAL_PAYLOAD}
            response = session.post(f"{base_b.api}{create.path}", json=body, timeout=10)
            assert response.status_code == 201, response.text
            seeded.literal[entity] = (column, LITERAL_PAYLOAD, response.json()["id"])
    assert seeded.client_owned, "the document lists no collection to create rows in"
    return seeded


def leaks(body: str) -> list[str]:
    lowered = body.lower()
    return [marker for marker in LEAK_MARKERS if marker in lowered]


# --- GraphQL -----------------------------------------------------------------------------------------------

# Deep enough for `[Article!]!` (NON_NULL, LIST, NON_NULL, OBJECT).
_TYPE_REF = "type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }"
INTROSPECTION = f"""
query {{
  __schema {{
    queryType {{ fields {{ name {_TYPE_REF} args {{ name {_TYPE_REF} }} }} }}
    mutationType {{ fields {{ name {_TYPE_REF} args {{ name {_TYPE_REF} }} }} }}
    types {{ name kind inputFields {{ name {_TYPE_REF} }} }}
  }}
}}
"""
GRAPHQL_SCALAR_EXAMPLES = {"Decimal": "1.00", "Date": "2024-01-02", "DateTime": "2024-01-02T03:04:05+00:00", "Int": 1}


def gql(base: str, query: str, variables: dict | None = None, token: str | None = None, header: str | None = None):
    """POST one operation to a GraphQL server; `token` becomes a bearer header, `header` is sent as is."""
    if header is None and token:
        header = f"Bearer {token}"
    headers = {"Authorization": header} if header is not None else {}
    body = {"query": query, "variables": variables or {}}
    return requests.post(f"{base}/graphql", json=body, headers=headers, timeout=30)


def named(type_ref: dict) -> str:
    """The named type under NON_NULL / LIST wrappers."""
    while type_ref.get("ofType"):
        type_ref = type_ref["ofType"]
    return type_ref["name"]


def is_scalar(type_ref: dict) -> bool:
    while type_ref.get("ofType"):
        type_ref = type_ref["ofType"]
    return type_ref["kind"] in ("SCALAR", "ENUM")


def valid_input(input_type: dict) -> dict:
    """A valid value of a GraphQL input object (every field filled, emails unique)."""
    value = {}
    for field_ in input_type["inputFields"]:
        scalar = named(field_["type"])
        if "email" in field_["name"].lower():
            value[field_["name"]] = f"gql{next(_counter)}@example.com"
        else:
            value[field_["name"]] = GRAPHQL_SCALAR_EXAMPLES.get(scalar, f"canary-{field_['name']}")
    return value


@pytest.fixture(scope="session")
def graphql_schema(graphql_api) -> dict:
    """The schema as the running service serves it (introspection)."""
    response = gql(graphql_api, INTROSPECTION)
    assert response.status_code == 200, response.text
    return response.json()["data"]["__schema"]


def entity_of(field_name: str) -> str:
    """REST collection of a root field: createArticle / getEmployeesPage -> articles / employees."""
    for prefix in ("create", "update", "delete", "get"):
        if field_name.startswith(prefix):
            return field_name.removeprefix(prefix).removesuffix("Page").lower().removesuffix("s") + "s"
    raise ValueError(field_name)


def mutation_document(schema: dict, field_name: str) -> tuple[str, dict]:
    """A mutation on `field_name` with variables for each argument, and valid variable values
    (`id` is left for the caller to set)."""
    types = {t["name"]: t for t in schema["types"]}
    field_ = next(f for f in schema["mutationType"]["fields"] if f["name"] == field_name)
    declared, passed, variables = [], [], {}
    for arg in field_["args"]:
        type_name = named(arg["type"])
        bang = "!" if arg["type"]["kind"] == "NON_NULL" else ""
        declared.append(f"${arg['name']}: {type_name}{bang}")
        passed.append(f"{arg['name']}: ${arg['name']}")
        if types[type_name]["kind"] == "INPUT_OBJECT":
            variables[arg["name"]] = valid_input(types[type_name])
    selection = "" if is_scalar(field_["type"]) else " { id }"
    document = f"mutation({', '.join(declared)}) {{ {field_name}({', '.join(passed)}){selection} }}"
    return document, variables
