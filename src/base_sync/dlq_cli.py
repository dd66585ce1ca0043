"""`base-sync-dlq`: list the events path's dead letters and replay chosen ones after a fix.

base-sync-dlq list                                  every dead letter not replayed yet: position, origin, kind, reason
base-sync-dlq list --include-replayed               with those a replay already sent back (marked replayed)
base-sync-dlq list --kind Rejected --format jsonl   as JSON lines, with key, value and headers
base-sync-dlq replay 0:17 2:3                       these (dead-letter partition:offset) to their topic
base-sync-dlq replay --all --reason 'email'         every letter whose reason matches
base-sync-dlq replay --all --dry-run                what would be replayed
base-sync-dlq list --key 2111                       row 2111's letters, its key in any form ({"id": 2111}, ...)
base-sync-dlq replay --all --key 2111 --topic T     a key matching letters of several topics needs --topic
base-sync-dlq replay --all --kind MassDeleteHeld --approve-mass-delete
                                                    approve the deletes the mass-delete breaker held
base-sync-dlq discard 1:4 --note 'carried over by the batch run'
                                                    settle letters that need no replay, saying why

The broker comes from the events path's connection (EVENTS_KAFKA_CONN_ID, default `base_a_kafka`,
read from its AIRFLOW_CONN_<ID> variable in JSON form) unless --bootstrap names one; the topic is
EVENTS_DLQ_TOPIC. Nothing is committed: a listed or replayed letter stays on the topic; a replay
writes a marker after it, so `list` and `replay --all` leave it out from then on (name its position
to replay it again); `discard` writes such a marker without sending (--note: why). A letter that
fails again comes back as a new one, which names the one it retries.
Letters of the same source written again (a run killed before its commit) are listed and replayed once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

import orjson
from confluent_kafka import KafkaException

from base_sync import dead_letters
from base_sync.dead_letters import DeadLetter, DeadLetterError, Selection
from base_sync.settings import EventSettings
from env_settings import InvalidSettings

REASON_WIDTH = 100  # the table's reason column; --format jsonl has the whole text
KEY_WIDTH = 40  # a key that names no row (Debezium's schema form names one: its row is shown)
DONE = {"replay": "replayed", "discard": "discarded"}  # what each subcommand that acts on letters did


def _pattern(text: str) -> re.Pattern:
    """A --reason regular expression; a broken one is argparse's usage error (re.error is neither of
    the two exception types argparse reports as such)."""
    try:
        return re.compile(text)
    except re.error as error:
        raise argparse.ArgumentTypeError(f"not a regular expression: {error}") from None


def _filters() -> argparse.ArgumentParser:
    """The letter filters every subcommand takes (a parent parser)."""
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--topic", help="only letters from this original topic")
    filters.add_argument("--kind", help="only this exception class (BadEvent, Rejected, MassDeleteHeld, ...)")
    filters.add_argument("--reason", type=_pattern, help="only reasons matching this regular expression")
    filters.add_argument(
        "--key", help='only this message key, or any key naming this row (7, {"id": 7}, Debezium\'s schema form)'
    )
    return filters


def _acting(verb: str) -> argparse.ArgumentParser:
    """The letters a subcommand that acts on them (`replay`, `discard`) takes, and its dry run (a parent parser)."""
    acting = argparse.ArgumentParser(add_help=False)
    acting.add_argument("positions", nargs="*", metavar="PARTITION:OFFSET", help="as `list` shows them")
    acting.add_argument("--all", action="store_true", help="every letter the filters select")
    acting.add_argument("--dry-run", action="store_true", help=f"only show what would be {DONE[verb]}")
    return acting


def _parser(settings: EventSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="base-sync-dlq", description="the events path's dead letters")
    parser.add_argument("--bootstrap", help="bootstrap.servers (default: from the events path's Kafka connection)")
    parser.add_argument("--dlq-topic", default=settings.dlq_topic, help="default: EVENTS_DLQ_TOPIC")
    commands = parser.add_subparsers(dest="command", required=True)
    filters = _filters()
    listing = commands.add_parser("list", parents=[filters], help="show dead letters with their reason and origin")
    listing.add_argument("--format", choices=("table", "jsonl"), default="table")
    listing.add_argument("--include-replayed", action="store_true", help="also the letters a replay sent back")
    replaying = commands.add_parser(
        "replay", parents=[_acting("replay"), filters], help="send dead letters back to their original topic"
    )
    replaying.add_argument(
        "--approve-mass-delete",
        action="store_true",
        help="replay the deletes the mass-delete breaker held (kind MassDeleteHeld) as approved: they delete rows",
    )
    discarding = commands.add_parser(
        "discard",
        parents=[_acting("discard"), filters],
        help="settle dead letters that need no replay (their rows carried over, a poison message)",
    )
    discarding.add_argument("--note", required=True, help="why they need no replay (kept in the marker)")
    discarding.add_argument(
        "--holds-settled",
        action="store_true",
        help="discard held mass deletes (MassDeleteHeld) too: their hold is settled (the batch DAG approved them, "
        "or the hold's Variables were deleted)",
    )
    return parser


def kafka_config(settings: EventSettings, bootstrap: str | None) -> dict:
    """librdkafka settings: --bootstrap, or the extra of the Airflow connection the events DAG uses."""
    if bootstrap:
        return {"bootstrap.servers": bootstrap}
    variable = f"AIRFLOW_CONN_{settings.kafka_conn_id.upper()}"
    # Read as Airflow reads an environment connection, without importing Airflow (JSON form only).
    raw = os.environ.get(variable)
    if not raw:
        raise DeadLetterError(f"no broker: pass --bootstrap, or set {variable} (see README, events path)")
    try:
        extra = json.loads(raw).get("extra") or {}
        extra = json.loads(extra) if isinstance(extra, str) else extra
    except (ValueError, AttributeError) as exc:
        raise DeadLetterError(f"{variable} is not an Airflow connection in JSON form: {exc}") from None
    if "bootstrap.servers" not in extra:
        raise DeadLetterError(f"{variable} has no `bootstrap.servers` in its extra")
    return extra


def _selection(args) -> Selection:
    named = getattr(args, "positions", None) or ()
    malformed = [p for p in named if not re.fullmatch(r"[0-9]+:[0-9]+", p)]
    if malformed:
        raise DeadLetterError(f"not a PARTITION:OFFSET position: {', '.join(malformed)}")
    # As `list` writes them: 0:01 is 0:1.
    positions = frozenset(":".join(str(int(part)) for part in p.split(":")) for p in named)
    return Selection(
        positions=positions,
        topic=args.topic,
        kind=args.kind,
        reason=args.reason,
        # The key's bytes as given (a shell passes any; os.fsencode undoes Python's surrogate escapes).
        key=os.fsencode(args.key) if args.key is not None else None,
        include_replayed=getattr(args, "include_replayed", False),
    )


def _one_topic_per_key(letters: list[DeadLetter], selection: Selection) -> None:
    """A row's key names a row of one table: `--key 7` matches employee 7's and article 7's letters
    alike, and a replay of both (an approval of held deletes, say) would act on rows not meant."""
    matched = sorted({letter.topic for letter in letters})
    if selection.key is not None and selection.topic is None and len(matched) > 1:
        raise DeadLetterError(
            f"--key {os.fsdecode(selection.key)} matches letters of {len(matched)} topics ({', '.join(matched)}): "
            "add --topic TOPIC to replay one's (`list --key` shows them all)"
        )


def _print(letters: list[DeadLetter], format_: str) -> None:
    if format_ == "jsonl":
        for letter in letters:
            sys.stdout.write(orjson.dumps(letter.to_json()).decode() + "\n")
        return
    folded = sum(len(letter.duplicates) for letter in letters)
    if folded:
        print(
            f"{folded} letters written again (a run that died after writing them, before its commit) are shown once, "
            "with the first of their source's",
            file=sys.stderr,
        )
    rows = [("DLQ", "FROM", "KIND", "KEY", "STATE", "REASON")]
    for letter in letters:
        key = str(letter.row_key if letter.row_key is not None else letter.to_json()["key"])
        key = key if len(key) <= KEY_WIDTH else key[: KEY_WIDTH - 1] + "…"
        reason = letter.reason if len(letter.reason) <= REASON_WIDTH else letter.reason[: REASON_WIDTH - 1] + "…"
        state = "discarded" if letter.discarded else "replayed" if letter.replayed else "new"
        state = f"retry of {letter.retry_of}" if state == "new" and letter.retry_of else state
        rows.append((letter.position, letter.source, letter.kind, str(key), state, reason))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[5])


def _print_done(letters: list[DeadLetter], command: str, dry_run: bool) -> None:
    """The letters a `replay` or `discard` acted on (the table), then what was done to how many (stderr)."""
    _print(letters, "table")
    print(f"{f'would {command}' if dry_run else DONE[command]} {len(letters)} dead letters", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = EventSettings()
    except InvalidSettings as error:
        print(f"base-sync-dlq: {error}", file=sys.stderr)
        return 2
    args = _parser(settings).parse_args(argv)
    # librdkafka logs every failed connection attempt to stderr (some 200 lines while a call waits
    # on a broker that is down): keep its errors for the one line this command prints instead.
    broker_errors: list = []
    try:
        config = {**kafka_config(settings, args.bootstrap), "log_level": 0, "error_cb": broker_errors.append}
        selection = _selection(args)
        if args.command != "list" and not (selection.positions or args.all):
            raise DeadLetterError(f"name the letters to {args.command} (PARTITION:OFFSET ...) or pass --all")
        letters = dead_letters.read(config, args.dlq_topic, selection)
        if args.command != "list":
            _one_topic_per_key(letters, selection)
        if args.command == "list":
            try:
                _print(letters, args.format)
                sys.stdout.flush()  # here, not at exit, where a closed pipe would print a traceback
            except BrokenPipeError:  # `| head` closed the pipe: the reader has what it wanted
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        missing = selection.positions - {p for letter in letters for p in (letter.position, *letter.duplicates)}
        if missing:
            raise DeadLetterError(f"no dead letter at {', '.join(sorted(missing))} that matches the filters")
        if not letters:
            print(f"nothing to {args.command}: no dead letter matches", file=sys.stderr)
            return 1
        producer = dead_letters.replay_producer(config)
        if args.command == "discard":
            dead_letters.discard(producer, args.dlq_topic, letters, args.note, args.holds_settled, args.dry_run)
            _print_done(letters, args.command, args.dry_run)
            return 0
        dead_letters.replay(producer, args.dlq_topic, letters, args.approve_mass_delete, dry_run=args.dry_run)
        _print_done(letters, args.command, args.dry_run)
        held = len(dead_letters.held_deletes(letters))
        if held:
            approval = "approved" if args.approve_mass_delete else "needing --approve-mass-delete"
            print(f"of them {held} held mass deletes, {approval}", file=sys.stderr)
        return 0
    except DeadLetterError as error:
        print(f"base-sync-dlq: {error}", file=sys.stderr)
        return 2
    except KafkaException as error:
        seen = list(dict.fromkeys(e.str() for e in broker_errors))[:2]  # the first cause, then what followed
        cause = f" (the broker connection: {'; '.join(seen)})" if seen else ""
        reason = error.args[0] if error.args else error
        print(f"base-sync-dlq: {getattr(reason, 'str', reason.__str__)()}{cause}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
