"""The legacy demo Base A (`make up`'s): its mapping file is valid, and the batch sync carries its
tables through the mapping into Base B, equal to the mapped source, on MariaDB and on SQLite."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Column, DateTime, MetaData, Table, inspect, null, select, text, type_coerce
from sqlalchemy.dialects import mysql

from base_sync.backends import backend_of
from base_sync.demo import legacy
from base_sync.dirty import Quarantined
from base_sync.mapping import SourceMapping, load_mapping, parse_mapping
from base_sync.mapping.time_zones import zone_rule
from base_sync.source import BaseA, source_engine
from base_sync.state import MemoryStateStore
from baseab_contract.entities import ENTITIES, Kind
from testbed.servers import REPO, venv_bin
from tests.sync.conftest import synced_rows
from tests.sync.test_sync_steps import SETTINGS, run_once

DEMO = REPO / "mappings" / "demo.yaml"


def test_the_demo_mapping_loads_and_maps_every_entity_to_the_legacy_tables():
    spec = load_mapping(DEMO)
    mapping = SourceMapping.from_file(DEMO)
    assert set(mapping.entities) == set(ENTITIES)
    assert legacy.in_use(mapping)
    assert spec.source.time_zone == legacy.ZONE
    assert spec.entities["employees"].fields["department"].map == legacy.CODES
    assert not legacy.in_use(SourceMapping())  # the identity mapping: base-a writes the platform's tables


@pytest.fixture(params=["mariadb", "sqlite"])
def legacy_engine(request, make_mariadb_database, tmp_path: Path):
    url = make_mariadb_database() if request.param == "mariadb" else f"sqlite:///{tmp_path / 'legacy.sqlite'}"
    engine = source_engine(url)
    legacy.create(engine)
    yield engine
    engine.dispose()


def _as_synced(field, value):
    """A source value as Base B holds it: SQLite gives a DECIMAL column's value as a float and a
    DATE's as text (the view reads the legacy table untyped); the API stores the exact value."""
    if value is None:
        return None
    if field.kind == Kind.DECIMAL:
        return str(Decimal(str(value)).quantize(Decimal(1).scaleb(-(field.scale or 0))))
    if field.kind == Kind.DATE and isinstance(value, str):
        return date.fromisoformat(value)
    return value


def mapped_source(base_a: BaseA, entity: str) -> dict[int, tuple]:
    """{key: (version, fields...)}: the live legacy rows through the mapping, as Base B should hold them."""
    records = legacy.expected_records(base_a, entity)
    assert not [r for r in records.values() if isinstance(r, Quarantined)], "the demo data has no dirty rows"
    fields = ENTITIES[entity].fields
    return {key: (r["source_updated_at"], *(_as_synced(f, r[f.name]) for f in fields)) for key, r in records.items()}


def assert_mapped_in_sync(base_a: BaseA, database_url: str, entity: str) -> int:
    ours, theirs = mapped_source(base_a, entity), synced_rows(database_url, entity)
    assert set(ours) - set(theirs) == set(), "rows missing in Base B"
    assert set(theirs) - set(ours) == set(), "rows gone from Base A (or soft-deleted, or drafts) still live in Base B"
    differing = [key for key in ours if ours[key] != theirs[key]]
    assert differing == [], f"rows that differ, e.g. {ours[differing[0]]} vs {theirs[differing[0]]}"
    return len(ours)


