"""Alembic, driven from code: Base B's schema is created and upgraded by the migrations."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_TIMEOUT = 10.0  # seconds a migration's statement waits for a table lock (API_MIGRATE_LOCK_TIMEOUT)


def alembic_config(database_url: str, lock_timeout: float = LOCK_TIMEOUT) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    config.attributes["lock_timeout"] = lock_timeout
    return config


def upgrade(database_url: str, revision: str = "head", lock_timeout: float = LOCK_TIMEOUT) -> None:
    """Bring Base B's schema to `revision`, one migrating session at a time (the others wait), each
    statement waiting at most `lock_timeout` seconds for a table lock: past it the upgrade fails
    and changes nothing (PostgreSQL runs it in one transaction)."""
    command.upgrade(alembic_config(database_url, lock_timeout), revision)


def upgrade_sql(database_url: str, since: str | None, revision: str = "head", lock_timeout: float = LOCK_TIMEOUT):
    """Write to stdout the SQL that brings Base B from revision `since` (None: an empty database) to
    `revision`, without running it."""
    command.upgrade(alembic_config(database_url, lock_timeout), f"{since}:{revision}" if since else revision, sql=True)


@cache
def _revisions() -> tuple[str, frozenset[str]]:
    """(head, every revision) of this code's migrations, read once: the files on disk may be a newer
    version's by now (found from outside: after `git pull` and a migration, a running API took the
    new head for one it knew, and its /ready said "run the migrations", which could not help)."""
    script = ScriptDirectory.from_config(alembic_config(""))
    return script.get_current_head(), frozenset(found.revision for found in script.walk_revisions())


def head_revision() -> str:
    return _revisions()[0]


def known_revision(revision: str) -> bool:
    """Whether this code's migrations hold `revision` (one it does not know was made by a newer version)."""
    return revision in _revisions()[1]


def current_revision(conn: Connection) -> str | None:
    """The revision Base B is at, or None before the first migration."""
    if not conn.dialect.has_table(conn, "alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
