"""The delete log's triggers judged by what they are now (`base_sync.delete_log_triggers`), on the real
MariaDB: Base A's owners rename a column the triggers name, or swap the table as gh-ost's cut-over does.
Found from outside (schema-change probe): afterwards every DELETE on the owners' table failed, or the
deletes went unlogged while the batch trusted the log, and `base-a check` and `install-delete-log` said
all was in place, going by the triggers' names."""

from __future__ import annotations

import pytest
from sqlalchemy import event as sql_event
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from base_sync.backends import backend_of
from base_sync.delete_log_triggers import ABSENT, IN_PLACE, OUTDATED, STALE, wanted_triggers
from base_sync.mapping import SourceMapping
from base_sync.metrics import delete_log_samples
from base_sync.source import BaseA
from base_sync.source_schema import install_delete_log
from base_sync.state import MemoryStateStore
from tests.sync import test_source_check as legacy
from tests.sync.conftest import synced_rows
from tests.sync.test_sync_steps import run_once

# The legacy table and its mapping (`test_source_check`): its fixtures, found by name.
legacy_url, mapping_file, mapping, root = legacy.legacy_url, legacy.mapping_file, legacy.mapping, legacy.root
MAPPING, _base_a = legacy.MAPPING, legacy._base_a


def _triggers(engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        query = (
            "SELECT trigger_name, event_object_table FROM information_schema.triggers WHERE trigger_schema = DATABASE()"
        )
        return {tuple(row) for row in conn.execute(text(query))}


def _run(engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement))


def test_a_renamed_key_column_makes_the_log_stale_and_the_install_recreates_it(root, legacy_url, mapping_file):
    installed = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert installed.returncode == 0, installed.stderr
    _run(root, "ALTER TABLE mitarbeiter RENAME COLUMN pers_nr TO id")  # MariaDB lets the owners do it
    with pytest.raises(OperationalError, match="Unknown column 'pers_nr' in 'OLD'"):
        _run(root, "DELETE FROM mitarbeiter WHERE id = 9")  # the owners' own write fails

    # The mapping still names pers_nr: check names the broken trigger besides the mapping's problem,
    # and the install refuses to make a trigger naming it again.
    checked = _base_a("check", "--mapping", str(mapping_file), url=legacy_url)
    assert checked.returncode == 1
    assert "mitarbeiter_log_delete on mitarbeiter names OLD.pers_nr, which mitarbeiter no longer has" in checked.stderr
    assert "every DELETE on mitarbeiter fails" in checked.stderr
    refused = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert refused.returncode == 1
    assert (
        "mitarbeiter has no column pers_nr, which the mapping names (key or cursor): fix the mapping" in refused.stderr
    )

    # The mapping follows the rename: it passes, but the triggers are still the old ones.
    mapping_file.write_text(MAPPING.replace("key: pers_nr", "key: id"))
    renamed = SourceMapping.from_file(mapping_file)
    assert BaseA(root, renamed).delete_log_state("employees").status == STALE
    stale = _base_a("check", "--mapping", str(mapping_file), url=legacy_url)
    assert stale.returncode == 1, stale.stderr  # was: ok
    assert "the delete log on mitarbeiter is stale: mitarbeiter_log_delete on mitarbeiter names OLD.pers_nr" in (
        stale.stderr
    )
    assert "`base-a install-delete-log`" in stale.stderr
    again = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert again.returncode == 0, again.stderr
    replaced = "replaced the stale delete-log triggers on mitarbeiter (dropped: mitarbeiter_log_delete on mitarbeiter, "
    assert replaced in again.stderr  # was: "in place", nothing done
    assert "because mitarbeiter_log_delete on mitarbeiter names OLD.pers_nr" in again.stderr
    assert BaseA(root, renamed).delete_log_state("employees").status == IN_PLACE
    assert _base_a("check", "--mapping", str(mapping_file), url=legacy_url).returncode == 0

    _run(root, "DELETE FROM mitarbeiter WHERE id = 9")  # the owners' writes work again, and are logged
    _run(root, "UPDATE mitarbeiter SET id = 80 WHERE id = 8")
    with root.connect() as conn:
        assert conn.execute(text("SELECT entity, id FROM delete_log ORDER BY seq")).all() == [
            ("employees", 9),
            ("employees", 8),
        ]