def test_the_legacy_demo_syncs_through_its_mapping(legacy_engine, base_b):
    base_a = BaseA(legacy_engine, SourceMapping.from_file(DEMO))
    api, store = base_b.api(), MemoryStateStore()
    legacy.seed(legacy_engine, "employees", 400, seed_value=1)
    legacy.seed(legacy_engine, "articles", 150, seed_value=2)
    for entity in ENTITIES:
        run_once(entity, base_a, api, store, SETTINGS)
        assert assert_mapped_in_sync(base_a, base_b.database_url, entity) > 0

    # What the mapping had to do is in Base B: names trimmed, addresses lower-cased, codes mapped,
    # long titles cut to 255 characters, drafts left out, local times read in Europe/Berlin.
    employees = synced_rows(base_b.database_url, "employees")
    fields = ENTITIES["employees"].field_names
    assert {row[1 + fields.index("department")] for row in employees.values()} <= set(legacy.CODES.values())
    assert all(row[1 + fields.index("email")].islower() for row in employees.values())
    assert not any(row[1 + fields.index("last_name")].endswith(" ") for row in employees.values())
    articles = synced_rows(base_b.database_url, "articles")
    assert 10 not in articles and 50 not in articles and 49 in articles  # keys 10, 20, ...: drafts
    assert len(articles[25][1]) == 255 and max(len(row[1]) for row in articles.values()) == 255

    changes = legacy.churn(legacy_engine, "employees", updates=40, inserts=6, deletes=3, seed_value=3, soft_deletes=5)
    assert changes == {"updated": 40, "inserted": 6, "deleted": 3, "soft_deleted": 5}
    legacy.churn(legacy_engine, "articles", updates=12, inserts=3, deletes=2, seed_value=4)
    for entity in ENTITIES:
        report = run_once(entity, base_a, api, store, SETTINGS)
        assert assert_mapped_in_sync(base_a, base_b.database_url, entity) > 0
        if entity == "employees":
            assert report["deletes"]["deleted"] == 3 + 5  # hard and soft deletes: no longer live


def test_a_key_changed_without_moving_the_stamp_moves_in_base_b_within_one_run(legacy_engine, base_b):
    """The legacy application sets its stamps itself: an UPDATE of the key alone, or a row put back
    from a backup with its old stamps, is behind the watermark, so no window reads the new key.
    Without a delete log every run compares the keys: it deletes the old key and sends the key
    Base A holds that Base B lacks, in the same run."""
    base_a = BaseA(legacy_engine, SourceMapping.from_file(DEMO))
    api, store = base_b.api(), MemoryStateStore()
    legacy.seed(legacy_engine, "employees", 50, seed_value=5)
    run_once("employees", base_a, api, store, SETTINGS)
    with legacy_engine.begin() as conn:
        low, high = conn.execute(text("SELECT MIN(pers_nr), MAX(pers_nr) FROM personal WHERE aktiv = 1")).one()
        conn.execute(text("UPDATE personal SET pers_nr = :new WHERE pers_nr = :old"), {"new": high + 1, "old": low})
    moved = run_once("employees", base_a, api, store, SETTINGS)
    assert moved["load"].get("extracted", 0) == 0, "the new key is behind the watermark"
    assert moved["deletes"]["deleted"] == moved["deletes"]["resent_behind"] == 1
    rows = synced_rows(base_b.database_url, "employees")
    assert low not in rows and high + 1 in rows
    assert assert_mapped_in_sync(base_a, base_b.database_url, "employees") == 50

    with legacy_engine.begin() as conn:
        backup = conn.execute(text("SELECT * FROM personal WHERE pers_nr = :key"), {"key": high}).mappings().one()
        conn.execute(text("DELETE FROM personal WHERE pers_nr = :key"), {"key": high})
    assert run_once("employees", base_a, api, store, SETTINGS)["deletes"]["deleted"] == 1
    with legacy_engine.begin() as conn:  # put back from a backup, its stamps as they were
        columns = ", ".join(backup)
        conn.execute(text(f"INSERT INTO personal ({columns}) VALUES ({', '.join(':' + c for c in backup)})"), backup)
    restored = run_once("employees", base_a, api, store, SETTINGS)
    assert restored["deletes"]["resent_behind"] == 1 and high in synced_rows(base_b.database_url, "employees")
    assert assert_mapped_in_sync(base_a, base_b.database_url, "employees") == 50


