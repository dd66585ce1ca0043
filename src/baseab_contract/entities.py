"""The entities Base B serves, declared once.

Tables, request/response models, routes, filters and the OpenAPI document are all derived from
these declarations, so adding an entity means adding one `Entity(...)` to `ENTITIES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import cached_property


class Kind(StrEnum):
    """Value kinds an entity field can hold; each maps to one SQL type and one validator."""

    STRING = "string"  # bounded text (VARCHAR)
    TEXT = "text"  # unbounded text
    EMAIL = "email"  # bounded text shaped like an address
    DECIMAL = "decimal"  # exact number with fixed scale
    DATE = "date"


@dataclass(frozen=True)
class Field:
    """One data column of an entity, as clients see it."""

    name: str
    kind: Kind
    required: bool = False
    max_length: int | None = None
    precision: int | None = None  # DECIMAL total digits
    scale: int | None = None  # DECIMAL digits after the point
    minimum: Decimal | None = None
    unique: bool = False  # among live rows
    filterable: bool = False  # exposed as an equality filter on list reads
    description: str = ""


@dataclass(frozen=True)
class Entity:
    """A resource served under `/<name>` and stored in the table of the same name."""

    name: str  # plural, also the table and the URL segment
    singular: str
    title: str  # for the docs
    fields: tuple[Field, ...]

    # Cached: the sync reads these once per row.
    @cached_property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @cached_property
    def unique_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.unique)

    @property
    def filterable_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.filterable)


ARTICLES = Entity(
    name="articles",
    singular="article",
    title="Article",
    fields=(
        Field("title", Kind.STRING, required=True, max_length=255, description="Headline"),
        Field("content", Kind.TEXT, description="Body text"),
        Field("author", Kind.STRING, max_length=255, filterable=True, description="Author name"),
    ),
)

EMPLOYEES = Entity(
    name="employees",
    singular="employee",
    title="Employee",
    fields=(
        Field("first_name", Kind.STRING, required=True, max_length=100),
        Field("last_name", Kind.STRING, required=True, max_length=100, filterable=True),
        Field("email", Kind.EMAIL, required=True, max_length=255, unique=True, filterable=True),
        Field("department", Kind.STRING, max_length=100, filterable=True),
        Field("position", Kind.STRING, max_length=100, filterable=True),
        Field("salary", Kind.DECIMAL, precision=12, scale=2, minimum=Decimal(0), description="Yearly salary"),
        Field("hired_at", Kind.DATE, description="Hiring date"),
    ),
)

ENTITIES: dict[str, Entity] = {e.name: e for e in (ARTICLES, EMPLOYEES)}
