"""What each package may load: the pipelines never load the API, the contract and the shared gunicorn
settings load no service.

Each check imports in a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from testbed.fresh_python import answer_of
from testbed.servers import REPO

SERVICE_MODULES = {"flask", "psycopg", "alembic", "flask_swagger_ui", "api_service", "graphql_service"}


def _top_level_modules_after(code: str) -> set[str]:
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    return set(answer_of("-c", probe))


def test_the_sync_library_and_the_dag_files_do_not_load_the_api():
    loaded = _top_level_modules_after(
        "import runpy\n"
        "import base_sync.airflow_tasks, base_sync.sync, base_sync.events, base_sync.relay, base_sync.demo.cli\n"
        "runpy.run_path('dags/base_a_to_base_b.py'); runpy.run_path('dags/base_a_events.py')"
    )
    assert "base_sync" in loaded and "airflow" in loaded  # the probe did import them
    assert loaded & SERVICE_MODULES == set()


def test_the_contract_imports_no_service_and_no_pipeline():
    loaded = _top_level_modules_after(
        "import baseab_contract.entities, baseab_contract.sql_types, baseab_contract.bulk_format, "
        "baseab_contract.version_digest"
    )
    assert "baseab_contract" in loaded
    assert loaded & (SERVICE_MODULES | {"base_sync", "airflow"}) == set()


def test_the_shared_gunicorn_settings_load_neither_service():
    loaded = _top_level_modules_after("import gunicorn_shared")
    assert "gunicorn_shared" in loaded and "gunicorn" in loaded
    assert loaded & {"api_service", "graphql_service", "base_sync", "airflow"} == set()


@pytest.mark.parametrize(
    ("package", "uses"),
    [
        ("env_settings", {"pydantic_settings"}),
        ("strict_json", {"msgspec"}),
        ("http_body", {"flask", "gunicorn"}),
        ("http_headers", {"flask"}),
        ("http_methods", {"flask"}),
        ("http_paths", {"flask"}),
    ],
)
def test_the_small_shared_packages_load_no_service_and_no_pipeline(package, uses):
    loaded = _top_level_modules_after(f"import {package}")
    assert package in loaded and uses <= loaded
    assert loaded & (SERVICE_MODULES | {"base_sync", "airflow", "gunicorn"}) - uses == set()


def test_importing_an_api_submodule_does_not_build_the_app():
    loaded = _top_level_modules_after("import api_service.migrate")
    assert "flask" not in loaded


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("folder", ["bench", "testbed"])
def test_benchmarks_and_launchers_do_not_import_the_tests(folder):
    offenders = [str(path) for path in sorted((REPO / folder).glob("*.py")) if "tests" in _imported_packages(path)]
    assert offenders == []