@pytest.mark.parametrize("kind", ["mariadb", "sqlite"])
@pytest.mark.parametrize("zone", [legacy.ZONE, "America/New_York", "Etc/GMT+5"])
def test_the_sql_time_zone_rule_equals_pythons_at_every_change(kind, zone, make_mariadb_database):
    """The bisecting CASE gives every wall time the UTC instant `zoneinfo`'s rule gives, on both
    sides of each daylight-saving change, and a NULL stays NULL. West of UTC an "open end" sentinel
    late on 9999-12-31 lies past datetime's end in UTC: held there, on both paths, never NULL."""
    rule = zone_rule(zone)
    walls = [datetime(1975, 6, 1), datetime(2031, 12, 31, 23, 59, 59)]
    walls += [
        datetime(9999, 12, 31, 18, 59, 59, 999000),
        datetime(9999, 12, 31, 19),
        datetime(9999, 12, 31, 23, 59, 59),
    ]
    for boundary in rule.boundaries[-30:]:  # the last 15 years of changes
        walls += [boundary - timedelta(seconds=1), boundary, boundary - timedelta(minutes=30)]
    engine = source_engine(make_mariadb_database() if kind == "mariadb" else "sqlite://")
    backend = backend_of(engine)
    table = Table(
        "walls", MetaData(), Column("wall", DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"))
    )
    try:
        with engine.begin() as conn:
            table.create(conn)
            conn.execute(table.insert(), [{"wall": w} for w in walls])
            got = conn.execute(select(rule.sql_to_utc(table.c.wall, backend))).scalars().all()
            got = [v if isinstance(v, datetime) else datetime.fromisoformat(v) for v in got]
            assert got == [rule.to_utc(w).replace(tzinfo=None) for w in walls]
            assert max(got) == datetime.max if zone != legacy.ZONE else max(got) < datetime.max
            assert conn.execute(select(rule.sql_to_utc(type_coerce(null(), DateTime()), backend))).scalar() is None
    finally:
        engine.dispose()


@pytest.mark.parametrize("document", ["README.md", "docs/mapping.md"])
def test_the_documented_mapping_examples_are_valid(document):
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / document).read_text(), flags=re.DOTALL)
    examples = [b for b in blocks if "entities:" in b]
    assert examples, f"{document} shows no mapping"
    for block in examples:
        parse_mapping(yaml.safe_load(block), document)


def test_a_sqlite_base_a_with_values_that_are_no_dates_or_numbers_still_syncs(tmp_path, base_b):
    """SQLite keeps any text in a DATE, DATETIME or DECIMAL column: each such row gets the mapping's
    rule (zero_date: null) or a rejection with its reason, and the run goes on (`make up`'s Base A)."""
    engine = source_engine(f"sqlite:///{tmp_path / 'legacy.sqlite'}")
    legacy.create(engine)
    legacy.seed(engine, "employees", 30, seed_value=6)
    base_a, api, store = BaseA(engine, SourceMapping.from_file(DEMO)), base_b.api(), MemoryStateStore()
    keys = sorted(k for (k,) in engine.connect().execute(text("SELECT pers_nr FROM personal WHERE aktiv = 1")))[:4]
    with engine.begin() as conn:
        for key, change in zip(
            keys,
            [
                "eintritt = '0000-00-00'",  # mapped with zero_date: null
                "eintritt = '2024-13-45'",  # no real date: the same rule (as MySQL's path reads it)
                "gehalt = 'abc'",  # no number: the API refuses the record
                "angelegt_am = '0000-00-00 00:00:00', geaendert_am = NULL",  # no version: refused
            ],
            strict=True,
        ):
            conn.execute(text(f"UPDATE personal SET {change} WHERE pers_nr = {key}"))
    report = run_once("employees", base_a, api, store, SETTINGS)
    rejected = {r["source_id"]: r["reasons"] for r in api.open_rejections("employees")}
    assert set(rejected) == set(keys[2:]), rejected
    assert rejected[keys[2]][0]["field"] == "salary" and "zero timestamp" in rejected[keys[3]][0]["message"]
    held = synced_rows(base_b.database_url, "employees")
    hired_at = 1 + ENTITIES["employees"].field_names.index("hired_at")
    assert held[keys[0]][hired_at] is None and held[keys[1]][hired_at] is None
    assert report["load"]["inserted"] == len(held) and not set(keys[2:]) & set(held)
    engine.dispose()


