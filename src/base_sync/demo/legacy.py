"""The demo's Base A in a legacy shape: the tables `mappings/demo.yaml` maps onto Base B's entities.

An operational database another team owns rarely looks like Base B. This one has German table
and column names, unsigned keys, local wall-clock DATETIMEs (Europe/Berlin) instead of UTC
TIMESTAMPs, a change stamp that stays NULL until a row is first updated, a soft-delete flag,
department codes instead of names, padded names and mixed-case e-mail addresses, and drafts that
must not be published. `base-a` writes these tables instead of the platform's own when
BASE_A_MAPPING_FILE is set (`make up` sets it); the sync reads them only through the mapping.

    personal (employees)                      beitrag (articles)
      pers_nr        INT UNSIGNED key           beitrag_id    INT UNSIGNED key
      vorname, nachname, mail, stelle           titel, inhalt, autor_vorname, autor_nachname
      abteilung_code CHAR(2)  -> department     status        'entwurf' (draft) or 'veroeffentlicht'
      gehalt DECIMAL(12,2), eintritt DATE       geaendert_am  DATETIME, local, set on every change
      aktiv          TINYINT  (0: deleted)      erstellt_am   DATETIME, local
      geaendert_am   DATETIME NULL, local
      angelegt_am    DATETIME, local

Rows go in through the driver's executemany in chunks, streamed, so the bench's million rows take
seconds. No trigger, no delete log: hard deletes reach Base B through the key comparison, soft
deletes through the flag.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    CHAR,
    Column,
    Date,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    func,
    select,
)

from base_sync.backends import BaseABackend, backend_named, backend_of
from base_sync.debezium import SourceColumn
from base_sync.demo.generate import DEPARTMENTS, FIRST, LAST, POSITIONS, WORDS, chunks, insert_rows

ZONE = "Europe/Berlin"  # the demo mapping's source.time_zone
CHUNK = 20_000
# abteilung_code -> department: the value map of mappings/demo.yaml.
CODES = {"EN": "Engineering", "VT": "Sales", "MA": "Marketing", "FI": "Finance"}
CODES |= {"BE": "Operations", "SU": "Support", "PE": "People", "RE": "Legal"}
assert sorted(CODES.values()) == sorted(DEPARTMENTS)
TABLES = {"employees": "personal", "articles": "beitrag"}
DRAFT, PUBLISHED = "entwurf", "veroeffentlicht"


def build_tables(backend: BaseABackend) -> dict[str, Table]:
    """The legacy tables on a kind of database, by the Base B entity each one feeds."""
    metadata = MetaData()
    key, local, flag = backend.unsigned_key_type, backend.local_stamp_type, backend.flag_type
    personal = Table(
        "personal",
        metadata,
        Column("pers_nr", key, primary_key=True, autoincrement=False),
        Column("vorname", String(100), nullable=False),
        Column("nachname", String(100), nullable=False),
        Column("mail", String(255), nullable=False),
        Column("abteilung_code", CHAR(2)),
        Column("stelle", String(100)),
        Column("gehalt", Numeric(12, 2)),
        Column("eintritt", Date),
        Column("aktiv", flag, nullable=False),
        Column("geaendert_am", local),
        Column("angelegt_am", local, nullable=False),
    )
    # Serves the incremental reads: a changed row's geaendert_am, a new row's angelegt_am.
    Index("ix_personal_geaendert_angelegt", personal.c.geaendert_am, personal.c.angelegt_am)
    beitrag = Table(
        "beitrag",
        metadata,
        Column("beitrag_id", key, primary_key=True, autoincrement=False),
        Column("titel", String(300), nullable=False),
        Column("inhalt", Text),
        Column("autor_vorname", String(100)),
        Column("autor_nachname", String(100)),
        Column("status", String(20), nullable=False),
        Column("geaendert_am", local, nullable=False),
        Column("erstellt_am", local, nullable=False),
    )
    Index("ix_beitrag_geaendert_am", beitrag.c.geaendert_am, beitrag.c.beitrag_id)
    return {"employees": personal, "articles": beitrag}


def create(engine: Engine) -> dict[str, Table]:
    """Create the legacy tables (if missing); the tables by entity."""
    tables = build_tables(backend_of(engine))
    next(iter(tables.values())).metadata.create_all(engine)
    return tables


def local_now() -> datetime:
    """The wall-clock time in the demo's zone, to the second, as a legacy application writes it."""
    return datetime.now(ZoneInfo(ZONE)).replace(tzinfo=None, microsecond=0)


