"""Sync support: the version-window index verification reads, and the rejected-records table

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

import api_service.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SYNCED = sa.text("source_id IS NOT NULL")


def upgrade() -> None:
    for table in ("articles", "employees"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f(f"ix_{table}_source_updated_at_source_id"),
                ["source_updated_at", "source_id"],
                unique=False,
                postgresql_where=SYNCED,
                sqlite_where=SYNCED,
            )
    op.create_table(
        "sync_rejections",
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("source_updated_at", api_service.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("first_rejected_at", api_service.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_rejected_at", api_service.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("times", sa.Integer(), nullable=False),
        sa.Column("resolved_at", api_service.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("entity", "source_id", name=op.f("pk_sync_rejections")),
    )
    with op.batch_alter_table("sync_rejections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_rejections_entity_resolved_at"), ["entity", "resolved_at"])


def downgrade() -> None:
    with op.batch_alter_table("sync_rejections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_rejections_entity_resolved_at"))
    op.drop_table("sync_rejections")
    for table in ("employees", "articles"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(
                batch_op.f(f"ix_{table}_source_updated_at_source_id"), postgresql_where=SYNCED, sqlite_where=SYNCED
            )
