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
