"""Statement-logged DML that changes a mapped table it does not name: through a trigger, a view or a
stored function. Counted as the DML naming the table is, never passed over."""

from __future__ import annotations

import requests
from sqlalchemy import text

from base_sync.demo import generate
from base_sync.relay import statements
from base_sync.relay.reach import Reach, SchemaObjects
from base_sync.source import source_engine
from tests.sync.test_relay import metric_line, read_changes, relay_topics

MAPPED = {"employees", "articles"}


def reach_of(objects: SchemaObjects) -> Reach:
    return Reach(lambda schema: objects, lambda schema, name: name.lower() if name.lower() in MAPPED else None, MAPPED)


def reached(objects: SchemaObjects, sql: str) -> dict[str, str]:
    written = [effect.table for effect in statements.effects(sql) if effect.kind == statements.DML]
    return reach_of(objects).of_statement(sql, "base_a", written)


def test_the_mapped_tables_a_trigger_view_or_function_reaches_and_only_those():
    objects = SchemaObjects(
        triggers={
            "raises": ["UPDATE employees SET salary = 1 WHERE id = NEW.emp"],
            "calls": ["INSERT INTO audit SET k = 1"],
        },
        views={"staff": "select `e`.`id` AS `id` from `base_a`.`employees` `e`", "two": "select * from staff"},
        functions={"bump": "BEGIN UPDATE employees SET position = 'x' WHERE id = k; RETURN k; END", "pure": "RETURN 1"},
    )
    assert reached(objects, "INSERT INTO raises VALUES (1, 10)") == {"employees": "raises"}
    assert reached(objects, "UPDATE staff SET position = 'v' WHERE id = 2") == {"employees": "staff"}
    assert reached(objects, "UPDATE two SET position = 'v'") == {"employees": "two"}  # a view over a view
    assert reached(objects, "INSERT INTO calls VALUES (bump(3))") == {"employees": "bump"}
    assert reached(objects, "SELECT `base_a`.`bump`(3)") == {"employees": "bump"}
    # Unmapped base tables, with no trigger or one writing unmapped tables alone; a function writing none.
    assert reached(objects, "INSERT INTO calls VALUES (pure(3))") == {}
    assert reached(objects, "INSERT INTO audit SELECT * FROM employees") == {}
    unreadable = SchemaObjects(views={"staff": None})  # the account may not read its definition: any table
    assert reached(unreadable, "UPDATE staff SET position = 'v'") == {"employees": "staff", "articles": "staff"}


def test_statement_logged_dml_reaching_a_mapped_table_indirectly_is_counted(relay, base_a_url, kafka_bootstrap):
    """An INSERT into a table whose trigger updates `employees`, an UPDATE of a view over it, an INSERT
    calling a function that updates it: the relay looked only at the tables the statement names, so
    nothing counted them and RelayChangesNotPublished could not fire."""
    engine = source_engine(base_a_url)
    generate.seed(engine, "employees", 3, seed_value=61)
    with engine.begin() as conn:
        for ddl in (
            "CREATE TABLE raises (emp INT, pct DECIMAL(5,2))",
            "CREATE TRIGGER raise_ai AFTER INSERT ON raises FOR EACH ROW "
            "UPDATE employees SET position = 'via trigger' WHERE id = NEW.emp",
            "CREATE VIEW staff AS SELECT id, position FROM employees",
            "CREATE FUNCTION bump(k INT) RETURNS INT DETERMINISTIC MODIFIES SQL DATA "
            "BEGIN UPDATE employees SET position = 'via function' WHERE id = k; RETURN k; END",
            "CREATE TABLE calls (k INT)",
            "CREATE TABLE plain (k INT)",
        ):
            conn.execute(text(ddl))
    with engine.connect() as conn:
        conn.execute(text("SET SESSION binlog_format = 'STATEMENT'"))
        for dml in (
            "INSERT INTO raises VALUES (1, 10)",
            "UPDATE staff SET position = 'via view' WHERE id = 2",
            "INSERT INTO calls VALUES (bump(3))",
            "INSERT INTO plain VALUES (4)",  # an unmapped base table without triggers: nothing hidden
        ):
            conn.execute(text(dml))
            conn.commit()
        conn.execute(text("SET SESSION binlog_format = DEFAULT"))
    generate.seed(engine, "employees", 1, seed_value=62)
    engine.dispose()
    read_changes(kafka_bootstrap, relay_topics(relay, base_a_url), 4)
    metric_line(relay, 'relay_unpublished_statements_total{kind="statement_dml",table="employees"} 3.0')
    assert (
        'relay_unpublished_statements_total{kind="statement_dml",table="articles"} 0.0'
        in requests.get(f"{relay.url}/metrics", timeout=5).text
    )
    # One line a minute per table and kind (`Warnings`): the first names the trigger's table.
    assert "STATEMENT-LOGGED CHANGES of employees NOT PUBLISHED: the statement reaches it through raises" in (
        relay.log.read_text()
    )
