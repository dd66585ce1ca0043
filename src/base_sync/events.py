"""Apply change events: drain the entity topics in batches through the bulk endpoints, then commit.

A run assigns itself every partition of the topics at its consumer group's committed offsets (no
group join, so nothing waits on a rebalance), reads a batch, keeps the newest change per key,
applies upserts and deletes with one bulk request each per entity, dead-letters what is malformed or
rejected, and commits the batch's offsets only once the API answered and the dead letters are
stored. A crash anywhere before the commit re-reads the batch next time, and the API's version guard
makes the repeat a no-op: at-least-once delivery, exactly-once state.

Deletes pass the mass-delete breaker (`delete_guard.RunDeleteGuard`): per entity, a run sends at
most the batch path's limit (SYNC_MASS_DELETE_SHARE of Base B's synced rows, at least
SYNC_MASS_DELETE_MIN_ROWS); the deletes past it are dead-lettered as held (`MassDeleteHeld`, the
reason says how many and why), so the partition goes on and the offsets commit. Replaying them
with `base-sync-dlq replay --approve-mass-delete` is the approval: a replayed approved delete is
sent uncounted. A batch read again after a run that held deletes died before its commit holds
those deletes again, uncounted and not recorded anew: each hold records where its messages sit.

An upsert the API refuses because another row holds its unique value (`unique_taken`) waits for the
rest of the run (`UniqueWaits`): a key changed in Base A is a delete of the old key and a create of
the new one, often on different partitions, so the create can reach the API in an earlier batch
than the delete that frees its email. Each later batch that deletes or updates rows of the entity
sends the waiting upserts once more; what is still refused when the run ends is dead-lettered then.
Until a waiting upsert is settled its partition's offset is committed no further than it, so a run
that fails meanwhile reads it again.

A delete whose version is a stamp cut to milliseconds (`Change.coarse_version`) that Base B would
not apply is sent at Base B's version of the row when that is the same stamp at its microseconds
(`_at_base_b_version`); a stale delete is counted (`stale_deletes`) and logged, never silent.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import OffsetSpec

from base_sync import consumer_errors, dead_letters
from base_sync.api_client import BaseBApi
from base_sync.debezium import BadEvent, Change, Topics
from base_sync.delete_guard import Admission, DeleteBudget, HeldDeletesStore, RunDeleteGuard
from base_sync.errors import ConfigurationError, TransientError
from base_sync.load import OUTCOMES, LoadError, quarantine
from base_sync.records import bodies, utc
from base_sync.settings import EventSettings, SyncSettings
from base_sync.shared_keys import NEW_KEY_HEADER, OLD_KEY_HEADER, SeenKeys, moved_key, whole_key
from base_sync.shared_keys import dead_reason as shared_reason
from base_sync.topics import admin_for, ensure_dead_letter_topic, producer_config
from baseab_contract.bulk_format import REPLACES_VERSION, UNIQUE_TAKEN

log = logging.getLogger(__name__)

# The broker answers a group's requests only after half the session timeout; keep it short (FIELD-NOTES).
CONSUMER_DEFAULTS = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
POLL_SECONDS = 0.1
# The largest message a take expects until it sees a larger one: the broker's default
# message.max.bytes and RELAY_MESSAGE_MAX_BYTES (a small first message says nothing of the next).
LARGE_MESSAGE = 1 << 20
FIRST_FETCH_SECONDS = 3.0


# The counts every run reports, zeros included (README: the events DAG's counts per run).
REPORTED_COUNTS = (
    "consumed",
    "inserted",
    "updated",
    "unchanged",
    "stale",
    "deleted",
    "held_deletes",
    "approved_deletes",
    "superseded",
    "tombstones",
    "dead_lettered",
    "lost_to_retention",
)
HELD_KEYS_SHOWN = 5  # keys a run's summary of held deletes names (a mass delete holds millions)


@dataclass
class HeldDeletes:
    """The deletes the breaker held in a run, of one entity: for one summary line, not a line each."""

    count: int = 0
    keys: list[int] = field(default_factory=list)  # the first few
    reason: str = ""  # the breaker's latest: its count is the run's
    again: int = 0  # of `count`, held by an earlier run that stopped before its commit, read again

    def add(self, reason: str, keys: list[int], again: bool = False) -> None:
        self.count += len(keys)
        self.again += len(keys) if again else 0
        self.keys += keys[: HELD_KEYS_SHOWN - len(self.keys)]
        if not (again and self.reason):  # the breaker's own reason over one for deletes held again
            self.reason = reason


@dataclass
class DrainReport:
    counts: Counter = field(default_factory=Counter)
    by_entity: dict[str, Counter] = field(default_factory=dict)  # the API's outcomes, per entity
    batches: int = 0
    seconds: float = 0.0
    lag: int = 0  # events left on the topics when the run ended
    newest_source_ms: int | None = None  # commit time in Base A of the newest applied change
    entities: tuple[str, ...] = ()  # the entities whose topic the run read (one that is missing: not)
    held: dict[str, HeldDeletes] = field(default_factory=dict)  # by entity (filled by the sender thread)
    dead_by_kind: Counter = field(default_factory=Counter)  # the dead letters stored, by kind

    def to_json(self) -> dict:
        return {
            "counts": {name: 0 for name in REPORTED_COUNTS} | dict(self.counts),
            "by_entity": {entity: dict(counts) for entity, counts in self.by_entity.items()},
            "dead_letters_by_kind": dict(self.dead_by_kind),
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "lag": self.lag,
            "event_lag_seconds": self.event_lag_seconds(),
        }

    def event_lag_seconds(self) -> float | None:
        """From Base A's commit of the newest applied change to now."""
        return round(time.time() - self.newest_source_ms / 1000, 3) if self.newest_source_ms else None


