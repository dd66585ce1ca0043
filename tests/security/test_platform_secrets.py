"""`make up`'s scripts keep its secrets to their owner: passwords are not printed, not put on a
command line, and the files holding secrets are not readable by other local users.

Found by an outside probe: up.sh printed API_DATABASE_URL and BASE_A_URL with their passwords (only
percent-encoded) in its summary and so in make-up.log; airflow-env.sh wrote the API token, Airflow's
JWT secret and Fernet key 0644 in a 0755 var/ (logs, airflow.db and Airflow's admin password file too);
up.sh put BASE_A_URL on a python command line.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from testbed.servers import REPO

UP = REPO / "scripts" / "up.sh"
AIRFLOW_ENV = REPO / "scripts" / "airflow-env.sh"
# Database URLs that carry a password: up.sh must never print them or hand them to a command as an argument.
URL_VARIABLES = ("API_DATABASE_URL", "BASE_A_URL", "RELAY_BASE_A_URL")


def _password() -> str:
    """A generated password holding the characters a URL must escape."""
    return f"{secrets.token_hex(8)}@:/%#{secrets.token_hex(8)}"


def _database_url(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/database_url.py", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def _up_lines() -> list[str]:
    """up.sh's lines of code, comments dropped."""
    return [line for line in UP.read_text().splitlines() if not line.lstrip().startswith("#")]


def test_the_summary_shows_database_urls_with_the_password_masked():
    password = _password()
    url = f"postgresql+psycopg://sync:{quote(password, safe='')}@db.example:5432/base_b"
    shown = _database_url("masked", "SOME_URL", SOME_URL=url)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "postgresql+psycopg://sync:***@db.example:5432/base_b"
    query = f"postgresql+psycopg://sync@db.example/base_b?sslmode=require&password={quote(password, safe='')}"
    shown = _database_url("masked", "SOME_URL", SOME_URL=query).stdout
    assert "sslmode=require" in shown and password not in shown and quote(password, safe="") not in shown
    assert _database_url("masked", "SOME_URL", SOME_URL="sqlite:////x/base_b.sqlite").stdout.strip() == (
        "sqlite:////x/base_b.sqlite"
    )


def test_the_database_name_is_read_from_the_environment():
    url = f"mysql+mysqldb://sync:{quote(_password(), safe='')}@127.0.0.1:3306/legacy"
    assert _database_url("database", "SOME_URL", SOME_URL=url).stdout.strip() == "legacy"


def test_up_prints_no_database_url_as_is():
    summary = UP.read_text().split("cat <<MSG", 1)[1].split("\nMSG", 1)[0]
    for name in URL_VARIABLES:
        assert not re.search(rf"\$\{{?{name}\b", summary), f"up.sh's summary prints ${name} with its password"


def test_up_passes_no_database_url_on_a_command_line():
    """A URL reaches a command by environment (`NAME=$URL command`), never as an argument: `ps` and
    /proc/*/cmdline show every user a process's arguments. A bash test (`[[ $URL == … ]]`) runs no process."""
    for line in _up_lines():
        code = re.sub(r"\[\[.*?\]\]", "", line)  # bash's own test
        for found in re.finditer(rf"\$\{{?(?:{'|'.join(URL_VARIABLES)})\b", code):
            before = code[: found.start()].rstrip('"')
            assert before.endswith("="), f"up.sh puts a database URL on a command line: {line.strip()}"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_secrets_airflow_env_makes_are_readable_by_their_owner_alone(tmp_path):
    var = tmp_path / "var"
    old_var = tmp_path / "old-var"  # a var/ an earlier version made world-readable
    old_var.mkdir(mode=0o755)
    old_var.chmod(0o755)
    (old_var / "airflow-fernet-key").write_text("made by an earlier version\n")
    shared = tmp_path / "shared"  # a directory of other uses named as PLATFORM_VAR: not made private
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    for where in (var, old_var, shared):
        script = f'umask 022; source "{AIRFLOW_ENV}"; umask'
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "API_"))}
        done = subprocess.run(
            ["bash", "-c", script], env={**env, "PLATFORM_VAR": str(where)}, capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == "0022", "sourcing airflow-env.sh changed the user's shell umask"
        assert _mode(where) == (0o755 if where == shared else 0o700), f"{where} is {_mode(where):o}"
    for name in ("api-token", "airflow-jwt-secret", "airflow-fernet-key"):
        assert (var / name).stat().st_size > 0
        assert _mode(var / name) == 0o600, f"{name} is {_mode(var / name):o}"


def test_up_makes_everything_it_writes_its_owners_alone():
    """umask 077 before up.sh creates anything: logs, Airflow's admin password file and database,
    the relay's position, Prometheus' data, and make-up.log beside them."""
    lines = _up_lines()
    umask = next((i for i, line in enumerate(lines) if line.strip() == "umask 077"), None)
    assert umask is not None, "up.sh sets no umask 077"
    first_write = next(i for i, line in enumerate(lines) if re.search(r"\bmkdir\b|>|\bsource\b", line))
    assert umask < first_write
