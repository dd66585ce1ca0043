"""The relay's values are MariaDB's: the same Base A row, read by the batch path's SQL and through the
relay (in process, reading the real binlog, its events captured instead of produced) and the
decoder, gives the same record, the same refusal or the same delete."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import yaml
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import GtidEvent, MariadbGtidEvent, QueryEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent
from sqlalchemy import text

from base_sync.debezium import BadEvent
from base_sync.dirty import Quarantined
from base_sync.records import encode
from base_sync.relay import Relay, RelaySettings
from base_sync.source import BaseA, source_engine

TABLE = "t"
DDL = f"""CREATE TABLE {TABLE} (
    k BIGINT NOT NULL PRIMARY KEY,
    changed DATETIME(6) NOT NULL DEFAULT '2024-05-01 00:00:00',
    name VARCHAR(100) CHARACTER SET utf8mb4 NOT NULL DEFAULT 'n',
    amount4 DECIMAL(10,4) NULL, whole DECIMAL(20,0) NULL, tiny DECIMAL(65,30) NULL, flag DECIMAL(3,0) NULL,
    text_l1 VARCHAR(255) CHARACTER SET latin1 NULL, note_l1 CHAR(5) CHARACTER SET latin1 NULL,
    code BINARY(4) NULL, bytes_v VARBINARY(20) NULL,
    stamp6 DATETIME(6) NULL, stamp3 DATETIME(3) NULL,
    yr YEAR NULL
) DEFAULT CHARSET=utf8mb4"""
NAMES = {"first_name": {"column": "name"}, "last_name": {"column": "name"}, "email": {"column": "name"}}
_KEYS = itertools.count(1)


class CapturingRelay(Relay):
    """The relay as it runs, its events kept instead of sent to a broker."""

    def __init__(self, settings: RelaySettings):
        super().__init__(settings)
        self.producer = None  # nothing goes to a broker
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def _produce(self, topic, key, value, on_delivery):
        self.sent.append((topic, key, value))


class Paths:
    """One database on the binlog MariaDB with the table `t`; each `compare` maps it to employees."""

    def __init__(self, binlog_port: int, folder: Path, monkeypatch):
        self.port, self.folder, self.monkeypatch = binlog_port, folder, monkeypatch
        self.database = f"values_{uuid.uuid4().hex[:8]}"
        admin = source_engine(f"mysql+mysqldb://root@127.0.0.1:{binlog_port}/mysql")
        with admin.begin() as conn:
            conn.execute(text(f"CREATE DATABASE {self.database}"))
        admin.dispose()
        self.url = f"mysql+mysqldb://root@127.0.0.1:{binlog_port}/{self.database}"
        self.engine = source_engine(self.url)
        with self.engine.begin() as conn:
            conn.execute(text(DDL))

    def relay(self, fields: dict, soft_delete: dict | None, with_schema: bool) -> CapturingRelay:
        entity = {"table": TABLE, "key": "k", "cursor": [{"column": "changed"}], "fields": {**NAMES, **fields}}
        if soft_delete:
            entity["soft_delete"] = soft_delete
        document = {"source": {"time_zone": "UTC"}, "entities": {"employees": entity}}
        path = self.folder / f"mapping-{next(_KEYS)}.yaml"
        path.write_text(yaml.safe_dump(document))
        self.monkeypatch.setenv("BASE_A_MAPPING_FILE", str(path))
        settings = RelaySettings(
            base_a_url=self.url,
            kafka_bootstrap="127.0.0.1:1",
            http_port=0,
            position_file=self.folder / "position.json",
            with_schema=with_schema,
        )
        return CapturingRelay(settings)

    def insert(self, rows: list[str]) -> list[int]:
        """Rows given as SQL (column names and values: `"code = X'4A'"`), written in a lax legacy
        session (zero dates allowed); their keys."""
        keys = []
        with self.engine.begin() as conn:
            conn.execute(text("SET SESSION sql_mode = ''"))
            for assignments in rows:
                keys.append(next(_KEYS))
                conn.execute(text(f"INSERT INTO {TABLE} SET k = {keys[-1]}{', ' if assignments else ''}{assignments}"))
        return keys

    def compare(
        self, fields: dict, rows: list[str], soft_delete: dict | None = None, with_schema: bool = True
    ) -> tuple[dict, dict]:
        """{key: outcome} of the batch path and of the events path for the rows inserted now: ("record",
        the record as the API reads it), ("quarantine", reasons, version), ("delete",), ("absent",)
        or ("dead", the dead letter's reason)."""
        relay = self.relay(fields, soft_delete, with_schema)
        with self.engine.connect() as conn:
            start = conn.execute(text("SELECT @@gtid_binlog_pos")).scalar_one()
        keys = self.insert(rows)
        self._read_binlog(relay, start)
        mapping = relay.topics.mapping
        batch = {key: ("absent",) for key in keys}
        for chunk in BaseA(self.engine, mapping).records_by_keys("employees", keys, 100):
            for record in chunk:
                key = record.source_id if isinstance(record, Quarantined) else record["source_id"]
                batch[key] = _outcome(record)
        events = {}
        for topic, key, value in relay.sent:
            try:
                change = relay.topics.decode(topic, value, key)
            except BadEvent as exc:
                events[int(key) if key else None] = ("dead", str(exc))
                continue
            events[change.id] = ("delete",) if change.is_delete else _outcome(change.quarantined or change.record)
        return batch, events

    def _read_binlog(self, relay: CapturingRelay, start: str) -> None:
        stream = BinLogStreamReader(
            connection_settings={"host": "127.0.0.1", "port": self.port, "user": "root", "passwd": ""},
            server_id=7000 + next(_KEYS) % 1000,
            blocking=False,
            resume_stream=True,
            is_mariadb=True,
            auto_position=start,
            only_schemas=[self.database],
            only_tables=[TABLE],
            only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, TableMapEvent]
            + [XidEvent, MariadbGtidEvent, GtidEvent, QueryEvent],
        )
        try:
            for event in stream:
                relay._handle(event, stream)
        finally:
            stream.close()

    def published(self, fields: dict, rows: list[str], with_schema: bool = True) -> list[dict]:
        """The `after` images the relay publishes for rows inserted now."""
        relay = self.relay(fields, None, with_schema)
        with self.engine.connect() as conn:
            start = conn.execute(text("SELECT @@gtid_binlog_pos")).scalar_one()
        self.insert(rows)
        self._read_binlog(relay, start)
        documents = [orjson.loads(value) for _, _, value in relay.sent]
        return [(d["payload"] if with_schema else d)["after"] for d in documents]

    def close(self) -> None:
        self.engine.dispose()


