"""A mass delete in Base A meets both paths' breakers: what the events path holds, the batch path does
not apply unasked. Real servers: Base A on MariaDB (delete log installed), Base B behind the API on
PostgreSQL, a real broker, the drain the events DAG runs and `base-sync-dlq` as operators run it.

Budget: SYNC_MASS_DELETE_MIN_ROWS=10, SYNC_MASS_DELETE_SHARE=0.05 of 200 employees: 10 a run, on
either path. 18 rows deleted: the events path applies 10 and holds 8, which alone are within the
batch path's limit.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from base_sync import events, sync
from base_sync.delete_guard import MassDeleteBlocked
from base_sync.demo import generate
from base_sync.state import MemoryStateStore
from tests.sync.conftest import assert_in_sync
from tests.sync.test_dead_letters import dlq
from tests.sync.test_events_apply import Events
from tests.sync.test_sync_steps import SETTINGS, run_once

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres, pytest.mark.slow]

SETTINGS_10 = SETTINGS.model_copy(update={"mass_delete_min_rows": 10, "mass_delete_share": 0.05})
DELETED = range(1, 19)


@pytest.fixture
def both(base_a, base_a_engine, base_b, kafka_bootstrap, event_settings, monkeypatch):
    """200 employees synced by the batch path; 18 deleted in Base A and published; one store for both paths."""
    monkeypatch.setenv("SYNC_MASS_DELETE_MIN_ROWS", "10")  # the drain reads the batch path's settings
    monkeypatch.setenv("SYNC_MASS_DELETE_SHARE", "0.05")
    generate.seed(base_a_engine, "employees", 200, seed_value=60)
    store, api = MemoryStateStore(), base_b.api()
    run_once("employees", base_a, api, store, SETTINGS_10)
    table = base_a.table("employees")
    with base_a_engine.begin() as conn:
        before = [dict(row) for row in conn.execute(select(table).where(table.c.id.in_(DELETED))).mappings()]
        conn.execute(text(f"DELETE FROM employees WHERE id <= {max(DELETED)}"))
    changes = Events(kafka_bootstrap, event_settings, base_b)
    for row in before:
        changes.send("d", row, None)
    return changes, store, api


def drain(changes: Events, store: MemoryStateStore) -> events.DrainReport:
    """The events DAG's drain, with the state store the batch path reads."""
    config = {"bootstrap.servers": changes.bootstrap}
    consumer, producer = events.consumer_for(config, changes.settings), events.producer_for(config)
    api = changes.base_b.api()
    try:
        return events.drain(
            consumer,
            producer,
            api,
            changes.settings,
            changes.topics,
            held_deletes=store.held_deletes,
            kafka_config=config,
        )
    finally:
        consumer.close()
        api.close()


def test_the_batch_asks_before_deleting_what_the_events_path_held_and_its_approval_settles_them(
    both, base_a, base_a_engine, base_b
):
    changes, store, api = both
    report = drain(changes, store)
    assert (report.counts["deleted"], report.counts["held_deletes"]) == (10, 8), report.to_json()
    assert store.held_deletes.get("employees").held == 8

    plan = sync.plan_deletes("employees", base_a, api, store, SETTINGS_10)
    assert (plan.total, plan.limit) == (8, 10) and not plan.within_budget
    assert "the events path holds 8 deletes of employees" in plan.summary
    assert "BLOCKED, held by the events path" in plan.message
    with pytest.raises(MassDeleteBlocked):
        sync.propagate_deletes("employees", base_a, api, store, SETTINGS_10)
    assert len(changes.rows()) == 190, "nothing deleted unasked"

    # Approved in the batch (the rows answered: while a hold is there the DAG adds no limit): deleted, settled.
    approved = sync.propagate_deletes("employees", base_a, api, store, SETTINGS_10, approved=plan.total)
    assert approved.deleted == 8
    assert store.held_deletes.get("employees") is None
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 182

    # Replaying the letters afterwards, as the held deletes' reason says, changes nothing: not even
    # a later hold's count (their rows are gone: they settle nothing; they took 8 off it before).
    store.held_deletes.hold("employees", 5)
    replayed = dlq(changes, "replay", "--all", "--kind", "MassDeleteHeld", "--approve-mass-delete")
    assert replayed.returncode == 0, replayed.stderr
    again = drain(changes, store)
    assert (again.counts["approved_deletes"], again.counts["deleted"]) == (8, 0), again.to_json()
    assert store.held_deletes.get("employees").held == 5
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 182


def test_replaying_the_held_deletes_approved_settles_them_for_the_batch_too(both, base_a, base_a_engine, base_b):
    changes, store, api = both
    assert drain(changes, store).counts["held_deletes"] == 8
    # Until then any delete of the entity asks, however few.
    assert not sync.plan_deletes("employees", base_a, api, store, SETTINGS_10).within_budget

    replayed = dlq(changes, "replay", "--all", "--kind", "MassDeleteHeld", "--approve-mass-delete")
    assert replayed.returncode == 0, replayed.stderr
    report = drain(changes, store)
    assert (report.counts["approved_deletes"], report.counts["deleted"]) == (8, 8), report.to_json()
    assert store.held_deletes.get("employees") is None

    with base_a_engine.begin() as conn:  # normal churn afterwards goes unasked again
        conn.execute(text("DELETE FROM employees WHERE id IN (100, 101)"))
    run = run_once("employees", base_a, api, store, SETTINGS_10)
    assert run["deletes"]["planned"]["within_budget"] and run["deletes"]["deleted"] == 2
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 180
