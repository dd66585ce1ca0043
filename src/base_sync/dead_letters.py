"""Dead letters: what the events path could not apply, written with Kafka Connect's headers, read back
and replayed to where they came from.

A dead letter is the original message (key, value, headers) on the dead-letter topic, plus headers
saying where it came from and why: `__connect.errors.topic`, `.partition`, `.offset`, `.stage`,
`.exception.class.name`, `.exception.message`. Reading assigns the topic's partitions explicitly
under a throwaway group and commits nothing, so listing or replaying never hides a letter from the
next reader. Replaying sends the key, value and own headers back to the original topic and
partition; the API's version guard makes an event older than Base B's row a no-op.

Deletes the mass-delete breaker held (kind `MassDeleteHeld`) are replayed only when approved: the
replay then marks them (`MASS_DELETE_APPROVED`) and the events path sends them uncounted.

Kafka keeps no flag on a record, so a replay writes a marker after the letters it sent back: a
record on the dead-letter topic (same partition, no key, a small JSON value) whose `REPLAY_OF`
header names the letter. Readers leave markers out and see the letters they name as `replayed`:
`list` and `replay --all` skip those (a letter that fails again comes back as a new letter, which
names the one it retries), so replaying everything twice never sends a letter twice. Letters are
written before the batch's offsets are committed, so a run that dies in between writes them again
in the next run: readers fold letters of the same source (topic, partition, offset) into one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Set
from dataclasses import dataclass, replace
from decimal import Decimal

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, Producer, TopicPartition

from base_sync import consumer_errors
from base_sync.debezium import _key_field
from base_sync.errors import TerminalError
from base_sync.topics import producer_config

log = logging.getLogger(__name__)

ERRORS = "__connect.errors."
TOPIC = ERRORS + "topic"
PARTITION = ERRORS + "partition"
OFFSET = ERRORS + "offset"
STAGE = ERRORS + "stage"
CLASS_NAME = ERRORS + "exception.class.name"
MESSAGE = ERRORS + "exception.message"
REPLAYED_FROM = "base_sync.replayed.from"  # on a replayed message: <dead-letter topic>:<partition>:<offset>
# On a letter stored without its value, key or own headers (too large for the dead-letter topic):
# their size in bytes (the key also by its SHA-256). The original stays on its topic (at the
# letter's source position) while the topic retains it; such a letter cannot be replayed.
VALUE_LEFT_OUT = "base_sync.value_left_out"
KEY_LEFT_OUT = "base_sync.key_left_out"
KEY_SHA256 = "base_sync.key_left_out.sha256"
HEADERS_LEFT_OUT = "base_sync.headers_left_out"
LEFT_OUT = {"key": KEY_LEFT_OUT, "value": VALUE_LEFT_OUT, "headers": HEADERS_LEFT_OUT}
LEFT_OUT_HEADERS = (*LEFT_OUT.values(), KEY_SHA256)
# Key + value + own headers of a letter: under librdkafka's and the broker's default 1,000,000-byte
# message limit, with room for the error headers (a reason is cut at MAX_REASON_CHARS).
MAX_LETTER_BYTES = 512 * 1024
MAX_REASON_CHARS = 4096  # a reason is read by people; one quoting a whole value could outgrow the letter
# On a replayed delete the mass-delete breaker held: an operator approved it, so the run does not count it.
MASS_DELETE_APPROVED = "base_sync.mass_delete.approved"
MASS_DELETE_HELD = "MassDeleteHeld"  # the kind of a delete held by the breaker (base_sync.delete_guard)
REPLAY_HEADERS = (REPLAYED_FROM, MASS_DELETE_APPROVED)  # set by each replay, never carried over to the next
REPLAY_OF = "base_sync.replay.of"  # on a replay marker: the `partition:offset` of the letter it replayed
# On a discard marker (a replay marker too, so every reader takes the letter as settled): the
# operator's note. A letter that needs no replay (the batch carried its row over, a poison message)
# is discarded, or DeadLettersWaiting would fire for as long as the topic keeps it.
DISCARDED = "base_sync.discarded"
# Kafka Connect's names for where a record failed: reading it, or the sink (here the API) refusing it.
STAGES = {"BadEvent": "VALUE_CONVERTER", "Rejected": "TASK_PUT"}
# Every kind of letter the drain writes (a label of base_sync_dead_letters_total, zeros included):
# an event it cannot read, a row the API refused, a row the mapping refused, a body too large for
# the API, a delete the mass-delete breaker held.
KINDS = ("BadEvent", "Rejected", "Quarantined", "TooLarge", MASS_DELETE_HELD)
OTHER = "other"  # the waiting letters' label for a kind not in KINDS (an older version's, another writer's)
# Settings of the broker connection that belong to the events path's own consumer, not to a reader.
_NOT_FOR_READERS = ("group.", "enable.auto", "auto.offset", "auto.commit")


class DeadLetterError(TerminalError):
    """The dead letters cannot be read or replayed as asked."""


Headers = list[tuple[str, str | bytes | None]]


def letter_parts(message: Message, kind: str, reason: str) -> tuple[bytes | None, bytes | None, Headers]:
    """The key, value and headers of the dead letter of `message`, always small enough to store.

    A letter that cannot be written would stop the events path for good, so when the original's
    key, value and own headers together pass MAX_LETTER_BYTES the largest of them are left out
    until the rest fits, each named in a header with its size (the key also by its SHA-256): the
    letter still says where the original sits and why it failed, and replay refuses it."""
    own = [
        (name, value)
        for name, value in (message.headers() or [])
        if not name.startswith(ERRORS) and name not in (*LEFT_OUT_HEADERS, REPLAY_OF)
    ]
    key, value = message.key(), message.value()
    sizes = {
        "key": len(key or b""),
        "value": len(value or b""),
        "headers": sum(len(n.encode()) + len(v or b"") for n, v in own),
    }
    left_out: Headers = []
    while sum(sizes.values()) > MAX_LETTER_BYTES:
        part = max(sizes, key=sizes.get)
        left_out.append((LEFT_OUT[part], str(sizes.pop(part))))
        if part == "key":
            key = None
            left_out.append((KEY_SHA256, hashlib.sha256(message.key()).hexdigest()))
        elif part == "value":
            value = None
        else:
            own = []
    return key, value, [*own, *_errors(message, kind, reason), *left_out]


def _errors(message: Message, kind: str, reason: str) -> list[tuple[str, str]]:
    """Where the message came from and why it failed, in Kafka Connect's dead-letter headers."""
    return [
        (TOPIC, message.topic()),
        (PARTITION, str(message.partition())),
        (OFFSET, str(message.offset())),
        (STAGE, STAGES.get(kind, "TASK_PUT")),
        (CLASS_NAME, kind),
        (MESSAGE, reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + "…"),
    ]


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter: its place on the dead-letter topic, where it came from, why, and the original message."""

    partition: int
    offset: int
    topic: str | None  # the original topic, partition and offset
    source_partition: int | None
    source_offset: int | None
    kind: str  # the exception class, e.g. BadEvent or Rejected
    stage: str | None
    reason: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]  # the original message's own headers
    timestamp_ms: int | None
    value_left_out: int | None = None  # the value's size when it was too large to store with the letter
    key_left_out: int | None = None  # the key's size, when left out as the value
    key_sha256: str | None = None  # then its SHA-256, to match it with the original
    headers_left_out: int | None = None  # the original's own headers' size, when left out as the value
    retry_of: str | None = None  # the letter this one is a failed replay of (`partition:offset`)
    replayed: bool = False  # a marker says it was sent back (see the module's docs), or discarded
    discarded: bool = False  # the last marker was a discard's: settled without being sent back
    duplicates: tuple[str, ...] = ()  # positions of the same source's letters written again, folded into this

    @property
    def row_key(self) -> int | None:
        """The row its message key names (`row_key`)."""
        return row_key(self.key)

    @property
    def left_out(self) -> dict[str, int]:
        """The parts of the original stored without (too large), with their sizes in bytes."""
        sizes = {"key": self.key_left_out, "value": self.value_left_out, "headers": self.headers_left_out}
        return {part: size for part, size in sizes.items() if size is not None}

    @property
    def position(self) -> str:
        """Where it sits on the dead-letter topic: `partition:offset`, how operators name it."""
        return f"{self.partition}:{self.offset}"

    @property
    def source(self) -> str:
        if self.topic is None:
            return "?"
        return f"{self.topic}[{self.source_partition}]@{self.source_offset}"

    @classmethod
    def of(cls, message: Message) -> DeadLetter:
        errors, own, left_out, retry_of = {}, [], {}, None
        for name, value in message.headers() or []:
            if name.startswith(ERRORS):
                errors[name] = value.decode("utf-8", "replace") if value is not None else None
            elif name in LEFT_OUT_HEADERS:
                left_out[name] = value.decode("ascii", "replace") if value is not None else None
            elif name == REPLAYED_FROM and value is not None:
                retry_of = value.decode("utf-8", "replace").split(":", 1)[-1]  # <dlq topic>:<partition:offset>
            elif name not in REPLAY_HEADERS:
                own.append((name, value))
        timestamp_type, timestamp = message.timestamp()
        return cls(
            partition=message.partition(),
            offset=message.offset(),
            topic=errors.get(TOPIC),
            source_partition=_int(errors.get(PARTITION)),
            source_offset=_int(errors.get(OFFSET)),
            kind=errors.get(CLASS_NAME) or "?",
            stage=errors.get(STAGE),
            reason=errors.get(MESSAGE) or "",
            key=message.key(),
            value=message.value(),
            headers=own,
            timestamp_ms=timestamp if timestamp_type else None,
            value_left_out=_int(left_out.get(VALUE_LEFT_OUT)),
            key_left_out=_int(left_out.get(KEY_LEFT_OUT)),
            key_sha256=left_out.get(KEY_SHA256),
            headers_left_out=_int(left_out.get(HEADERS_LEFT_OUT)),
            retry_of=retry_of,
        )

    def to_json(self) -> dict:
        return {
            "dlq": {"partition": self.partition, "offset": self.offset},
            "source": {"topic": self.topic, "partition": self.source_partition, "offset": self.source_offset},
            "kind": self.kind,
            "stage": self.stage,
            "reason": self.reason,
            "key": _text(self.key),
            "row_key": self.row_key,
            "value": _text(self.value),
            "headers": [[name, _text(value)] for name, value in self.headers],
            "timestamp_ms": self.timestamp_ms,
            "value_left_out_bytes": self.value_left_out,
            "key_left_out_bytes": self.key_left_out,
            "key_sha256": self.key_sha256,
            "headers_left_out_bytes": self.headers_left_out,
            "retry_of": self.retry_of,
            "replayed": self.replayed,
            "discarded": self.discarded,
            "duplicates": list(self.duplicates),
        }


def row_key(key: bytes | None) -> int | None:
    """The row a message key names, read as the drain reads it (`debezium._key_field`): the relay's
    `7`, `{"id": 7}` and Debezium's `{"schema": ..., "payload": {"id": 7}}` all name row 7. None for
    a key naming no one integer (not JSON, a text, a key of several columns, a malformed schema)."""
    if key is None:
        return None
    try:
        named = orjson.loads(key)
    except orjson.JSONDecodeError:
        return None
    if isinstance(named, dict):
        columns = named["payload"] if isinstance(named.get("payload"), dict) else named
        if len(columns) != 1:
            return None
        try:
            named = _key_field(named, next(iter(columns)))
        except (TypeError, ValueError, AttributeError):  # a malformed schema ("fields": 5): shown as it is
            return None
    if isinstance(named, Decimal) and named == named.to_integral_value():
        named = int(named)
    return named if isinstance(named, int) and not isinstance(named, bool) else None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _text(data: bytes | None) -> str | dict | None:
    """UTF-8 text as is; anything else as {"base64": ...}, so JSON lines carry every byte."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