def test_base_a_refuses_to_write_the_legacy_demo_without_its_mapping(tmp_path):
    url = f"sqlite:///{tmp_path / 'legacy.sqlite'}"
    engine = source_engine(url)
    legacy.create(engine)
    env = {k: v for k, v in os.environ.items() if k != "BASE_A_MAPPING_FILE"} | {"BASE_A_URL": url}
    command = [venv_bin("base-a"), "churn", "employees", "--updates", "1"]
    churned = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert churned.returncode != 0 and "BASE_A_MAPPING_FILE=mappings/demo.yaml" in churned.stderr, churned.stderr
    assert not inspect(engine).has_table("employees")  # nothing added beside the demo's tables
    engine.dispose()


def test_the_legacy_demos_salary_raise_stays_a_salary_on_sqlite(tmp_path):
    """SQLite keeps a DECIMAL as a float: `gehalt + 100` stored 65618.79000000001, which the batch
    path read with all its digits and the API refused (more than 12 digits)."""
    engine = source_engine(f"sqlite:///{tmp_path / 'legacy.sqlite'}")
    legacy.create(engine)
    legacy.seed(engine, "employees", 20, seed_value=5)
    with engine.begin() as conn:
        conn.execute(text("UPDATE personal SET gehalt = 65518.79"))  # + 100 as floats: 65618.79000000001
    legacy.churn(engine, "employees", updates=20, seed_value=6)
    with engine.connect() as conn:
        salaries = [value for (value,) in conn.execute(text("SELECT gehalt FROM personal"))]
    assert salaries and all(Decimal(str(s)) == Decimal(str(s)).quantize(Decimal("0.01")) for s in salaries)
    engine.dispose()


def test_the_event_maker_publishes_the_legacy_demos_soft_deletes(tmp_path, kafka_bootstrap, monkeypatch):
    """`base-a churn --soft-deletes N --publish` ignored --soft-deletes: no row was flagged."""
    from confluent_kafka import Consumer  # noqa: PLC0415

    from base_sync.demo.event_maker import churn_and_publish  # noqa: PLC0415

    monkeypatch.setenv("BASE_A_MAPPING_FILE", str(DEMO))
    engine = source_engine(f"sqlite:///{tmp_path / 'legacy.sqlite'}")
    legacy.create(engine)
    legacy.seed(engine, "employees", 50, seed_value=7)
    prefix = f"soft{os.getpid()}{tmp_path.name[-6:]}".replace("_", "")
    made = churn_and_publish(
        engine, "employees", kafka_bootstrap, updates=2, seed_value=8, prefix=prefix, soft_deletes=3
    )
    assert made["soft_deleted"] == 3 and made["updated"] == 2 and made["published"] == {"c": 0, "u": 5, "d": 0}
    with engine.connect() as conn:
        flagged = set(conn.execute(text("SELECT pers_nr FROM personal WHERE aktiv = 0")).scalars())
    assert len(flagged) == 3
    from base_sync.events import CONSUMER_DEFAULTS  # noqa: PLC0415

    settings = {"bootstrap.servers": kafka_bootstrap, "group.id": prefix, "auto.offset.reset": "earliest"}
    consumer = Consumer(settings | CONSUMER_DEFAULTS)
    consumer.subscribe([t for t in consumer.list_topics(timeout=10).topics if t.startswith(f"{prefix}.")])
    afters = {}
    try:
        deadline = datetime.now() + timedelta(seconds=30)
        while len(afters) < 5 and datetime.now() < deadline:
            message = consumer.poll(1)
            if message is not None and message.value():
                document = yaml.safe_load(message.value())  # JSON is YAML
                after = document.get("payload", document)["after"]
                afters[after["pers_nr"]] = after["aktiv"]
    finally:
        consumer.close()
    assert {key for key, aktiv in afters.items() if not aktiv} == flagged
    engine.dispose()