def _log_kafka_error(error: KafkaError) -> None:
    """librdkafka's own errors (a broker gone, a request timed out) in the task log. It retries by
    itself; these lines say why a run waits, or why it failed when it gives up."""
    log.log(logging.ERROR if error.fatal() else logging.WARNING, "Kafka: %s", error.str())


def consumer_for(kafka_config: dict, settings: EventSettings) -> Consumer:
    isolation = str(kafka_config.get("isolation.level", "read_committed"))
    if isolation.lower() != "read_committed":  # librdkafka reads the value in any case
        # An aborted transaction's events would be applied to Base B: changes Base A never committed.
        raise ConfigurationError(
            f"the Kafka connection's extra sets isolation.level={isolation}: the events drain reads "
            "read_committed only, so that a transaction its producer aborted never reaches Base B; remove the setting"
        )
    return Consumer(
        {
            **CONSUMER_DEFAULTS,
            **kafka_config,
            "group.id": settings.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",  # librdkafka's default too; said here, where it matters
            "error_cb": _log_kafka_error,
        }
    )


def producer_for(kafka_config: dict) -> Producer:
    return Producer(
        {
            **producer_config(kafka_config),
            "enable.idempotence": True,
            "linger.ms": 5,
            # The dead-letter topic is made with its retention (ensure_dead_letter_topic), never by the
            # broker's auto-create with the broker's (7 days on Kafka); librdkafka's producer default is true.
            "allow.auto.create.topics": False,
            "error_cb": _log_kafka_error,
        }
    )


def drain(
    consumer: Consumer,
    producer: Producer,
    api: BaseBApi,
    settings: EventSettings,
    topics: Topics | None = None,
    delete_budget: DeleteBudget | None = None,
    held_deletes: HeldDeletesStore | None = None,
    *,
    kafka_config: dict,
) -> DrainReport:
    """Apply what waits on the topics, batch by batch, until nothing arrived for `idle_seconds`.

    `topics`: the change topics and the mapping their rows go through (default: the settings' and
    BASE_A_MAPPING_FILE's). While one batch is with the API, the next is fetched and decoded; a
    batch's offsets are committed only after its answer, in order, and one batch at a time is in flight.
    `delete_budget`: the mass-delete breaker's share and floor (default: SYNC_MASS_DELETE_*, as the
    batch path), applied per entity to the whole run. `held_deletes`: where the run says which
    entities' deletes it holds (before their dead letters exist) and which held ones an approved
    replay applied; the batch path reads it and asks before deleting any row of such an entity.
    `kafka_config`: the Kafka connection's settings the consumer and producer were made with: the
    dead-letter topic is made sure of first (`ensure_dead_letter_topic`), and a partition left
    unread is asked of the broker for its last stable offset (`remaining`).
    """
    started = time.monotonic()
    ensure_dead_letter_topic(kafka_config, settings)
    topics = topics or Topics.from_settings(settings)
    report = DrainReport()
    guard = RunDeleteGuard(delete_budget or DeleteBudget.of(SyncSettings()), api.synced_rows, held_deletes)
    partitions = assign_committed(consumer, topics.names, report, settings.group_id)
    # A missing topic's entity gets no last success: EventSyncStale then says so.
    report.entities = tuple(dict.fromkeys(topics.entity_of(p.topic) for p in partitions))
    waits, positions, seen = UniqueWaits(), {}, SeenKeys()
    in_flight = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="apply") as sender:
        while time.monotonic() - started < settings.max_run_seconds:
            # The first fetch also resolves the starting offsets of every partition: give it longer.
            fetched = in_flight or report.batches
            idle = settings.idle_seconds if fetched else max(settings.idle_seconds, FIRST_FETCH_SECONDS)
            batch = take(consumer, settings.batch_size, idle, settings.batch_bytes)
            if not batch:
                break
            plan = prepare(batch, topics, report, seen)
            if in_flight:
                _settle(*in_flight, consumer, producer, settings, report, waits, positions)
            in_flight = (sender.submit(send, plan, api, guard, waits, report.held), plan)
        if in_flight:
            _settle(*in_flight, consumer, producer, settings, report, waits, positions)
    _release_waits(waits, consumer, producer, api, settings, report, positions)
    report.lag = remaining(consumer, partitions, kafka_config)
    report.seconds = time.monotonic() - started
    _warn_held(report)
    if report.counts["snapshot_reads_skipped"]:
        log.warning(
            "%d snapshot reads (op r) of tables with `cursor: none` skipped: versioned by the commit time, a "
            "snapshot read has none (Debezium stamps it when it read the row, after changes that committed "
            "meanwhile). The batch sync carries these tables' rows",
            report.counts["snapshot_reads_skipped"],
        )
    return report


def _warn_held(report: DrainReport) -> None:
    """One line per entity whose deletes the breaker held in this run, for the task log's reader:
    how many, the limit, a few keys (the dead letters hold them all, each with the reason)."""
    for entity, held in report.held.items():
        log.warning(
            "MASS DELETE HELD: %s: %d deletes past the run's limit are in the dead letters, not deleted (%s)%s; keys "
            "%s%s; check Base A, then approve with base-sync-dlq replay --all --kind %s --approve-mass-delete, "
            "or in the batch DAG, which asks before deleting any row of %s until then",
            entity,
            held.count,
            held.reason,
            f"; {held.again} of them held again, read again after a run that held them stopped before its commit"
            if held.again
            else "",
            ", ".join(map(str, held.keys)),
            ", ..." if held.count > len(held.keys) else "",
            dead_letters.MASS_DELETE_HELD,
            entity,
        )


