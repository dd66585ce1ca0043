"""Fill Base A with realistic rows at scale, and apply random inserts, updates and deletes.

Rows go in through the driver's executemany in chunks (mysqlclient turns each chunk into one
multi-row INSERT), so a million employees take seconds, not minutes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, func, select

from base_sync.backends import backend_of
from base_sync.source_schema import build_tables, create_schema
from baseab_contract.entities import ENTITIES, Entity, Field, Kind

CHUNK = 20_000

FIRST = "Ada Alan Anna Ben Carla Chen David Elena Farid Grace Hana Ivan Jana Kofi Lena Maria Noah Olga Pedro Rosa Sam "
FIRST += "Tara Umar Vera Wei Yara Zoe Amir Bea Cyril Dana Emil Fatima Gus Ines Jon Kira Luis Mei Nils"
LAST = "Smith Garcia Muller Rossi Nguyen Kim Novak Silva Cohen Okafor Dubois Jensen Ivanova Tanaka Haddad Larsen "
LAST += "Costa Meyer Kowalski Santos Brown Wilson Moreau Fischer Lopez Sato Ahmed Berg Popescu Horvat"
DEPARTMENTS = ["Engineering", "Sales", "Marketing", "Finance", "Operations", "Support", "People", "Legal"]
POSITIONS = ["Analyst", "Engineer", "Senior Engineer", "Manager", "Director", "Specialist", "Lead", "Associate"]
WORDS = (
    "data platform sync change event stream batch source target quality report release customer market "
    "growth team plan result review update record pipeline schema query latency metric"
).split()


def _employee(rng: random.Random, key: int) -> tuple:
    first, last = rng.choice(FIRST.split()), rng.choice(LAST.split())
    hired = date(2005, 1, 1) + timedelta(days=rng.randrange(7300))
    created = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(300_000_000))
    salary = Decimal(rng.randrange(2_800_000, 18_000_000)) / 100
    email = f"{first}.{last}.{key}@example.com".lower()
    return (key, first, last, email, rng.choice(DEPARTMENTS), rng.choice(POSITIONS), salary, hired, created)


def _article(rng: random.Random, key: int) -> tuple:
    title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))).capitalize()
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 200)))
    author = f"{rng.choice(FIRST.split())} {rng.choice(LAST.split())}"
    created = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(300_000_000))
    return (key, title, body.capitalize() + ".", author, created)


Maker = tuple[tuple[str, ...], Callable[[random.Random, int], tuple]]

# Hand-written makers give the two demo entities realistic rows; any other entity gets rows made
# from its declaration (`_declared_maker`), so a new entity needs nothing here.
_REALISTIC: dict[str, Maker] = {
    "employees": (
        ("id", "first_name", "last_name", "email", "department", "position", "salary", "hired_at", "created_at"),
        _employee,
    ),
    "articles": (("id", "title", "content", "author", "created_at"), _article),
}


def _declared_value(field: Field, rng: random.Random, key: int, singular: str):
    match field.kind:
        case Kind.EMAIL:
            return f"{singular}.{key}@example.com"
        case Kind.DECIMAL:
            whole = 10 ** min((field.precision or 12) - (field.scale or 0), 9)
            return Decimal(rng.randrange(whole * 10 ** (field.scale or 0))) / 10 ** (field.scale or 0)
        case Kind.DATE:
            return date(2005, 1, 1) + timedelta(days=rng.randrange(7300))
        case Kind.TEXT:
            return " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 50)))
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
    return f"{text} {key}"[: field.max_length or None]


def _declared_maker(entity: Entity) -> Maker:
    """Rows of any declared entity: every field filled by its kind, unique values made from the key."""

    def make(rng: random.Random, key: int) -> tuple:
        values = (_declared_value(field, rng, key, entity.singular) for field in entity.fields)
        created = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(300_000_000))
        return (key, *values, created)

    return (("id", *entity.field_names, "created_at"), make)


def maker(entity: str) -> Maker:
    """The columns a seeded row fills and the function making one."""
    return _REALISTIC.get(entity) or _declared_maker(ENTITIES[entity])


def _change(table, entity: str) -> dict:
    """What an update of the churn changes: for a declared entity, its first text field."""
    if entity == "employees":
        return {"salary": table.c.salary + 100, "position": "Senior Engineer"}
    first_text = next(f for f in ENTITIES[entity].fields if f.kind in (Kind.STRING, Kind.TEXT))
    return {first_text.name: table.c[first_text.name] + " (updated)"}


def chunks(first_key: int, count: int, make, rng) -> Iterator[list[tuple]]:
    """New rows `make` builds for the keys from `first_key` on, CHUNK at a time."""
    for start in range(first_key, first_key + count, CHUNK):
        yield [make(rng, key) for key in range(start, min(start + CHUNK, first_key + count))]


def _insert_sql(engine: Engine, entity: str) -> str:
    columns, _ = maker(entity)
    mark = backend_of(engine).param_mark
    return f"INSERT INTO {entity} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def count(engine: Engine, entity: str) -> int:
    """Rows in the demo's table of `entity` (a read: creates nothing)."""
    tables = build_tables(backend_of(engine))[1]
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(tables[entity])).scalar_one()


def max_key(engine: Engine, entity: str) -> int:
    tables = create_schema(engine)
    with engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.max(tables[entity].c.id), 0))).scalar_one()


def seed(engine: Engine, entity: str, count: int, seed_value: int | None = None) -> int:
    """Add `count` new rows after the highest key; returns the number added."""
    rng = random.Random(seed_value)
    _, make = maker(entity)
    first_key = max_key(engine, entity) + 1
    insert_rows(engine, _insert_sql(engine, entity), chunks(first_key, count, make, rng))
    return count


def insert_rows(engine: Engine, sql: str, rows: Iterator[list[tuple]]) -> None:
    """Insert chunks of rows with the driver's executemany, a commit per chunk (fast, streamed)."""
    backend = backend_of(engine)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for chunk in rows:
            cursor.executemany(sql, [backend.driver_row(row) for row in chunk])
            raw.commit()
        cursor.close()
    finally:
        raw.close()


def churn(engine: Engine, entity: str, updates: int = 0, inserts: int = 0, deletes: int = 0, seed_value=None) -> dict:
    """Random changes: update and delete existing rows (chosen at random), insert new ones."""
    rng = random.Random(seed_value)
    touched, doomed = pick_keys(engine, entity, updates, deletes, rng)
    apply_changes(engine, entity, touched, doomed, inserts, rng)
    return {"updated": len(touched), "inserted": inserts, "deleted": len(doomed)}


def pick_keys(engine: Engine, entity: str, updates: int, deletes: int, rng: random.Random) -> tuple[list, list]:
    """Keys to update and keys to delete, at random among the existing rows."""
    table = create_schema(engine)[entity]
    with engine.connect() as conn:
        keys = [k for (k,) in conn.execute(select(table.c.id))] if (updates or deletes) else []
    rng.shuffle(keys)
    return keys[deletes : deletes + updates], keys[:deletes]


def apply_changes(engine: Engine, entity: str, touched: list, doomed: list, inserts: int, rng: random.Random) -> None:
    table = create_schema(engine)[entity]
    change = _change(table, entity)
    with engine.begin() as conn:
        for start in range(0, len(touched), CHUNK):
            conn.execute(table.update().where(table.c.id.in_(touched[start : start + CHUNK])).values(**change))
        for start in range(0, len(doomed), CHUNK):
            conn.execute(table.delete().where(table.c.id.in_(doomed[start : start + CHUNK])))
    if inserts:
        seed(engine, entity, inserts, rng.randrange(1 << 30))
