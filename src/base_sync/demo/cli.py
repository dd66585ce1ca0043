"""`base-a`: Base A for demos, tests and benchmarks.

base-a init                       create the tables (BASE_A_URL, default var/base_a.sqlite)
base-a seed employees 1000000     add realistic rows
base-a churn employees --updates 10000 --inserts 100 --deletes 50
base-a churn employees --updates 10 --publish 127.0.0.1:9092   ... and publish their change events
base-a churn employees --updates 5 --publish 127.0.0.1:9092 --every 30   ... again every 30 s (event maker)
base-a count employees            rows in Base A (the live rows of the entity's mapped table)
base-a summary http://127.0.0.1:5000   rows in Base A beside the synced rows in Base B
base-a check [employees ...]      the mapping (BASE_A_MAPPING_FILE) against the live tables; exit 1 on problems
base-a install-delete-log [employees ...]   opt in: delete_log, delete and key-change triggers on the mapped tables

`init`, `seed` and `churn` write (the demo's own Base A); `install-delete-log` is the only command
that runs DDL on a Base A the platform did not create, and only when called. `count`, `summary` and
`check` open read-only sessions (the server refuses any write) and never create anything.

With BASE_A_MAPPING_FILE naming a mapping of the legacy demo's tables (mappings/demo.yaml, what
`make up` sets), `init`, `seed` and `churn` write those tables instead (base_sync.demo.legacy).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import sys
import threading
import time

from sqlalchemy import inspect, make_url
from sqlalchemy.exc import OperationalError

from base_sync.api_client import BaseBApi
from base_sync.backends import backend_for_url
from base_sync.delete_log_triggers import OUTDATED, STALE, DeleteLogState, outdated_remedy, stale_remedy
from base_sync.delete_log_triggers import state as trigger_state
from base_sync.demo import event_maker, generate, legacy
from base_sync.errors import ApiError, TerminalError
from base_sync.mapping import MappingError, SourceMapping
from base_sync.mapping.cascades import cascade_warnings
from base_sync.mapping.check import check_source, render
from base_sync.source import ENTITY_NAMES, BaseA, source_engine
from base_sync.source_schema import create_schema, install_delete_log

log = logging.getLogger("base-a")
DEFAULT_URL = "sqlite:///var/base_a.sqlite"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="base-a", description="Base A for demos, tests and benchmarks")
    parser.add_argument("--url", default=os.environ.get("BASE_A_URL", DEFAULT_URL), help="SQLAlchemy URL of Base A")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable data")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the tables")
    seeding = commands.add_parser("seed", help="add rows")
    seeding.add_argument("entity", choices=ENTITY_NAMES)
    seeding.add_argument("count", type=int)
    churning = commands.add_parser("churn", help="random updates, inserts and deletes")
    churning.add_argument("entity", choices=ENTITY_NAMES)
    for option in ("updates", "inserts", "deletes"):
        churning.add_argument(f"--{option}", type=int, default=0)
    churning.add_argument("--soft-deletes", type=int, default=0, help="legacy demo: rows flagged deleted (aktiv = 0)")
    churning.add_argument(
        "--publish",
        metavar="BOOTSTRAP",
        help="also publish the changes as Debezium events to this Kafka (for a Base A without a binlog)",
    )
    churning.add_argument("--topic-prefix", default=os.environ.get("EVENTS_TOPIC_PREFIX", "base_a"))
    churning.add_argument(
        "--every", type=float, default=0, metavar="SECONDS", help="repeat every SECONDS until stopped"
    )
    counting = commands.add_parser("count", help="rows in Base A")
    counting.add_argument("entity", choices=ENTITY_NAMES)
    summary = commands.add_parser("summary", help="rows in Base A and synced rows in Base B")
    summary.add_argument("api_url")
    checking = commands.add_parser("check", help="the mapping against the live tables (read-only)")
    checking.add_argument("entities", nargs="*", type=_entity_name, metavar="ENTITY")
    installing = commands.add_parser(
        "install-delete-log",
        help="opt in: create delete_log, and on each mapped table an AFTER DELETE trigger and one logging a key change",
    )
    installing.add_argument("entities", nargs="*", type=_entity_name, metavar="ENTITY")
    for command in (counting, summary, checking, installing):
        command.add_argument("--mapping", help="the mapping file (default: BASE_A_MAPPING_FILE; unset: identity)")
    return parser


def _entity_name(name: str) -> str:
    """An ENTITY argument of `nargs="*"`: argparse checks its empty default against `choices` too, so
    `choices=[[], ...]` listed `[]` among the entities in its message (outside probe)."""
    if name not in ENTITY_NAMES:
        choices = ", ".join(repr(e) for e in ENTITY_NAMES)
        raise argparse.ArgumentTypeError(f"invalid choice: {name!r} (choose from {choices})")
    return name


def _mapped(mapping: SourceMapping, entities: list[str]) -> list[str]:
    """The ENTITY arguments, each one the mapping maps (all it maps when none is given): `check
    employees` on a file mapping only articles checked nothing and said ok (outside probe)."""
    unmapped = [e for e in entities if e not in mapping.entities]
    if unmapped:
        names = ", ".join(repr(e) for e in unmapped)
        one = len(unmapped) == 1
        raise MappingError(
            f"{mapping.where('entities')}: {'entity' if one else 'entities'} {names} {'is' if one else 'are'} "
            f"not mapped, so nothing would be done for {'it' if one else 'them'} "
            f"(mapped: {', '.join(mapping.entities) or 'none'})"
        )
    return entities or list(mapping.entities)


READ_COMMANDS = ("count", "summary", "check")
DEMO_COMMANDS = ("init", "seed", "churn")  # write the demo's own tables (`_demo`)


def _mapping(args) -> SourceMapping:
    return SourceMapping.from_file(args.mapping) if args.mapping else SourceMapping.from_settings()


def _demo(args):
    """The tables `init`, `seed` and `churn` write: the legacy demo's when the mapping maps them."""
    mapping = SourceMapping.from_settings()
    if legacy.in_use(mapping):
        return legacy
    if not mapping.is_identity:
        tables = ", ".join(legacy.TABLES.values())
        raise SystemExit(f"{mapping.origin} maps tables other than the demo's ({tables}): base-a cannot write them")
    if getattr(args, "soft_deletes", 0):
        raise SystemExit("--soft-deletes needs the legacy demo (BASE_A_MAPPING_FILE=mappings/demo.yaml)")
    return generate