def _settle(
    sent: Future,
    plan: Plan,
    consumer,
    producer,
    settings: EventSettings,
    report: DrainReport,
    waits: UniqueWaits,
    positions: dict[tuple[str, int], int],
) -> None:
    """Once the API answered a batch: its dead letters stored, then its offsets committed (no
    further than an upsert still waiting for its unique value, `positions` holds the rest)."""
    rejected, by_entity = sent.result()
    for entity, counts in by_entity.items():
        report.counts.update(counts)
        report.by_entity.setdefault(entity, Counter()).update(counts)
    dead = plan.dead + rejected
    if dead:
        dead_letter(producer, settings.dlq_topic, dead, report)
    positions.update({(tp.topic, tp.partition): tp.offset for tp in next_offsets(plan.batch)})
    commit(consumer, _commit_points(positions, waits.floors()), settings.group_id)
    report.batches += 1
    # Read, not applied: the batch's dead letters, tombstones and superseded events are in it too.
    log.info("batch %d: %d events read, run totals %s", report.batches, len(plan.batch), dict(report.counts))


def _release_waits(
    waits: UniqueWaits, consumer, producer, api: BaseBApi, settings: EventSettings, report: DrainReport, positions: dict
) -> None:
    """At the end of a run: an entity's upserts still refused for a unique value are sent once more
    together (two rows swapping emails in two batches each waited for the other: in one request
    the API passes the values round), then those refused again are dead letters (no delete or
    update in this run freed it), then every partition's offset is committed."""
    waited, rejected = waits.entities(), []
    if not waited:
        return  # the last batch's commit held no floor
    for entity in waited:
        waiting = waits.waiting(entity)
        if len(waiting) > 1:
            counts = Counter()
            rejected += _resend_waiting(entity, waiting, api, counts, waits)
            report.counts.update(counts)
            report.by_entity.setdefault(entity, Counter()).update(counts)
    left = rejected + waits.release()
    if left:
        dead_letter(producer, settings.dlq_topic, left, report)
    # Past the waiting messages, sent or dead letters now: the batches' commits stopped at them.
    commit(consumer, _commit_points(positions, {}), settings.group_id)


class GroupJoined(TransientError):
    """Another consumer joined the drain's consumer group: the broker refuses the drain's commits
    until it leaves (the drain commits without joining)."""


def commit(consumer: Consumer, offsets: list[TopicPartition], group_id: str) -> None:
    """Commit the offsets; a commit refused because another consumer joined the group is a GroupJoined."""
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as error:
        cause = error.args[0] if error.args and isinstance(error.args[0], KafkaError) else None
        if cause is None or cause.code() != KafkaError.UNKNOWN_MEMBER_ID:
            raise
        # The drain assigns its partitions and commits as no member (generation -1); a broker with a
        # live group of that id refuses such commits (Kafka's "simple consumer" rule).
        raise GroupJoined(
            f"the broker refused the offsets' commit ({cause.str()}): another consumer joined the group "
            f"{group_id!r}, which the events drain commits to without joining. Stop that consumer (an operator's "
            "console consumer?); inspect the group's offsets with a describe or list-offsets tool instead, never "
            "by consuming with its group id. The run is retried; the batch is read again (the API's version "
            "guard makes the repeat a no-op)"
        ) from error


def _commit_points(positions: dict[tuple[str, int], int], floors: dict[tuple[str, int], int]) -> list[TopicPartition]:
    return [TopicPartition(t, p, min(offset, floors.get((t, p), offset))) for (t, p), offset in positions.items()]


def assign_committed(
    consumer: Consumer, topics: list[str], report: DrainReport | None = None, group_id: str = "?"
) -> list[TopicPartition]:
    """Assign every partition of the topics that exist, from the group's committed offsets. Events
    the topic's retention deleted before the group read them are counted (`lost_to_retention`)
    and logged: the consumer would skip them without a word (auto.offset.reset)."""
    metadata = consumer.list_topics(timeout=10)
    partitions = []
    for topic in topics:
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            log.warning("topic %s does not exist yet: nothing to read from it", topic)
            continue
        partitions += [TopicPartition(topic, p) for p in sorted(described.partitions)]
    if not partitions:
        return []
    committed = consumer.committed(partitions, timeout=10)
    if report is not None:
        report.counts["lost_to_retention"] += _retention_gaps(consumer, committed, group_id)
    consumer.assign(
        [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING) for tp in committed]
    )
    return partitions


def _retention_gaps(consumer: Consumer, committed: list[TopicPartition], group_id: str = "?") -> int:
    """How many events retention deleted between the group's committed offsets and the partitions'
    first offsets, each partition's gap logged once: the group's offset is moved to the first one
    (in `committed` too). Their changes never reach Base B from here."""
    lost, passed = 0, []
    for tp in committed:
        if tp.offset < 0:
            continue  # never committed: the group starts at the first offset there is
        first, _ = consumer.get_watermark_offsets(tp, timeout=10)
        if tp.offset < first:
            lost += first - tp.offset
            passed.append(TopicPartition(tp.topic, tp.partition, first))
            log.error(
                "%s [%d]: events at offsets %d..%d were deleted by the topic's retention before this group read "
                'them: their changes were not applied. Run base_a_to_base_b with {"compare_keys": true} (deletes '
                'and late rows) or {"full_refresh": true} to bring Base B up to date, and keep the retention '
                "longer than the longest pause of base_a_events",
                tp.topic,
                tp.partition,
                tp.offset,
                first - 1,
            )
    if passed:
        # Committed past the gap at once: a quiet partition would otherwise show it again every run.
        commit(consumer, passed, group_id)
        moved = {(p.topic, p.partition): p.offset for p in passed}
        for tp in committed:
            tp.offset = moved.get((tp.topic, tp.partition), tp.offset)
    return lost


