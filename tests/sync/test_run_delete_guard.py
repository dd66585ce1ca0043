"""The events path's mass-delete breaker: one run's deletes per entity against the batch path's budget (no servers)."""

from __future__ import annotations

import time

import pytest

from base_sync.delete_guard import DeleteBudget, HeldByEvents, RunDeleteGuard
from base_sync.errors import TransientError
from base_sync.metrics import events_samples
from base_sync.state import HELD_DELETES_PREFIX, MemoryHeldDeletes


class SyncedRows:
    """Base B's synced rows per entity, as the API would count them; records every count asked."""

    def __init__(self, **rows: int):
        self.rows, self.asked = rows, []

    def __call__(self, entity: str) -> int:
        self.asked.append(entity)
        return self.rows[entity]


def test_deletes_within_the_floor_go_without_counting_base_b():
    synced = SyncedRows(employees=40_000)
    guard = RunDeleteGuard(DeleteBudget(share=0.05, min_rows=100), synced)
    admissions = [guard.admit("employees", 50), guard.admit("employees", 50)]
    assert [(a.admitted, a.held) for a in admissions] == [(50, 0), (50, 0)]
    assert synced.asked == [], "Base B's count is needed only past SYNC_MASS_DELETE_MIN_ROWS"


def test_past_the_limit_the_deletes_of_later_batches_are_held_and_base_b_is_counted_once():
    synced = SyncedRows(employees=39_900)  # what Base B holds once the first batch's deletes are applied
    guard = RunDeleteGuard(DeleteBudget(share=0.05, min_rows=100), synced)
    first = guard.admit("employees", 100)  # the floor: sent before Base B is counted
    second = guard.admit("employees", 1_500)
    third = guard.admit("employees", 1_000)  # crosses the limit: part goes, the rest is held
    fourth = guard.admit("employees", 300)
    # The rows the first batch deleted were synced when the run began: 39,900 + 100 = 40,000, 5% = 2,000.
    assert third.budget.synced == 40_000 and third.budget.limit == 2_000
    assert [(a.admitted, a.held) for a in (first, second, third, fourth)] == [
        (100, 0),
        (1_500, 0),
        (400, 600),
        (0, 300),
    ]
    assert synced.asked == ["employees"]
    assert fourth.requested == 2_900
    assert "2,900 deletes of employees in this run exceed its limit of 2,000" in fourth.reason
    assert "SYNC_MASS_DELETE_SHARE=0.05 x 40,000 synced rows" in fourth.reason


def test_each_entity_has_its_own_budget():
    guard = RunDeleteGuard(DeleteBudget(share=0.0, min_rows=10), SyncedRows(employees=0, articles=0))
    assert guard.admit("employees", 12).held == 2
    assert guard.admit("articles", 10).held == 0


def test_an_empty_base_b_still_lets_the_floor_through():
    guard = RunDeleteGuard(DeleteBudget(share=0.05, min_rows=100), SyncedRows(employees=0))
    admission = guard.admit("employees", 150)
    assert (admission.admitted, admission.held, admission.budget.limit) == (100, 50, 100)


def test_held_deletes_are_a_row_outcome_of_the_events_path():
    samples = {
        name: (kind, value)
        for kind, name, value in events_samples(
            ["employees"], {"employees": {"held_deletes": 20}}, {"MassDeleteHeld": 20}, 0, None
        )
    }
    assert samples["base_sync.rows.events.employees.held_deletes"] == ("incr", 20)


def test_a_hold_is_recorded_for_the_batch_path_before_the_letters_exist_and_approved_replays_settle_it():
    held_deletes = MemoryHeldDeletes()
    guard = RunDeleteGuard(DeleteBudget(share=0.0, min_rows=10), SyncedRows(employees=0), held_deletes)
    guard.admit("employees", 8)
    assert held_deletes.get("employees") is None, "within the limit nothing is held"
    guard.admit("employees", 5)
    first = held_deletes.get("employees")
    assert first.held == 3
    RunDeleteGuard(DeleteBudget(share=0.0, min_rows=10), SyncedRows(employees=0), held_deletes).admit("employees", 12)
    both = held_deletes.get("employees")
    assert (both.held, both.since) == (5, first.since), "a later run's holds add up"
    guard.approved("employees", 4)
    assert held_deletes.get("employees").held == 1, "a replay of some letters leaves the others held"
    guard.approved("employees", 1)
    assert held_deletes.get("employees") is None


def test_the_batch_approval_settles_what_it_saw_not_what_was_held_since():
    held_deletes = MemoryHeldDeletes()
    held_deletes.hold("employees", 31)
    seen = held_deletes.get("employees")
    held_deletes.release("employees", seen)
    assert held_deletes.get("employees") is None
    held_deletes.hold("employees", 31)
    seen = held_deletes.get("employees")
    time.sleep(0.001)
    held_deletes.hold("employees", 20)  # held while the batch deleted: not approved by it
    held_deletes.release("employees", seen)
    assert held_deletes.get("employees").held == 20


