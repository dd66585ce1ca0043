"""`make up`'s scripts keep its secrets to their owner: passwords are not printed.

Found by an outside probe: up.sh printed API_DATABASE_URL and BASE_A_URL with their passwords (only
percent-encoded) in its summary and so in make-up.log.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from urllib.parse import quote

from testbed.servers import REPO

UP = REPO / "scripts" / "up.sh"
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