def take(consumer: Consumer, limit: int, idle_seconds: float, max_bytes: int) -> list[Message]:
    """Up to `limit` messages and at most `max_bytes` of them (past it by one message at most, while
    none is larger than LARGE_MESSAGE): returns as soon as the topics are caught up, or [] after
    `idle_seconds`. 5,000 events of 1 MB rows were one batch of 5 GB: each take asks for as many
    messages as the room left holds of the largest that may come."""
    batch: list[Message] = []
    size, largest = 0, LARGE_MESSAGE
    waited_since = time.monotonic()
    while len(batch) < limit and size < max_bytes:
        room = max(1, (max_bytes - size) // largest)
        fetched = consumer.consume(min(limit - len(batch), room), timeout=POLL_SECONDS)
        got = [message for message in fetched if consumer_errors.is_message(message, log)]
        for message in got:
            held = len(message.value() or b"") + len(message.key() or b"")
            size, largest = size + held, max(largest, held)
        batch += got
        if got:
            continue
        if batch or time.monotonic() - waited_since >= idle_seconds:
            break
    return batch


@dataclass
class Plan:
    """A decoded batch: the newest change per key, by entity, and what is already dead."""

    batch: list[Message]
    changes: dict[str, list[tuple[Change, Message]]]
    dead: list[tuple[Message, str, str]]


def _follows(change: Change, earlier: Change) -> bool:
    """Whether a key's later message wins over its earlier one: as new or newer, or the update of
    exactly the earlier one's row state (its before image's version: Base A's stamp went back).
    An older one is superseded (a change without a usable version, quarantined, is not ordered:
    the later one wins)."""
    if earlier.version is None or change.version is None or change.version >= earlier.version:
        return True
    return change.before_version is not None and change.before_version == earlier.version


def _in_place_of(change: Change, origin: datetime | None) -> Change:
    """A key's last change in a batch, sent in place of the earlier ones: Base B holds the state the
    first of them replaced (`origin`, its before image's version), so a change older than that
    replaces it (an upsert's `replaces_version`), and a delete, the key's last commit, is at least
    as new (at its own version it would lose to the row it deletes)."""
    if origin is None or change.version is None or change.version >= origin:
        return change
    if change.is_delete:
        return replace(change, version=origin)
    if change.record is not None:
        return replace(change, record={**change.record, REPLACES_VERSION: origin})
    return change


def prepare(batch: list[Message], topics: Topics, report: DrainReport, seen: SeenKeys | None = None) -> Plan:
    """The batch decoded, each key's newest change kept (`seen`: the run's whole keys, by which two
    rows sharing a mapped key are dead-lettered, neither applied: `shared_keys`)."""
    counts = report.counts
    counts["consumed"] += len(batch)
    newest: dict[tuple[str, int], tuple[Change, Message]] = {}
    origins: dict[tuple[str, int], datetime | None] = {}  # the first change's before image version, per key
    dead: list[tuple[Message, str, str]] = []
    seen = seen if seen is not None else SeenKeys()
    for message in batch:
        try:
            change = topics.decode(message.topic(), message.value(), message.key())
        except BadEvent as exc:
            dead.append((message, "BadEvent", str(exc)))
            continue
        if change is None:
            counts["tombstones"] += 1
            continue
        if change.action == "skip":
            counts["snapshot_reads_skipped"] += 1
            continue
        key = (change.entity, change.id)
        column = topics.view(change.entity).spec.key
        moved_to = moved_key(message.headers(), NEW_KEY_HEADER, column, change.id)
        wholes = seen.see(
            change.entity,
            change.id,
            whole_key(message.key(), column),
            change.is_delete,
            created=change.op == "c",
            moved_from=moved_key(message.headers(), OLD_KEY_HEADER, column, change.id),
            moved_to=moved_to,
        )
        if wholes is not None:
            why = shared_reason(change.entity, topics.mapping.table_of(change.entity), column, change.id, wholes)
            earlier = [newest.pop(key)[1]] if key in newest else []  # this batch's change of the other row
            dead += [(m, "Quarantined", why) for m in (*earlier, message)]
            counts["shared_key"] += 1 + len(earlier)
            continue
        if change.is_delete and moved_to is not None:
            # A primary key change that keeps the mapped key: the row lives on under it (its create
            # carries the new state). Its old stamp would win a tie against that create, or delete it.
            counts["moved_in_place"] += 1
            continue
        held = newest.get(key)
        if held is None:
            origins[key] = change.before_version
        if held is None or _follows(change, held[0]):
            newest[key] = (change, message)
        counts["superseded"] += held is not None
        if change.source_ms and (report.newest_source_ms or 0) < change.source_ms:
            report.newest_source_ms = change.source_ms
    changes: dict[str, list] = {entity: [] for entity in topics.entities}
    for key, (change, message) in newest.items():
        changes[key[0]].append((_in_place_of(change, origins[key]), message))
    return Plan(batch, changes, dead)


class UniqueWaits:
    """The run's upserts the API refused for a unique value another row held (`unique_taken`), by
    entity and key: a delete or update in a later batch may free the value. Touched by one thread
    at a time (a batch's `send`, then its `_settle`)."""

    def __init__(self):
        self._held: dict[str, dict[int, tuple[Change, Message, str]]] = {}

    def hold(self, entity: str, change: Change, message: Message, reason: str) -> None:
        self._held.setdefault(entity, {})[change.id] = (change, message, reason)

    def waiting(self, entity: str) -> list[tuple[Change, Message]]:
        return [(c, m) for c, m, _ in self._held.get(entity, {}).values()]

    def settle(self, entity: str, key: int) -> None:
        self._held.get(entity, {}).pop(key, None)

    def supersede(self, entity: str, changes: list[tuple[Change, Message]]) -> None:
        """A later change of a waiting key replaces it, as within a batch (`prepare`)."""
        held = self._held.get(entity)
        for change, _ in changes if held else ():
            old = held.get(change.id)
            if old and _follows(change, old[0]):
                del held[change.id]

    def floors(self) -> dict[tuple[str, int], int]:
        """The lowest waiting offset of each partition: the run commits no further."""
        low: dict[tuple[str, int], int] = {}
        for held in self._held.values():
            for _, message, _ in held.values():
                at = (message.topic(), message.partition())
                low[at] = min(low.get(at, message.offset()), message.offset())
        return low

    def entities(self) -> list[str]:
        return [entity for entity, held in self._held.items() if held]

    def release(self) -> list[tuple[Message, str, str]]:
        """Every waiting upsert as a dead letter, and none left waiting."""
        left = [
            (m, "Rejected", f"{reason} (no delete or update later in the run freed the value)")
            for held in self._held.values()
            for _, m, reason in held.values()
        ]
        self._held.clear()
        return left


def send(
    plan: Plan,
    api: BaseBApi,
    guard: RunDeleteGuard,
    waits: UniqueWaits | None = None,
    held_deletes: dict[str, HeldDeletes] | None = None,
) -> tuple[list[tuple[Message, str, str]], dict[str, Counter]]:
    """One bulk delete and one bulk upsert per entity; returns the changes the API rejected or the
    breaker held, and the counts. `waits`: the run's upserts refused for a unique value; this
    batch's join them, and a batch that deletes or updates rows sends the earlier ones again.
    `held_deletes`: the run's deletes held so far, by entity, for its summary."""
    rejected, by_entity = [], {}
    for entity, changes in plan.changes.items():
        counts = by_entity[entity] = Counter()
        earlier = []
        if waits is not None:
            waits.supersede(entity, changes)
            earlier = waits.waiting(entity)
        dirty = [(c, m) for c, m in changes if c.action == "quarantine"]
        upserts = [(c, m) for c, m in changes if c.action == "upsert"]
        deletes = [(c, m) for c, m in changes if c.is_delete]
        if dirty:  # the batch path's outcome (base_sync.dirty): a rejection with the reasons, and a dead letter
            quarantine(api, entity, [c.quarantined for c, _ in dirty])
            counts["quarantined"] += len(dirty)
            rejected += [(m, "Quarantined", _reasons(c.quarantined.reasons)) for c, m in dirty]
        # Deletes first (one change per key, so no key is both): a row deleted frees its unique values
        # for a row created in the same batch, as when a key changes (a delete and a create).
        deletes = _at_base_b_version(entity, deletes, api, counts)
        deletes, held = _guard_deletes(entity, deletes, guard, counts, api, held_deletes)
        rejected += held
        if deletes:
            answer = api.bulk_delete(entity, _delete_records(deletes))
            rejected += _account(entity, deletes, answer, counts)
            _warn_stale_deletes(entity, answer, counts)
            guard.approved(entity, counts.pop(SETTLING, 0))  # once applied: a failed request is read again
        rejected += _upsert(entity, upserts, api, counts, waits)
        if earlier and (counts["deleted"] or counts["updated"]):
            rejected += _resend_waiting(entity, earlier, api, counts, waits)
    return rejected, by_entity


def _upsert(
    entity: str, upserts: list[tuple[Change, Message]], api: BaseBApi, counts: Counter, waits: UniqueWaits | None
) -> list[tuple[Message, str, str]]:
    """Bulk upserts under the byte bound; the refusals for a unique value wait in `waits` when given."""
    rejected = []
    # A key's changes arrive in its commit order: a write after a delete of the same stamp (a row
    # restored from a backup, a flag set and reset) restores the row. Not a replayed dead letter:
    # it comes after its key's later events, and a delete of its stamp would lose to it.
    in_order = [(c, m) for c, m in upserts if not dead_letters.replayed(m)]
    replays = [(c, m) for c, m in upserts if dead_letters.replayed(m)]
    for batch, restore_ties in ((in_order, True), (replays, False)):
        for part, body in bodies(batch, api.max_body_bytes, lambda pair: pair[0].record) if batch else ():
            if len(body) > api.max_body_bytes:  # one change alone: the API would refuse it every time
                rejected.append((part[0][1], "TooLarge", _too_large(len(body), api.max_body_bytes)))
                counts["rejected"] += 1
                continue
            answer = api.bulk_upsert(entity, body, restore_ties=restore_ties)
            rejected += _account(entity, part, answer, counts, waits)
    return rejected


def _resend_waiting(
    entity: str, earlier: list[tuple[Change, Message]], api: BaseBApi, counts: Counter, waits: UniqueWaits
) -> list[tuple[Message, str, str]]:
    """Send once more the upserts of earlier batches refused for a unique value, now that this batch
    deleted or updated rows (a key change's delete frees its email). Settled unless refused for a
    unique value again; nothing newer of their keys was sent in the run (`supersede`)."""
    for change, _ in earlier:
        waits.settle(entity, change.id)
    counts["resent_unique"] += len(earlier)
    log.info("%s: sending again %d upserts refused for a unique value another row held", entity, len(earlier))
    return _upsert(entity, earlier, api, counts, waits)


def _at_base_b_version(
    entity: str, deletes: list[tuple[Change, Message]], api: BaseBApi, counts: Counter
) -> list[tuple[Change, Message]]:
    """The deletes, those whose version is a stamp cut to milliseconds (time.precision.mode=connect)
    at Base B's version of the row when that is the same stamp at its microseconds: the batch path
    wrote the same row state, and the cut version would lose to it (stale) and leave the row live.
    One dry run names the rows Base B holds newer, with their versions (`held_newer`); a version in
    another millisecond is a row changed since, and the delete stays stale. Never raised by a guess
    (+999 µs would win over a row put back under the delete's own stamp, which must stay: restore at ties)."""
    coarse = [(c, m) for c, m in deletes if c.coarse_version]
    if not coarse:
        return deletes
    _, newer = api.plan_delete(entity, _delete_records(coarse))
    held = {key: utc(version) for key, version in newer.items()}
    mended = {c.id: held[c.id] for c, _ in coarse if c.id in held and _same_millisecond(held[c.id], c.version)}
    if mended:
        counts["deletes_at_base_b_version"] += len(mended)
        log.info("%s: %d deletes cut to milliseconds sent at Base B's version of the row", entity, len(mended))
    return [(replace(c, version=mended[c.id]) if c.id in mended else c, m) for c, m in deletes]


def _same_millisecond(held: datetime, cut: datetime) -> bool:
    return held > cut and held.replace(microsecond=held.microsecond // 1000 * 1000) == cut


def _warn_stale_deletes(entity: str, answer: dict, counts: Counter) -> None:
    """A stale delete is not applied: Base B holds a newer version of the row (changed after the
    deleted image, or written by the batch path at a finer stamp). Said, never silent."""
    stale = answer.get("stale", 0)
    if stale:
        counts["stale_deletes"] += stale
        log.warning(
            "%s: %d deletes not applied (stale): Base B holds a newer version of those rows; the batch path's "
            "delete detection removes them if they are gone from Base A",
            entity,
            stale,
        )


def _delete_records(deletes: list[tuple[Change, Message]]) -> list[dict]:
    return [{"source_id": c.id, "source_updated_at": c.version.isoformat()} for c, _ in deletes]


def _too_large(size: int, limit: int) -> str:
    return (
        f"its record is {size} bytes as JSON: more than one bulk request may carry "
        f"({limit} bytes, EVENTS_MAX_BODY_BYTES)"
    )


SETTLING = "settling_held"  # a batch's approved replays of rows Base B holds live (not reported)


def _guard_deletes(
    entity: str,
    deletes: list[tuple[Change, Message]],
    guard: RunDeleteGuard,
    counts: Counter,
    api: BaseBApi,
    held_deletes: dict[str, HeldDeletes] | None = None,
) -> tuple[list[tuple[Change, Message]], list[tuple[Message, str, str]]]:
    """The deletes to send now (approved replays, those of rows Base B does not hold live, then those
    within the run's budget) and the held ones as dead letters. Only a delete Base B would apply
    counts: another tenant's rows outside the filter, busy or deleted, are nothing to hold."""
    approved = [(c, m) for c, m in deletes if dead_letters.approved_delete(m)]
    unapproved = [(c, m) for c, m in deletes if not dead_letters.approved_delete(m)]
    if approved:
        counts["approved_deletes"] += len(approved)
        # Only a replay that deletes a live row settles a hold: one of rows already gone (approved in
        # the batch DAG, or replayed before) must not take a later hold's deletes off its count.
        counts[SETTLING] += len(api.would_delete(entity, _delete_records(approved)))
    if not unapproved:
        return approved, []
    live = api.would_delete(entity, _delete_records(unapproved))
    free = [(c, m) for c, m in unapproved if c.id not in live]
    counted = [(c, m) for c, m in unapproved if c.id in live]
    approved += free
    if not counted:
        return approved, []
    # Read again after a run that held them stopped before committing: held again, uncounted.
    before = guard.held_before(entity, [_position(m) for _, m in counted])
    again = [pair for pair, was in zip(counted, before, strict=True) if was]
    counted = [pair for pair, was in zip(counted, before, strict=True) if not was]
    held = []
    if again:
        counts["held_deletes"] += len(again)
        counts["held_again"] += len(again)
        log.warning(
            "%s: %d deletes held again: an earlier run held them and stopped before committing its offsets; they are "
            "not counted against this run's limit, nor recorded as a new hold (their letters are written again: "
            "base-sync-dlq folds them)",
            entity,
            len(again),
        )
        reason = _held_again_reason(entity, again[0][1].topic())
        if held_deletes is not None:
            held_deletes.setdefault(entity, HeldDeletes()).add(reason, [c.id for c, _ in again], again=True)
        held = [(m, dead_letters.MASS_DELETE_HELD, _held_again_reason(entity, m.topic())) for _, m in again]
    if not counted:
        return approved, held
    admission = guard.admit(entity, len(counted), [_position(m) for _, m in counted])
    if not admission.held:
        return approved + counted, held
    counts["held_deletes"] += admission.held
    log.info("%s: %d deletes held in this batch (one warning sums up the run's)", entity, admission.held)
    past = counted[admission.admitted :]
    if held_deletes is not None:
        held_deletes.setdefault(entity, HeldDeletes()).add(admission.reason, [c.id for c, _ in past])
    held += [(m, dead_letters.MASS_DELETE_HELD, _held_reason(admission, m.topic())) for _, m in past]
    return approved + counted[: admission.admitted], held


def _position(message: Message) -> tuple[str, int, int]:
    return message.topic(), message.partition(), message.offset()


def _held_again_reason(entity: str, topic: str) -> str:
    return (
        f"mass delete held: this delete of {entity} was held by an earlier run, which stopped before committing its "
        f"offsets; read again, it is held again (not counted against this run's limit, not a new hold). Check Base A "
        f"(a mass DELETE, a wrong soft-delete rule or filter); to delete them, approve by replaying: base-sync-dlq "
        f"replay --all --kind {dead_letters.MASS_DELETE_HELD} --topic {topic} --approve-mass-delete"
    )


def _held_reason(admission: Admission, topic: str) -> str:
    return (
        f"{admission.reason}. Check Base A (a mass DELETE, a wrong soft-delete rule or filter); to delete them, "
        f"approve by replaying: base-sync-dlq replay --all --kind {dead_letters.MASS_DELETE_HELD} --topic {topic} "
        f"--approve-mass-delete"
    )


def _reasons(reasons: list[dict]) -> str:
    return "; ".join(_reason(str(r.get("field") or ""), str(r.get("message") or "")) for r in reasons)


def _reason(name: str, message: str) -> str:
    """The field named once: the batch path's reasons name it themselves ("hired_at is the zero
    date ...", "department: the value ..."), the API's may not ("already used")."""
    if not name or message.startswith((f"{name} ", f"{name}:")):
        return message
    return f"{name}: {message}"


def _account(
    entity: str, sent: list[tuple[Change, Message]], answer: dict, counts: Counter, waits: UniqueWaits | None = None
) -> list:
    """The answer's counts; the rejected changes as dead letters, except those refused for a unique
    value another row holds, which wait in `waits` when given."""
    if answer["received"] != len(sent):
        raise LoadError(f"{entity}: sent {len(sent)} changes, the API received {answer['received']}")
    for outcome in (*OUTCOMES, "deleted", "not_found"):
        counts[outcome] += answer.get(outcome, 0)
    rejected = []
    for error in answer["errors"]:
        reasons = _reasons(error["reasons"])
        change, message = sent[error["index"]]
        if waits is not None and any(r.get("code") == UNIQUE_TAKEN for r in error["reasons"]):
            log.info("%s source_id=%s waits for its unique value: %s", entity, error["source_id"], reasons)
            waits.hold(entity, change, message, f"rejected by the API: {reasons}")
            counts["waiting_unique"] += 1
            continue
        log.warning("%s source_id=%s rejected by the API: %s", entity, error["source_id"], reasons)
        rejected.append((message, "Rejected", f"rejected by the API: {reasons}"))
    return rejected


def dead_letter(producer: Producer, topic: str, dead: list[tuple[Message, str, str]], report: DrainReport) -> None:
    """The original message (key, value, headers), with where it came from and why in Kafka Connect's
    dead-letter headers (`base_sync.dead_letters` reads them back); counted in the report once stored."""
    failures = []

    def delivered(error, _message):
        if error is not None:
            failures.append(error)

    _require_topic(producer, topic)
    for message, kind, reason in dead:
        if kind != dead_letters.MASS_DELETE_HELD:  # held deletes: one summary per run (_warn_held)
            log.warning("dead letter %s[%d]@%d: %s", message.topic(), message.partition(), message.offset(), reason)
        key, value, headers = dead_letters.letter_parts(message, kind, reason)
        producer.produce(topic, value=value, key=key, headers=headers, on_delivery=delivered)
    if producer.flush(30) or failures:
        if any(error.code() in UNKNOWN_TOPIC for error in failures):
            raise _missing_topic(topic)
        # Not stored: the batch must not be committed past, so the run fails and the batch comes back.
        raise KafkaException(f"dead letters not stored in {topic}: {failures or 'flush timed out'}")
    report.counts["dead_lettered"] += len(dead)
    report.dead_by_kind.update(kind for _, kind, _ in dead)


UNKNOWN_TOPIC = (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC)
TOPIC_PROPAGATION_SECONDS = 5.0  # a topic just made may not be known yet to every broker


def _require_topic(producer: Producer, topic: str) -> None:
    """The dead-letter topic exists (the producer does not make it): without it, letters waited
    30 s and failed with "flush timed out", and every later run the same on the same batch."""
    deadline = time.monotonic() + TOPIC_PROPAGATION_SECONDS
    while True:
        described = producer.list_topics(topic, timeout=10).topics.get(topic)
        error = described.error if described is not None else None
        if described is not None and (error is None or error.code() not in UNKNOWN_TOPIC):
            return
        if time.monotonic() > deadline:
            raise _missing_topic(topic)
        time.sleep(0.5)


def _missing_topic(topic: str) -> ConfigurationError:
    return ConfigurationError(
        f"the dead-letter topic {topic} (EVENTS_DLQ_TOPIC) does not exist (deleted while the run was on?): its "
        f"letters cannot be stored, so nothing past them was committed. Create it with `python -m base_sync.topics "
        f"<the Kafka connection's bootstrap.servers>` (the next run of base_a_events also creates it, with its "
        f"retention)"
    )


def next_offsets(batch: list[Message]) -> list[TopicPartition]:
    last: dict[tuple[str, int], int] = {}
    for message in batch:
        key = (message.topic(), message.partition())
        last[key] = max(last.get(key, -1), message.offset())
    return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()]


def remaining(consumer: Consumer, partitions: list[TopicPartition], kafka_config: dict) -> int:
    """Events after the consumer's position, summed over the partitions. A partition this run
    fetched nothing from is asked of the broker, and one with events waiting is logged, with its
    cause (`_warn_unread`): counted as 0 it hid a stuck partition from the lag metric and its alert."""
    if not partitions:
        return 0
    left = 0
    committed = None
    unread_waiting = []  # (partition, where the group stands, the end)
    positions = consumer.position(partitions)
    unread = [p for p in positions if p.offset < 0]
    if unread:
        committed = {(p.topic, p.partition): p.offset for p in consumer.committed(partitions, timeout=10)}
        # The run is over: no fetch in flight may reset the connection the watermark requests share.
        consumer.pause(unread)
    for position in positions:
        # From the last fetch's answers: no round trip per partition at the end of every run.
        low, high = consumer.get_watermark_offsets(position, cached=True)
        if high < 0:
            low, high = _watermarks(consumer, position)
            if high < 0:
                continue
        if position.offset >= 0:
            left += max(high - position.offset, 0)
            continue
        # Nothing read from it this run: where the group stands, else the start.
        start = committed.get((position.topic, position.partition), -1)
        waiting = max(high - (start if start >= 0 else low), 0)
        left += waiting
        if waiting:
            unread_waiting.append((position, start if start >= 0 else low, high))
    if unread_waiting:
        _warn_unread(unread_waiting, committed, kafka_config)
    return left


def _warn_unread(unread: list[tuple[TopicPartition, int, int]], committed: dict, kafka_config: dict) -> None:
    """One warning per partition this run read nothing from while events wait, saying why. A
    read_committed consumer stops at the last stable offset: an open transaction (a transactional
    producer that died mid-transaction, Kafka Connect with exactly.once.source.support) holds the
    partition until it ends, and the fetch-size advice sent operators the wrong way. Otherwise the
    next message may be one the consumer cannot fetch (larger than receive.message.max.bytes)."""
    stable = _last_stable_offsets([tp for tp, _, _ in unread], kafka_config)
    bootstrap = kafka_config.get("bootstrap.servers")
    for tp, start, high in unread:
        lso = stable.get((tp.topic, tp.partition))
        group = committed.get((tp.topic, tp.partition), -1)
        where = f"the group's committed offset {group if group >= 0 else 'none'}"
        if lso is not None and lso == start and lso < high:
            log.warning(
                "%s [%d]: this run read nothing from it while %d events wait (%s, the last stable offset %d, the "
                "end %d): a transaction begun at offset %d is neither committed nor aborted, and a read_committed "
                "consumer reads no further until it ends. It ends when its producer commits or aborts it, or when "
                "the broker aborts it after the producer's transaction.timeout.ms (at most the broker's "
                "transaction.max.timeout.ms, 15 minutes by default). Check the producers writing transactions to "
                "this topic (Debezium or Kafka Connect with exactly.once.source.support=enabled, a transactional "
                "producer that died mid-transaction); a transaction hanging past that is shown by "
                "`kafka-transactions.sh --bootstrap-server %s find-hanging --topic %s --partition %d` and ended "
                "by its `abort` command (its events are lost to the drain). Fetch sizes have nothing to do with it",
                tp.topic,
                tp.partition,
                high - start,
                where,
                lso,
                high,
                lso,
                bootstrap,
                tp.topic,
                tp.partition,
            )
            continue
        log.warning(
            "%s [%d]: this run read nothing from it while %d events wait (%s, the end %d): the next message may "
            "be one this consumer cannot fetch (the Kafka errors above: 'Receive failed: Invalid response size "
            "...: increase receive.message.max.bytes'); raise receive.message.max.bytes and fetch.max.bytes in "
            "the Kafka connection's extra, or, once the message is kept elsewhere, move the group's offset past it",
            tp.topic,
            tp.partition,
            high - start,
            where,
            high,
        )


def _last_stable_offsets(partitions: list[TopicPartition], kafka_config: dict) -> dict[tuple[str, int], int]:
    """The partitions' last stable offsets (ListOffsets, read_committed), those the broker gave in
    WATERMARK_SECONDS; only for the warning, so a failure is logged, not raised."""
    admin = admin_for(kafka_config)  # held until the answers: a dropped client drops them
    asked = admin.list_offsets(
        {TopicPartition(tp.topic, tp.partition): OffsetSpec.latest() for tp in partitions},
        isolation_level=IsolationLevel.READ_COMMITTED,
        request_timeout=WATERMARK_SECONDS,
    )
    found = {}
    for tp, future in asked.items():
        try:
            found[(tp.topic, tp.partition)] = future.result(timeout=WATERMARK_SECONDS).offset
        except (KafkaException, TimeoutError) as error:
            log.warning("%s [%d]: its last stable offset is unknown: %s", tp.topic, tp.partition, error)
    return found


WATERMARK_SECONDS = 10.0


def _watermarks(consumer: Consumer, partition: TopicPartition) -> tuple[int, int]:
    """The partition's watermarks from the broker, (-1, -1) if it does not answer in WATERMARK_SECONDS
    (said in the log): a request can fail while a failed fetch resets the connection, so retried."""
    deadline = time.monotonic() + WATERMARK_SECONDS
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=WATERMARK_SECONDS / 4)
        except KafkaException as error:
            if time.monotonic() > deadline:
                log.warning("%s [%d]: its lag is unknown: %s", partition.topic, partition.partition, error)
                return -1, -1
            time.sleep(0.2)
