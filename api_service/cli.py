"""Flask CLI commands: `flask --app api_service migrate`, `flask --app api_service purge`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import click
from alembic.util import CommandError
from flask import Flask, current_app
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from api_service import migrate, purge
from api_service.backends import backend_for_url
from api_service.db_errors import STATEMENT_LIMITS, Kind, cause, classify, refusal


def register(app: Flask) -> None:
    @app.cli.command("migrate")
    @click.option("--revision", default="head", show_default=True, help="Alembic revision to reach")
    @click.option("--sql", is_flag=True, help="print the SQL from Base B's revision to it instead of running it")
    def migrate_command(revision: str, sql: bool) -> None:
        """Create or upgrade Base B's schema (API_DATABASE_URL)."""
        settings = current_app.extensions["api_settings"]
        url = settings.database_url
        try:
            with _not_migrated_says_why(settings.migrate_lock_timeout):
                since, newer = _revision()
            if newer:  # a newer version migrated Base B (this image was rolled back): its schema serves this code
                click.echo(f"-- {newer}" if sql else newer, err=sql)
                return
            if sql:
                _print_sql(url, since, revision, settings.migrate_lock_timeout)
                return
            with _not_migrated_says_why(settings.migrate_lock_timeout):
                migrate.upgrade(url, revision, settings.migrate_lock_timeout)
        except CommandError as error:  # Alembic's: a revision it cannot find, a branch it cannot follow
            _, newer = _revision()
            if newer:  # a newer version's migrate ran while this one waited for the lock (a mixed rolling deploy)
                click.echo(newer)
                return
            raise click.ClickException(f"Base B was not migrated: {_first_line(error)}") from error
        with current_app.extensions["base_b_engine"].connect() as conn:
            reached = migrate.current_revision(conn)
        # The revision reached, not the one asked: an upgrade to an older one changes nothing.
        where = make_url(url).set(password=None, query={}).render_as_string(hide_password=True)
        click.echo(f"Base B at {reached}: {where.split('@')[-1]}")
        if revision not in ("head", reached):
            click.echo(f"(asked for {revision}: migrate only upgrades, and Base B is past it)", err=True)

    @app.cli.command("purge")
    @click.option(
        "--older-than",
        "days",
        type=click.IntRange(1, 36_500),
        required=True,
        help="days: tombstones deleted and rejections closed before then go. Keep more than any replay reaches "
        "back (the change topics' retention, dead letters you may replay): a replayed event older than a purged "
        "tombstone brings its row back",
    )
    @click.option("--dry-run", is_flag=True, help="count what would go, remove nothing")
    def purge_command(days: int, dry_run: bool) -> None:
        """Remove Base B's old tombstones and closed rejections (README, Housekeeping)."""
        before = datetime.now(UTC) - timedelta(days=days)
        try:
            purged = purge.purge(current_app.extensions["base_b_engine"], before, dry_run)
        except SQLAlchemyError as error:  # what went before this batch stays gone
            kind = classify(error)
            remedy = {
                Kind.TRANSIENT: "run it again",
                Kind.REFUSED: refusal(error),
                Kind.SCHEMA: "Base B is not migrated to this version: run `flask --app api_service migrate` first",
            }.get(kind, "nothing of this batch was removed")
            raise click.ClickException(f"Base B purge stopped: {_first_line(error)}; {remedy}") from error
        verb = "would remove" if dry_run else "removed"
        tombstones = ", ".join(f"{count} of {entity}" for entity, count in purged.tombstones.items())
        click.echo(
            f"{verb} tombstones deleted before {before:%Y-%m-%d %H:%M} UTC: {tombstones}; "
            f"rejections closed before then: {purged.rejections}"
        )


def _revision() -> tuple[str | None, str | None]:
    """Base B's revision, and what to say when a newer version than this one migrated it (else None)."""
    with current_app.extensions["base_b_engine"].connect() as conn:
        since = migrate.current_revision(conn)
    if since is None or migrate.known_revision(since):
        return since, None
    return since, f"Base B at {since}, newer than this version's head {migrate.head_revision()}: nothing to do"


@contextmanager
def _not_migrated_says_why(lock_timeout: float) -> Iterator[None]:
    """A database error as one line and what mends it: a refusal, a setting, a lock wait, Base B away."""
    try:
        yield
    except SQLAlchemyError as error:
        known = cause(error)
        if known is not None and known.setting in STATEMENT_LIMITS:  # a setting (statement_timeout), not a lock wait
            raise click.ClickException(
                f"Base B was not migrated, nothing changed: {_first_line(error)}. The {known.setting} the DBA set "
                f"on this role or database (ALTER ROLE/DATABASE ... SET {known.setting}) cut a statement of the "
                f"migration, and cuts it again each run: run migrate with it lifted for this role "
                f"(ALTER ROLE ... RESET {known.setting}, or a role without it)"
            ) from error
        kind = classify(error)
        if kind is Kind.REFUSED:  # a password, role or database no retry mends (e.g. a changed .env)
            raise click.ClickException(
                f"Base B was not migrated, nothing changed: {_first_line(error)}; {refusal(error)}"
            ) from error
        if kind is not Kind.TRANSIENT:
            raise
        if known is not None and known.setting == "lock_timeout":  # not granted within API_MIGRATE_LOCK_TIMEOUT
            raise click.ClickException(
                f"Base B was not migrated, nothing changed: {_first_line(error)}. A lock wait means a session "
                f"holds a table the migration alters (pg_stat_activity shows it, often 'idle in transaction'): "
                f"end it, or run migrate again (API_MIGRATE_LOCK_TIMEOUT is {lock_timeout:g} s)"
            ) from error
        if _contended(error):  # a deadlock, a serialization failure, SQLite's file lock
            raise click.ClickException(
                f"Base B was not migrated, nothing changed: {_first_line(error)}. Another session held what the "
                f"migration needs at the same time (on SQLite, another connection held Base B's file): run "
                f"migrate again"
            ) from error
        # Base B away, restarting or shutting down.
        raise click.ClickException(
            f"Base B was not migrated, nothing changed: {_first_line(error)}. Run migrate again once Base B "
            f"answers (is it running, and is the host of API_DATABASE_URL right?)"
        ) from error


def _print_sql(url: str, since: str | None, revision: str, lock_timeout: float) -> None:
    """The upgrade's SQL from the revision Base B is at (`since`, read now), for a DBA to review and run."""
    if backend_for_url(url).alters_by_copy:
        raise click.ClickException("--sql: this database's migrations copy tables, which SQL written ahead cannot do")
    if since == revision or (revision == "head" and since == migrate.head_revision()):
        click.echo(f"-- Base B is at {since} already: nothing to run", err=True)
        return
    migrate.upgrade_sql(url, since, revision, lock_timeout)


def _contended(error: SQLAlchemyError) -> bool:
    """A transient error of two sessions meeting (no outage): PostgreSQL's deadlock or serialization
    failure, SQLite's busy or locked file."""
    original = getattr(error, "orig", None)
    if isinstance(original, sqlite3.Error):
        return getattr(original, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return getattr(original, "sqlstate", None) in ("40P01", "40001")


def _first_line(error: Exception) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]
