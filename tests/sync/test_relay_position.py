"""The relay's resumable position only passes transactions whose every event the broker acknowledged."""

from __future__ import annotations

import os

import pytest

from base_sync.relay import (
    Deliveries,
    PositionFile,
    PositionHeld,
    PositionUnusable,
    Progress,
    gtid_domains,
    position_problem,
    same_point,
)


def test_the_position_waits_for_every_earlier_transaction():
    deliveries = Deliveries()
    first, second = deliveries.begin(), deliveries.begin()
    ack_first = [deliveries.sent(first) for _ in range(2)]
    ack_second = deliveries.sent(second)
    deliveries.end(first, {"gtid": "0-1-1"})
    deliveries.end(second, {"gtid": "0-1-2"})
    assert deliveries.safe_position() is None  # nothing acknowledged yet
    ack_second(None, None)
    assert deliveries.safe_position() is None  # the second is done, the first is not
    ack_first[0](None, None)
    ack_first[1](None, None)
    assert deliveries.safe_position() == {"gtid": "0-1-2"}


def test_an_open_transaction_holds_the_position():
    deliveries = Deliveries()
    done, still_open = deliveries.begin(), deliveries.begin()
    deliveries.end(done, {"gtid": "0-1-5"})
    deliveries.sent(still_open)
    assert deliveries.safe_position() == {"gtid": "0-1-5"}
    assert deliveries.safe_position() is None  # nothing new until the open one ends


def test_a_transaction_held_open_keeps_the_position_before_it_and_the_queue_short():
    """A prepared XA's group stays open until its outcome: the position must not pass it, and the
    transactions finished meanwhile must not pile up one entry each."""
    deliveries = Deliveries()
    held = deliveries.begin()
    release = deliveries.sent(held)
    deliveries.end(held, {"gtid": "0-1-1"})
    for number in range(2, 1002):
        deliveries.end(deliveries.begin(), {"gtid": f"0-1-{number}"})
        assert deliveries.safe_position() is None
    assert len(deliveries.transactions) == 2
    release(None, None)
    assert deliveries.safe_position() == {"gtid": "0-1-1001"}


def test_a_refused_event_freezes_the_position():
    deliveries = Deliveries()
    transaction = deliveries.begin()
    acknowledge = deliveries.sent(transaction)
    deliveries.end(transaction, {"gtid": "0-1-9"})
    acknowledge("broker down", None)
    assert deliveries.safe_position() is None
    assert deliveries.failed == ["broker down"]


def test_position_file_round_trips_and_replaces_atomically(tmp_path):
    positions = PositionFile(tmp_path / "relay" / "position.json")
    assert positions.load() is None
    positions.save({"gtid": "0-1-3", "log_file": None, "log_pos": None})
    positions.save({"gtid": "0-1-4", "log_file": "binlog.000002", "log_pos": 1234})
    assert positions.load() == {"gtid": "0-1-4", "log_file": "binlog.000002", "log_pos": 1234}
    assert [p.name for p in (tmp_path / "relay").iterdir()] == ["position.json"]


def test_two_writers_of_one_position_file_never_take_each_others_scratch_file(tmp_path, monkeypatch):
    """Both wrote `position.tmp`: a save finishing while another was between its write and its rename
    took that one's scratch file away, and its os.replace raised FileNotFoundError."""
    path = tmp_path / "position.json"
    first, second = PositionFile(path), PositionFile(path)
    fsync = os.fsync
    interleaved = []

    def the_other_saves_meanwhile(descriptor: int) -> None:
        fsync(descriptor)
        if not interleaved:  # between the first one's write and its rename
            interleaved.append(True)
            second.save({"gtid": "0-1-8", "log_file": None, "log_pos": None})

    monkeypatch.setattr(os, "fsync", the_other_saves_meanwhile)
    first.save({"gtid": "0-1-9", "log_file": None, "log_pos": None})
    assert interleaved and first.load() == {"gtid": "0-1-9", "log_file": None, "log_pos": None}
    assert [p.name for p in tmp_path.iterdir()] == ["position.json"]  # no scratch file left


def test_a_position_file_held_by_one_relay_is_refused_to_another_naming_it_and_the_holder(tmp_path):
    path = tmp_path / "relay" / "position.json"
    holder, other = PositionFile(path), PositionFile(path)
    holder.lock()
    with pytest.raises(PositionHeld) as refused:
        other.lock()
    assert f"another relay (pid {os.getpid()} on " in str(refused.value) and str(path) in str(refused.value)
    assert "\n" not in str(refused.value) and "RELAY_POSITION_FILE" in str(refused.value)
    holder.unlock()
    other.lock()  # free once the holder is gone (a process's end releases it too)
    other.unlock()


