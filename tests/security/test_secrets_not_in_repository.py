"""Secrets come only from the environment or Airflow connections, never from the repository.

Scans every file git would commit (tracked, plus untracked files that are not ignored, so that a
secret is caught before its first commit) for secret-looking material, checks that the settings
classes carry no default secret, and that .gitignore keeps the places secrets live out of git.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed.servers import REPO, missing

# Material that is a secret wherever it appears, tests included.
KEY_MATERIAL = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
    "AWS secret access key": re.compile(r"(?i)aws_?secret_?access_?key\W{1,4}[A-Za-z0-9/+]{40}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "Stripe live key": re.compile(r"\b[sr]k_live_[0-9A-Za-z]{16,}"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
}
# scheme://user:password@host: the password part must be a reference, not a value.
URI_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@'\"`]+:(?P<password>[^\s/@'\"`]+)@")
# NAME = "value", NAME: value, "name": "value", export NAME=value ... for names that hold secrets.
SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)
    (?<!\$\{)  # not ${NAME:?message}, a required variable
    (?P<name>\b[\w.-]*(?:password|passwd|pwd|secret|token|fernet|jwt|api[_-]?key|private[_-]?key|credential)[\w.-]*)
    ["']?\s*(?::=|=|:)\s*
    (?P<value>.*)
    """
)
# Where a value is a reference or a placeholder rather than a secret ($$NAME: compose's escape for
# the container's own $NAME, as in a health check's `MYSQL_PWD=$$MYSQL_ROOT_PASSWORD mysqladmin ...`).
REFERENCE = re.compile(r"^(?:\$\$?\{?\w|\$\(|%\(\w+\)s|\{\{.*\}\}$|\{\w*\}$|<[^>]*>$)")
PLACEHOLDER = re.compile(
    r"(?i)^(?:|change-?me\S*|\.\.\.|x{3,}|\*{3,}|your[-_]\S*|example|placeholder|none|null|unused|true|false|~)$"
)
# Files whose unquoted values are literal text (in code an unquoted value is an expression).
LITERAL_TEXT_FILES = ("*.sh", "*.env", ".env*", "*.yml", "*.yaml", "*.ini", "*.cfg", "*.conf", "Dockerfile", "Makefile")
CODE_AND_CONFIG_FILES = (*LITERAL_TEXT_FILES, "*.py", "*.toml", "*.json", "*.sql", "*.md", "*.graphql", "*.mako")


@dataclass(frozen=True)
class Allowed:
    path: str  # fnmatch pattern
    value: str  # the exact literal allowed there
    reason: str


# Deliberately small; every entry says why the literal is not a secret. Files under tests/ may hold
# literal tokens and passwords (throwaway fixtures for servers the tests start on loopback), but
# never key material.
ALLOWLIST = (
    Allowed("bench/*.py", "bench-token", "the benchmarks start their own throwaway API on loopback with it"),
    Allowed("README.md", "pass", "a documentation example of a URL shape: postgresql+psycopg://user:pass@host"),
    Allowed(
        "deploy/postgres-init/01-airflow.sh",
        "airflow_password",
        "psql's variable reference :'airflow_password', read by \\getenv from $AIRFLOW_DB_PASSWORD",
    ),
)


def _files_git_would_commit() -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        missing(f"git cannot list the repository's files ({exc}): not a git checkout")
    return sorted({name for name in listed.decode().split("\0") if name and (REPO / name).is_file()})


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", errors="replace")


def _allowed(path: str, value: str) -> bool:
    return any(fnmatch.fnmatch(path, a.path) and value == a.value for a in ALLOWLIST)


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    name = Path(path).name
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def _literal(value: str, literal_text: bool) -> str | None:
    """The literal a secret name is given on this line, or None when it is a reference or no literal."""
    value = value.strip().rstrip(",;")
    annotated = re.match(r"^[\w\[\]., |]+?\s*=\s*(?P<rest>.+)$", value)
    if annotated and not literal_text:  # `token: str = "..."`: the default after the annotation
        value = annotated["rest"]
    quoted = re.match(r"""^(?P<q>["'])(?P<inner>.*?)(?P=q)""", value)
    if quoted:
        literal = quoted["inner"]
    elif literal_text:
        literal = re.split(r"\s+#|\s", value, maxsplit=1)[0]
    else:
        return None  # code: an expression, not a literal
    if REFERENCE.match(literal) or PLACEHOLDER.match(literal):
        return None
    return literal


