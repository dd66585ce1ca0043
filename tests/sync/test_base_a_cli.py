"""`base-a`'s read commands as an operator runs them against a running API."""

from __future__ import annotations

import os
import subprocess

from api_service import migrate
from testbed.servers import api_server, free_port, venv_bin
from tests.sync.conftest import TOKEN


def base_a(*args: str, url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BASE_A_MAPPING_FILE"} | {"BASE_A_URL": url}
    command = [venv_bin("base-a"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_summary_takes_the_token_from_the_url_and_never_shows_it(tmp_path, make_postgres_database):
    """`base-a summary http://reader:<token>@host` sent the userinfo as Basic auth, which the API does
    not read (401 where reads need a token), and when the API was down it printed a traceback
    holding the URL, token included. The password of the URL is the token, as in the API connection."""
    url = f"sqlite:///{tmp_path / 'base_a.sqlite'}"
    assert base_a("init", url=url).returncode == 0
    assert base_a("seed", "employees", "3", url=url).returncode == 0
    database_url = make_postgres_database()
    migrate.upgrade(database_url)
    env = {"API_READ_REQUIRES_TOKEN": "true"}
    with api_server(database_url, TOKEN, tmp_path / "api.log", env=env) as api:
        summary = base_a("summary", api.replace("http://", f"http://reader:{TOKEN}@"), url=url)
    assert summary.returncode == 0, summary.stderr[-2000:]
    assert "employees  Base A         3 rows   Base B         0 synced" in summary.stdout, summary.stdout

    away = base_a("summary", f"http://reader:{TOKEN}@127.0.0.1:{free_port()}", url=url)
    assert away.returncode == 1
    assert away.stderr.splitlines()[-1].startswith("base-a summary: GET http://127.0.0.1:"), away.stderr[-2000:]
    assert "got no answer" in away.stderr and "Traceback" not in away.stderr, away.stderr[-2000:]
    assert TOKEN not in away.stdout + away.stderr


def test_a_base_a_that_is_not_there_is_said_in_one_line_and_churn_creates_nothing(tmp_path):
    """A wrong BASE_A_URL or PLATFORM_VAR: count, check and summary printed SQLAlchemy's traceback
    ('unable to open database file'), and churn made an empty SQLite Base A, changed nothing and
    exited 0 as if it had worked."""
    missing = tmp_path / "nowhere" / "base_a.sqlite"
    for command in (("count", "employees"), ("check",), ("churn", "employees", "--updates", "3")):
        run = base_a(*command, url=f"sqlite:///{missing}")
        assert run.returncode == 1, run.stderr[-2000:]
        assert "Traceback" not in run.stderr, run.stderr[-2000:]
        said = f"base-a {command[0]}: Base A at sqlite:///{missing}: unable to open database file"
        assert run.stderr.splitlines()[-1] == said, run.stderr[-2000:]
    assert not missing.parent.exists()

    empty = tmp_path / "empty.sqlite"
    empty.touch()  # a file, no tables: not the Base A the user meant
    run = base_a("churn", "employees", "--updates", "3", url=f"sqlite:///{empty}")
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert f"base-a churn: Base A at sqlite:///{empty} has no table employees:" in run.stderr, run.stderr[-2000:]
    assert empty.stat().st_size == 0  # nothing created in it
