"""Database differences live in the two backend modules: no other module reads a dialect name or a
URL scheme (Base A: base_sync/backends.py; Base B: api_service/backends.py)."""

from __future__ import annotations

import re

from testbed.servers import REPO

BACKEND_MODULES = {"src/base_sync/backends.py", "api_service/backends.py"}
PACKAGES = ("api_service", "graphql_service", "src", "dags")
DIALECT_CHECK = re.compile(
    r"dialect\.name|\.drivername\b|get_backend_name|conn_type\s*==|startswith\(\s*[\"'](sqlite|mysql|postgres)"
)


def dialect_checks_outside_the_backends() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative in BACKEND_MODULES:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if DIALECT_CHECK.search(line):
                    found.append(f"{relative}:{number}: {line.strip()}")
    return found


def test_only_the_backends_read_a_dialect_name_or_url_scheme():
    assert dialect_checks_outside_the_backends() == []


def test_the_check_finds_a_dialect_name_test():
    assert DIALECT_CHECK.search('if conn.dialect.name == "postgresql":')
    assert DIALECT_CHECK.search('if url.startswith("sqlite"):')
    assert DIALECT_CHECK.search('if hook.conn_type == "mysql" else {}')
