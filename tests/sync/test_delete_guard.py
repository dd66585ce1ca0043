"""The mass-delete circuit breaker on real servers: Base A on MariaDB, Base B behind the API on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from base_sync import delete_guard, sync
from base_sync.delete_guard import (
    ANY_NUMBER,
    DELETE_LOG,
    KEY_COMPARISON,
    LEFT_SCOPE,
    Allowance,
    DeleteBudget,
    DeletePlan,
    HeldByEvents,
    MassDeleteBlocked,
    PlannedDeletes,
)
from base_sync.demo import generate
from base_sync.settings import SyncSettings
from base_sync.state import MemoryStateStore
from tests.sync.conftest import assert_in_sync, synced_rows
from tests.sync.test_sync_steps import SETTINGS, run_once


def _live(base_b, entity: str) -> int:
    return len(synced_rows(base_b.database_url, entity))


def test_deletes_within_the_budget_proceed_as_before(base_a, base_a_engine, base_b):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "employees", 3000, seed_value=40)
    run_once("employees", base_a, api, store)
    with base_a_engine.begin() as conn:  # 120 rows: past SYNC_MASS_DELETE_MIN_ROWS (100), within 5% (150)
        conn.execute(text("DELETE FROM employees WHERE id <= 120"))
    plan = sync.plan_deletes("employees", base_a, api, store, SETTINGS)
    assert (plan.total, plan.limit, plan.budget.synced, plan.within_budget) == (120, 150, 3000, True)
    assert _live(base_b, "employees") == 3000  # planning writes nothing
    run = run_once("employees", base_a, api, store)
    assert run["deletes"]["deleted"] == run["deletes"]["from_log"] == 120
    assert run["deletes"]["planned"]["total"] == 120 and run["deletes"]["planned"]["within_budget"]
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 2880


def test_a_mass_delete_stops_before_deleting_and_proceeds_once_approved(base_a, base_a_engine, base_b, caplog):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 1000, seed_value=41)
    run_once("articles", base_a, api, store)
    with base_a_engine.begin() as conn:  # most of the table goes: a wrong rule, a bad script
        conn.execute(text("DELETE FROM articles WHERE id > 100"))

    with pytest.raises(MassDeleteBlocked) as blocked:
        sync.propagate_deletes("articles", base_a, api, store, SETTINGS)
    assert _live(base_b, "articles") == 1000, "nothing may be deleted over the budget"
    plan = blocked.value.plan
    assert (plan.total, plan.limit, plan.share, plan.by_source) == (900, 100, 0.9, {DELETE_LOG: 900})
    message = str(blocked.value)
    assert "900 rows to delete" in message and "90.0% of the 1000 synced rows" in message
    assert "limit 100" in message and "delete log" in message and "BLOCKED" in message
    assert "BLOCKED" in caplog.text
    # Stopping moved nothing: the next attempt finds the same deletes again.
    assert sync.plan_deletes("articles", base_a, api, store, SETTINGS).total == 900

    # Approved for fewer rows than found: still blocked.
    with pytest.raises(MassDeleteBlocked, match=r"Fewer rows were approved than this run found \(900\)"):
        sync.propagate_deletes("articles", base_a, api, store, SETTINGS, approved=899)
    assert _live(base_b, "articles") == 1000
    # Approved for what the operator saw: the deletes go (a second pass, more than the records held).
    report = sync.propagate_deletes("articles", base_a, api, store, SETTINGS, approved=plan.total)
    assert report.deleted == report.from_log == 900
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == 100


def test_a_truncated_table_found_by_the_key_comparison_stops_and_the_flag_approves_it(base_a, base_a_engine, base_b):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 600, seed_value=42)
    run_once("articles", base_a, api, store)
    with base_a_engine.begin() as conn:  # TRUNCATE fires no trigger: the delete log shows nothing
        conn.execute(text("TRUNCATE TABLE articles"))
    generate.seed(base_a_engine, "articles", 10, seed_value=43)  # a few rows come back (keys 1 to 10 again)
    settings = SETTINGS.model_copy(update={"key_check_hours": 0})
    with pytest.raises(MassDeleteBlocked) as blocked:
        run_once("articles", base_a, api, store, settings)
    plan = blocked.value.plan
    assert plan.by_source == {KEY_COMPARISON: 590} and plan.limit == 100
    assert "compared because: last comparison" in str(blocked.value)
    assert _live(base_b, "articles") == 600

    report = sync.propagate_deletes("articles", base_a, api, store, settings, approved=ANY_NUMBER)
    assert report.deleted == 590
    run_once("articles", base_a, api, store, settings)
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == 10


def test_the_look_back_reading_an_approved_mass_delete_again_does_not_stop_the_next_run(base_a, base_a_engine, base_b):
    api, store = base_b.api(), MemoryStateStore()
    lookback = SETTINGS.model_copy(update={"lookback_seconds": 3600})
    generate.seed(base_a_engine, "employees", 500, seed_value=44)
    run_once("employees", base_a, api, store, lookback)
    with base_a_engine.begin() as conn:
        conn.execute(text("DELETE FROM employees WHERE id > 50"))
    report = sync.load("employees", base_a, api, store, lookback)
    deleted = sync.propagate_deletes("employees", base_a, api, store, lookback, approved=ANY_NUMBER)
    sync.commit("employees", store, report, {"deletes": deleted.to_json()})
    assert deleted.deleted == 450
    # The next run reads those 450 log entries again (the look-back): sent, found deleted, not counted.
    with base_a_engine.begin() as conn:
        conn.execute(text("DELETE FROM employees WHERE id <= 3"))
    again = run_once("employees", base_a, api, store, lookback)
    assert again["deletes"]["planned"]["total"] == 3 and again["deletes"]["from_log"] == 453
    assert again["deletes"]["deleted"] == 3
    assert assert_in_sync(base_a_engine, base_b.database_url, "employees") == 47


def test_the_plan_logs_its_count_once_ending_with_what_follows(base_a, base_a_engine, base_b, caplog):
    """Found from outside: check_deletes logged the count twice when it asked ("Asks for approval: over
    the limit", then "MASS DELETE BLOCKED"), and "Asks for approval" on a run its param approved."""
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 1000, seed_value=46)
    run_once("articles", base_a, api, store)
    with base_a_engine.begin() as conn:
        conn.execute(text("DELETE FROM articles WHERE id > 100"))
    count = "900 rows to delete in Base B"

    with caplog.at_level("INFO", logger="base_sync"):
        sync.plan_deletes("articles", base_a, api, store, SETTINGS)
    lines = [r.getMessage() for r in caplog.records if count in r.getMessage()]
    assert len(lines) == 1 and "MASS DELETE BLOCKED, over the limit" in lines[0], lines
    assert "Asks for approval" not in caplog.text

    caplog.clear()
    with caplog.at_level("INFO", logger="base_sync"):
        sync.plan_deletes("articles", base_a, api, store, SETTINGS, approved_by_param=True)
    lines = [r.getMessage() for r in caplog.records if count in r.getMessage()]
    assert len(lines) == 1 and lines[0].endswith("Over the limit, approved by this run's approve_mass_delete param")
    assert "BLOCKED" not in caplog.text and "Asks for approval" not in caplog.text