@dataclass(frozen=True)
class Selection:
    """Which dead letters: by position on the dead-letter topic, original topic, kind, reason or key."""

    positions: frozenset[str] = frozenset()  # `partition:offset`; empty: any
    topic: str | None = None
    kind: str | None = None
    reason: re.Pattern | None = None
    key: bytes | None = None  # as given, or naming a row: then any key form naming that row (`row_key`)
    include_replayed: bool = False  # letters a replay marker names; a position named selects it anyway

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (
                not self.positions.isdisjoint((letter.position, *letter.duplicates))
                if self.positions
                else not letter.replayed or self.include_replayed
            )
            and (self.topic is None or letter.topic == self.topic)
            and (self.kind is None or letter.kind == self.kind)
            and (self.reason is None or self.reason.search(letter.reason) is not None)
            and (self.key is None or self._key_matches(letter))
        )

    def _key_matches(self, letter: DeadLetter) -> bool:
        if letter.key == self.key:
            return True
        row = row_key(self.key)
        return row is not None and row == letter.row_key


def reader_config(kafka_config: dict) -> dict:
    """The broker connection for a reader of its own: a throwaway group that never commits."""
    config = {k: v for k, v in kafka_config.items() if not k.startswith(_NOT_FOR_READERS)}
    return {
        **config,
        "group.id": f"base-sync-dlq.{uuid.uuid4().hex[:12]}",  # never joined nor committed: partitions are assigned
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }


