"""Alembic, driven from code: Base B's schema is created and upgraded by the migrations."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring Base B's schema to `revision`."""
    command.upgrade(alembic_config(database_url), revision)


@cache
def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The revision Base B is at, or None before the first migration."""
    if not conn.dialect.has_table(conn, "alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