def test_a_key_both_the_log_and_the_key_comparison_name_counts_once(base_a, base_a_engine, base_b):
    api, store = base_b.api(), MemoryStateStore()
    generate.seed(base_a_engine, "articles", 1000, seed_value=45)
    run_once("articles", base_a, api, store)
    with base_a_engine.begin() as conn:
        conn.execute(text("DELETE FROM articles WHERE id <= 80"))
    plan = sync.plan_deletes("articles", base_a, api, store, SETTINGS, compare_keys=True)
    assert plan.total == 80 and plan.by_source == {DELETE_LOG: 80} and plan.within_budget
    run = sync.propagate_deletes("articles", base_a, api, store, SETTINGS, compare_keys=True)
    assert run.deleted == 80
    assert assert_in_sync(base_a_engine, base_b.database_url, "articles") == 920


def test_the_budget_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("SYNC_MASS_DELETE_SHARE", "0.2")
    monkeypatch.setenv("SYNC_MASS_DELETE_MIN_ROWS", "7")
    settings = SyncSettings()
    assert (settings.mass_delete_share, settings.mass_delete_min_rows) == (0.2, 7)


# The guard's parts alone (no server).


def _records(keys) -> list[dict]:
    return [{"source_id": key, "source_updated_at": "2026-01-01T00:00:00+00:00"} for key in keys]