def _local(instant: datetime) -> datetime:
    return instant.astimezone(ZoneInfo(ZONE)).replace(tzinfo=None)


def _created(rng: random.Random, key: int) -> datetime:
    # Keys handed out in creation order, as an AUTO_INCREMENT key is: the stamps rise with the key,
    # about 100 s apart (1,000,000 rows span three years and their daylight-saving changes).
    return _local(datetime(2015, 1, 1, tzinfo=UTC) + timedelta(seconds=key * 97 + rng.randrange(97)))


def _employee(rng: random.Random, key: int) -> tuple:
    first, last = rng.choice(FIRST.split()), rng.choice(LAST.split())
    hired = date(2005, 1, 1) + timedelta(days=rng.randrange(7300))
    salary = Decimal(rng.randrange(2_800_000, 18_000_000)) / 100
    if key % 7 == 0:
        last += "  "  # typed with trailing blanks: the mapping trims them
    mail = f"{first}.{last.strip()}.{key}@Example.com" if key % 3 == 0 else f"{first}.{last.strip()}.{key}@example.com"
    code = rng.choice(list(CODES))
    # The created stamp last: the backends' driver_row formats it.
    return (key, first, last, mail, code, rng.choice(POSITIONS), salary, hired, 1, None, _created(rng, key))


def _article(rng: random.Random, key: int) -> tuple:
    title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))).capitalize()
    if key % 50 == 25:
        title = ((title + " ") * 20)[:290]  # longer than Base B's 255 characters: the mapping truncates it
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 200)))
    created = _created(rng, key)
    status = DRAFT if key % 10 == 0 else PUBLISHED
    return (key, title.strip(), body.capitalize() + ".", rng.choice(FIRST.split()), rng.choice(LAST.split()), status,
            created, created)  # fmt: skip


MAKERS = {"employees": _employee, "articles": _article}
# How many stamps end a new row: personal's angelegt_am (geaendert_am stays NULL until an update);
# beitrag's geaendert_am and erstellt_am.
NEW_ROW_STAMPS = {"employees": 1, "articles": 2}


def _stamped(make, now: datetime, stamps: int):
    """A maker whose rows were created `now`: the row's last `stamps` values."""

    def stamped(rng: random.Random, key: int) -> tuple:
        return (*make(rng, key)[:-stamps], *([now] * stamps))

    return stamped


def table_of(engine: Engine, entity: str) -> Table:
    try:
        return build_tables(backend_of(engine))[entity]
    except KeyError:
        raise ValueError(f"the legacy demo has no table for {entity!r} (only {', '.join(TABLES)})") from None


def count(engine: Engine, entity: str) -> int:
    """Rows in the entity's legacy table (soft-deleted and draft rows included)."""
    table = create(engine)[entity]
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def max_key(engine: Engine, entity: str) -> int:
    table = create(engine)[entity]
    key = table.primary_key.columns[0]
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(key), 0))).scalar_one())


def seed(engine: Engine, entity: str, rows: int, seed_value: int | None = None, now: datetime | None = None) -> int:
    """Add `rows` new rows after the highest key; how many were added. Their stamps are random
    times of the past years, or all `now` (new rows of the churn)."""
    rng, make = random.Random(seed_value), MAKERS[entity]
    if now is not None:
        make = _stamped(make, now, NEW_ROW_STAMPS[entity])
    table = create(engine)[entity]
    names = [c.name for c in table.columns]
    marks = ", ".join([backend_of(engine).param_mark] * len(names))
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"
    insert_rows(engine, sql, chunks(max_key(engine, entity) + 1, rows, make, rng))
    return rows


def pick_keys(engine: Engine, entity: str, updates: int, deletes: int, rng: random.Random) -> tuple[list, list]:
    """Keys to update and keys to delete, at random among the rows still live (not soft-deleted)."""
    table = create(engine)[entity]
    key = table.primary_key.columns[0]
    live = [table.c.aktiv != 0] if "aktiv" in table.c else []
    with engine.connect() as conn:
        keys = [k for (k,) in conn.execute(select(key).where(*live))] if (updates or deletes) else []
    rng.shuffle(keys)
    return keys[deletes : deletes + updates], keys[:deletes]


def _change(table: Table, now: datetime) -> dict:
    if table.name == "personal":
        # Rounded: SQLite keeps a DECIMAL as a float, whose sum (65518.79 + 100 = 65618.79000000001)
        # the batch path would read with all its digits, a salary the API refuses.
        return {"gehalt": func.round(table.c.gehalt + 100, 2), "stelle": "Senior Engineer", "geaendert_am": now}
    return {"inhalt": table.c.inhalt + " (aktualisiert)", "geaendert_am": now}


