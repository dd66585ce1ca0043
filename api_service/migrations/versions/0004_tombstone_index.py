"""The tombstones' index the purge reads: each of its batches scanned the whole table

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

Partial (deleted rows only): live rows' writes do not maintain it. Built in the migration's
transaction like the indexes before it: PostgreSQL holds the table's writes for one pass over it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TOMBSTONES = sa.text("deleted_at IS NOT NULL")


def upgrade() -> None:
    for table in ("articles", "employees"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f(f"ix_{table}_deleted_at"),
                ["deleted_at"],
                unique=False,
                if_not_exists=True,  # a restored dump from before it may hold it (a version set back by hand)
                postgresql_where=TOMBSTONES,
                sqlite_where=TOMBSTONES,
            )


def downgrade() -> None:
    for table in ("employees", "articles"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(
                batch_op.f(f"ix_{table}_deleted_at"), postgresql_where=TOMBSTONES, sqlite_where=TOMBSTONES
            )