def test_a_table_swap_leaves_the_log_stale_and_the_batch_compares_keys(
    root,
    legacy_url,
    mapping,
    mapping_file,
    base_b,
    caplog,
):
    installed = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert installed.returncode == 0, installed.stderr
    api, store = base_b.api(), MemoryStateStore()
    run_once("employees", BaseA(root, mapping), api, store)  # the first run compares every key
    _run(root, "DELETE FROM mitarbeiter WHERE pers_nr = 9")
    trusted = run_once("employees", BaseA(root, mapping), api, store)["deletes"]
    assert (trusted["from_log"], trusted["deleted"]) == (1, 1)
    assert "suspect_buckets" not in trusted  # a matching trigger: the log is trusted, no key comparison

    # gh-ost's cut-over, by hand: a shadow copy swapped in; the triggers go with the old table.
    _run(root, "CREATE TABLE _mitarbeiter_gho LIKE mitarbeiter")
    _run(root, "INSERT INTO _mitarbeiter_gho SELECT * FROM mitarbeiter")
    _run(root, "RENAME TABLE mitarbeiter TO _mitarbeiter_del, _mitarbeiter_gho TO mitarbeiter")
    assert {table for _, table in _triggers(root)} == {"_mitarbeiter_del"}
    _run(root, "DELETE FROM mitarbeiter WHERE pers_nr = 7")  # logged by nothing

    found = BaseA(root, mapping).delete_log_state("employees")
    assert found.status == STALE
    assert "mitarbeiter_log_delete is on _mitarbeiter_del, not on mitarbeiter" in found.reason
    assert delete_log_samples("employees", found.status == STALE) == [  # the load's gauge (alert DeleteLogStale)
        ("gauge", "base_sync.delete_log_stale.employees", 1.0)
    ]
    caplog.clear()
    swapped = run_once("employees", BaseA(root, mapping), api, store)["deletes"]
    assert "suspect_buckets" in swapped and swapped["deleted"] == 1  # was: 0, the log trusted
    assert 7 not in synced_rows(base_b.database_url, "employees")
    warned = caplog.text
    assert "BASE A'S DELETE LOG ON mitarbeiter IS STALE" in warned and "_mitarbeiter_del" in warned
    assert "`base-a install-delete-log`" in warned

    checked = _base_a("check", "--mapping", str(mapping_file), url=legacy_url)
    assert checked.returncode == 1  # was: ok
    assert "mitarbeiter_log_delete is on _mitarbeiter_del, not on mitarbeiter (a table swap" in checked.stderr
    again = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert again.returncode == 0, again.stderr
    assert "(dropped: mitarbeiter_log_delete on _mitarbeiter_del, mitarbeiter_log_key_change on _mitarbeiter_del" in (
        again.stderr
    )
    assert _triggers(root) == {("mitarbeiter_log_delete", "mitarbeiter"), ("mitarbeiter_log_key_change", "mitarbeiter")}

    # The first run after compares keys once more (what went unlogged before the install), then the log serves.
    assert "buckets" in run_once("employees", BaseA(root, mapping), api, store)["deletes"]
    _run(root, "DELETE FROM mitarbeiter WHERE pers_nr = 10")  # soft-deleted already: logged, nothing to delete
    _run(root, "UPDATE mitarbeiter SET pers_nr = 80 WHERE pers_nr = 8")
    mended = run_once("employees", BaseA(root, mapping), api, store)["deletes"]
    assert "suspect_buckets" not in mended and mended["from_log"] == 2  # trusted again
    assert 8 not in synced_rows(base_b.database_url, "employees")


def test_a_trigger_under_another_name_that_does_the_same_is_in_place(root, legacy_url, mapping, mapping_file):
    """gh-ost's --include-triggers may leave the triggers on the new table under a suffixed name: what
    they do counts, not what they are called."""
    installed = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert installed.returncode == 0, installed.stderr
    with root.connect() as conn:
        bodies = dict(
            conn.execute(
                text(
                    "SELECT event_manipulation, action_statement FROM information_schema.triggers "
                    "WHERE trigger_schema = DATABASE()"
                )
            ).all()
        )
    for name in ("mitarbeiter_log_delete", "mitarbeiter_log_key_change"):
        _run(root, f"DROP TRIGGER {name}")
    for event, body in bodies.items():
        _run(root, f"CREATE TRIGGER tr_{event.lower()}_gho AFTER {event} ON mitarbeiter FOR EACH ROW {body}")
    assert BaseA(root, mapping).delete_log_state("employees").status == IN_PLACE