def _ends(consumer: Consumer, dlq_topic: str, partitions: list[int], timeout: float) -> dict[int, int]:
    """The non-empty partitions' high watermarks: a read goes at least this far (the letters there now)."""
    ends = {}
    for partition in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(dlq_topic, partition), timeout=timeout)
        if high > low:
            ends[partition] = high
    return ends


def replay_producer(kafka_config: dict) -> Producer:
    """A producer on the broker connection (idempotent: a retried send is not doubled)."""
    return Producer({**producer_config(kafka_config), "enable.idempotence": True})


def read(
    kafka_config: dict, dlq_topic: str, selection: Selection = Selection(), timeout: float = 10.0
) -> list[DeadLetter]:
    """The dead letters on the topic now, by partition and offset, that match the selection. Commits nothing."""
    found: list[DeadLetter] = []
    replayed: set[str] = set()
    discarded: set[str] = set()
    for message in _messages(kafka_config, dlq_topic, timeout):
        marked = _marked(message)
        if marked is None:
            found.append(DeadLetter.of(message))
        else:
            replayed.add(marked)
            # The last marker says what was done last: a letter's markers follow it on its partition,
            # read in order (a discarded letter replayed later by its position was shown discarded).
            if any(name == DISCARDED for name, _ in message.headers() or []):
                discarded.add(marked)
            else:
                discarded.discard(marked)
    letters = _folded(sorted(found, key=lambda x: (x.partition, x.offset)), replayed, discarded)
    return [letter for letter in letters if selection.matches(letter)]


