"""The batch sync's marks: a token per entity its commit writes, which tells a restored Base B

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

import api_service.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not op.get_context().as_sql and sa.inspect(op.get_bind()).has_table("sync_marks"):
        # A restore of a dump made before this migration (pg_restore --clean drops what the dump
        # holds, not this table): its tokens are newer than the data, so they are dropped, and the
        # next batch run finds no mark and compares every key and version.
        op.execute(sa.text("DELETE FROM sync_marks"))
        return
    op.create_table(
        "sync_marks",
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("marked_at", api_service.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entity", name=op.f("pk_sync_marks")),
    )


def downgrade() -> None:
    op.drop_table("sync_marks")
