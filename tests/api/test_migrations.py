"""The Alembic migrations build exactly the schema the models declare, on each backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from api_service import create_app, migrate
from api_service.models import metadata
from tests.api.conftest import make_settings


def test_migrated_schema_matches_the_models(database_url):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        assert migrate.current_revision(conn) == migrate.head_revision()
    engine.dispose()


def test_downgrade_and_upgrade_again(tmp_path):
    url = f"sqlite:///{tmp_path}/roundtrip.sqlite"
    migrate.upgrade(url)
    migrate.upgrade(url)  # a second run finds nothing to do
    from alembic import command

    command.downgrade(migrate.alembic_config(url), "base")
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    migrate.upgrade(url)
    assert {"articles", "employees"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_the_migrate_command_says_the_revision_reached_without_the_password(tmp_path):
    """Found from outside: `migrate --revision 0001` on a Base B at head printed "Base B at 0001" and
    changed nothing; a password given in the URL's query was printed."""
    url = f"sqlite:///{tmp_path}/cli.sqlite?password=secret-word"
    app = create_app(make_settings(url))
    runner = app.test_cli_runner()
    first = runner.invoke(args=["migrate"])
    assert first.exit_code == 0 and f"Base B at {migrate.head_revision()}" in first.output, first.output
    older = runner.invoke(args=["migrate", "--revision", "0001"])
    assert f"Base B at {migrate.head_revision()}" in older.output and "asked for 0001" in older.output
    assert "secret-word" not in first.output + older.output
    app.extensions["base_b_engine"].dispose()