def _messages(kafka_config: dict, dlq_topic: str, timeout: float) -> Iterator[Message]:
    """Every message on the dead-letter topic now (letters and replay markers), streamed. Commits nothing."""
    consumer = Consumer(reader_config(kafka_config))
    try:
        described = consumer.list_topics(dlq_topic, timeout=timeout).topics.get(dlq_topic)
        if described is None or described.error is not None:
            raise DeadLetterError(f"the dead-letter topic {dlq_topic!r} does not exist on the broker")
        ends = _ends(consumer, dlq_topic, sorted(described.partitions), timeout)
        consumer.assign([TopicPartition(dlq_topic, partition, OFFSET_BEGINNING) for partition in ends])
        progress, past_ends_since = time.monotonic(), None
        while True:
            batch = [m for m in consumer.consume(500, timeout=0.5) if consumer_errors.is_message(m, log)]
            for message in batch:
                if message.offset() >= ends.get(message.partition(), 0) - 1:
                    ends.pop(message.partition(), None)
                yield message
            # Past every reported end, read on to the first empty fetch (for at most `timeout`): a broker's
            # high watermark may trail its log (Tansu 0.6.0: the last produce batch's base offset + 1).
            if not ends:
                past_ends_since = past_ends_since or time.monotonic()
                if not batch or time.monotonic() - past_ends_since > timeout:
                    break
            elif batch:
                progress = time.monotonic()
            elif time.monotonic() - progress > timeout:
                raise DeadLetterError(f"{dlq_topic}: partitions {sorted(ends)} gave nothing for {timeout} s")
    finally:
        consumer.close()


def waiting_by_kind(kafka_config: dict, dlq_topic: str, timeout: float = 10.0) -> dict[str, int]:
    """The letters no replay marker names, by kind: every kind of KINDS (0 too, so a kind whose
    letters were all replayed drops to 0) and OTHER for letters of a kind the drain does not write.
    Reads the whole topic, keeping of each letter its kind, place and a digest of its source (copies
    written again fold as `read` folds them), not its value: the events path counts at most every
    EVENTS_DLQ_COUNT_SECONDS."""
    kinds: dict[tuple, str] = {}  # source -> kind of its first letter
    positions: dict[tuple, list[str]] = {}  # source -> its letters' positions
    replayed: set[str] = set()
    for message in _messages(kafka_config, dlq_topic, timeout):
        marked = _marked(message)
        if marked is not None:
            replayed.add(marked)
            continue
        letter = DeadLetter.of(message)
        source = _source(letter, digest=True)
        kinds.setdefault(source, letter.kind)
        positions.setdefault(source, []).append(letter.position)
    waiting = dict.fromkeys((*KINDS, OTHER), 0)
    for source, kind in kinds.items():
        if not replayed.intersection(positions[source]):
            waiting[kind if kind in KINDS else OTHER] += 1
    return waiting


