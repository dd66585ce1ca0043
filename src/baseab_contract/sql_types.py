"""The SQL column type of each declared field: Base A's tables and Base B's are built from it."""

from __future__ import annotations

from sqlalchemy import Date, Numeric, String, Text
from sqlalchemy.types import TypeEngine

from baseab_contract.entities import Field, Kind


def sql_type(field: Field) -> TypeEngine:
    """The column type for a declared field."""
    match field.kind:
        case Kind.STRING | Kind.EMAIL:
            return String(field.max_length)
        case Kind.TEXT:
            return Text()
        case Kind.DECIMAL:
            return Numeric(field.precision, field.scale, asdecimal=True)
        case Kind.DATE:
            return Date()
    raise ValueError(f"no SQL type for {field.kind}")
