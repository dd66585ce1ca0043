"""The mass-delete breaker on the events path, on the real stack: a real broker, the real API over
PostgreSQL, the drain the events DAG runs and `base-sync-dlq` as operators run it.

Budget here: SYNC_MASS_DELETE_SHARE=0.05 of 200 synced employees, SYNC_MASS_DELETE_MIN_ROWS=4, so a
run may delete 10 employees unasked, and any run of more than 4 deletes counts Base B's rows.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from base_sync import events
from base_sync.dead_letters import MASS_DELETE_HELD
from base_sync.events import REPORTED_COUNTS
from base_sync.state import MemoryHeldDeletes
from tests.sync.test_dead_letters import dlq, listed
from tests.sync.test_events_apply import T0, Events, employee

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SEEDED = 200
LIMIT = 10  # max(4, ceil(0.05 x 200))


@pytest.fixture
def changes(kafka_bootstrap, event_settings, base_b, monkeypatch) -> Events:
    """200 employees synced through the events path; the drain reads the batch path's breaker settings."""
    monkeypatch.setenv("SYNC_MASS_DELETE_SHARE", "0.05")
    monkeypatch.setenv("SYNC_MASS_DELETE_MIN_ROWS", "4")
    events = Events(kafka_bootstrap, event_settings, base_b)
    for key in range(1, SEEDED + 1):
        events.send("c", None, employee(key, T0))
    assert events.drain().counts["inserted"] == SEEDED
    return events


def delete(changes: Events, keys) -> None:
    for key in keys:
        changes.send("d", employee(key, T0), None)


def test_deletes_within_the_budget_are_applied(changes):
    delete(changes, range(1, 9))  # 8: past the floor, so Base B is counted, and within the limit of 10
    report = changes.drain()
    assert report.counts["deleted"] == 8 and report.counts["held_deletes"] == 0, report.to_json()
    assert sorted(changes.rows()) == list(range(9, SEEDED + 1))
    assert changes.dead_letters() == []


def hold_a_mass_delete(changes: Events) -> tuple[dict, set[int]]:
    """30 deletes in one run of batches of 8: 10 are applied, 20 held. Returns the run's report and the held keys."""
    changes.settings = changes.settings.model_copy(update={"batch_size": 8})
    delete(changes, range(1, 31))
    report = changes.drain()
    assert report.batches >= 4, "the budget spans the run's batches"
    gone = set(range(1, SEEDED + 1)) - set(changes.rows())
    return report.to_json(), set(range(1, 31)) - gone


def test_deletes_past_the_budget_are_held_as_dead_letters_and_committed_past(changes, caplog):
    with caplog.at_level(logging.INFO, logger="base_sync.events"):
        report, held = hold_a_mass_delete(changes)
    # One warning for the run, not one ~450-character line per held delete (a million for a mass delete).
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    (summary,) = [line for line in warned if "held" in line]
    assert summary.startswith("MASS DELETE HELD: employees: 20 deletes past the run's limit are in the dead letters")
    assert f"exceed its limit of {LIMIT} " in summary, summary
    named = summary.split("; keys ")[1].split(", ...; check Base A")[0]
    assert len(named.split(", ")) == 5 and {int(key) for key in named.split(", ")} <= held, summary
    assert not [line for line in warned if line.startswith("dead letter ")]
    assert report["counts"]["deleted"] == LIMIT and report["counts"]["held_deletes"] == 20, report
    assert report["by_entity"]["employees"]["held_deletes"] == 20
    assert report["counts"]["dead_lettered"] == 20
    # Base B lost only the limit's worth, all among the deleted keys; the held 20 are still live.
    rows = changes.rows()
    assert len(rows) == SEEDED - LIMIT and set(range(31, SEEDED + 1)) <= set(rows) and held <= set(rows)
    letters = listed(changes)
    assert sorted(int(letter["key"]) for letter in letters) == sorted(held)
    for letter in letters:
        assert letter["kind"] == MASS_DELETE_HELD and letter["stage"] == "TASK_PUT"
        assert "mass delete held" in letter["reason"] and "employees" in letter["reason"]
        assert f"limit of {LIMIT} " in letter["reason"] and "x 200 synced rows" in letter["reason"]
        assert "base-sync-dlq replay" in letter["reason"] and "--approve-mass-delete" in letter["reason"]
    again = changes.drain()
    assert again.counts["consumed"] == 0, "the held deletes were committed past, not read again"
    # A run that found nothing reports every count the README lists, as zeros.
    assert again.to_json()["counts"] == dict.fromkeys(REPORTED_COUNTS, 0)
    assert {"consumed", "inserted", "deleted", "held_deletes", "dead_lettered"} <= set(REPORTED_COUNTS)


