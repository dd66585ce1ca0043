"""Reads and client writes of Base B rows (the CRUD endpoints)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Select, Table, select
from sqlalchemy.exc import IntegrityError

from api_service.backends import backend_of
from api_service.db import begin_write
from api_service.problems import Problem
from baseab_contract.entities import Entity

READ_COLUMNS = ("id", "source_id")
TIMESTAMP_COLUMNS = ("created_at", "updated_at", "source_updated_at")
_FILTER_KEYS = frozenset({"limit", "after", "updated_after"})
# What a client asked of the row before a write (conditional.Preconditions): raises to refuse the write.
Precondition = Callable[[dict[str, Any]], None]


def _unconditional(_row: dict[str, Any]) -> None:
    """A write without preconditions."""


def _columns(entity: Entity, table: Table) -> list:
    return [table.c[name] for name in (*READ_COLUMNS, *entity.field_names, *TIMESTAMP_COLUMNS)]


def list_statement(entity: Entity, table: Table, query: BaseModel) -> Select:
    """The live rows of a keyset page, ordered by id (streaming.page_response sends `limit` of them)."""
    statement = select(*_columns(entity, table)).where(table.c.deleted_at.is_(None), table.c.id > query.after)
    for name, value in query.model_dump(exclude_none=True).items():
        if name not in _FILTER_KEYS:
            statement = statement.where(table.c[name] == value)
    if query.updated_after is not None:
        statement = statement.where(table.c.updated_at > query.updated_after)
    return statement.order_by(table.c.id)


def _live_row(conn: Connection, entity: Entity, table: Table, row_id: int, lock: bool = False) -> dict[str, Any]:
    """The live row; with `lock`, locked until the transaction ends (a write decides on what it read)."""
    statement = select(*_columns(entity, table)).where(table.c.id == row_id, table.c.deleted_at.is_(None))
    if lock:
        statement = backend_of(conn).for_update(statement, table)
    row = conn.execute(statement).first()
    if row is None:
        raise Problem(404, f"no {entity.singular} with id {row_id}")
    return row._asdict()


def get_row(conn: Connection, entity: Entity, table: Table, row_id: int) -> dict[str, Any]:
    return _live_row(conn, entity, table, row_id)


def _owned_by_client(entity: Entity, row: dict[str, Any]) -> None:
    if row["source_id"] is not None:
        raise Problem(
            409,
            f"{entity.singular} {row['id']} is synced from Base A (source_id {row['source_id']}): "
            "change it in Base A, the pipelines bring the change here",
        )


def _check_unique(conn: Connection, entity: Entity, table: Table, values: dict, row_id: int | None) -> None:
    for field in entity.unique_fields:
        value = values.get(field.name)
        if value is None:
            continue
        clash = select(table.c.id).where(table.c[field.name] == value, table.c.deleted_at.is_(None))
        if row_id is not None:
            clash = clash.where(table.c.id != row_id)
        holder = conn.execute(clash.limit(1)).scalar()
        if holder is not None:
            raise Problem(
                409,
                f"{field.name} {value!r} is already used by {entity.singular} {holder}",
                errors=[{"field": field.name, "message": "already used"}],
            )


def create_row(conn: Connection, entity: Entity, table: Table, body: BaseModel) -> dict[str, Any]:
    """Insert a client-owned row (no source_id)."""
    values = body.model_dump()
    now = datetime.now(UTC)
    try:
        with begin_write(conn):
            _check_unique(conn, entity, table, values, None)
            row_id = conn.execute(
                table.insert().values(**values, created_at=now, updated_at=now).returning(table.c.id)
            ).scalar_one()
            return _live_row(conn, entity, table, row_id)
    except IntegrityError:  # a concurrent writer took the unique value after our check
        raise Problem(409, f"the {entity.singular} conflicts with a row written at the same time") from None


def replace_row(
    conn: Connection,
    entity: Entity,
    table: Table,
    row_id: int,
    body: BaseModel,
    precondition: Precondition = _unconditional,
) -> dict[str, Any]:
    """Replace the data of a client-owned row, if the row as it is now meets the precondition."""
    values = body.model_dump()
    try:
        with begin_write(conn):
            row = _live_row(conn, entity, table, row_id, lock=True)
            _owned_by_client(entity, row)
            precondition(row)
            _check_unique(conn, entity, table, values, row_id)
            conn.execute(table.update().where(table.c.id == row_id).values(**values, updated_at=datetime.now(UTC)))
            return _live_row(conn, entity, table, row_id)
    except IntegrityError:
        raise Problem(409, f"the {entity.singular} conflicts with a row written at the same time") from None


def delete_row(
    conn: Connection, entity: Entity, table: Table, row_id: int, precondition: Precondition = _unconditional
) -> None:
    """Tombstone a client-owned row, if the row as it is now meets the precondition. Of concurrent
    deletes of one row exactly one wins: the row is locked before it is judged, and a tombstone is
    never written again (its deleted_at is when the row was deleted)."""
    with begin_write(conn):
        row = _live_row(conn, entity, table, row_id, lock=True)
        _owned_by_client(entity, row)
        precondition(row)
        now = datetime.now(UTC)
        live = (table.c.id == row_id) & table.c.deleted_at.is_(None)
        if conn.execute(table.update().where(live).values(deleted_at=now, updated_at=now)).rowcount != 1:
            raise Problem(404, f"no {entity.singular} with id {row_id}")  # where a database locks no rows