def test_the_budget_is_a_share_of_the_synced_rows_but_never_below_the_minimum():
    settings = SyncSettings(mass_delete_share=0.05, mass_delete_min_rows=100)
    assert DeleteBudget.of(settings).limit == 100  # Base B's count not needed yet
    assert DeleteBudget.of(settings, 1000).limit == 100
    assert DeleteBudget.of(settings, 3001).limit == 151  # ceil(150.05)
    assert DeleteBudget.of(settings, 3001).allowance(approved=500) == 500
    assert DeleteBudget.of(settings, 3001).allowance(approved=None) == 151


def test_planned_deletes_hold_at_most_their_capacity_and_count_everything():
    planned = PlannedDeletes(capacity=12)
    planned.add(DELETE_LOG, _records(range(5)), counted=False)
    planned.add(DELETE_LOG, _records(range(10, 15)))
    planned.add(KEY_COMPARISON, _records(range(12, 17)))  # 12 to 14 named twice: counted once
    assert (planned.total, planned.complete, planned.exact) == (7, True, True)
    assert len(planned.held) == 5 + 5 + 2  # the look-back's, the log's, and the comparison's new keys
    planned.add(KEY_COMPARISON, _records(range(100, 10_100)))
    assert planned.total == 10_007 and not planned.complete and planned.exact  # held no more, still counted once
    assert planned.held == [] and len(planned.by_source) == 2
    planned.add(LEFT_SCOPE, _records(range(100, 10_100)))  # soft-deleted rows: both sources name them
    assert planned.total == 10_007 and planned.exact


def test_a_key_deleted_again_in_the_window_is_held_with_both_versions_and_counted_once():
    """Deleted, put back and deleted again: the first delete alone is older than the row put back."""
    planned = PlannedDeletes(capacity=12)
    first = {"source_id": 7, "source_updated_at": "2026-01-01T00:00:00+00:00"}
    again = {"source_id": 7, "source_updated_at": "2026-01-01T00:05:00+00:00"}
    planned.add(DELETE_LOG, [first, again])
    planned.add(KEY_COMPARISON, [dict(again)])  # the same delete named by another source: held once
    assert planned.total == 1 and planned.exact
    assert planned.from_source(DELETE_LOG) == [first, again] and planned.from_source(KEY_COMPARISON) == []


def test_past_the_keys_it_remembers_a_plan_counts_an_upper_bound(monkeypatch):
    monkeypatch.setattr(delete_guard, "DISTINCT_KEYS", 100)
    planned = PlannedDeletes(capacity=12)
    planned.add(KEY_COMPARISON, _records(range(200)))
    planned.add(LEFT_SCOPE, _records(range(200)))
    assert not planned.exact and planned.total > 200


def test_planned_deletes_grow_once_to_the_limit_when_it_is_known():
    asked = []
    planned = PlannedDeletes(capacity=3, grow=lambda: asked.append(1) or 50)
    planned.add(DELETE_LOG, _records(range(40)))
    assert asked == [1] and planned.complete and len(planned.held) == 40 and planned.capacity == 50


def test_a_second_pass_stops_before_a_chunk_that_passes_the_allowance():
    plan = DeletePlan("articles", 120, {DELETE_LOG: 120}, DeleteBudget(0.05, 100, 1000))
    allowance = Allowance(plan, approved=120)
    allowance.take(DELETE_LOG, 100)
    allowance.take(KEY_COMPARISON, 20)
    with pytest.raises(MassDeleteBlocked, match=r"121 so far, allowed 120"):
        allowance.take(KEY_COMPARISON, 1)
    assert plan.to_json()["share"] == 0.12 and not plan.to_json()["within_budget"]


def test_while_the_events_path_holds_deletes_of_an_entity_any_delete_of_it_needs_approval():
    held = HeldByEvents(31, "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00")
    budget = DeleteBudget(0.05, 100, 117)
    plan = DeletePlan("employees", 31, {DELETE_LOG: 31}, budget, held_by_events=held)
    assert plan.limit == 100 and not plan.within_budget and not plan.allowed(None)
    assert plan.allowed(31 + plan.limit) and plan.allowed(ANY_NUMBER)
    assert "the events path holds 31 deletes of employees" in plan.summary and "MassDeleteHeld" in plan.summary
    assert "BLOCKED, held by the events path" in plan.message and "replaying their dead letters" in plan.message
    assert plan.to_json()["held_by_events"]["held"] == 31
    nothing = DeletePlan("employees", 0, {}, budget, held_by_events=held)
    assert nothing.within_budget, "no delete found: nothing to ask"
    assert DeletePlan("employees", 31, {DELETE_LOG: 31}, budget).within_budget
