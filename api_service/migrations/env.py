"""Alembic environment: runs migrations on the URL given by api_service.migrate."""

from alembic import context
from sqlalchemy import create_engine, pool

from api_service.backends import backend_of
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


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
