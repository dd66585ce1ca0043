"""What the relay reads of a statement in the binlog (QueryEvent), without servers: the tables it
writes as SQL (a session's STATEMENT or MIXED format), empties, renames or drops, or whose rows a
partition clause of an ALTER TABLE removes or adds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy.exc import DBAPIError

from base_sync.relay import SWAPS, UNPUBLISHED, Relay, RelaySettings
from base_sync.relay.renames import SWAP, moves, shadow_copies
from base_sync.relay.statements import COLUMN_DROP, DML, DROP, PARTITION, RENAME, TRUNCATE, Effect, effects, keeps_rows


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("UPDATE employees SET a = 1 WHERE id = 1", [Effect(DML, (None, "employees"))]),
        ("update LOW_PRIORITY `db`.`employees` SET x = (SELECT 1 FROM articles)", [Effect(DML, ("db", "employees"))]),
        (
            "UPDATE employees e JOIN articles a ON e.id = a.id SET e.x = 1",
            [Effect(DML, (None, "employees")), Effect(DML, (None, "articles"))],
        ),
        ("INSERT INTO employees (id) VALUES (1)", [Effect(DML, (None, "employees"))]),
        ("insert ignore employees select * from other", [Effect(DML, (None, "employees"))]),
        ("REPLACE INTO db.employees VALUES (1)", [Effect(DML, ("db", "employees"))]),
        ("DELETE FROM employees WHERE id = 3", [Effect(DML, (None, "employees"))]),
        ("DELETE FROM t1 USING t1 JOIN employees", [Effect(DML, (None, "t1")), Effect(DML, (None, "employees"))]),
        ("LOAD DATA INFILE 'x' INTO TABLE employees", [Effect(DML, (None, "employees"))]),
        ("# a comment\nUPDATE /* another */ employees SET a = 1", [Effect(DML, (None, "employees"))]),
        ("TRUNCATE TABLE employees", [Effect(TRUNCATE, (None, "employees"))]),
        ("truncate `base_a`.`employees`", [Effect(TRUNCATE, ("base_a", "employees"))]),
        ("RENAME TABLE employees TO employees_x", [Effect(RENAME, (None, "employees"), (None, "employees_x"))]),
        (
            "RENAME TABLE a TO b, employees TO x.employees",
            [Effect(RENAME, (None, "a"), (None, "b")), Effect(RENAME, (None, "employees"), ("x", "employees"))],
        ),
        ("ALTER TABLE employees ADD c INT, RENAME AS e3", [Effect(RENAME, (None, "employees"), (None, "e3"))]),
        ("ALTER TABLE employees RENAME COLUMN a TO b", []),
        ("ALTER TABLE employees TRUNCATE PARTITION p0", [Effect(PARTITION, (None, "employees"), clause="TRUNCATE")]),
        (
            "alter table `base_a`.`employees` truncate partition all",
            [Effect(PARTITION, ("base_a", "employees"), clause="TRUNCATE")],
        ),
        (
            "ALTER TABLE employees DROP PARTITION IF EXISTS p1, p2",
            [Effect(PARTITION, (None, "employees"), clause="DROP")],
        ),
        (
            "/* retention */ ALTER ONLINE TABLE base_a . employees -- job 7\n ADD INDEX i (a), DROP PARTITION `p 1`",
            [Effect(PARTITION, ("base_a", "employees"), clause="DROP")],
        ),
        (
            "ALTER TABLE employees ADD c INT, DROP PARTITION p1, RENAME TO e2",
            [Effect(PARTITION, (None, "employees"), clause="DROP"), Effect(RENAME, (None, "employees"), (None, "e2"))],
        ),
        (
            "ALTER TABLE employees REORGANIZE PARTITION a,b INTO (PARTITION a VALUES IN (1),PARTITION b VALUES IN (2))",
            [Effect(PARTITION, (None, "employees"), clause="REORGANIZE")],
        ),
        (
            "ALTER TABLE employees EXCHANGE PARTITION p0 WITH TABLE `db`.`archive` WITHOUT VALIDATION",
            [
                Effect(PARTITION, (None, "employees"), clause="EXCHANGE"),
                Effect(PARTITION, ("db", "archive"), clause="EXCHANGE"),
            ],
        ),
        (
            "ALTER TABLE archive EXCHANGE PARTITION p0 WITH TABLE employees",
            [
                Effect(PARTITION, (None, "archive"), clause="EXCHANGE"),
                Effect(PARTITION, (None, "employees"), clause="EXCHANGE"),
            ],
        ),
        (
            "ALTER TABLE employees CONVERT PARTITION p0 TO TABLE old",
            [
                Effect(PARTITION, (None, "employees"), clause="CONVERT"),
                Effect(PARTITION, (None, "old"), clause="CONVERT"),
            ],
        ),
        (
            "ALTER TABLE employees CONVERT TABLE old TO PARTITION p0 VALUES LESS THAN (10)",
            [Effect(PARTITION, (None, "employees"), clause="CONVERT"), Effect(DROP, (None, "old"))],
        ),
        (
            "/*!50100 ALTER TABLE employees DROP PARTITION p0 */",
            [Effect(PARTITION, (None, "employees"), clause="DROP")],
        ),
        # These keep every row (HASH/KEY partitions redistributed, a definition, a column).
        ("ALTER TABLE employees COALESCE PARTITION 2", []),
        ("ALTER TABLE employees REORGANIZE PARTITION", []),
        ("ALTER TABLE employees ADD PARTITION (PARTITION p9 VALUES LESS THAN MAXVALUE), REMOVE PARTITIONING", []),
        (
            "ALTER TABLE employees DROP COLUMN `partition`, COMMENT 'DROP PARTITION p0'",
            [Effect(COLUMN_DROP, (None, "employees"), column="partition")],
        ),
        (
            "ALTER TABLE e DROP gehalt, drop column if exists `x y`, ADD gehalt INT",
            [Effect(COLUMN_DROP, (None, "e"), column="gehalt"), Effect(COLUMN_DROP, (None, "e"), column="x y")],
        ),
        ("ALTER TABLE e ALTER COLUMN a DROP DEFAULT, DROP INDEX i, DROP PRIMARY KEY, DROP FOREIGN KEY f", []),
        ("ALTER TABLE e DROP CONSTRAINT c, DROP CHECK c2, DROP SYSTEM VERSIONING, DROP PERIOD FOR p", []),
        # Review: MariaDB's WAIT n / NOWAIT before the first clause hid its DROP.
        ("ALTER TABLE e WAIT 5 DROP COLUMN gehalt", [Effect(COLUMN_DROP, (None, "e"), column="gehalt")]),
        ("ALTER TABLE e NOWAIT DROP gehalt", [Effect(COLUMN_DROP, (None, "e"), column="gehalt")]),
        (
            "ALTER ONLINE IGNORE TABLE IF EXISTS db.e WAIT 0.5 DROP IF EXISTS gehalt, DROP x",
            [Effect(COLUMN_DROP, ("db", "e"), column="gehalt"), Effect(COLUMN_DROP, ("db", "e"), column="x")],
        ),
        ("ALTER TABLE e WAIT 5 RENAME TO e2", [Effect(RENAME, (None, "e"), (None, "e2"))]),
        ("ALTER TABLE e NOWAIT DROP PARTITION p0", [Effect(PARTITION, (None, "e"), clause="DROP")]),
        ("ALTER TABLE e WAIT 5 DROP INDEX i, DROP SYSTEM VERSIONING", []),
        # The second review: any number after WAIT; PERIOD's IF EXISTS before FOR.
        ("ALTER TABLE e WAIT .5 DROP gehalt", [Effect(COLUMN_DROP, (None, "e"), column="gehalt")]),
        ("ALTER TABLE e WAIT 1e1 DROP gehalt", [Effect(COLUMN_DROP, (None, "e"), column="gehalt")]),
        ("ALTER TABLE e DROP PERIOD IF EXISTS FOR p", []),
        # Review: `period` and `system` are no reserved words: columns may be so named.
        ("ALTER TABLE e DROP period", [Effect(COLUMN_DROP, (None, "e"), column="period")]),
        ("ALTER TABLE e DROP system, ADD x INT", [Effect(COLUMN_DROP, (None, "e"), column="system")]),
        ("ALTER TABLE e DROP COLUMN system", [Effect(COLUMN_DROP, (None, "e"), column="system")]),
        ("ALTER TABLE e DROP COLUMN IF EXISTS period", [Effect(COLUMN_DROP, (None, "e"), column="period")]),
        ("ALTER TABLE e DROP IF EXISTS period", [Effect(COLUMN_DROP, (None, "e"), column="period")]),
        ("ALTER TABLE e DROP COLUMN `index`", [Effect(COLUMN_DROP, (None, "e"), column="index")]),
        ("DROP TABLE `employees` /* generated by server */", [Effect(DROP, (None, "employees"))]),
        ("DROP TABLE IF EXISTS a, employees", [Effect(DROP, (None, "a")), Effect(DROP, (None, "employees"))]),
        ("DROP TEMPORARY TABLE employees", []),
        ("DROP DATABASE IF EXISTS base_a", [Effect(DROP, ("base_a", "*"))]),
        ("CREATE OR REPLACE TABLE employees (id INT)", [Effect(DROP, (None, "employees"))]),
        ("/*!40000 ALTER TABLE `employees` DISABLE KEYS */", []),
        ("COMMIT", []),
        ("", []),
    ],
)
def test_the_tables_a_statement_writes_empties_renames_or_drops(sql, expected):
    assert effects(sql) == expected


@pytest.mark.parametrize(
    ("sql", "method", "keeps"),
    [
        # MariaDB refuses a RANGE reorganize that would lose rows; HASH and KEY redistribute them.
        (
            "ALTER TABLE t REORGANIZE PARTITION pmax INTO (PARTITION p1 VALUES LESS THAN (9), PARTITION pmax "
            "VALUES LESS THAN MAXVALUE)",
            "RANGE",
            True,
        ),
        ("ALTER TABLE t REORGANIZE PARTITION p0 INTO (PARTITION p0 VALUES LESS THAN ('b'))", "RANGE COLUMNS", True),
        ("ALTER TABLE t REORGANIZE PARTITION p0, p1 INTO (PARTITION p0)", "LINEAR KEY", True),
        ("ALTER TABLE t REORGANIZE PARTITION p0, p1 INTO (PARTITION p0)", "hash", True),
        # A LIST reorganize drops the rows of values no new partition lists; unknown: may have.
        ("ALTER TABLE t REORGANIZE PARTITION a INTO (PARTITION a VALUES IN (1))", "LIST", False),
        ("ALTER TABLE t REORGANIZE PARTITION a INTO (PARTITION a VALUES IN (1))", "LIST COLUMNS", False),
        ("ALTER TABLE t REORGANIZE PARTITION a INTO (PARTITION a VALUES IN (1))", None, False),
        # A system-versioned table's DROP PARTITION drops history only; a TRUNCATE may name CURRENT.
        ("ALTER TABLE t DROP PARTITION p_hist", "SYSTEM_TIME", True),
        ("ALTER TABLE t DROP PARTITION p_hist", None, False),
        ("ALTER TABLE t TRUNCATE PARTITION p_cur", "SYSTEM_TIME", False),
        ("ALTER TABLE t DROP PARTITION p0", "RANGE", False),
        ("ALTER TABLE t TRUNCATE PARTITION p0", "HASH", False),
        ("ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE u", "RANGE", False),
        ("ALTER TABLE t CONVERT PARTITION p0 TO TABLE u", "SYSTEM_TIME", False),
    ],
)
def test_a_partition_clause_keeps_every_row_by_the_tables_partitioning_method(sql, method, keeps):
    (effect, *_) = effects(sql)
    assert keeps_rows(effect, method) is keeps


def test_a_reorganize_is_counted_when_the_relay_cannot_read_the_partitioning_method(tmp_path, monkeypatch, caplog):
    """Base A not answering (nothing listens on port 1): the method is unknown, so the clause may
    have removed rows and is counted, the loud side."""
    (effect,) = effects("ALTER TABLE t REORGANIZE PARTITION pmax INTO (PARTITION pmax VALUES LESS THAN MAXVALUE)")
    assert offline_relay(tmp_path, monkeypatch)._keeps_rows(effect, "base_a", "t") is False
    assert "could not read how t is partitioned" in caplog.text


def test_dml_naming_a_mapped_table_is_counted_even_when_the_catalogue_cannot_be_read(tmp_path, monkeypatch):
    """The catalogue read (triggers, views, functions) comes after the statement's own effects:
    with Base A not answering it fails, and must not take the count of the UPDATE with it."""
    relay = offline_relay(tmp_path, monkeypatch)
    counted = UNPUBLISHED.labels("employees", DML)
    before = counted._value.get()
    with pytest.raises(DBAPIError):
        relay._statement(SimpleNamespace(schema=b"base_a", query="UPDATE employees SET a = 1"), None)
    assert counted._value.get() == before + 1


def offline_relay(tmp_path, monkeypatch) -> Relay:
    """A relay of the platform's own tables whose Base A does not answer (nothing listens on port 1)."""
    monkeypatch.delenv("BASE_A_MAPPING_FILE", raising=False)
    settings = RelaySettings(
        base_a_url="mysql+mysqldb://root@127.0.0.1:1/base_a",
        kafka_bootstrap="127.0.0.1:1",
        http_port=0,
        position_file=tmp_path / "position.json",
    )
    return Relay(settings)


