"""Alembic environment: runs migrations on the URL given by api_service.migrate."""

from alembic import context
from sqlalchemy import create_engine, pool

from api_service.backends import backend_for_url, backend_of
from api_service.migrate import LOCK_TIMEOUT
from api_service.models import metadata

config = context.config


def run_migrations_online() -> None:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        backend_of(connection).hold_migrations(connection, config.attributes.get("lock_timeout", LOCK_TIMEOUT))
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=backend_of(connection).alters_by_copy,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def write_migrations_sql() -> None:
    """The SQL of the migrations, written for a DBA to review and run (`flask migrate --sql`)."""
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        for statement in backend_for_url(url).migration_settings(config.attributes.get("lock_timeout", LOCK_TIMEOUT)):
            context.execute(statement)
        context.run_migrations()


if context.is_offline_mode():
    write_migrations_sql()
else:
    run_migrations_online()