def _outcome(record) -> tuple:
    if isinstance(record, Quarantined):
        return ("quarantine", record.reasons, record.version)
    (sent,) = orjson.loads(encode([record]))  # the bulk body's JSON, its amounts and times compared as such
    if sent.get("salary") is not None:
        sent["salary"] = Decimal(sent["salary"])
    for stamp in ("source_updated_at", "created_at", "updated_at"):
        sent[stamp] = datetime.fromisoformat(sent[stamp])
    return ("record", sent)


@pytest.fixture
def paths(binlog_port, tmp_path, monkeypatch):
    made = Paths(binlog_port, tmp_path, monkeypatch)
    yield made
    made.close()


@pytest.mark.parametrize("with_schema", [True, False], ids=["schema", "no-schema"])
@pytest.mark.parametrize(
    ("column", "value"),
    [("amount4", "12.5"), ("whole", "1234"), ("tiny", "0.000000000000000000000000000001"), ("amount4", "-0.0001")],
)
def test_a_decimal_of_any_scale_reaches_base_b_as_its_amount(paths, with_schema, column, value):
    """RELAY_WITH_SCHEMA=false sent precise base64 without its scale, which the decoder read at the
    field's: DECIMAL(10,4) 12.5 became 1250.00, DECIMAL(20,0) 1234 12.34, 1e-30 0.01."""
    batch, events = paths.compare({"salary": {"column": column}}, [f"{column} = {value}"], with_schema=with_schema)
    assert events == batch
    (outcome,) = batch.values()
    assert outcome[1]["salary"] == Decimal(value)


@pytest.mark.parametrize("with_schema", [True, False], ids=["schema", "no-schema"])
def test_a_decimal_soft_delete_flag_and_decimal_text_read_as_mariadb_writes_them(paths, with_schema):
    """Without the schema the flag stayed the text 'AA==' (never the deleted value: the row lived on)."""
    batch, events = paths.compare(
        {"position": {"column": "amount4", "cast": "string"}},
        ["flag = 1, amount4 = 7.25", "flag = 0, amount4 = 7.25"],
        soft_delete={"column": "flag", "deleted_when": 1},
        with_schema=with_schema,
    )
    assert events == {key: ("delete",) if outcome == ("absent",) else outcome for key, outcome in batch.items()}
    assert sorted(outcome[0] for outcome in events.values()) == ["delete", "record"]
    (record,) = [outcome[1] for outcome in events.values() if outcome[0] == "record"]
    assert record["position"] == "7.2500"
