"""`base-sync-dlq` on the real broker: dead letters listed with their reason and origin, replayed after a fix.

The command runs as operators run it (the console script, settings from the environment); the
events path is the drain the events DAG runs, against the real API over PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from datetime import timedelta

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from base_sync import airflow_tasks, dead_letters, dlq_cli
from base_sync.dead_letters import DeadLetter, DeadLetterError
from base_sync.debezium import Topics
from base_sync.settings import EventSettings
from testbed.servers import REPO, free_port, venv_bin
from tests.sync.conftest import read_topic
from tests.sync.test_events_apply import T0, Events, employee

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def changes(kafka_bootstrap, event_settings, base_b) -> Events:
    return Events(kafka_bootstrap, event_settings, base_b)


def dlq(changes: Events, *args: str) -> subprocess.CompletedProcess:
    """The command, configured like the events DAG: its Kafka connection and EVENTS_* settings."""
    connection = {
        "conn_type": "kafka",
        "extra": {
            "bootstrap.servers": changes.bootstrap,
            "group.id": "base_a_events.wake",  # the wake-up's group: the command must not use it
            "enable.auto.commit": "false",
        },
    }
    env = {
        **os.environ,
        "AIRFLOW_CONN_BASE_A_KAFKA": json.dumps(connection),
        "EVENTS_DLQ_TOPIC": changes.settings.dlq_topic,
    }
    return subprocess.run(
        [venv_bin("base-sync-dlq"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def listed(changes: Events, *filters: str) -> list[dict]:
    result = dlq(changes, "list", "--format", "jsonl", *filters)
    assert result.returncode == 0, result.stderr
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def bad_letters(changes: Events, headers: list | None = None, written_again: bool = False) -> str:
    """Two employees' events the drain cannot read (keys 7 and 8, partition 0), dead-lettered; with
    `written_again`, twice, as a run killed between its letters and its commit leaves them. Their topic."""
    topic = Topics.from_settings(changes.settings).topic("employees")
    for key in (7, 8):
        changes.producer.produce(topic, value=b"[]", key=str(key).encode(), partition=0, headers=headers)
    changes.producer.flush(10)
    assert changes.drain().counts["dead_lettered"] == 2
    if written_again:  # where such a run leaves the group: before the batch
        group = Consumer({"bootstrap.servers": changes.bootstrap, "group.id": changes.settings.group_id})
        group.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        group.close()
        assert changes.drain().counts["dead_lettered"] == 2
    return topic


def test_dead_letters_are_listed_with_reason_and_origin_then_replayed_and_applied_after_the_fix(changes):
    topic = Topics.from_settings(changes.settings).topic("employees")
    changes.send("c", None, employee(1, T0), partition=0)
    assert changes.drain().counts["inserted"] == 1
    # Key 3 claims key 1's email (unique among live rows): the API rejects it. Then a malformed event.
    changes.send("c", None, employee(3, T0, email="e1@example.com"), partition=1)
    changes.producer.produce(topic, value=b"{not json", key=b"9", partition=2, headers=[("trace", b"abc")])
    changes.producer.flush(10)
    assert changes.drain().counts["dead_lettered"] == 2

    rejected, malformed = sorted(listed(changes), key=lambda letter: letter["kind"], reverse=True)
    assert rejected["kind"] == "Rejected" and "email" in rejected["reason"] and rejected["stage"] == "TASK_PUT"
    assert rejected["source"] == {"topic": topic, "partition": 1, "offset": 0}
    assert rejected["key"] == "3" and '"e1@example.com"' in rejected["value"]
    assert malformed["kind"] == "BadEvent" and "not JSON" in malformed["reason"]
    assert malformed["source"] == {"topic": topic, "partition": 2, "offset": 0}
    assert malformed["headers"] == [["trace", "abc"]], "the original message's own headers are kept"

    table = dlq(changes, "list", "--kind", "Rejected")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 2 and lines[0].split()[:4] == ["DLQ", "FROM", "KIND", "KEY"]
    position = f"{rejected['dlq']['partition']}:{rejected['dlq']['offset']}"
    assert lines[1].split()[:4] == [position, f"{topic}[1]@0", "Rejected", "3"] and "email" in lines[1]

    # The fix: key 1 moves to another address, which frees e1@example.com. Then replay key 3's event.
    changes.send("u", employee(1, T0), employee(1, T0 + timedelta(seconds=5), email="new1@example.com"), partition=0)
    assert changes.drain().counts["updated"] == 1
    replayed = dlq(changes, "replay", position)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 dead letters" in replayed.stderr

    report = changes.drain()
    assert report.counts["inserted"] == 1 and report.counts["dead_lettered"] == 0, report.to_json()
    rows = changes.rows()
    assert sorted(rows) == [1, 3] and rows[3][3] == "e1@example.com"
    # Back on its topic and partition with its key and value; the letters all stay on the dead-letter topic.
    (back,) = [m for m in read_topic(changes.bootstrap, topic) if m.partition() == 1 and m.offset() == 1]
    assert back.key() == b"3" and back.value().decode() == rejected["value"]
    # The letters all stay on the dead-letter topic; the replayed one is marked so.
    assert [letter["kind"] for letter in listed(changes)] == ["BadEvent"]
    kept = {letter["kind"]: letter for letter in listed(changes, "--include-replayed")}
    assert sorted(kept) == ["BadEvent", "Rejected"], "listing and replaying committed nothing, lost nothing"
    assert kept["Rejected"]["replayed"] and not kept["BadEvent"]["replayed"]
    table = dlq(changes, "list", "--include-replayed", "--kind", "Rejected").stdout.splitlines()
    assert table[1].split()[4] == "replayed"


def test_replay_by_filter_keeps_headers_and_refuses_to_guess(changes):
    topic = bad_letters(changes, headers=[("k", b"v")])

    nothing_named = dlq(changes, "replay")
    assert nothing_named.returncode == 2 and "--all" in nothing_named.stderr
    assert dlq(changes, "replay", "0:999").returncode == 2
    dry = dlq(changes, "replay", "--all", "--key", "8", "--dry-run")
    assert dry.returncode == 0 and "would replay 1" in dry.stderr
    assert len(read_topic(changes.bootstrap, topic)) == 2, "a dry run sends nothing"

    assert dlq(changes, "replay", "--all", "--reason", "JSON object", "--key", "8").returncode == 0
    again = [m for m in read_topic(changes.bootstrap, topic) if m.offset() == 2]
    assert [(m.key(), m.value()) for m in again] == [(b"8", b"[]")]
    headers = dict(again[0].headers())
    assert headers["k"] == b"v" and headers["base_sync.replayed.from"].startswith(changes.settings.dlq_topic.encode())
    # It fails the same way again: dead-lettered a second time, with one set of error headers.
    assert changes.drain().counts["dead_lettered"] == 1
    newest = max(listed(changes), key=lambda letter: letter["timestamp_ms"] or 0)
    assert newest["key"] == "8" and newest["source"]["offset"] == 2 and newest["headers"] == [["k", "v"]]
    first_eight = next(letter for letter in listed(changes, "--include-replayed") if letter["replayed"])
    assert newest["retry_of"] == f"{first_eight['dlq']['partition']}:{first_eight['dlq']['offset']}"
    # Replaying everything now sends key 7 and the retry of key 8, not the letter already replayed:
    # re-failing letters do not multiply.
    assert sorted(letter["key"] for letter in listed(changes)) == ["7", "8"]
    everything = dlq(changes, "replay", "--all")
    assert everything.returncode == 0 and "replayed 2 dead letters" in everything.stderr, everything.stderr
    assert [m.key() for m in read_topic(changes.bootstrap, topic) if m.offset() >= 3] == [b"7", b"8"]
    assert dlq(changes, "replay", "--all").returncode == 1, "nothing left that was not replayed"


def test_a_letter_whose_topic_is_gone_is_not_replayed(changes):
    letter = DeadLetter(
        partition=0,
        offset=0,
        topic="no-such-topic",
        source_partition=0,
        source_offset=5,
        kind="Rejected",
        stage="TASK_PUT",
        reason="r",
        key=b"1",
        value=b"{}",
        headers=[],
        timestamp_ms=None,
    )
    producer = dead_letters.replay_producer({"bootstrap.servers": changes.bootstrap})
    with pytest.raises(DeadLetterError, match=r"no longer exists: no-such-topic\[0\]@5"):
        dead_letters.replay(producer, changes.settings.dlq_topic, [letter])
    assert "no-such-topic" not in producer.list_topics(timeout=10).topics


def test_a_list_whose_reader_has_gone_ends_quietly(changes):
    """`base-sync-dlq list | head` printed a BrokenPipeError traceback (outside probe)."""
    changes.raw(b"{not json", key=1, partition=0)
    assert changes.drain().counts["dead_lettered"] == 1
    env = {**os.environ, "EVENTS_DLQ_TOPIC": changes.settings.dlq_topic}
    command = [venv_bin("base-sync-dlq"), "--bootstrap", changes.bootstrap, "list"]
    listing = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listing.stdout.close()  # the reader is gone before the first line (it connects to the broker first)
    _, errors = listing.communicate(timeout=60)
    assert listing.returncode == 0 and b"Traceback" not in errors and b"BrokenPipe" not in errors, errors


def test_a_broker_that_is_down_is_one_line_naming_why(tmp_path):
    """librdkafka logged each failed connection attempt: some 200 lines before the command's own."""
    env = {**os.environ, "EVENTS_DLQ_TOPIC": "dlq"}
    down = subprocess.run(
        [venv_bin("base-sync-dlq"), "--bootstrap", f"127.0.0.1:{free_port()}", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert down.returncode == 2
    (line,) = down.stderr.strip().splitlines()
    assert line.startswith("base-sync-dlq: ") and "Connection refused" in line, down.stderr


def test_a_producers_header_named_like_a_replay_marker_hides_no_letter(changes):
    """A marker is a record only base-sync-dlq writes: a letter copying such a header from its event
    was read as a marker (hidden, and hiding the letter it named)."""
    topic = Topics.from_settings(changes.settings).topic("employees")
    for key in (1, 2):
        headers = [("base_sync.replay.of", b"0:0")] if key == 2 else []
        changes.producer.produce(topic, value=b"{bad", key=str(key).encode(), partition=0, headers=headers)
    changes.producer.flush(10)
    assert changes.drain().counts["dead_lettered"] == 2
    letters = listed(changes)
    assert sorted(letter["key"] for letter in letters) == ["1", "2"] and not any(
        letter["replayed"] for letter in letters
    )
    assert all(name != "base_sync.replay.of" for letter in letters for name, _ in letter["headers"])


def test_positions_are_read_as_list_writes_them_and_a_key_as_its_bytes():
    """`replay 0:01` found no letter 0:1; a key that is no UTF-8 (`--key $'\\xff'`) crashed the command."""
    args = argparse.Namespace(positions=["0:01", "2:3"], topic=None, kind=None, reason=None, key="\udcff")
    selection = dlq_cli._selection(args)
    assert selection.positions == {"0:1", "2:3"} and selection.key == b"\xff"


def test_letters_written_again_after_a_crash_are_listed_and_replayed_once(changes):
    """A run killed after writing its letters, before its commit, wrote them again in the next run:
    list showed each source twice and replay --all sent both (outside probe: 4488 letters for 3000)."""
    topic = bad_letters(changes, written_again=True)
    assert len(read_topic(changes.bootstrap, changes.settings.dlq_topic)) == 4

    letters = listed(changes)
    assert sorted(letter["key"] for letter in letters) == ["7", "8"]
    assert all(len(letter["duplicates"]) == 1 for letter in letters)
    table = dlq(changes, "list")
    assert len(table.stdout.splitlines()) == 3 and "2 letters written again" in table.stderr, table.stderr
    everything = dlq(changes, "replay", "--all")
    assert everything.returncode == 0 and "replayed 2 dead letters" in everything.stderr, everything.stderr
    assert [m.key() for m in read_topic(changes.bootstrap, topic) if m.offset() >= 2] == [b"7", b"8"]
    assert listed(changes) == [], "a letter replayed is replayed with its copies"
    duplicate = letters[0]["duplicates"][0]
    again = dlq(changes, "replay", duplicate, "--dry-run")
    assert again.returncode == 0 and "would replay 1" in again.stderr, "a copy's position names its letter"


def test_a_dry_run_makes_every_check_the_replay_makes(changes):
    """A dry run said "would replay" (exit 0) of letters the replay then refused: one stored without
    its key, a held delete without --approve-mass-delete (outside probe)."""
    topic = Topics.from_settings(changes.settings).topic("employees")
    producer = Producer({"bootstrap.servers": changes.bootstrap, "message.max.bytes": 5_000_000})
    producer.produce(topic, value=b"not json", key=b"9" * 2_000_000, partition=0)
    producer.flush(10)
    assert changes.drain().counts["dead_lettered"] == 1
    dry = dlq(changes, "replay", "--all", "--dry-run")
    assert dry.returncode == 2 and "cannot rebuild" in dry.stderr and "would replay" not in dry.stderr, dry.stderr


def test_letters_of_different_messages_at_one_position_are_not_folded():
    """A topic deleted and made again puts another message at an offset an old letter names: folded
    into the old (replayed) letter, the new one was hidden from list and replay (outside probe)."""

    def letter(offset: int, key: bytes) -> DeadLetter:
        return DeadLetter(0, offset, "t", 0, 0, "BadEvent", "TASK_PUT", "r", key, b"{}", [], None)

    old, copy, new = letter(0, b"300"), letter(1, b"300"), letter(2, b"301")
    folded = dead_letters._folded([old, copy, new], replayed={"0:0"})
    assert [(f.key, f.duplicates, f.replayed) for f in folded] == [(b"300", ("0:1",), True), (b"301", (), False)]


def test_a_key_filter_finds_a_rows_letters_whatever_the_form_of_their_message_key(changes):
    """Debezium keys a row's events `{"schema": ..., "payload": {"id": 2111}}` (or `{"id": 2111}`
    without schemas): `--key 2111` matched only the exact key bytes, and the KEY column showed the
    whole wrapped key, some 180 characters (outside probe)."""
    topic = Topics.from_settings(changes.settings).topic("employees")
    schema = {"type": "struct", "fields": [{"type": "int64", "optional": False, "field": "id"}], "optional": False}
    keys = {
        b"2111": orjson.dumps({"schema": {**schema, "name": "db.employees.Key"}, "payload": {"id": 2111}}),
        b"2112": b'{"id": 2112}',
        b"2113": b"2113",
        b"pair": b'{"id": 2111, "tenant": 4}',  # a key of two columns names no one row
    }
    for key in keys.values():
        changes.producer.produce(topic, value=b"[]", key=key, partition=0)
    changes.producer.flush(10)
    assert changes.drain().counts["dead_lettered"] == 4

    for given in ("2111", '{"id": 2111}', keys[b"2111"].decode()):
        (found,) = listed(changes, "--key", given)
        assert found["key"] == keys[b"2111"].decode() and found["row_key"] == 2111, given
    assert [letter["key"] for letter in listed(changes, "--key", "2112")] == ['{"id": 2112}']
    assert [letter["key"] for letter in listed(changes, "--key", '{"id": 2113}')] == ["2113"]
    assert [letter["row_key"] for letter in listed(changes, "--key", keys[b"pair"].decode())] == [None]

    table = dlq(changes, "list").stdout.splitlines()
    assert sorted(line.split()[3] for line in table[1:]) == ["2111", "2112", "2113", '{"id":'], table
    dry = dlq(changes, "replay", "--all", "--key", "2111", "--dry-run")
    assert dry.returncode == 0 and "would replay 1" in dry.stderr, dry.stderr


def test_a_replay_by_key_refuses_letters_of_several_topics_without_topic(changes):
    """`--key 7` names row 7 of every table: `replay --all --kind MassDeleteHeld --approve-mass-delete
    --key 7` meant for employee 7 approved article 7's held delete too (review). `list` shows both;
    `replay` asks for --topic."""
    topics = Topics.from_settings(changes.settings)
    employees, articles = topics.topic("employees"), topics.topic("articles")
    for topic in (employees, articles):
        changes.producer.produce(topic, value=b"[]", key=b"7", partition=0)
    changes.producer.flush(10)
    assert changes.drain().counts["dead_lettered"] == 2

    found = sorted(letter["source"]["topic"] for letter in listed(changes, "--key", "7"))
    assert found == sorted((employees, articles))
    refused = dlq(changes, "replay", "--all", "--key", "7", "--dry-run")
    assert refused.returncode == 2, refused.stderr
    assert (
        f"--key 7 matches letters of 2 topics ({', '.join(sorted((employees, articles)))}): add --topic TOPIC"
        in refused.stderr
    ), refused.stderr
    one = dlq(changes, "replay", "--all", "--key", "7", "--topic", employees, "--dry-run")
    assert one.returncode == 0 and "would replay 1 dead letters" in one.stderr, one.stderr


def test_a_letter_whose_key_has_a_malformed_schema_is_listed_with_its_key(changes):
    """A key `{"schema": {"fields": 5}, ...}` made row_key raise TypeError: the whole listing failed (review)."""
    malformed = b'{"schema":{"fields":5},"payload":{"id":1}}'
    changes.producer.produce(Topics.from_settings(changes.settings).topic("employees"), value=b"[]", key=malformed)
    changes.producer.flush(10)
    assert changes.drain().counts["dead_lettered"] == 1
    (found,) = listed(changes)
    assert found["key"] == malformed.decode() and found["row_key"] is None
    assert dlq(changes, "list").returncode == 0  # the table shows the key as it is


def test_the_letters_waiting_are_counted_by_kind_and_a_replay_brings_them_to_zero(changes):
    """DeadLettersGrowing cleared 15 minutes after the letters came, while they still waited: the
    count of letters no replay marker names is what stays until they are replayed."""
    config = {"bootstrap.servers": changes.bootstrap}
    bad_letters(changes, written_again=True)  # still two letters waiting, not four

    waiting = dead_letters.waiting_by_kind(config, changes.settings.dlq_topic)
    assert waiting == {**dict.fromkeys(dead_letters.KINDS, 0), dead_letters.OTHER: 0, "BadEvent": 2}

    replayed = dlq(changes, "replay", "--all")
    assert replayed.returncode == 0, replayed.stderr
    assert set(dead_letters.waiting_by_kind(config, changes.settings.dlq_topic).values()) == {0}, "sent 0, not left out"


@pytest.mark.parametrize(
    ("counted_at", "due"),
    [
        (None, True),  # never counted
        ("1000", False),  # 100 s ago, of every 900
        ("101.5", True),  # 900 s ago
        ("5000", True),  # in the future: a clock set back
        ("not a time", True),
    ],
)
def test_a_count_is_due_every_so_many_seconds_and_never_waits_on_a_count_it_cannot_place(counted_at, due):
    assert dead_letters.count_due(counted_at, now=1100.0, every=900) is due


def test_a_count_that_fails_is_sent_as_failed_as_the_waiting_gauges_stay_as_last_counted(
    kafka_bootstrap, event_settings, monkeypatch
):
    """A failed count was only logged: statsd-exporter keeps the waiting gauges for ever, so the
    dashboard and DeadLettersWaiting showed an old count and nobody was told (review). The drain's
    count (as apply_changes calls it, the Variable from Airflow's environment backend) sends when it
    last counted, and when a count last failed: DeadLettersNotCounted compares the two."""
    monkeypatch.setenv(f"AIRFLOW_VAR_{airflow_tasks.DEAD_LETTERS_COUNTED_AT.upper()}", "0")  # long ago: due
    config = {"bootstrap.servers": kafka_bootstrap}
    before = time.time()

    counted = {name: value for _, name, value in airflow_tasks._waiting_letters(event_settings, config)}
    assert counted["base_sync.dead_letters_waiting.BadEvent"] == 0
    assert before <= counted["base_sync.dead_letters_last_count.counted"] <= time.time()
    assert "base_sync.dead_letters_last_count.failed" not in counted

    gone = EventSettings(dlq_topic=f"{event_settings.dlq_topic}.gone")  # a count that cannot read its topic
    ((kind, name, at),) = airflow_tasks._waiting_letters(gone, config)
    assert (kind, name) == ("gauge", "base_sync.dead_letters_last_count.failed")
    assert counted["base_sync.dead_letters_last_count.counted"] <= at <= time.time()


def test_letters_that_need_no_replay_are_discarded_with_a_note_and_stop_waiting(changes):
    """A letter whose row the batch run carried over, or a poison message, waited for ever: only a
    replay settled it, and DeadLettersWaiting would fire for as long as the topic keeps it."""
    config = {"bootstrap.servers": changes.bootstrap}
    topic = bad_letters(changes)
    seven = next(letter for letter in listed(changes) if letter["row_key"] == 7)
    position = f"{seven['dlq']['partition']}:{seven['dlq']['offset']}"

    assert dlq(changes, "discard", position).returncode == 2, "a note is required"
    assert dlq(changes, "discard", "--note", "x").returncode == 2, "nothing named"
    dry = dlq(changes, "discard", position, "--note", "carried over", "--dry-run")
    assert dry.returncode == 0 and "would discard 1" in dry.stderr, dry.stderr
    assert len(listed(changes)) == 2

    done = dlq(changes, "discard", position, "--note", "carried over by the batch run")
    assert done.returncode == 0 and "discarded 1 dead letters" in done.stderr, done.stderr
    assert [letter["row_key"] for letter in listed(changes)] == [8]
    (settled,) = [letter for letter in listed(changes, "--include-replayed") if letter["row_key"] == 7]
    assert settled["discarded"] and settled["replayed"]
    assert "discarded" in dlq(changes, "list", "--include-replayed").stdout
    assert dead_letters.waiting_by_kind(config, changes.settings.dlq_topic)["BadEvent"] == 1
    assert len(read_topic(changes.bootstrap, topic)) == 2, "nothing sent back"


def test_a_letter_discarded_then_replayed_is_listed_as_replayed_and_the_other_way_round(changes):
    """`list` showed a letter discarded once discarded, whatever was done after: a discard's marker
    stayed on the topic, and a replay by position after it still read as "discarded" (review). The
    last marker says what was done last."""
    bad_letters(changes)
    seven = next(letter for letter in listed(changes) if letter["row_key"] == 7)
    position = f"{seven['dlq']['partition']}:{seven['dlq']['offset']}"

    def state() -> tuple[str, bool, bool]:
        (line,) = [
            row
            for row in dlq(changes, "list", "--include-replayed").stdout.splitlines()
            if row.startswith(position + " ")
        ]
        (letter,) = [letter for letter in listed(changes, "--include-replayed") if letter["row_key"] == 7]
        return line.split()[4], letter["replayed"], letter["discarded"]

    assert dlq(changes, "discard", position, "--note", "carried over").returncode == 0
    assert state() == ("discarded", True, True)
    assert dlq(changes, "replay", position).returncode == 0
    assert state() == ("replayed", True, False)
    assert dlq(changes, "discard", position, "--note", "replayed by mistake").returncode == 0
    assert state() == ("discarded", True, True)


def test_the_refusal_to_replay_held_deletes_counts_them_in_good_grammar():
    """Found from outside: "1 of the letters are deletes the mass-delete breaker held"."""

    def held(offset: int) -> DeadLetter:
        return DeadLetter(0, offset, "t", 0, offset, dead_letters.MASS_DELETE_HELD, None, "r", b"7", None, [], None)

    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})  # refused before any send
    with pytest.raises(DeadLetterError) as one:
        dead_letters.replay(producer, "dlq", [held(0)])
    assert str(one.value).startswith("1 of the letters is a delete the mass-delete breaker held; replaying it ")
    with pytest.raises(DeadLetterError) as two:
        dead_letters.replay(producer, "dlq", [held(0), held(1)])
    assert str(two.value).startswith("2 of the letters are deletes the mass-delete breaker held; replaying them ")


def test_a_discard_refuses_held_deletes():
    """Discarded, their hold would stay: every later delete of the entity would ask, with no letter
    left to say why (review)."""
    held = DeadLetter(0, 0, "t", 0, 0, dead_letters.MASS_DELETE_HELD, None, "r", b"7", None, [], None)
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})  # refused before any send
    with pytest.raises(DeadLetterError, match="1 of the letters is a delete the mass-delete breaker held: approve"):
        dead_letters.discard(producer, "dlq", [held], "a mistake")


def test_a_discard_takes_held_deletes_whose_hold_is_settled_and_a_dry_run_checks_as_much():
    held = DeadLetter(0, 0, "t", 0, 0, dead_letters.MASS_DELETE_HELD, None, "r", b"7", None, [], None)
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})
    with pytest.raises(DeadLetterError, match="--holds-settled"):
        dead_letters.discard(producer, "dlq", [held], "approved in the batch DAG", dry_run=True)
    settled = dead_letters.discard(producer, "dlq", [held], "approved", holds_settled=True, dry_run=True)
    assert settled == [held]