def apply_changes(
    engine: Engine,
    entity: str,
    touched: list,
    doomed: list,
    inserts: int,
    rng: random.Random,
    soft: list | tuple = (),
) -> None:
    """Update `touched` (stamping geaendert_am with the local time), hard-delete `doomed`, soft-delete
    `soft` (aktiv = 0, employees only), then insert `inserts` new rows."""
    table = create(engine)[entity]
    key, now = table.primary_key.columns[0], local_now()
    with engine.begin() as conn:
        for start in range(0, len(touched), CHUNK):
            conn.execute(table.update().where(key.in_(touched[start : start + CHUNK])).values(**_change(table, now)))
        for start in range(0, len(soft), CHUNK):
            conn.execute(table.update().where(key.in_(soft[start : start + CHUNK])).values(aktiv=0, geaendert_am=now))
        for start in range(0, len(doomed), CHUNK):
            conn.execute(table.delete().where(key.in_(doomed[start : start + CHUNK])))
    if inserts:
        seed(engine, entity, inserts, rng.randrange(1 << 30), now)


def churn(
    engine: Engine,
    entity: str,
    updates: int = 0,
    inserts: int = 0,
    deletes: int = 0,
    seed_value=None,
    soft_deletes: int = 0,
) -> dict:
    """Random changes: updates, hard deletes, soft deletes (employees), inserts."""
    if soft_deletes and entity != "employees":
        raise ValueError(f"{entity} has no soft-delete flag in the legacy demo")
    rng = random.Random(seed_value)
    touched, doomed = pick_keys(engine, entity, updates, deletes + soft_deletes, rng)
    soft, doomed = doomed[:soft_deletes], doomed[soft_deletes:]
    apply_changes(engine, entity, touched, doomed, inserts, rng, soft)
    done = {"updated": len(touched), "inserted": inserts, "deleted": len(doomed)}
    return done | ({"soft_deleted": len(soft)} if soft_deletes else {})


def in_use(mapping) -> bool:
    """Whether a mapping reads the legacy demo's tables (then `base-a` writes them)."""
    return not mapping.is_identity and all(mapping.table_of(e) == TABLES.get(e) for e in mapping.entities)


def expected_records(base_a, entity: str) -> dict[int, dict]:
    """What Base B should hold: the live rows through the mapping, as bulk records by key (tests, summaries)."""
    view = base_a.view(entity)
    names = view.source_columns
    statement = select(*(view.c(n) for n in names)).where(*view.live).order_by(view.key)
    with base_a.engine.connect() as conn:
        rows = [dict(zip(names, row, strict=True)) for row in conn.execute(statement)]
    return {row[view.spec.key]: view.apply(row) for row in rows}


def rows_by_keys(base_a, entity: str, keys: list, chunk_size: int = CHUNK) -> dict[int, dict]:
    """{key: row} of the given keys' rows as they are in the legacy table, typed (dates, decimals,
    times): the before- and after-images the event maker publishes."""
    table, out = build_tables(base_a.backend)[entity], {}
    key = table.primary_key.columns[0]
    with base_a.engine.connect() as conn:
        for start in range(0, len(keys), chunk_size):
            statement = select(table).where(key.in_(keys[start : start + chunk_size]))
            out |= {row[key.name]: dict(row) for row in conn.execute(statement).mappings()}
    return out


def envelope_columns(entity: str) -> list[SourceColumn]:
    """The legacy table's columns as a Debezium envelope carries them (the MySQL connector's types)."""
    table = build_tables(backend_named("mysql"))[entity]
    columns = []
    for column in table.columns:
        name = str(column.name)  # a plain str: orjson refuses SQLAlchemy's quoted_name as a key
        optional = column.nullable and not column.primary_key
        if isinstance(column.type, Numeric):
            kind = {"scale": column.type.scale or 0, "precision": column.type.precision}
            columns.append(SourceColumn(name, "decimal", optional, **kind))
        elif isinstance(column.type, DateTime):
            columns.append(SourceColumn(name, "datetime", optional))
        elif isinstance(column.type, Date):
            columns.append(SourceColumn(name, "date", optional))
        elif isinstance(column.type, Integer):
            wide = column.primary_key  # INT UNSIGNED does not fit int32
            columns.append(SourceColumn(name, "int64" if wide else "int16", optional))
        else:
            columns.append(SourceColumn(name, "string", optional))
    return columns