def _refuse_identity_writes_to_the_legacy_demo(engine, demo) -> None:
    """Without its mapping, `base-a` would add the platform's own tables to the legacy demo's Base A
    and change those, which no sync reads: a user who forgot the environment believes data changed."""
    if demo is generate and any(inspect(engine).has_table(t) for t in legacy.TABLES.values()):
        engine.dispose()
        tables = ", ".join(legacy.TABLES.values())
        raise SystemExit(
            f"this Base A holds the legacy demo's tables ({tables}) but no mapping is set: set "
            "BASE_A_MAPPING_FILE=mappings/demo.yaml (`source scripts/airflow-env.sh` sets it, as make up does)"
        )


def _refuse_churn_without_its_table(args, demo, backend) -> None:
    """`churn` changes rows that `init` and `seed` made: on a Base A without the entity's table (a
    wrong BASE_A_URL or PLATFORM_VAR) it made an empty SQLite file, changed nothing and said so as
    if it had worked. Asked read-only, so nothing is created."""
    table = legacy.TABLES[args.entity] if demo is legacy else args.entity
    engine = backend.make_read_only_engine(args.url)
    try:
        _refuse_identity_writes_to_the_legacy_demo(engine, demo)  # the more telling reason, first
        present = inspect(engine).has_table(table)
    finally:
        engine.dispose()
    if not present:
        raise SystemExit(
            f"base-a churn: Base A at {_shown(args.url)} has no table {table}: point BASE_A_URL (or "
            "PLATFORM_VAR, for make up's Base A) at the Base A to change, or run base-a init and seed first"
        )


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _open(args):
    """Base A's engine for the command, and the demo's writer (`_demo`) for init, seed and churn."""
    backend = backend_for_url(args.url)
    if args.command in READ_COMMANDS:
        return backend.make_read_only_engine(args.url), None
    # install-delete-log writes the tables of the mapping (--mapping or BASE_A_MAPPING_FILE), on any Base A.
    demo = _demo(args) if args.command in DEMO_COMMANDS else None
    if args.command == "churn":
        _refuse_churn_without_its_table(args, demo, backend)
    backend.prepare(args.url)
    engine = source_engine(args.url)
    if demo is not None:
        _refuse_identity_writes_to_the_legacy_demo(engine, demo)
    return engine, demo


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except OperationalError as error:
        # Base A not there or not answering (a SQLite file that does not exist, a server away): one
        # line with the driver's reason, not SQLAlchemy's traceback.
        _say(f"base-a {args.command}", f"Base A at {_shown(args.url)}: {error.orig}")
        return 1