def test_renames_are_taken_in_order_so_one_statement_can_swap_names():
    swap = moves([("a", "_a_old"), ("_a_new", "a")])
    assert swap.swapped("a") == "_a_new" and not swap.away_only("a") and swap.arrived("a") is None
    three_way = moves([("a", "t"), ("b", "a"), ("t", "b")])
    assert three_way.swapped("a") == "b" and three_way.swapped("b") == "a"
    round_trip = moves([("a", "t"), ("t", "a")])
    assert round_trip.swapped("a") is None and not round_trip.away_only("a") and round_trip.arrived("a") is None
    assert moves([("a", "b")]).away_only("a") and moves([("b", "a")]).arrived("a") == "b"


def counts(table: str) -> tuple[float, float, float]:
    return (
        SWAPS.labels(table)._value.get(),
        UNPUBLISHED.labels(table, RENAME)._value.get(),
        UNPUBLISHED.labels(table, SWAP)._value.get(),
    )


@pytest.mark.parametrize(
    ("sql", "cut_over", "renamed_away", "replaced"),
    [
        # pt-online-schema-change's and gh-ost's cut-over, as they write it
        (
            "RENAME TABLE `base_a`.`employees` TO `base_a`.`_employees_old`, `base_a`.`_employees_new` TO "
            "`base_a`.`employees`",
            {"employees"},
            set(),
            set(),
        ),
        ("RENAME TABLE employees TO _employees_del, _employees_gho TO employees", {"employees"}, set(), set()),
        ("RENAME TABLE employees TO `__employees_old`, `__employees_new` TO employees", {"employees"}, set(), set()),
        # an archival swap: the rows are replaced wholesale, with no row event
        ("RENAME TABLE employees TO employees_2025, employees_leer TO employees", set(), set(), {"employees"}),
        ("RENAME TABLE employees TO _employees_old, _articles_new TO employees", set(), set(), {"employees"}),
        ("RENAME TABLE employees TO t, articles TO employees, t TO articles", set(), set(), {"employees", "articles"}),
        ("RENAME TABLE employees TO employees_x", set(), {"employees"}, set()),  # gh-ost's two-step cut-over
        ("RENAME TABLE employees TO t, t TO employees", set(), set(), set()),  # back under its name: nothing
        ("RENAME TABLE employees TO other.employees, other._employees_new TO employees", set(), set(), {"employees"}),
        ("RENAME TABLE other.employees TO other.old, other.new TO other.employees", set(), set(), set()),
    ],
)
def test_only_an_online_schema_changes_cut_over_is_a_swap_without_loss(
    tmp_path, monkeypatch, caplog, sql, cut_over, renamed_away, replaced
):
    """Every pt-osc or gh-ost cut-over was logged as RENAMED AWAY ... NOT PUBLISHED and counted, so
    RelayChangesNotPublished fired though nothing was written under another name; then every swap
    was taken for one, and an archival swap (its old rows gone without a DELETE) alerted nobody."""
    caplog.set_level("INFO", "base-a-relay")
    relay = offline_relay(tmp_path, monkeypatch)
    before = {table: counts(table) for table in ("employees", "articles")}
    relay._renamed([e for e in effects(sql) if e.kind == RENAME], sql, "base_a")
    for table, (swaps, away, swapped) in before.items():
        after = (swaps + (table in cut_over), away + (table in renamed_away), swapped + (table in replaced))
        assert counts(table) == after, table
    swap_lines = [r for r in caplog.records if r.getMessage().startswith("TABLE SWAP")]
    assert len(swap_lines) == len(cut_over) and all(r.levelname == "INFO" for r in swap_lines)
    replaced_lines = [r for r in caplog.records if "REPLACED WHOLESALE WITHOUT ROW EVENTS" in r.getMessage()]
    assert len(replaced_lines) == len(replaced) and all(r.levelname == "WARNING" for r in replaced_lines)
    assert ("RENAMED AWAY" in caplog.text) == bool(renamed_away)
    assert "a table was renamed to the mapped" not in caplog.text