def test_each_hold_is_a_record_of_its_own_and_another_entitys_prefix_is_not_its():
    """Holds are never rewritten by the batch path: a hold recorded between the batch's read and its
    settling keeps its own record; an entity whose name starts another's does not read the other's."""
    held_deletes = MemoryHeldDeletes()
    held_deletes.hold("employees", 4)
    held_deletes.hold("employees_archive", 7)
    held_deletes.saved[HELD_DELETES_PREFIX + "employees"] = HeldByEvents(2, "2025-12-01T00:00:00+00:00", "2025-12-01")
    seen = held_deletes.get("employees")
    assert (seen.held, seen.since, len(seen.names)) == (6, "2025-12-01T00:00:00+00:00", 2), "the bare name counts too"
    held_deletes.hold("employees", 5)
    held_deletes.release("employees", seen)
    assert held_deletes.get("employees").held == 5
    assert held_deletes.get("employees_archive").held == 7
    held_deletes.approved("employees", 9)
    assert held_deletes.get("employees") is None and held_deletes.get("employees_archive").held == 7


def test_a_hold_listed_but_not_read_is_no_hold_taken_as_none():
    class Unreadable(MemoryHeldDeletes):
        def _read(self, name):
            return None

    held_deletes = Unreadable()
    held_deletes.hold("employees", 3)
    with pytest.raises(TransientError, match="listed but could not be read"):
        held_deletes.get("employees")


def test_a_hold_records_where_its_messages_sit_and_a_later_run_holds_them_again_uncounted():
    """A run that held deletes and stopped before committing is read again by the next: the deletes
    its hold recorded are held again without taking from the new run's budget or recording a new
    hold; a new delete elsewhere (a higher offset, another partition) meets the budget as before."""
    held_deletes = MemoryHeldDeletes()
    first = RunDeleteGuard(DeleteBudget(share=0.0, min_rows=5), SyncedRows(employees=0), held_deletes)
    at = [("t.employees", 0, offset) for offset in range(10, 17)] + [("t.employees", 2, o) for o in (4, 9, 7)]
    admission = first.admit("employees", 10, at)
    assert (admission.admitted, admission.held) == (5, 5)
    (hold,) = held_deletes.saved.values()
    # The 5 past the limit: offsets 15, 16 of partition 0, and 4, 9, 7 of partition 2.
    assert (hold.held, hold.at) == (5, (("t.employees", 0, 15, 16), ("t.employees", 2, 4, 9)))
    assert HeldByEvents.from_json(hold.to_json()) == hold
    assert hold.to_json()["at"] == {"t.employees": {"0": [[15, 16]], "2": [[4, 9]]}}

    second = RunDeleteGuard(DeleteBudget(share=0.0, min_rows=5), SyncedRows(employees=0), held_deletes)
    read_again = [("t.employees", 0, 15), ("t.employees", 2, 9), ("t.employees", 0, 17), ("t.employees", 1, 5)]
    assert second.held_before("employees", read_again) == [True, True, False, False]
    assert second.held_before("articles", read_again) == [False] * 4, "another entity's holds are not its"
    assert second.admit("employees", 2, read_again[2:]).held == 0, "the budget is whole for new deletes"
    assert held_deletes.get("employees").held == 5 and len(held_deletes.saved) == 1

    # Settled: nowhere held any more.
    held_deletes.approved("employees", 5)
    assert held_deletes.held_at("employees") == ()


def test_a_hold_an_earlier_version_recorded_says_nowhere_and_holds_nothing_again():
    held_deletes = MemoryHeldDeletes()
    old = HeldByEvents.from_json({"held": 3, "since": "2025-12-01T00:00:00+00:00", "last": "2025-12-01"})
    held_deletes.saved[HELD_DELETES_PREFIX + "employees.20251201T000000.000000Z-abcdef"] = old
    assert old.at == () and "at" not in old.to_json()
    guard = RunDeleteGuard(DeleteBudget(share=0.0, min_rows=5), SyncedRows(employees=0), held_deletes)
    assert guard.held_before("employees", [("t.employees", 0, 1)]) == [False]
    assert RunDeleteGuard(DeleteBudget(share=0.0, min_rows=5), SyncedRows(employees=0)).held_before(
        "employees", [("t.employees", 0, 1)]
    ) == [False], "no store: nothing was recorded"


def test_a_delete_admitted_between_held_ones_is_no_held_one_when_read_again():
    """A batch is in key order, not offset order: [300, 200, 400] under a limit of 1 admits 300 and
    holds 200 and 400. A first-to-last span recorded 200..400, so 300, admitted but not sent before
    a crash, was held "again" when read again, counted in no hold (review)."""
    held_deletes = MemoryHeldDeletes()
    first = RunDeleteGuard(DeleteBudget(share=0.0, min_rows=1), SyncedRows(employees=0), held_deletes)
    at = [("t.employees", 0, 300), ("t.employees", 0, 200), ("t.employees", 0, 400)]
    assert first.admit("employees", 3, at).held == 2
    (hold,) = held_deletes.saved.values()
    assert hold.at == (("t.employees", 0, 200, 200), ("t.employees", 0, 400, 400))
    assert HeldByEvents.from_json(hold.to_json()) == hold
    second = RunDeleteGuard(DeleteBudget(share=0.0, min_rows=1), SyncedRows(employees=0), held_deletes)
    assert second.held_before("employees", at) == [False, True, True]
    # A record with one [first, last] per partition is read as one run.
    old = {"held": 2, "since": "s", "last": "l", "at": {"t.employees": {"0": [200, 400]}}}
    assert HeldByEvents.from_json(old).at == (("t.employees", 0, 200, 400),)