def test_a_renamed_timestamp_cursor_the_trigger_logs_makes_the_log_stale(root, legacy_url, mapping_file):
    """A cursor of `timestamp` columns only: the triggers log OLD.<cursor> as the version, so renaming
    that column breaks the owners' DELETEs too; a mapping that follows the rename alone passes its
    check, and the log is stale until the install recreates the triggers."""
    _run(root, "ALTER TABLE mitarbeiter ADD COLUMN geaendert_ts TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP")
    cursor = "cursor: [{column: geaendert_am, type: datetime}, {column: angelegt_am, type: datetime}]"
    stamped = "cursor: [{column: geaendert_ts, type: timestamp}]"
    mapping_file.write_text(MAPPING.replace(cursor, stamped))
    installed = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert installed.returncode == 0, installed.stderr
    _run(root, "ALTER TABLE mitarbeiter RENAME COLUMN geaendert_ts TO updated_ts")
    with pytest.raises(OperationalError, match="Unknown column 'geaendert_ts' in 'OLD'"):
        _run(root, "DELETE FROM mitarbeiter WHERE pers_nr = 9")
    mapping_file.write_text(MAPPING.replace(cursor, stamped.replace("geaendert_ts", "updated_ts")))
    stale = _base_a("check", "--mapping", str(mapping_file), url=legacy_url)
    assert stale.returncode == 1  # was: ok
    names = "mitarbeiter_log_delete on mitarbeiter names OLD.geaendert_ts, which mitarbeiter no longer has"
    assert names in stale.stderr
    again = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert again.returncode == 0, again.stderr
    _run(root, "DELETE FROM mitarbeiter WHERE pers_nr = 9")
    with root.connect() as conn:
        assert conn.execute(text("SELECT entity, id FROM delete_log")).all() == [("employees", 9)]


def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_a_trigger_an_earlier_version_made_is_outdated_and_trusted(base_a_engine, base_b, caplog):
    """Found in review: the platform's triggers from before logged OLD.updated_at, today's log
    COALESCE(OLD.updated_at, ...). They log every deleted key all the same: not a critical alert nor
    a key comparison every run, a warning naming the install until it is run."""
    backend = backend_of(base_a_engine)
    previous = wanted_triggers("employees", "employees", "id", "OLD.updated_at", backend)  # f7a91d9's create_schema
    for trigger in previous:
        _run(base_a_engine, f"DROP TRIGGER {trigger.name}")
        _run(base_a_engine, trigger.create)
    base_a = BaseA(base_a_engine)
    found = base_a.delete_log_state("employees")
    assert found.status == OUTDATED, found.reason  # was: stale
    assert "employees_log_delete on employees logs the deletes of employees but is not the trigger" in found.reason
    assert base_a.logs_deletes("employees") is True
    assert delete_log_samples("employees", found.status == STALE) == [  # the load's gauge (alert DeleteLogStale)
        ("gauge", "base_sync.delete_log_stale.employees", 0.0)
    ]
    checked = _base_a("check", url=_url(base_a_engine))
    assert checked.returncode == 0, checked.stderr  # was: 1
    assert "warning: employees: the delete log on employees is outdated" in checked.stderr
    assert "`base-a install-delete-log`" in checked.stderr

    api, store = base_b.api(), MemoryStateStore()
    with base_a_engine.begin() as conn:
        conn.execute(text("INSERT INTO employees (first_name, last_name, email) VALUES ('A', 'B', 'a@b.example')"))
        key = conn.execute(text("SELECT MAX(id) FROM employees")).scalar()
    run_once("employees", base_a, api, store)  # the first run compares every key
    _run(base_a_engine, f"DELETE FROM employees WHERE id = {key}")
    caplog.clear()
    trusted = run_once("employees", base_a, api, store)["deletes"]
    assert (trusted["from_log"], trusted["deleted"]) == (1, 1)
    assert "suspect_buckets" not in trusted  # was: every key compared, the log not trusted
    warned = [r.getMessage() for r in caplog.records if "is outdated" in r.getMessage()]
    assert len(warned) == 1 and "`base-a install-delete-log`" in warned[0]

    installed = _base_a("install-delete-log", url=_url(base_a_engine))
    assert installed.returncode == 0, installed.stderr
    assert BaseA(base_a_engine).delete_log_state("employees").status == IN_PLACE


