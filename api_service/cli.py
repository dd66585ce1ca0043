"""Flask CLI commands: `flask --app api_service migrate`."""

from __future__ import annotations

import click
from flask import Flask, current_app

from api_service import migrate


def register(app: Flask) -> None:
    @app.cli.command("migrate")
    @click.option("--revision", default="head", show_default=True, help="Alembic revision to reach")
    def migrate_command(revision: str) -> None:
        """Create or upgrade Base B's schema (API_DATABASE_URL)."""
        url = current_app.extensions["api_settings"].database_url
        migrate.upgrade(url, revision)
        click.echo(f"Base B at {revision}: {url.split('@')[-1]}")
