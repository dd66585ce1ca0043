"""docker-compose.yaml sets no password, token or key a user cannot override, and ships no default one.

Every secret-bearing value (an environment entry whose name says password/secret/token/key, the
password part of a connection URI, the "password" of an Airflow connection in JSON) must be exactly
a required interpolation, `${VAR:?message}`: compose then refuses to start until the user sets VAR.
A literal would ship a secret; `${VAR:-default}` would ship a default one; a bare `${VAR}` would
silently become an empty password when VAR is unset (compose only warns). .env.example must name
every such variable, with no value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml

from testbed.servers import REPO

COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"

SECRET_NAME = re.compile(r"(?i)(?:^|_)(?:PASSWORD|PASSWD|PASS|PWD|SECRET|TOKENS?|KEY|CREDENTIALS?|APIKEY)(?:_|$)")
REQUIRED = re.compile(r"^\$\{(?P<name>\w+):\?(?P<message>[^}]+)\}$")
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?P<operator>:?[-?+])?(?P<argument>[^}]*)\}")
URI_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@'\"]+:(?P<password>[^\s/@'\"]+)@")
JSON_PASSWORD = re.compile(r'"(?:password|secret|token)"\s*:\s*"(?P<password>[^"]*)"', re.I)


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())  # anchors and `<<` merges resolved


def _environments(compose: dict) -> Iterator[tuple[str, str, object]]:
    """(where, name, value) of every environment entry of every service and x- extension block."""
    # x- blocks first: a value merged from one (`<<: *airflow`) is reported where it is written.
    blocks = {name: block for name, block in compose.items() if name.startswith("x-") and isinstance(block, dict)}
    blocks |= {f"services.{name}": service for name, service in compose.get("services", {}).items()}
    for where, block in blocks.items():
        environment = block.get("environment") or {}
        if isinstance(environment, list):  # - NAME=value
            environment = dict(entry.partition("=")[::2] for entry in environment)
        for name, value in environment.items():
            yield where, name, value


def _strings(node, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in the document (commands, health checks, labels...), with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node.replace("$$", "")  # `$$` is a literal `$` for the container, not compose's


def _secret_parts(name: str, value: object) -> list[str]:
    """The parts of an environment value that are secrets: the whole value for a secret-looking
    name, else the passwords inside connection URIs and Airflow connection JSON."""
    if SECRET_NAME.search(name):  # a comma-separated list (API_TOKENS): each item must be required
        return str(value).split(",") if value is not None else [""]
    text = str(value)
    return [m["password"] for m in (*URI_PASSWORD.finditer(text), *JSON_PASSWORD.finditer(text))]


def _why_not_required(part: str) -> str | None:
    if REQUIRED.match(part):
        return None
    found = INTERPOLATION.search(part)
    if found is None:
        return "is a literal"
    if found["operator"] in ("-", ":-", "+", ":+"):
        return f"has a default ({found['operator']})"
    if not found["operator"]:
        return f"is ${{{found['name']}}}, empty when unset: use ${{{found['name']}:?...}}"
    return "is not exactly one ${VAR:?message}"


def secret_violations(compose: dict) -> list[str]:
    seen, violations = set(), []
    for where, name, value in _environments(compose):
        for part in _secret_parts(name, value):
            reason = _why_not_required(part)
            if reason and (name, str(value)) not in seen:  # merged x- blocks repeat in each service
                seen.add((name, str(value)))
                violations.append(f"{where}: {name}: {part!r} {reason}")
    return violations


def _env_example() -> dict[str, str]:
    entries = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            entries[name.strip().removeprefix("export ")] = value.strip()
    return entries


def _secret_variables(compose: dict) -> set[str]:
    """The variables that secret-bearing values take their value from."""
    names = set()
    for _, name, value in _environments(compose):
        for part in _secret_parts(name, value):
            names |= {m["name"] for m in INTERPOLATION.finditer(part)}
    return names


def test_every_secret_in_the_compose_file_is_a_required_variable():
    violations = secret_violations(_compose())
    assert not violations, "secrets in docker-compose.yaml that a user does not have to set:\n" + "\n".join(violations)


def test_no_secret_variable_has_a_default_anywhere_in_the_compose_file():
    # Commands and health checks too: ${MYSQL_ROOT_PASSWORD:-root} in a health check is a default password.
    found = []
    for where, text in _strings(_compose()):
        for match in INTERPOLATION.finditer(text):
            if SECRET_NAME.search(match["name"]) and match["operator"] in ("-", ":-", "+", ":+"):
                found.append(f"{where}: {match.group(0)}")
        for match in URI_PASSWORD.finditer(text):
            if not INTERPOLATION.fullmatch(match["password"]):
                found.append(f"{where}: a literal password in {match.group(0)}")
    assert not found, "\n".join(found)


def test_env_example_names_every_secret_variable_and_holds_no_value():
    assert ENV_EXAMPLE.is_file(), ".env.example is missing: users need the list of variables to set"
    example = _env_example()
    variables = _secret_variables(_compose())
    assert variables, "no secret variables found: the compose file changed shape, update this test"
    assert not sorted(variables - set(example)), f".env.example does not name {sorted(variables - set(example))}"
    filled = {name: value for name, value in example.items() if name in variables and value}
    assert not filled, f".env.example gives secrets a value: {sorted(filled)}"


def test_every_required_variable_of_the_compose_file_is_in_env_example():
    # A user learns what to set from .env.example; compose's own error comes only at start.
    texts = [text for _, text in _strings(_compose())]
    required = {m["name"] for text in texts for m in INTERPOLATION.finditer(text) if m["operator"] == ":?"}
    absent = sorted(required - set(_env_example()))
    assert not absent, f"required by docker-compose.yaml but not in .env.example: {absent}"


# A variable pasted as the password of a URL (user:${NAME:?message}@), or as a JSON string's value.
PASTED = re.compile(r"://[^\s/:@'\"]+:\$\{(?P<url>\w+)[^}]*\}@" r'|"\s*:\s*"\$\{(?P<json>\w+)[^}]*\}"')


def _pasted_variables(compose: dict) -> set[str]:
    """The variables compose pastes as they are into a connection URL or an Airflow connection's JSON."""
    return {m["url"] or m["json"] for _, text in _strings(compose) for m in PASTED.finditer(text)}