def count_due(counted_at: str | None, now: float, every: float) -> bool:
    """Whether the waiting letters are to be counted again: never counted, counted `every` seconds
    ago or more, or a last count that is no time (a clock set back would put it in the future, and
    no count would come until the clock caught up: counted now)."""
    try:
        last = float(counted_at) if counted_at is not None else None
    except ValueError:
        return True
    return last is None or not 0 <= now - last < every


def _folded(letters: list[DeadLetter], replayed: set[str], discarded: Set[str] = frozenset()) -> list[DeadLetter]:
    """One letter per source message: the drain writes its letters before it commits, so a run that
    died in between writes them again when the next run reads the batch again (at-least-once). The
    first stays, naming the others (`duplicates`); replayed if a marker names any of them. The same
    message: the same position and the same key and value (a topic deleted and made again puts
    another message at an offset an old letter names)."""
    by_source: dict[tuple, list[DeadLetter]] = {}
    for letter in letters:
        by_source.setdefault(_source(letter), []).append(letter)
    return [
        replace(
            first,
            replayed=any(letter.position in replayed for letter in (first, *others)),
            discarded=any(letter.position in discarded for letter in (first, *others)),
            duplicates=tuple(letter.position for letter in others),
        )
        for first, *others in by_source.values()
    ]


def _source(letter: DeadLetter, digest: bool = False) -> tuple:
    """What makes two letters copies of one source message (`_folded`); `digest`: the key and value
    hashed, for a count that must not hold every letter's value."""
    if letter.topic is None or letter.source_offset is None:
        return (letter.position,)
    key, value = letter.key, letter.value
    if digest:
        key, value = (hashlib.sha256(part).digest() if part is not None else None for part in (key, value))
    return (letter.topic, letter.source_partition, letter.source_offset, key, letter.key_sha256, value)


def _marked(message: Message) -> str | None:
    """The position (`partition:offset`) of the letter a replay marker names; None for a letter
    (which carries Kafka Connect's error headers, and never a marker's)."""
    headers = message.headers() or []
    if any(name.startswith(ERRORS) for name, _ in headers):
        return None
    for name, value in headers:
        if name == REPLAY_OF and value is not None:
            return value.decode("ascii", "replace")
    return None


def replayed(message: Message) -> bool:
    """A message an operator replayed from the dead letters: it comes after its key's later events."""
    return any(name == REPLAYED_FROM for name, _ in message.headers() or [])


def approved_delete(message: Message) -> bool:
    """A delete an operator approved by replaying it: the breaker lets it through uncounted."""
    return any(name == MASS_DELETE_APPROVED for name, _ in message.headers() or [])


