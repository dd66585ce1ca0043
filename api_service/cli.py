"""Flask CLI commands: `flask --app api_service migrate`."""

from __future__ import annotations

import click
from flask import Flask, current_app
from sqlalchemy import make_url

from api_service import migrate


def register(app: Flask) -> None:
    @app.cli.command("migrate")
    @click.option("--revision", default="head", show_default=True, help="Alembic revision to reach")
    def migrate_command(revision: str) -> None:
        """Create or upgrade Base B's schema (API_DATABASE_URL)."""
        url = current_app.extensions["api_settings"].database_url
        migrate.upgrade(url, revision)
        with current_app.extensions["base_b_engine"].connect() as conn:
            reached = migrate.current_revision(conn)
        # The revision reached, not the one asked: an upgrade to an older one changes nothing.
        where = make_url(url).set(password=None, query={}).render_as_string(hide_password=True)
        click.echo(f"Base B at {reached}: {where.split('@')[-1]}")
        if revision not in ("head", reached):
            click.echo(f"(asked for {revision}: migrate only upgrades, and Base B is past it)", err=True)