def _env_example_paragraphs() -> dict[str, str]:
    """Each variable of .env.example -> the paragraph (blank-line separated) that holds it."""
    found = {}
    for paragraph in ENV_EXAMPLE.read_text().split("\n\n"):
        for line in paragraph.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                found[line.partition("=")[0].strip()] = paragraph
    return found


def test_env_example_says_which_values_must_be_url_safe():
    """Compose cannot percent-encode: a password with @ : / % # in a URL breaks it, and the part after
    an @ was printed as the host name (the probe's "failed to resolve host '<password tail>@127.0.0.1'").
    Every variable pasted into a URL or JSON sits in a paragraph of .env.example that says URL-safe."""
    pasted = _pasted_variables(_compose())
    assert {"POSTGRES_PASSWORD", "BASE_A_SYNC_PASSWORD", "AIRFLOW_DB_PASSWORD", "PIPELINE_API_TOKEN"} <= pasted
    paragraphs = _env_example_paragraphs()
    silent = sorted(name for name in pasted if "URL-safe" not in paragraphs.get(name, ""))
    assert not silent, f".env.example does not say these must be URL-safe (they are pasted into URLs): {silent}"


# The checks themselves, on small documents: each must catch what it is for.
BAD = {
    "literal": {"services": {"db": {"environment": {"POSTGRES_PASSWORD": "postgres"}}}},
    "default": {"services": {"db": {"environment": {"POSTGRES_PASSWORD": "${PG_PASSWORD:-postgres}"}}}},
    "bare": {"services": {"db": {"environment": {"POSTGRES_PASSWORD": "${PG_PASSWORD}"}}}},
    "uri": {"services": {"app": {"environment": {"DB_URL": "postgresql://app:hunter2@db/app"}}}},
    "json": {"x-a": {"environment": {"AIRFLOW_CONN_X": '{"conn_type": "http", "password": "tok"}'}}},
    "list form": {"services": {"g": {"environment": ["GF_SECURITY_ADMIN_PASSWORD=admin"]}}},
    "fernet": {"services": {"a": {"environment": {"AIRFLOW__CORE__FERNET_KEY": ""}}}},
}


@pytest.mark.parametrize("document", BAD.values(), ids=BAD.keys())
def test_the_check_catches_what_it_is_for(document):
    assert secret_violations(document)


def test_the_check_passes_required_variables():
    document = {
        "services": {
            "db": {"environment": {"POSTGRES_PASSWORD": "${PG_PASSWORD:?set it}", "POSTGRES_USER": "base_b"}},
            "app": {"environment": {"DB_URL": "postgresql://app:${PG_PASSWORD:?set it}@db/app", "WORKERS": 2}},
        }
    }
    assert secret_violations(document) == []