def held_deletes(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    return [letter for letter in letters if letter.kind == MASS_DELETE_HELD]


def replay(
    producer: Producer,
    dlq_topic: str,
    letters: Iterable[DeadLetter],
    approve_mass_delete: bool = False,
    dry_run: bool = False,
) -> list[DeadLetter]:
    """Send each letter's key, value and own headers back to its original topic and partition; returns them.

    Held mass deletes are replayed only as approved (`approve_mass_delete`): replaying them deletes
    their rows in Base B, past the breaker. `dry_run`: every check a replay makes, nothing sent (a
    dry run said "would replay" of letters the replay then refused)."""
    letters = list(letters)
    held = held_deletes(letters)
    if held and not approve_mass_delete:
        one = len(held) == 1
        raise DeadLetterError(
            f"{len(held)} of the letters {'is a delete' if one else 'are deletes'} the mass-delete breaker held; "
            f"replaying {'it deletes that row' if one else 'them deletes those rows'} in Base B: check Base A first, "
            f"then approve {'it' if one else 'them'} with --approve-mass-delete (or leave {'it' if one else 'them'} "
            "out: --kind)"
        )
    unplaced = [letter.position for letter in letters if letter.topic is None]
    if unplaced:
        raise DeadLetterError(f"no {TOPIC} header, so nowhere to replay to: {', '.join(unplaced)}")
    # Without a part it was too large to store with, a letter is not the original: without its value
    # a tombstone, without its key or headers another message. Never sent as if it were.
    partial = [
        f"{letter.position} ({letter.source}: without its "
        f"{', '.join(f'{part} of {size} bytes' for part, size in letter.left_out.items())})"
        for letter in letters
        if letter.left_out
    ]
    if partial:
        raise DeadLetterError(
            f"letters stored without a part of the original (too large to store), which a replay cannot rebuild: "
            f"{'; '.join(partial)}; fix the event at its source, or re-read it there while its topic keeps it"
        )
    _check_destinations(producer, letters)
    if dry_run:
        return letters
    failures = []

    def delivered(error, _message):
        if error is not None:
            failures.append(error)

    for letter in letters:
        where = {"partition": letter.source_partition} if letter.source_partition is not None else {}
        origin = f"{dlq_topic}:{letter.position}"
        approval = [(MASS_DELETE_APPROVED, origin)] if letter.kind == MASS_DELETE_HELD else []
        producer.produce(
            letter.topic,
            key=letter.key,
            value=letter.value,
            headers=[*letter.headers, (REPLAYED_FROM, origin), *approval],
            on_delivery=delivered,
            **where,
        )
    if producer.flush(30) or failures:
        raise KafkaException(f"replayed letters not all stored: {failures or 'flush timed out'}")
    # Only after every replay is stored: a letter marked is a letter sent.
    _mark(
        producer, dlq_topic, letters, lambda letter: {"to": letter.source}, [], "letters replayed, but not all marked"
    )
    return letters


def discard(
    producer: Producer,
    dlq_topic: str,
    letters: Iterable[DeadLetter],
    note: str,
    holds_settled: bool = False,
    dry_run: bool = False,
) -> list[DeadLetter]:
    """Mark letters settled without sending them back, with the operator's note (why no replay):
    `list`, `replay --all` and the waiting count leave them out from then on. Nothing else changes.

    Held mass deletes only with `holds_settled`: the operator says their hold is settled already (the
    batch DAG's approval deleted the rows, or the hold's Variables were deleted). Otherwise the hold
    would stay and every later delete of the entity ask, no letter left to say why (review)."""
    letters = list(letters)
    held = held_deletes(letters)
    if held and not holds_settled:
        raise DeadLetterError(
            f"{len(held)} of the letters {'is a delete' if len(held) == 1 else 'are deletes'} the mass-delete "
            "breaker held: approve them (replay --approve-mass-delete, or the batch DAG's approval), or, if they are "
            "a mistake, fix Base A and delete the hold's Variables (base_a_events.held_deletes.<entity>*, README); "
            "once the hold is settled, discard them with --holds-settled; or leave them out: --kind"
        )
    if dry_run:  # every check a discard makes, nothing written
        return letters
    _mark(producer, dlq_topic, letters, lambda _: {"discarded": note}, [(DISCARDED, note.encode())], "not all marked")
    return letters


def _mark(
    producer: Producer,
    dlq_topic: str,
    letters: list[DeadLetter],
    told: Callable[[DeadLetter], dict],
    headers: list[tuple[str, bytes]],
    failed: str,
) -> None:
    """A marker record per letter on the dead-letter topic (its partition, no key): a `REPLAY_OF`
    header naming it and `headers`; its JSON value names it too, with what `told` says of it."""
    failures = []

    def delivered(error, _message):
        if error is not None:
            failures.append(error)

    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for letter in letters:
        marker = {"replay_of": letter.position, **told(letter), "at": at}
        producer.produce(
            dlq_topic,
            value=json.dumps(marker).encode(),
            headers=[(REPLAY_OF, letter.position), *headers],
            partition=letter.partition,
            on_delivery=delivered,
        )
    if producer.flush(30) or failures:
        raise KafkaException(f"{failed} (list shows them still): {failures or 'flush timed out'}")


def _check_destinations(producer: Producer, letters: list[DeadLetter], timeout: float = 10.0) -> None:
    """Every letter's original topic and partition still exist: a producer would otherwise wait on a
    missing partition or have the broker create the topic anew."""
    topics = producer.list_topics(timeout=timeout).topics
    gone = sorted(
        {
            letter.source
            for letter in letters
            if letter.topic not in topics
            or topics[letter.topic].error is not None
            or (letter.source_partition is not None and letter.source_partition not in topics[letter.topic].partitions)
        }
    )
    if gone:
        raise DeadLetterError(f"the letters' original topic or partition no longer exists: {', '.join(gone)}")