def _run(args) -> int:
    engine, demo = _open(args)
    started = time.perf_counter()
    try:
        if args.command == "init":
            legacy.create(engine) if demo is legacy else create_schema(engine)
            log.info("Base A tables ready at %s", engine.url.render_as_string(hide_password=True))
        elif args.command == "seed":
            added = demo.seed(engine, args.entity, args.count, args.seed)
            elapsed = time.perf_counter() - started
            log.info("added %d %s in %.1f s (%.0f rows/s)", added, args.entity, elapsed, added / max(elapsed, 1e-9))
        elif args.command == "churn":
            _churn(engine, args, demo)
        elif args.command == "count":
            print(BaseA(engine, _mapping(args)).key_span(args.entity)[2])
        elif args.command == "check":
            return _check(engine, args)
        elif args.command == "install-delete-log":
            mapping = _mapping(args)
            if mapping.is_identity:  # the platform's own tables: not on the legacy demo's Base A
                _refuse_identity_writes_to_the_legacy_demo(engine, generate)
            installed = install_delete_log(engine, mapping, _mapped(mapping, args.entities))
            log.info("delete log triggers in place: %s", ", ".join(installed))
        else:
            base_a, api = BaseA(engine, _mapping(args)), BaseBApi(args.api_url, None)
            for entity in base_a.mapping.entities:
                synced = sum(count for count, _ in api.key_buckets(entity, 1_000_000_000).values())
                rows = base_a.key_span(entity)[2]
                print(f"  {entity:<10} Base A {rows:>9,} rows   Base B {synced:>9,} synced")
    except (TerminalError, ApiError, event_maker.EventsNotAcknowledged, event_maker.BrokerAway) as error:
        # An invalid mapping (each error at its line), a drifted table, the API away, the broker away or
        # not taking events: the reason, no traceback
        for line in str(error).splitlines() if isinstance(error, MappingError) else [str(error)]:
            _say(f"base-a {args.command}", line)
        return 1
    finally:
        engine.dispose()
    return 0


def _check(engine, args) -> int:
    """Print what each mapped field is made of and any problem; 1 when there is one."""
    mapping = _mapping(args)
    checked = check_source(engine, mapping, backend_for_url(args.url), _mapped(mapping, args.entities))
    print(render(checked, mapping.origin))
    for warning in (w for entity in checked.entities.values() for w in entity.warnings):
        _say("base-a check", f"warning: {warning}", mapping, warning.where)
    found = [entity for entity, result in checked.entities.items() if result.found]
    for warning in cascade_warnings(engine, mapping, backend_for_url(args.url), found):
        entity = warning.partition(":")[0]  # each begins with the entity whose table the key is on
        _say("base-a check", f"warning: {warning}", mapping, ("entities", entity, "table"))
    for problem in checked.problems:
        _say("base-a check", str(problem), mapping, problem.where)
    states = _delete_log_states(engine, mapping, backend_for_url(args.url), found)
    for log_state in (s for s in states if s.status == OUTDATED):  # it works: a warning, not a failure
        where = ("entities", log_state.entity, "table")
        _say("base-a check", f"warning: {log_state.entity}: {outdated_remedy(log_state)}", mapping, where)
    stale = [s for s in states if s.status == STALE]
    for log_state in stale:
        where = ("entities", log_state.entity, "table")
        _say("base-a check", f"{log_state.entity}: {stale_remedy(log_state)}", mapping, where)
    return 1 if checked.problems or stale else 0


def _delete_log_states(engine, mapping, backend, entities: list[str]) -> list[DeleteLogState]:
    """The entities' delete logs as their triggers are now (stale: they no longer match their table;
    outdated: they work, but are not what the install creates now)."""
    with engine.connect() as conn:
        return [trigger_state(conn, backend, mapping, entity) for entity in entities]


_LOCATED = re.compile(r"(?P<where>[^\s:][^:]*:\d+:\d+): (?P<said>.*)", re.DOTALL)


def _say(command: str, message: str, mapping: SourceMapping | None = None, where: tuple = ()) -> None:
    """One line on stderr, in the `file:LINE:COLUMN: message` form editors and CI annotate when it
    concerns a key of a mapping file (`where`, or a mapping error's own prefix): the file first, then
    the command's name and what it says; else the command's name and what it says, as before."""
    located = _LOCATED.match(message)
    if located:
        print(f"{located['where']}: {command}: {located['said']}", file=sys.stderr)
    elif mapping is not None and not mapping.is_identity:
        print(f"{mapping.where(*where)}: {command}: {message}", file=sys.stderr)
    else:
        print(f"{command}: {message}", file=sys.stderr)


def _churn(engine, args, demo) -> None:
    """One round of changes, or one every `--every` seconds until SIGTERM/SIGINT, which ends the
    current round first: a change made in Base A is never left without its event. With --publish,
    one event maker (one producer, Base A reflected once) makes every round."""
    stopping = threading.Event()
    if args.every:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
    rng_seed = args.seed
    with _publisher(engine, args) as maker:
        while not stopping.is_set():
            started = time.perf_counter()
            changes = (args.updates, args.inserts, args.deletes, rng_seed)
            if maker is not None:
                done = maker.round(*changes, args.soft_deletes)
            elif demo is legacy:
                done = legacy.churn(engine, args.entity, *changes, args.soft_deletes)
            else:
                done = generate.churn(engine, args.entity, *changes)
            log.info("%s: %s in %.1f s", args.entity, done, time.perf_counter() - started)
            if not args.every:
                return
            rng_seed = None if rng_seed is None else rng_seed + 1  # a seeded run repeats, but not the same keys
            stopping.wait(args.every)


def _publisher(engine, args):
    """The event maker of `churn --publish` (a context: closed at the end), else nothing."""
    if not args.publish:
        return contextlib.nullcontext()
    return event_maker.EventMaker(engine, args.entity, args.publish, args.topic_prefix)


if __name__ == "__main__":
    sys.exit(main())