def test_a_missing_key_change_trigger_alone_is_outdated(root, legacy_url, mapping, mapping_file):
    """An install from before the key-change trigger existed: the deletes are logged, key changes
    found by the periodic key comparison, as then."""
    installed = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert installed.returncode == 0, installed.stderr
    _run(root, "DROP TRIGGER mitarbeiter_log_key_change")
    found = BaseA(root, mapping).delete_log_state("employees")
    assert found.status == OUTDATED  # was: stale
    assert "key changed by an UPDATE is found only by the periodic key comparison" in found.reason
    checked = _base_a("check", "--mapping", str(mapping_file), url=legacy_url)
    assert checked.returncode == 0, checked.stderr
    assert "the delete log on mitarbeiter is outdated" in checked.stderr
    _run(root, "DROP TRIGGER mitarbeiter_log_delete")  # the delete trigger missing too: none at all
    assert BaseA(root, mapping).delete_log_state("employees").status == ABSENT


def test_a_trigger_logging_another_key_is_stale(root, legacy_url, mapping, mapping_file):
    """One writing the delete log, but another column as the key: broken, not outdated."""
    installed = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert installed.returncode == 0, installed.stderr
    _run(root, "DROP TRIGGER mitarbeiter_log_delete")
    wrong = "INSERT INTO delete_log (entity, id, updated_at) VALUES ('employees', OLD.gehalt, CURRENT_TIMESTAMP(6))"
    _run(root, f"CREATE TRIGGER mitarbeiter_log_delete AFTER DELETE ON mitarbeiter FOR EACH ROW {wrong}")
    found = BaseA(root, mapping).delete_log_state("employees")
    assert found.status == STALE
    assert "mitarbeiter_log_delete on mitarbeiter is not the trigger the mapping wants now" in found.reason


def _install_then_older_delete_trigger(root, legacy_url, mapping_file, name: str) -> None:
    """The install's triggers, the delete trigger then replaced by an earlier version's (another version
    expression) named `name`."""
    installed = _base_a("install-delete-log", "--mapping", str(mapping_file), url=legacy_url)
    assert installed.returncode == 0, installed.stderr
    older = "INSERT INTO delete_log (entity, id, updated_at) VALUES ('employees', OLD.pers_nr, CURRENT_TIMESTAMP(6))"
    _run(root, "DROP TRIGGER mitarbeiter_log_delete")
    _run(root, f"CREATE TRIGGER {name} AFTER DELETE ON mitarbeiter FOR EACH ROW {older}")


def test_the_install_replaces_an_outdated_trigger_in_one_statement_on_mariadb(root, legacy_url, mapping, mapping_file):
    """A DROP then a CREATE each commit: a DELETE between them went unlogged while the log position
    was kept. MariaDB replaces the trigger in one statement."""
    _install_then_older_delete_trigger(root, legacy_url, mapping_file, "mitarbeiter_log_delete")
    assert BaseA(root, mapping).delete_log_state("employees").status == OUTDATED

    issued: list[str] = []
    sql_event.listen(
        root, "before_cursor_execute", lambda conn, cursor, sql, *rest: issued.append(" ".join(sql.split()))
    )
    install_delete_log(root, mapping, ["employees"])
    ddl = [s for s in issued if s.upper().startswith(("CREATE", "DROP"))]
    assert ddl == [s for s in ddl if s.startswith("CREATE OR REPLACE TRIGGER mitarbeiter_log_delete AFTER DELETE")]
    assert len(ddl) == 1  # was: DROP TRIGGER IF EXISTS mitarbeiter_log_delete, then CREATE TRIGGER
    assert BaseA(root, mapping).delete_log_state("employees").status == IN_PLACE
    _run(root, "DELETE FROM mitarbeiter WHERE pers_nr = 9")
    with root.connect() as conn:
        assert conn.execute(text("SELECT entity, id FROM delete_log")).all() == [("employees", 9)]


def test_the_install_drops_an_outdated_trigger_under_another_name_once_replaced(
    root, legacy_url, mapping, mapping_file
):
    """An earlier version's trigger under a tool's suffix: kept beside the new one, each delete would
    be logged twice."""
    _install_then_older_delete_trigger(root, legacy_url, mapping_file, "mitarbeiter_log_delete_gho")
    assert BaseA(root, mapping).delete_log_state("employees").status == OUTDATED
    install_delete_log(root, mapping, ["employees"])
    assert _triggers(root) == {("mitarbeiter_log_delete", "mitarbeiter"), ("mitarbeiter_log_key_change", "mitarbeiter")}
    _run(root, "DELETE FROM mitarbeiter WHERE pers_nr = 9")
    with root.connect() as conn:
        assert conn.execute(text("SELECT entity, id FROM delete_log")).all() == [("employees", 9)]