def _findings(path: str, text: str) -> list[str]:
    found = []
    in_tests = path.startswith("tests/")
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        for kind, pattern in KEY_MATERIAL.items():
            if pattern.search(line):
                found.append(f"{where}: {kind}")
        if in_tests or not _matches(path, CODE_AND_CONFIG_FILES):
            continue
        for match in URI_PASSWORD.finditer(line):
            password = match["password"]
            if not (REFERENCE.match(password) or PLACEHOLDER.match(password) or _allowed(path, password)):
                found.append(f"{where}: a password in a URL: {match.group(0)}")
        for match in SECRET_ASSIGNMENT.finditer(line):
            literal = _literal(match["value"], _matches(path, LITERAL_TEXT_FILES))
            if literal is not None and not _allowed(path, literal):
                found.append(f"{where}: {match['name']} is given the literal {literal!r}")
    return found


def test_no_file_git_would_commit_holds_a_secret():
    files = _files_git_would_commit()
    assert "api_service/auth.py" in files  # the listing is real, not empty
    findings = []
    for path in files:
        text = _text(REPO / path)
        if text is not None:
            findings += _findings(path, text)
    assert not findings, "secret-looking material in the repository:\n" + "\n".join(findings)


def test_every_allowlist_entry_is_still_needed():
    # An entry that matches nothing any more is a hole waiting for a real secret: remove it.
    files = _files_git_would_commit()
    for allowed in ALLOWLIST:
        texts = [_text(REPO / p) or "" for p in files if fnmatch.fnmatch(p, allowed.path)]
        assert any(allowed.value in text for text in texts), f"unused allowlist entry: {allowed}"


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ('API_TOKEN = "s3cr3t-value"', "plugins/x.py"),
        ('    service_token: str = "s3cr3t-value"', "graphql_service/x.py"),
        ('connect(host="db", password="hunter2")', "plugins/x.py"),
        ("export AIRFLOW__CORE__FERNET_KEY=Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg=", "scripts/x.sh"),
        ("  GF_SECURITY_ADMIN_PASSWORD: admin", "docker-compose.yaml"),
        ('  "password": "hunter2",', "deploy/conn.json"),
        ("url: postgresql://base_b:hunter2@postgres/base_b", "deploy/x.yml"),
        # Split, so that this file does not hold the very material it looks for.
        ("-----BEGIN OPENSSH " + "PRIVATE KEY-----", "tests/data/key"),
        ("aws_access_key_id = AKIA" + "IOSFODNN7EXAMPLE", "deploy/aws.ini"),
    ],
)
def test_the_scanner_finds_planted_secrets(line, path):
    # The scanner itself is tested: each of these lines must be reported.
    assert _findings(path, line)


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ("POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}", "docker-compose.yaml"),
        ("API_TOKENS=", ".env.example"),
        ("export API_TOKENS=${API_TOKENS:-$(cat var/api-token)}", "scripts/up.sh"),
        ("token = token.strip()", "api_service/auth.py"),
        ('TOKEN = "graphql-suite-token"', "tests/graphql/conftest.py"),
        ("url = postgresql://airflow:${AIRFLOW_DB_PASSWORD}@postgres/airflow", "deploy/x.cfg"),
        ('      test: ["CMD-SHELL", "MYSQL_PWD=$$MYSQL_ROOT_PASSWORD mysqladmin ping"]', "docker-compose.yaml"),
    ],
)
def test_the_scanner_passes_references_placeholders_and_test_fixtures(line, path):
    assert not _findings(path, line)


def test_settings_classes_carry_no_default_secret():
    # Tokens and passwords come from the environment (or an Airflow connection); a default would ship one.
    from pydantic_settings import BaseSettings

    import api_service.settings
    import base_sync.relay
    import base_sync.settings
    import graphql_service.settings

    modules = (api_service.settings, graphql_service.settings, base_sync.settings, base_sync.relay)
    classes = {c for m in modules for c in vars(m).values() if isinstance(c, type) and issubclass(c, BaseSettings)}
    assert len(classes) >= 4
    secret_name = re.compile(r"password|passwd|secret|token|fernet|jwt|key$|credential")
    for cls in classes:
        for name, info in cls.model_fields.items():
            default = info.default
            if secret_name.search(name) and isinstance(default, str | tuple | list):
                assert not default, f"{cls.__name__}.{name} has a default secret: {default!r}"
            if isinstance(default, str) and "://" in default:
                match = URI_PASSWORD.search(default)
                assert match is None, f"{cls.__name__}.{name}'s default URL holds a password"


def test_gitignore_keeps_local_state_and_env_files_out_of_git():
    # --no-index: judge the patterns themselves, whatever is in the index today.
    for path in ("var/", "var/api-token", "var/airflow/airflow.cfg", ".env"):
        result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, check=False)
        assert result.returncode == 0, f".gitignore does not cover {path}"
    tracked = _files_git_would_commit()
    assert ".env" not in tracked
    assert not [p for p in tracked if p.startswith("var/")]