def test_replaying_the_held_deletes_is_the_approval(changes):
    _, held = hold_a_mass_delete(changes)
    # One held key changes again after its delete: replayed late, its delete must not undo the new row.
    changed = min(held)
    changes.send("u", employee(changed, T0), employee(changed, T0 + timedelta(seconds=10), position="Lead"))
    assert changes.drain().counts["updated"] == 1

    refused = dlq(changes, "replay", "--all")
    assert refused.returncode == 2 and "--approve-mass-delete" in refused.stderr
    assert changes.drain().counts["consumed"] == 0, "a refused replay sends nothing"

    approved = dlq(changes, "replay", "--all", "--kind", MASS_DELETE_HELD, "--approve-mass-delete")
    assert approved.returncode == 0, approved.stderr
    assert "replayed 20 dead letters" in approved.stderr

    report = changes.drain()
    counts = report.counts
    assert counts["approved_deletes"] == 20 and counts["held_deletes"] == 0, report.to_json()
    assert counts["deleted"] == 19 and counts["stale"] == 1
    rows = changes.rows()
    assert sorted(rows) == sorted({changed} | set(range(31, SEEDED + 1)))
    assert rows[changed][5] == "Lead"
    assert listed(changes) == [], "no new dead letters: approved deletes are not held again"
    assert len(listed(changes, "--include-replayed")) == 20, "the replayed ones stay, marked"


def test_deletes_of_rows_base_b_does_not_hold_are_not_counted(changes):
    """Deletes of keys Base B never held (another tenant's rows outside the filter, say) are sent, and
    leave tombstones, but are nothing the breaker should hold: only the 5 live ones count."""
    delete(changes, range(1000, 1040))
    delete(changes, range(1, 6))
    report = changes.drain()
    assert (report.counts["deleted"], report.counts["not_found"]) == (5, 40), report.to_json()
    assert report.counts["held_deletes"] == 0 and changes.dead_letters() == []
    assert sorted(changes.rows()) == list(range(6, SEEDED + 1))


def drain_with(changes: Events, held_deletes: MemoryHeldDeletes) -> events.DrainReport:
    """The events DAG's drain, telling its holds to a store (as the DAG tells the Variables)."""
    config = {"bootstrap.servers": changes.bootstrap}
    consumer, producer = events.consumer_for(config, changes.settings), events.producer_for(config)
    api = changes.base_b.api()
    try:
        return events.drain(
            consumer, producer, api, changes.settings, changes.topics, held_deletes=held_deletes, kafka_config=config
        )
    finally:
        consumer.close()
        api.close()


def test_a_batch_read_again_after_a_crash_before_its_commit_deletes_nothing_more_and_holds_once(changes, monkeypatch):
    """Run 1 holds 20 deletes (letters stored, hold recorded) and dies before committing its offsets.
    Run 2 reads the batch again with a budget of its own: the held deletes lie where the hold recorded
    them, so they are held again, not admitted against it (it deleted 10 more rows unasked before)
    and not recorded again (the holds count each held delete once, so approving the letters settles them)."""
    store = MemoryHeldDeletes()
    delete(changes, range(1, 31))
    real, crashed = events.commit, []

    def crash_once(*args, **kwargs):
        if not crashed:
            crashed.append(True)
            raise SystemExit("killed after the letters were stored, before the commit")
        return real(*args, **kwargs)

    monkeypatch.setattr(events, "commit", crash_once)
    with pytest.raises(SystemExit):
        drain_with(changes, store)
    assert len(changes.rows()) == SEEDED - LIMIT
    assert store.get("employees").held == 20 and len(changes.dead_letters()) == 20
    (hold,) = store.saved.values()
    assert sum(last - first + 1 for _, _, first, last in hold.at) >= 20, hold.at

    again = drain_with(changes, store)
    counts = again.counts
    assert counts["consumed"] == 30 and counts["deleted"] == 0, again.to_json()
    assert (counts["held_deletes"], counts["held_again"], counts["dead_lettered"]) == (20, 20, 20)
    assert len(changes.rows()) == SEEDED - LIMIT, "nothing deleted past the limit unasked"
    assert store.get("employees").held == 20 and len(store.saved) == 1, "the hold is not recorded twice"
    letters = listed(changes)
    assert len(letters) == 20 and len(changes.dead_letters()) == 40, "the letters written again are folded"
    assert {int(letter["key"]) for letter in letters} == set(range(1, 31)) & set(changes.rows())
    assert all(len(letter["duplicates"]) == 1 for letter in letters), letters[0]
    assert drain_with(changes, store).counts["consumed"] == 0, "committed past this time"

    # New deletes after them (higher offsets) meet the new run's budget as before.
    delete(changes, range(31, 43))
    later = drain_with(changes, store)
    assert (later.counts["deleted"], later.counts["held_deletes"], later.counts["held_again"]) == (10, 2, 0)
    assert store.get("employees").held == 22

    # Approving every letter settles every hold: no phantom holds make the batch DAG ask.
    approved = dlq(changes, "replay", "--all", "--kind", MASS_DELETE_HELD, "--approve-mass-delete")
    assert approved.returncode == 0, approved.stderr
    replay = drain_with(changes, store)
    assert (replay.counts["approved_deletes"], replay.counts["deleted"]) == (22, 22), replay.to_json()
    assert replay.counts["held_deletes"] == 0
    assert store.get("employees") is None
    assert sorted(changes.rows()) == list(range(43, SEEDED + 1))
