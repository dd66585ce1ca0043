"""Base B entities: articles and employees with their sync columns

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

import api_service.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=True),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("author", sa.String(length=255), nullable=True),
        sa.Column("created_at", api_service.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", api_service.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source_updated_at", api_service.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("synced_at", api_service.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", api_service.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_articles")),
    )
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_articles_source_id"), ["source_id"], unique=True)

    op.create_table(
        "employees",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=True),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=True),
        sa.Column("position", sa.String(length=100), nullable=True),
        sa.Column("salary", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("hired_at", sa.Date(), nullable=True),
        sa.Column("created_at", api_service.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", api_service.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source_updated_at", api_service.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("synced_at", api_service.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", api_service.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_employees")),
    )
    with op.batch_alter_table("employees", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_employees_email"),
            ["email"],
            unique=True,
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(batch_op.f("ix_employees_source_id"), ["source_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("employees", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_employees_source_id"))
        batch_op.drop_index(
            batch_op.f("ix_employees_email"),
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )

    op.drop_table("employees")
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_articles_source_id"))

    op.drop_table("articles")