def test_an_archival_swap_says_what_to_run(tmp_path, monkeypatch, caplog):
    sql = "RENAME TABLE employees TO employees_2025, employees_leer TO employees"
    offline_relay(tmp_path, monkeypatch)._renamed(effects(sql), sql, "base_a")
    assert f"MAPPED TABLE employees SWAPPED ({sql}): it is now the former employees_leer" in caplog.text
    assert "compare_keys" in caplog.text and "full_refresh" in caplog.text


def test_the_shadow_copies_online_schema_change_tools_name():
    assert {"_t_new", "__t_new", "__________t_new", "_t_gho"} <= shadow_copies("t")
    assert "___________t_new" not in shadow_copies("t") and "_t_old" not in shadow_copies("t")
    long = "x" * 64  # gh-ost shortens the table's name so that `_<name>_gho` fits 64 characters
    assert "_" + "x" * 59 + "_gho" in shadow_copies(long)


def test_a_swap_says_which_table_the_name_holds_now(tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", "base-a-relay")
    sql = "RENAME TABLE employees TO _employees_old, _employees_new TO employees"
    offline_relay(tmp_path, monkeypatch)._renamed(effects(sql), sql, "base_a")
    assert f"TABLE SWAP of the mapped employees ({sql}): employees is now the former _employees_new" in caplog.text