def test_taking_the_lock_removes_the_scratch_files_of_saves_killed_before_their_rename(tmp_path):
    """Found in review: a kill -9 between a save's mkstemp and its os.replace left
    `.position.json.XXXX.tmp` behind, and a relay in a crash loop piled them up."""
    path = tmp_path / "relay" / "position.json"
    PositionFile(path).save({"gtid": "0-1-3", "log_file": None, "log_pos": None})
    leftovers = [path.with_name(f".position.json.{suffix}.tmp") for suffix in ("a1b2c3d4", "zz_9xq0k")]
    for leftover in leftovers:
        leftover.write_text('{"gtid": "0-1-')  # cut short by the kill
    # Another position file whose name starts with this one's: its relay may be saving right now.
    others = [
        path.with_name(name)
        for name in (".other.json.a1b2c3d4.tmp", "position.json.bak", ".position.json.orders.a1b2c3d4.tmp")
    ]
    for other in others:
        other.write_text("kept")
    positions = PositionFile(path)
    positions.lock()
    try:
        assert sorted(p.name for p in path.parent.iterdir()) == sorted(
            [
                ".other.json.a1b2c3d4.tmp",
                ".position.json.orders.a1b2c3d4.tmp",
                "position.json",
                "position.json.bak",
                "position.json.lock",
            ]
        )
        assert positions.load() == {"gtid": "0-1-3", "log_file": None, "log_pos": None}
    finally:
        positions.unlock()


class _Gtid:
    """What Progress reads of a MariadbGtidEvent."""

    def __init__(self, gtid: str):
        self.gtid, self.domain_id = gtid, int(gtid.split("-", maxsplit=1)[0])


def test_the_position_keeps_the_last_gtid_of_every_domain():
    assert gtid_domains("0-1-107,1-1-1") == {0: "0-1-107", 1: "1-1-1"}
    assert gtid_domains("") == gtid_domains(None) == {}
    progress = Progress({"gtid": "0-1-107,1-1-1", "log_file": None, "log_pos": None}, is_mariadb=True)
    progress.begin(_Gtid("0-1-108"))
    assert progress.whole("binlog.000001", 10)["gtid"] == "0-1-108,1-1-1"  # domain 1's GTID stays
    progress.begin(_Gtid("12-3-5"))
    progress.begin(_Gtid("1-1-2"))
    assert progress.whole("binlog.000001", 20)["gtid"] == "0-1-108,1-1-2,12-3-5"  # by domain, as MariaDB shows it


@pytest.mark.parametrize("content", ["", '{"gtid": "0-1-', "[1]", '"0-1-1"', "\xff"])
def test_a_position_file_that_is_no_position_is_refused_naming_the_file_and_what_to_do(tmp_path, content):
    """It raised a raw JSONDecodeError (a traceback, a restart loop under Compose)."""
    positions = PositionFile(tmp_path / "position.json")
    positions.path.write_text(content, encoding="latin-1")
    with pytest.raises(PositionUnusable) as refused:
        positions.load()
    assert str(positions.path) in str(refused.value) and "compare_keys" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_missing_or_null_position_file_is_no_position(tmp_path):
    positions = PositionFile(tmp_path / "position.json")
    assert positions.load() is None
    positions.path.write_text("null")
    assert positions.load() is None


@pytest.mark.parametrize(
    ("position", "is_mariadb", "problem"),
    [
        ({}, True, "holds no gtid"),
        ({"gtid": None, "log_file": "binlog.000002", "log_pos": 4}, True, "holds no gtid"),
        ({"gtid": "x-y"}, True, "malformed gtid"),
        ({"gtid": "0-1-5,7-1"}, True, "malformed gtid"),
        ({"gtid": "0-1-5", "log_file": "binlog.000002", "log_pos": "4"}, True, "no offset"),
        ({"gtid": "0-1-5", "log_file": 2, "log_pos": 4}, True, "no file name"),
        ({}, False, "holds no log_file and log_pos"),
        ({"gtid": "3E11FA47-71CA-11E1-9E33-C80AA9429562:23"}, False, "holds no log_file and log_pos"),
    ],
)
def test_a_position_the_server_cannot_resume_from_is_a_problem(position, is_mariadb, problem):
    assert problem in (position_problem(position, is_mariadb) or "")


@pytest.mark.parametrize(
    ("position", "is_mariadb"),
    [
        ({"gtid": "", "log_file": None, "log_pos": None}, True),  # the first start on a binlog with no GTID yet
        ({"gtid": "0-1-107,7-1-1", "log_file": "binlog.000003", "log_pos": 1234}, True),
        ({"gtid": "0-1-107"}, True),  # by GTID alone, as after a failover to a replica
        ({"gtid": None, "log_file": "binlog.000003", "log_pos": 157}, False),
        ({"gtid": "3E11FA47-71CA-11E1-9E33-C80AA9429562:23", "log_file": "binlog.000003", "log_pos": 157}, False),
    ],
)
def test_the_positions_the_relay_saves_are_usable(position, is_mariadb):
    assert position_problem(position, is_mariadb) is None


def test_one_point_of_one_history_has_the_same_gtid_in_every_domain_both_name():
    assert same_point("0-1-133", "0-1-133")
    assert same_point("0-1-133,7-1-2", "7-1-2,0-1-133")
    assert same_point("0-1-133,7-1-2", "0-1-133")  # a domain deleted since is no evidence
    assert same_point("", "0-1-4")
    assert not same_point("0-1-133", "0-1-20")  # the GTID reused by another history
    assert not same_point("0-1-133,7-1-2", "0-1-133,7-1-9")
    assert not same_point("0-1-133", "")
    assert not same_point("0-1-133", "3-2-10")
