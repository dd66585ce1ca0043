"""The steps of one entity's batch sync: load, verify (and repair), propagate deletes, commit.

Each step is a plain function over a Base A reader, the API client and a state store; the DAG
calls one step per task and passes the `LoadReport` between them; each step returns a typed
result (`base_sync.reports`) that the DAG stores as JSON.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from base_sync import column_changes, put_back, rejected_rows
from base_sync.api_client import BaseBApi
from base_sync.delete_guard import (
    ANY_NUMBER,
    DELETE_LOG,
    KEY_COMPARISON,
    LEFT_SCOPE,
    Allowance,
    DeleteBudget,
    DeletePlan,
    MassDeleteBlocked,
    PlannedDeletes,
)
from base_sync.delete_log_triggers import ABSENT, IN_PLACE, OUTDATED, STALE, UNSEEN, DeleteLogState, outdated_remedy
from base_sync.errors import TerminalError
from base_sync.key_ranges import KeyRange
from base_sync.load import concat_chunks, push_chunks
from base_sync.mapping import SourceView
from base_sync.rejected_rows import Resent
from base_sync.reports import (
    DeleteCounts,
    DeleteReport,
    KeyComparison,
    LoadReport,
    LoggedDeletes,
    ReplayReport,
    RunMark,
    VerifyResult,
)
from base_sync.settings import SyncSettings
from base_sync.shared_keys import held_in_base_b
from base_sync.source import BaseA, Cursor, Reach
from base_sync.state import StateStore, refuse_ahead
from baseab_contract.bulk_format import REPLACES_VERSION, SOURCE_ID, UNIQUE_TAKEN
from baseab_contract.entities import ENTITIES

log = logging.getLogger(__name__)
A = TypeVar("A")
B = TypeVar("B")


class VerificationError(TerminalError):
    """Base B does not hold what Base A holds in the synced window: the watermark must not move.

    Terminal: repeating the check finds the same difference; the next run re-reads the window."""


MAPPING_DIGEST = "mapping_digest"  # in the committed stats: the mapping Base B's rows were made with
COLUMN_DEFINITIONS = column_changes.COLUMN_DEFINITIONS  # and the definitions of the columns it read
BASE_B_MARK = "base_b_mark"  # in the committed stats: the token the commit left in Base B (`base_b_went_back`)


def refresh_wanted(entity: str, base_a: BaseA, store: StateStore, asked: bool) -> bool:
    """Whether this run re-reads every row: asked (`full_refresh`), or the entity's mapping changed
    since the last commit, or is not known (a commit by an older version of the platform, which
    recorded none, or a watermark written by hand without its stats), or the live definition of a
    column it reads changed (`column_changes`). Found from outside: a changed value map reached only
    the rows changed afterwards, and verify (keys and versions) passed with the others still mapped
    the old way; a mapping changed with the upgrade to the version recording it was never applied;
    an ALTER rounding a DECIMAL column rewrote every row of Base A, and Base B kept the old values
    for good."""
    stats = store.last_stats(entity)
    recorded = stats.get(MAPPING_DIGEST)
    if asked:
        return True
    if recorded != base_a.mapping.digest(entity):
        return _mapping_changed(entity, base_a, store, recorded)
    return _definitions_changed(entity, base_a, stats.get(COLUMN_DEFINITIONS))


def _mapping_changed(entity: str, base_a: BaseA, store: StateStore, recorded: str | None) -> bool:
    if recorded is None:
        if store.get(entity) is None:
            return False  # a first load: it reads every row anyway
        log.warning(
            "%s: the last commit recorded no mapping digest (an older version of the platform made it, or %s "
            "was reset or written by hand without the stats the sync keeps with the watermark): this run re-reads "
            "every row once (a full refresh), as the mapping may have changed since; to set the watermark back, "
            "change only its watermark and keep the stats (README, 'Running a sync by hand')",
            entity,
            store.name(entity),
        )
        return True
    log.warning(
        "%s: its mapping changed since the last commit (%s, now %s): this run re-reads every row (a full refresh)",
        entity,
        recorded,
        base_a.mapping.digest(entity),
    )
    return True


def _definitions_changed(entity: str, base_a: BaseA, recorded: dict[str, str] | None) -> bool:
    checked = base_a.require_schema(entity)  # the task's schema check: no catalogue read of its own
    if recorded is None:
        # Committed by a version of the platform that recorded no definitions: this run's commit
        # records them. No full refresh: an upgrade must not re-read every entity at once (an ALTER
        # made before it stays unseen: README, "Upgrades and rollbacks").
        log.info(
            "%s: the last commit recorded no column definitions (an older version of the platform made it): "
            "this run records them, without a full refresh",
            entity,
        )
        return False
    changed = column_changes.changes(checked.table, recorded, checked.definitions)
    if not changed:
        return False
    log.warning(
        "%s: the definition of a column the mapping reads changed since the last commit (%s): an ALTER may have "
        "rewritten its stored values without touching the cursor, which neither the window nor the key "
        "comparison sees: this run re-reads every row (a full refresh)",
        entity,
        "; ".join(changed),
    )
    return True


def read_with(entity: str, base_a: BaseA) -> dict:
    """What the load reads with, for its commit to record (`refresh_wanted` compares the next run's
    with it): the mapping's digest and the definitions of the columns it reads, as the task's schema
    check read them, before the first row."""
    return {
        MAPPING_DIGEST: base_a.mapping.digest(entity),
        COLUMN_DEFINITIONS: base_a.require_schema(entity).definitions,
    }


def load(
    entity: str, base_a: BaseA, api: BaseBApi, store: StateStore, settings: SyncSettings, full_refresh: bool = False
) -> LoadReport:
    """Stream the rows changed since the watermark (all rows on a full refresh) to the bulk endpoint."""
    if not base_a.view(entity).has_cursor:  # no cursor: the buckets whose checksum changed
        from base_sync import checksummed

        return checksummed.load(entity, base_a, api, store, settings, full_refresh)
    started = time.perf_counter()
    previous = store.get(entity)
    clock = base_a.now()
    refuse_ahead(store, entity, previous, clock)
    since = None
    if previous is not None and not full_refresh:
        since = _looking_back(previous, settings, base_a.view(entity))
    reach = Reach()
    log.info("%s: extracting after %s%s", entity, since or "the start", " (full refresh)" if full_refresh else "")
    counts = push_chunks(
        api,
        entity,
        concat_chunks(
            base_a.unversioned(entity, settings.chunk_size, unreal=since is None),
            base_a.extract(entity, since, settings.chunk_size),
        ),
        settings.push_concurrency,
        on_chunk=progress(entity, reach),
    )
    until = reach.cursor
    report = LoadReport(entity, previous, since, until, clock, counts, time.perf_counter() - started)
    log.info("%s: loaded %s in %.2f s", entity, dict(counts), report.seconds)
    return report


def progress(entity: str, reach: Reach, part: str = "") -> Callable[[list], None]:
    """A load's `on_chunk`: follows how far the read reached (`reach`) and logs one line per chunk,
    the progress an operator watches in the task log; `part` names the part of the load that reads
    (a partition's " (partition 2/4)")."""
    read = 0

    def track(records: list) -> None:
        nonlocal read
        # The highest row with a usable version: a dirty row (base_sync.dirty) has no position.
        reach.add(records)
        read += len(records)
        # Only dirty rows without a usable version so far: the window has no position yet.
        reaches = (
            f"the window reaches {reach.cursor}" if reach.cursor is not None else "no row with a usable version yet"
        )
        log.info("%s%s: read %d rows (%d so far), %s", entity, part, len(records), read, reaches)

    return track


def verify(
    entity: str, base_a: BaseA, api: BaseBApi, report: LoadReport, settings: SyncSettings, keys: KeyRange | None = None
) -> VerifyResult:
    """Compare the window (within `keys`, for a partition) on both sides; re-send what Base B lacks;
    fail if it still differs.

    The checksums usually agree. When they do not, a key-by-key comparison of the window sorts
    the differences: a row Base A holds in the window but Base B lacks (or holds older) is re-sent
    (a late commit, or a lost write); one Base B holds newer is counted `ahead` with its key;
    a row Base B holds in the window that Base A no longer has there has moved on (changed again or
    deleted since the extract) and the next run takes it.
    """
    if report.scan is not None:  # a table without a cursor: its re-sent buckets
        from base_sync import checksummed

        return checksummed.verify(entity, base_a, api, report, settings)
    if report.until is None:
        return VerifyResult()
    ours, theirs = _both(
        lambda: base_a.window_digest(entity, report.since, report.until, keys),
        lambda: api.window_digest(entity, report.since, report.until, keys),
    )
    if ours.count == theirs["count"] and ours.hexdigest == theirs["digest"]:
        log.info("%s: verified %d rows in the window, checksums agree", entity, ours.count)
        return VerifyResult(rows=ours.count)

    log.warning(
        "%s: window differs (Base A %d rows, Base B %d): comparing key by key", entity, ours.count, theirs["count"]
    )
    missing, moved_on, newer = _compare_window(entity, base_a, api, report, keys)
    _log_ahead(entity, newer)  # not re-sent (a re-send is answered `stale`), not counted against the limit
    repaired, ahead, quarantined = repair(
        entity,
        base_a,
        api,
        settings,
        missing,
        lambda: _differing(_compare_window(entity, base_a, api, report, keys)),
        "of the window",
        "the watermark stays",
        held_newer=frozenset(newer),
    )
    return VerifyResult(
        rows=ours.count, repaired=repaired, ahead=ahead + len(newer), moved_on=moved_on, quarantined=quarantined
    )


REPAIR_ROUNDS = 3


def repair(
    entity: str,
    base_a: BaseA,
    api: BaseBApi,
    settings: SyncSettings,
    missing: list[int],
    still_missing: Callable[[], list[int]],
    where: str,
    then: str,
    held_newer: frozenset[int] = frozenset(),
) -> tuple[int, int, int]:
    """Re-send the rows Base B lacks there, or holds at another version (`missing`; `held_newer`: rows
    it held newer at the first comparison, which the caller counts, neither re-sent nor judged), except those in
    quarantine, and check again with `still_missing`; (repaired, ahead, quarantined). More than
    SYNC_REPAIR_LIMIT, or re-sent rows still missing that Base B does not hold newer, fail the step.

    Each comparison sees Base A and Base B a moment apart: under Base A's writes (the events path
    applying them) a row changed between its two reads differs for that moment. So the comparison
    after a re-send judges only the re-sent rows; rows that differ in it for the first time are
    re-sent and compared in the next round (a row Base B lost meanwhile is mended, a row that moved
    on is harmless to send), up to REPAIR_ROUNDS rounds; those found by the last one are logged with
    their keys, not judged."""
    quarantined = _open_rejections(api, entity) if missing else set()
    to_repair = [key for key in missing if key not in quarantined]
    resent, sending, still = set(), to_repair, []
    for attempt in range(1, REPAIR_ROUNDS + 1):
        if not sending:
            break
        if len(resent | set(sending)) > settings.repair_limit:
            raise VerificationError(
                f"{entity}: {len(resent | set(sending))} rows {where} are missing in Base B or held at another "
                f"version (more than SYNC_REPAIR_LIMIT={settings.repair_limit}); {then}, the next run re-sends them"
            )
        # Read now, after Base B's tombstones: a row deleted and restored in Base A under the same
        # stamp comes back (restore_ties=True), where a plain write would lose the tie to its tombstone.
        rows = base_a.records_by_keys(entity, sending, settings.chunk_size)
        counts = push_chunks(api, entity, rows, settings.push_concurrency, restore_ties=True)
        log.warning(
            "%s: re-sent %d rows %s that Base B lacked there or held at another version: %s",
            entity,
            len(sending),
            where,
            dict(counts),
        )
        resent |= set(sending)
        rejected_now = _open_rejections(api, entity)
        # Rows Base B held newer before any re-send are counted by the caller, not re-sent; a re-sent row
        # Base B holds newer now stays in `still`, where its `stale` answer explains it.
        differ = [key for key in still_missing() if key not in rejected_now and key not in held_newer]
        still = [key for key in differ if key in resent]
        new = [key for key in differ if key not in resent]
        # A re-sent row answered `stale` is one Base B holds newer (the events path was first): fine.
        settled = len(still) <= counts["stale"]
        if settled and not new:
            break
        if attempt == REPAIR_ROUNDS:
            if not settled:
                raise VerificationError(
                    f"{entity}: {len(still)} rows still differ after {attempt} re-sends, e.g. {still[:10]}"
                )
            log.warning(
                "%s: %d rows %s differ for the first time in the last comparison, e.g. %s: changed in Base A while "
                "it was compared, most likely; not judged (the next run reads those that changed)",
                entity,
                len(new),
                where,
                new[:10],
            )
            break
        sending = still + new  # the rows held newer again too: each round's `stale` answers count them
    ahead = len(still)
    _log_ahead(entity, still)
    # Repaired: what the first comparison found missing; later rounds' rows were mostly moving on.
    return len(to_repair) - ahead, ahead, len(missing) - len(to_repair)


def _differing(compared: tuple[list[int], int, list[int]]) -> list[int]:
    """Every key of a window comparison whose row differs: missing, held older or held newer."""
    missing, _, newer = compared
    return sorted(missing + newer)


def _log_ahead(entity: str, keys: list[int]) -> None:
    if keys:
        log.warning(
            "%s: %d rows Base B holds newer than Base A (ahead, not missing: the events path wrote a later "
            "version first, or Base A's stamp went back, which the periodic comparison of versions writes as "
            "Base A holds it): keys %s%s",
            entity,
            len(keys),
            ", ".join(map(str, keys[:10])),
            ", ..." if len(keys) > 10 else "",
        )


def _looking_back(position: Cursor, settings: SyncSettings, view: SourceView | None = None) -> Cursor:
    """Where a read after `position` starts: SYNC_LOOKBACK_SECONDS earlier, for late commits; with
    the entity's `view`, from the start of a daylight-saving change's repeated hour while the
    look-back reaches into it or its second pass (a row written then is read up to an hour back).

    The look-back is taken first: a commit within it may be stamped in the second pass although
    the position lies past it (a row stamped 02:59:30 CET committing after 03:00:05 CET)."""
    back = position.updated_at - timedelta(seconds=settings.lookback_seconds)
    start = view.read_back_from(back) if view is not None else back
    if start == position.updated_at:
        return position
    return Cursor(start, 0)


def _both(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """Run two reads of different databases at once; the first starts first."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = pool.submit(first)
        other = second()
        return started.result(), other


def _open_rejections(api: BaseBApi, entity: str) -> set[int]:
    return {r["source_id"] for r in api.open_rejections(entity)}


def _compare_window(
    entity: str, base_a: BaseA, api: BaseBApi, report: LoadReport, keys: KeyRange | None
) -> tuple[list[int], int, list[int]]:
    """Merge both sides' (key, version) lists of the window, both sorted by key: (missing in Base B
    or held older, count moved on, held newer). A key Base A holds
    more than once (a table whose mapped key is not unique) is the load's quarantine (`shared_keys`);
    one that is not quarantined fails verification: its rows would overwrite each other in Base B."""
    ours = _unique_keys(entity, base_a, api, base_a.window_versions(entity, report.since, report.until, keys))
    theirs = api.window_versions(entity, report.since, report.until, keys)
    missing: list[int] = []
    newer: list[int] = []
    moved_on = 0
    a, b = next(ours, None), next(theirs, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            missing.append(a[0])  # only Base A has it in the window
            a = next(ours, None)
        elif a is None or b[0] < a[0]:
            moved_on += 1  # only Base B has it in the window: changed again or deleted in Base A
            b = next(theirs, None)
        else:
            # Older is a lost write. Newer (Base A's stamp went back: Base A restored, a zone or offset
            # error) was passed silently: counted `ahead` with its key now, never re-sent (a re-send
            # is answered `stale`); the periodic comparison of versions writes it as Base A holds it.
            if b[1] < a[1]:
                missing.append(a[0])
            elif b[1] > a[1]:
                newer.append(a[0])
            a, b = next(ours, None), next(theirs, None)
    return missing, moved_on, newer


def _unique_keys(
    entity: str, base_a: BaseA, api: BaseBApi, versions: Iterator[tuple[int, datetime]]
) -> Iterator[tuple[int, datetime]]:
    """The (key, version) pairs, sorted by key, as they come, a key seen twice once when it is an open
    rejection (the load quarantined its rows: `shared_keys`, which the repair leaves there), else
    `VerificationError` (rows sharing it since the load read them: the next run quarantines them)."""
    previous, rejected = None, None
    for pair in versions:
        if previous is not None and pair[0] == previous:
            rejected = _open_rejections(api, entity) if rejected is None else rejected
            if pair[0] in rejected:
                continue
            key = base_a.view(entity).spec.key
            raise VerificationError(
                f"{entity}: Base A holds the key {key} = {pair[0]} in more than one row: the mapping's key must be "
                f"unique (a PRIMARY KEY or UNIQUE column), or the rows overwrite each other in Base B and all but one "
                f"are lost; the watermark stays"
            )
        previous = pair[0]
        yield pair


@dataclass
class _Found:
    """The first pass of a run's deletes (no writes): the plan, the records held, what the next run needs."""

    plan: DeletePlan
    planned: PlannedDeletes
    position: Cursor | None  # the committed delete log position the run started from
    reached: Cursor | None  # the log position the found entries reach (None: no delete log)
    log_read: int
    first_run: bool
    compared_at: str | None
    buckets: int | None = None  # key comparison: Base B's buckets and those that differ
    suspects: list[int] = field(default_factory=list)
    versions: bool = False  # the key comparison compared versions too: the rows behind are re-sent
    left_since: Cursor | None = None  # where the rows that left the mapping's scope were read from
    held_newer: list[HeldNewer] = field(default_factory=list)  # deletes that lose to a newer row


@dataclass(frozen=True)
class HeldNewer:
    """A delete found (log, left scope) that Base B does not apply: it holds the live row newer."""

    source: str
    key: int
    held: datetime  # the version Base B holds
    delete: str  # the delete's version, as sent


def plan_deletes(
    entity: str,
    base_a: BaseA,
    api: BaseBApi,
    store: StateStore,
    settings: SyncSettings,
    compare_keys: bool = False,
    run_mark: RunMark | None = None,
    approved_by_param: bool = False,
) -> DeletePlan:
    """What `propagate_deletes` would delete now, against the circuit breaker's budget; writes nothing.
    Logs the count once, ending with what follows: within the budget, approved already by the run's
    `approve_mass_delete` param (`approved_by_param`), or blocked until an operator approves."""
    # The versions find no delete: the plan compares keys only (propagate_deletes compares both).
    plan = _find_deletes(entity, base_a, api, store, settings, compare_keys, run_mark, versions=False).plan
    if plan.within_budget:
        log.info("%s", plan.message)
    elif approved_by_param:
        why = plan.why_asked.capitalize()
        log.warning("%s. %s, approved by this run's approve_mass_delete param", plan.summary, why)
    else:
        log.warning("%s", plan.message)
    return plan


def propagate_deletes(
    entity: str,
    base_a: BaseA,
    api: BaseBApi,
    store: StateStore,
    settings: SyncSettings,
    compare_keys: bool = False,
    approved: int | None = None,
    run_mark: RunMark | None = None,
) -> DeleteReport:
    """Delete in Base B the synced rows Base A no longer has, unless they are too many.

    Base A's delete log names the keys deleted since the last committed position (less the
    look-back), so a run's cost follows its deletes. Every key of both sides is compared as well
    on the first run, when asked (`compare_keys`, a full refresh), when the last comparison is
    older than SYNC_KEY_CHECK_HOURS, and on every run while the entity's delete trigger is missing:
    it finds what the log cannot show (deletes from before the trigger, or with it dropped), and
    sends the keys Base A holds that Base B lacks (a key changed with its cursor left as it was).
    Deleting is idempotent, so re-reading a stretch of the log changes nothing.

    The circuit breaker (`base_sync.delete_guard`): every delete is found and counted before any is
    sent. More than the budget (SYNC_MASS_DELETE_SHARE of Base B's synced rows, at least
    SYNC_MASS_DELETE_MIN_ROWS) raises `MassDeleteBlocked` with nothing deleted, unless `approved`
    allows that many (`delete_guard.ANY_NUMBER`: any number). Log entries the look-back reads again
    (at or before the committed position: an earlier run sent them) are sent but not counted.

    `run_mark`: what the run's `mark_run` found (whether Base B went back); without it, Base B's
    sync mark is read here and compared with the last commit's.
    """
    found = _find_deletes(entity, base_a, api, store, settings, compare_keys, run_mark)
    plan = found.plan
    if not plan.allowed(approved):
        detail = None
        if approved is not None:
            detail = (
                f"{plan.summary}. More than the {approved} rows approved (the rows answered, plus the limit when "
                "they cover the count asked): "
                f"nothing was deleted. Fewer rows were approved than this run found ({plan.total}), the count grew "
                "since the approval was asked, or the prompt showed an earlier try's count (Airflow keeps a "
                "cleared task's first prompt): clear check_deletes with its downstream tasks and approve with "
                f"the rows field at {plan.total} or more, or trigger a run with approve_mass_delete"
            )
        log.error("%s", detail or plan.message)
        raise MassDeleteBlocked(plan, detail)
    planned = plan.to_json()
    if plan.within_budget:
        log.info("%s", plan.message)
    else:
        upto = "any number of rows" if approved == ANY_NUMBER else f"{approved} rows"
        planned["message"] = f"{plan.summary}. {plan.why_asked.capitalize()}, but approved (up to {upto}): deleting"
        log.warning("%s", planned["message"])
    from_log, comparison, left_scope = _send_found(entity, base_a, api, settings, found, approved)
    if plan.held_by_events and approved is not None:  # the events path's held deletes: approved, deleted here
        store.held_deletes.release(entity, plan.held_by_events)
        log.info(
            "%s: the deletes the events path held are approved and made; their dead letters need no replay", entity
        )
    _warn_held_newer(entity, base_a, found.held_newer)
    if comparison is not None and base_a.view(entity).has_cursor:  # without one, the checksums re-send
        brought = _bring_up_to_date(entity, base_a, api, settings, found.suspects, found.versions)
        comparison = replace(comparison, **brought)
    counts = left_scope
    for part in (from_log, comparison):
        counts = counts + part.counts if part else counts
    freed = _resend_freed_unique_values(entity, base_a, api, settings)  # and closes rejections of gone rows
    report = DeleteReport(
        counts=counts,
        from_log=from_log.read if from_log else 0,
        log_position=from_log.position if from_log else None,
        keys_compared_at=found.compared_at,
        comparison=comparison,
        plan=planned,
        left_scope=left_scope.deleted,
        resent_unique=freed.resent if freed else 0,
        closed_rejections=freed.closed_gone if freed else 0,
        restored=from_log.restored if from_log else 0,
    )
    log.info(
        "%s: deleted %d rows Base A no longer holds or that left the mapping's scope (soft deletes, filter); "
        "%d logged deletes read, %d of them put back in Base A since (their rows sent instead)",
        entity,
        report.deleted,
        report.from_log,
        report.restored,
    )
    return report


def _send_found(
    entity: str, base_a: BaseA, api: BaseBApi, settings: SyncSettings, found: _Found, approved: int | None
) -> tuple[LoggedDeletes | None, KeyComparison | None, DeleteCounts]:
    """Send the deletes found: those held, or (too many to hold) a second pass, each chunk allowed first."""
    reads_log = found.reached is not None and not found.first_run
    from_log: LoggedDeletes | None = None
    comparison: KeyComparison | None = None
    if found.planned.complete:
        if reads_log:
            held = found.planned.from_source(DELETE_LOG)
            counts, restored = DeleteCounts(), 0
            for start in range(0, len(held), settings.chunk_size):
                chunk = put_back.split(base_a, api, entity, held[start : start + settings.chunk_size])
                sent, back = _send_logged(api, base_a, entity, chunk, settings)
                counts, restored = counts + sent, restored + back
            from_log = LoggedDeletes(found.reached, found.log_read, counts, restored)
        if found.buckets is not None:
            counts = _send_gone(api, entity, found.planned.from_source(KEY_COMPARISON), settings.chunk_size)
            comparison = KeyComparison(found.buckets, len(found.suspects), counts)
        left = _send_gone(api, entity, found.planned.from_source(LEFT_SCOPE), settings.chunk_size)
    else:
        allowance = Allowance(found.plan, approved)
        left = DeleteCounts()
        if found.left_since is not None:
            for records in base_a.left_scope_after(
                entity, found.left_since, settings.chunk_size, held_in_base_b(api, entity)
            ):
                allowance.take(LEFT_SCOPE, len(api.would_delete(entity, records)))
                left += _send_gone(api, entity, records, settings.chunk_size)
        if reads_log:
            from_log = _apply_logged_deletes(entity, base_a, api, settings, found.position, allowance)
        if found.buckets is not None:
            counts = _apply_key_comparison(entity, base_a, api, settings, found.suspects, allowance)
            comparison = KeyComparison(found.buckets, len(found.suspects), counts)
    if found.first_run:  # the key comparison covered the past: the log is read from now on
        from_log = LoggedDeletes(found.reached)
    elif from_log is not None:
        _purge_delete_log(entity, base_a, from_log.position, settings)
    return from_log, comparison, left


def _find_deletes(
    entity: str,
    base_a: BaseA,
    api: BaseBApi,
    store: StateStore,
    settings: SyncSettings,
    compare_keys: bool,
    run_mark: RunMark | None = None,
    versions: bool = True,
) -> _Found:
    """Every delete source, read without writing: its deletes counted against the budget, held if
    few. `versions=False`: a key comparison compares no versions, even when due."""
    last = store.last_stats(entity).get("deletes") or {}
    position = Cursor.from_json(last.get("log_position"))
    compared_at = last.get("keys_compared_at")
    log_state = base_a.delete_log_state(entity)
    reason, due = _why_compare_keys(entity, settings, log_state, compare_keys, position, compared_at)
    # The run's own mark is in Base B now: what `mark_run` found before writing it says (no read here).
    went_back = (
        run_mark.went_back
        if run_mark is not None
        else base_b_went_back(entity, api.sync_mark(entity), _last_mark(entity, store))
    )
    if went_back:
        reason, due = (f"{reason}; {went_back}" if reason else went_back), True
    view = base_a.view(entity)
    has_cursor = view.has_cursor
    if reason is None and not has_cursor:
        reason = "no cursor"  # bucket checksums find changes, the key comparison hard and soft deletes
    watermark = store.get(entity)
    # A load from the start (no watermark yet) verified every version in its window already.
    versions = versions and due and has_cursor and watermark is not None
    synced: int | None = None

    def budget_limit() -> int:
        """Past SYNC_MASS_DELETE_MIN_ROWS deletes the limit depends on Base B's synced rows: count them once."""
        nonlocal synced
        if synced is None:
            synced = api.synced_rows(entity)
        return DeleteBudget.of(settings, synced).limit

    # Hold up to the limit and one more, to know it was passed (the limit is known once it matters).
    planned = PlannedDeletes(capacity=settings.mass_delete_min_rows + 1, grow=lambda: budget_limit() + 1)
    reasons: dict[str, str] = {}
    held_newer: list[HeldNewer] = []
    reached, read, first_run = None, 0, False
    # In place, outdated (it works: trusted for what it logs), or hidden from this account while the log
    # is there. Not a stale log: as without one, the
    # key comparison finds every delete, and the position is dropped, so the first run after the triggers
    # are mended compares keys once more (the deletes made before they were, which nothing logged).
    if log_state.status in (IN_PLACE, OUTDATED, UNSEEN):
        if position is None:  # the first run: the key comparison below covers the past
            reached, first_run = Cursor(base_a.now(), 0), True
        else:
            reached, read = _plan_logged(entity, base_a, api, settings, position, planned, held_newer)
            reasons[DELETE_LOG] = f"Base A's delete log after {position}"
    left_since = None if first_run else _left_scope_since(watermark, last, settings, view)
    if left_since is not None:
        for records in base_a.left_scope_after(entity, left_since, settings.chunk_size, held_in_base_b(api, entity)):
            _plan_counting_held(planned, LEFT_SCOPE, records, api, entity, held_newer)
        reasons[LEFT_SCOPE] = f"rows changed after {left_since} that the mapping's soft-delete rule or filter drops"
    buckets, suspects = None, []
    if reason:
        log.info("%s: comparing every key%s (%s)", entity, " and version" if versions else "", reason)
        if versions or not has_cursor or watermark is None:
            compared_at = datetime.now(UTC).isoformat()
        buckets, suspects, synced = _differing_buckets(entity, base_a, api, settings, versions)
        for gone in _gone_in_buckets(entity, base_a, api, settings, suspects):
            planned.add(KEY_COMPARISON, gone)
        reasons[KEY_COMPARISON] = f"keys Base B holds that Base A lacks; compared because: {reason}"
    if planned.total > settings.mass_delete_min_rows:
        budget_limit()
    budget = DeleteBudget.of(settings, synced)
    plan = DeletePlan(
        entity,
        planned.total,
        dict(planned.by_source),
        budget,
        reasons,
        exact=planned.exact,
        held_by_events=store.held_deletes.get(entity),
    )
    return _Found(
        plan,
        planned,
        position,
        reached,
        read,
        first_run,
        compared_at,
        buckets,
        suspects,
        versions,
        left_since,
        held_newer,
    )


def _plan_logged(
    entity: str,
    base_a: BaseA,
    api: BaseBApi,
    settings: SyncSettings,
    position: Cursor,
    planned: PlannedDeletes,
    held_newer: list[HeldNewer],
) -> tuple[Cursor, int]:
    """Plan the delete log's entries after `position`, and those the look-back reads again; (the
    position reached, entries read)."""
    reached, read, chunk = position, 0, settings.chunk_size
    # Entries the look-back reads again: an earlier run sent them, so they are sent, not counted.
    for records, _ in base_a.deletes_after(entity, _looking_back(position, settings), chunk, until=position):
        planned.add(DELETE_LOG, records, counted=False)
        read += len(records)
    for records, position_reached in base_a.deletes_after(entity, position, chunk):
        # A key Base A holds again is no delete to approve (an accidental mass delete undone from a
        # copy): held uncounted, and the send reads Base A again (`put_back`). Unless another row
        # holds it and Base B's copy is the deleted row's: that delete is sent, so counted.
        back = base_a.live_keys_among(entity, [r["source_id"] for r in records], chunk)
        sent = put_back.shared_deletes(base_a, api, entity, [r for r in records if r["source_id"] in back])
        back -= {r["source_id"] for r in sent}
        gone = [r for r in records if r["source_id"] not in back]
        _plan_counting_held(planned, DELETE_LOG, gone, api, entity, held_newer)
        planned.add(DELETE_LOG, [r for r in records if r["source_id"] in back], counted=False)
        read += len(records)
        reached = max(reached, position_reached)
    return reached, read


def _left_scope_since(
    watermark: Cursor | None, last_deletes: dict, settings: SyncSettings, view: SourceView
) -> Cursor | None:
    """Where the rows that left the scope are read from: the watermark less the look-back, or, while
    a run withheld their deletes (`deletes_withheld`), where that run read them, as the watermark moved on."""
    if watermark is None:
        return None
    withheld_after = Cursor.from_json(last_deletes.get("left_scope_after"))
    return _looking_back(min(watermark, withheld_after) if withheld_after else watermark, settings, view)


def _plan_counting_held(
    planned: PlannedDeletes,
    source: str,
    records: list[dict],
    api: BaseBApi,
    entity: str,
    held_newer: list[HeldNewer],
) -> None:
    """Plan the records' deletes, counting only those Base B would apply (a live row, not newer): a
    row it never held (outside the filter from the start, say: another tenant's busy rows, or their
    logged deletes) is no delete to approve. Every record is still sent: a key's tombstone keeps an
    older write of it from arriving later. The live rows Base B holds newer go to `held_newer`."""
    held, newer = api.plan_delete(entity, records)
    sent = {r["source_id"]: r["source_updated_at"] for r in records}
    held_newer += [HeldNewer(source, key, version, sent[key]) for key, version in newer.items()]
    planned.add(source, [r for r in records if r["source_id"] in held])
    planned.add(source, [r for r in records if r["source_id"] not in held], counted=False)


def _warn_held_newer(entity: str, base_a: BaseA, held_newer: list[HeldNewer]) -> None:
    """Deletes Base B did not apply because it holds the live row newer than the delete. Where Base A
    holds the key again (deleted and inserted again, REPLACE, a key reused), the newer row is right:
    logged. Where it does not, the row was above all stamped in the future in Base A (the delete
    log's time, the delete's own, is before it): it stays live in Base B until the key comparison
    deletes it at the version Base B holds, a warning naming the keys."""
    if not held_newer:
        return
    back = base_a.live_keys_among(entity, sorted({h.key for h in held_newer}), chunk_size=1000)
    if back:
        log.info("%s: %d deleted keys are in Base A again since (re-inserted), as Base B holds them", entity, len(back))
    for source in sorted({h.source for h in held_newer if h.key not in back}):
        items = [h for h in held_newer if h.source == source and h.key not in back]
        named = ", ".join(f"{h.key} (Base B holds {h.held.isoformat()}, the delete {h.delete})" for h in items[:10])
        log.warning(
            "%s: %d deletes from %s not applied: Base B holds the rows newer than the delete, and Base A no "
            "longer holds them (a stamp in the future in Base A?): %s%s. They stay live in Base B until the "
            "key comparison (every SYNC_KEY_CHECK_HOURS, or compare_keys) deletes them",
            entity,
            len(items),
            source,
            named,
            ", ..." if len(items) > 10 else "",
        )


def _why_compare_keys(
    entity: str,
    settings: SyncSettings,
    log_state: DeleteLogState,
    asked: bool,
    position: Cursor | None,
    compared_at: str | None,
) -> tuple[str | None, bool]:
    """Why this run compares every key (None: it does not), and whether it compares the versions too:
    when asked, on the first run and once every SYNC_KEY_CHECK_HOURS, the safety net for what the
    window cannot see (a commit later than the run that read its window). Without a delete log in
    place (absent, or stale: its triggers no longer match their table) every run compares keys, the
    versions only as often."""
    if log_state.status in (ABSENT, STALE):
        if log_state.status == ABSENT:
            log.warning("%s: Base A has no delete trigger on this table; every run compares every key", entity)
            why = "no delete log"
        else:
            _warn_stale(log_state)
            why = f"delete log stale: {log_state.reason}"
        due = _comparison_due(settings, asked, compared_at)
        return (f"{why}; {due}" if due else why), due is not None
    if log_state.status == UNSEEN:
        log.warning(
            "%s: this Base A account cannot see triggers (MySQL shows them only with the TRIGGER privilege): "
            "the delete log is trusted, and every key is still compared once every SYNC_KEY_CHECK_HOURS",
            entity,
        )
    if log_state.status == OUTDATED:
        log.warning("%s: %s", entity, outdated_remedy(log_state))
    due = "first run" if position is None and not asked else _comparison_due(settings, asked, compared_at)
    return due, due is not None


def _warn_stale(log_state: DeleteLogState) -> None:
    log.warning(
        "%s: BASE A'S DELETE LOG ON %s IS STALE, not trusted: %s. Every run compares every key until it is "
        "mended, so no delete is missed. A trigger naming a column its table no longer has makes Base A's own "
        "DELETEs (and UPDATEs) on that table fail: run `base-a install-delete-log` (an account allowed to create "
        "triggers) to recreate the triggers from the mapping; `base-a check` names the same",
        log_state.entity,
        log_state.table,
        log_state.reason,
    )


def mark_run(entity: str, api: BaseBApi, store: StateStore) -> RunMark:
    """Before the run's first write in Base B: read Base B's sync mark, compare it with the last
    commit's (`base_b_went_back`), and write a mark of the run's own over it, which the commit checks.

    Found from outside: a backup taken after the last commit and restored while a run went on (after
    its load wrote, before or after its deletes) held the last commit's mark; the run committed its
    watermark past the rows the restore took back, and only the day's key comparison found them.
    Written before any write of the run, the run's mark is in no backup of Base B from before them.

    The run's mark is the mark it found, a dash and a random part: a mark written over the last
    commit's names it, so a retried task (or the next run after a failed one) finds it and no restore,
    while a mark written over a restored one names that one, and the restore stays found until a
    commit mends it. Random per try: a cleared run, run again, writes another mark, and a backup
    holding the first try's is found when restored."""
    mark = api.sync_mark(entity)
    if not mark[0]:
        return RunMark(None)
    went_back = base_b_went_back(entity, mark, _last_mark(entity, store))
    # Our tokens are 32 hex digits: with the dash and 24 more, within the API's 64 characters (a longer
    # one, not ours, is cut: the next run finds no mark over it, and compares once).
    token = f"{_written_over(mark[1])[:39]}-{uuid.uuid4().hex[:24]}"
    if not api.set_sync_mark(entity, token):
        return RunMark(None, went_back)
    log.info("%s: this run's sync mark %s written in Base B before its load", entity, token)
    return RunMark(token, went_back)


def _last_mark(entity: str, store: StateStore) -> str | None:
    recorded = store.last_stats(entity).get(BASE_B_MARK)
    return recorded if isinstance(recorded, str) else None


def _written_over(token: str | None) -> str:
    """The commit's token a mark was written over: itself, or the part before a run mark's dash."""
    return (token or "").split("-", 1)[0]


def _commit_token(run_mark: str) -> str:
    """The token a commit writes over its run's mark: one per run mark, so a retried commit finds its own."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"base_sync/commit/{run_mark}").hex


def base_b_went_back(
    entity: str, mark: tuple[bool, str | None], expected: str | None, during_run: bool = False
) -> str | None:
    """Why Base B is older than `expected` says, or None. `mark` is Base B's sync mark as read (whether
    the API keeps marks, the token). At the start of a run (and without its mark, in the deletes)
    `expected` is the token the last commit left: Base B holds it, or a run's mark written over it
    since (`mark_run`); anything else (another token, or none) is a restore from a backup taken before
    that commit, or a reset. Found from outside: rows written after the backup (new, changed,
    deleted) stayed lost with every run green, the watermark being past them, until the day's key
    comparison; now the run compares every key and version. A token, not a counter: writes after the
    restore (the events path's, this run's load) cannot hide it.

    `during_run`: at the commit, `expected` is the run's own mark, which Base B must still hold (or
    the commit's token over it, an earlier try of the commit wrote it); anything else is a restore
    since the run wrote it, which the commit's mark would hide."""
    kept, token = mark
    if not kept or expected is None or token in (expected, _commit_token(expected)):
        return None
    if not during_run and _written_over(token) == expected:
        return None  # a run's mark over the last commit's (a run under way, or one that failed)
    if during_run:
        log.warning(
            "%s: BASE B WENT BACK DURING THIS RUN: it holds the sync mark %s, not the one this run wrote before "
            "its load (%s): Base B was restored (or reset) since. This commit writes no new mark, so the next run "
            "compares every key and version and mends what the restore took back",
            entity,
            token,
            expected,
        )
        return f"Base B went back during the run (sync mark {token}, the run wrote {expected})"
    log.warning(
        "%s: BASE B WENT BACK: it holds the sync mark %s, not the one the last commit left (%s): Base B was "
        "restored from a backup (or reset) since. Rows written after that are missing, old or live again in "
        "Base B: this run compares every key and version and sends and deletes them",
        entity,
        token,
        expected,
    )
    return f"Base B went back (sync mark {token}, the last commit left {expected})"


def _comparison_due(settings: SyncSettings, asked: bool, compared_at: str | None) -> str | None:
    if asked:
        return "asked for"
    if compared_at is None:
        return "first run"
    age = datetime.now(UTC) - datetime.fromisoformat(compared_at)
    if age >= timedelta(hours=settings.key_check_hours):
        return f"last comparison {age} ago"
    return None


def _send_logged(
    api: BaseBApi, base_a: BaseA, entity: str, chunk: put_back.LoggedChunk, settings: SyncSettings
) -> tuple[DeleteCounts, int]:
    """Send a chunk's deletes, and the rows Base A holds again instead of theirs; (counts, restored)."""
    counts = DeleteCounts()
    if chunk.deletes:
        answer = api.bulk_delete(entity, chunk.deletes)
        # Re-read entries (the look-back) find their rows already deleted: not "not applied".
        counts = DeleteCounts(answer["deleted"], answer["stale"])
    if not chunk.rows:
        return counts, 0
    restore = put_back.restore(api, base_a, entity, chunk, settings.push_concurrency)
    if chunk.logged:  # none when the rows are quarantined twins of shared keys whose deletes were sent
        log.warning(
            "%s: %d logged deletes not sent: Base A holds their keys again (deleted and put back, from a copy "
            "or a backup say), their rows sent instead: %s",
            entity,
            len(chunk.logged),
            dict(restore.sent),
        )
    if restore.deleted_again:
        log.warning(
            "%s: %d of those keys Base A deleted again while their rows were sent: their deletes sent again, at "
            "the version read (%d applied): %s",
            entity,
            len(restore.deleted_again),
            restore.deletes.deleted,
            sorted(record[SOURCE_ID] for record in restore.deleted_again)[:20],
        )
    return counts + restore.deletes, restore.restored


def _send_gone(api: BaseBApi, entity: str, records: list[dict], chunk_size: int) -> DeleteCounts:
    counts = DeleteCounts()
    for start in range(0, len(records), chunk_size):
        answer = api.bulk_delete(entity, records[start : start + chunk_size])
        counts += DeleteCounts(answer["deleted"], answer["received"] - answer["deleted"])
    return counts


def _apply_logged_deletes(
    entity: str, base_a: BaseA, api: BaseBApi, settings: SyncSettings, position: Cursor, allowance: Allowance
) -> LoggedDeletes:
    """Send the deletes logged after `position` (less the look-back), each new chunk taken from the
    allowance first; what they did and the position reached."""
    read, counts, restored, reached = 0, DeleteCounts(), 0, position
    for records, _ in base_a.deletes_after(
        entity, _looking_back(position, settings), settings.chunk_size, until=position
    ):
        sent, back = _send_logged(api, base_a, entity, put_back.split(base_a, api, entity, records), settings)
        counts, restored, read = counts + sent, restored + back, read + len(records)
    for records, position_reached in base_a.deletes_after(entity, position, settings.chunk_size):
        chunk = put_back.split(base_a, api, entity, records)
        allowance.take(DELETE_LOG, len(api.would_delete(entity, chunk.deletes)) if chunk.deletes else 0)
        sent, back = _send_logged(api, base_a, entity, chunk, settings)
        counts, restored, read = counts + sent, restored + back, read + len(records)
        reached = max(reached, position_reached)
    return LoggedDeletes(reached, read, counts, restored)


def _purge_delete_log(entity: str, base_a: BaseA, position: Cursor, settings: SyncSettings) -> None:
    cutoff = position.updated_at - timedelta(hours=settings.delete_log_retention_hours)
    try:
        purged = base_a.purge_delete_log(entity, cutoff)
    except DBAPIError as error:  # e.g. a read-only account: the log grows, the sync stays right
        log.warning("%s: could not purge Base A's delete log (%s)", entity, error.orig)
        return
    if purged:
        log.info("%s: purged %d delete log entries older than %s", entity, purged, cutoff)


def _differing_buckets(
    entity: str, base_a: BaseA, api: BaseBApi, settings: SyncSettings, versions: bool = False
) -> tuple[int, list[int], int]:
    """Base B's key buckets, those whose (count, sum of keys) differ from Base A's (and digest of the
    versions, with `versions`) on either side, and Base B's synced rows.

    The summaries of both sides' buckets are read at once: they only point at the buckets to look into."""
    size = settings.bucket_size
    theirs, ours = _both(
        lambda: api.key_buckets(entity, size, versions), lambda: base_a.key_buckets(entity, size, versions)
    )
    suspects = sorted(bucket for bucket in theirs.keys() | ours.keys() if ours.get(bucket) != theirs.get(bucket))
    log.info("%s: %d key buckets, %d differ", entity, len(theirs), len(suspects))
    return len(theirs), suspects, sum(summary[0] for summary in theirs.values())


def _gone_in_buckets(
    entity: str, base_a: BaseA, api: BaseBApi, settings: SyncSettings, suspects: list[int]
) -> Iterator[list[dict]]:
    """The keys Base B holds that Base A no longer has, a bucket at a time, as delete records.

    Within a bucket, Base B is read before Base A: a key Base B holds came from Base A earlier, so if
    Base A lacks it afterwards, it was deleted there. Each delete carries the version Base B holds,
    so it applies to exactly that row and a later re-insert of the key in Base A (a newer version) wins.
    """
    size = settings.bucket_size
    for bucket in suspects:
        low, high = bucket * size, bucket * size + size - 1
        held = list(api.versions_between(entity, low, high))
        present = base_a.keys_between(entity, low, high)
        yield [
            {"source_id": key, "source_updated_at": version.isoformat()} for key, version in held if key not in present
        ]


def _apply_key_comparison(
    entity: str, base_a: BaseA, api: BaseBApi, settings: SyncSettings, suspects: list[int], allowance: Allowance
) -> DeleteCounts:
    """Delete the keys Base B holds that Base A lacks in the suspect buckets, each bucket's taken from the allowance."""
    counts = DeleteCounts()
    for gone in _gone_in_buckets(entity, base_a, api, settings, suspects):
        allowance.take(KEY_COMPARISON, len(gone))
        counts += _send_gone(api, entity, gone, settings.chunk_size)
    return counts


def _bring_up_to_date(
    entity: str, base_a: BaseA, api: BaseBApi, settings: SyncSettings, suspects: list[int], versions: bool = True
) -> dict[str, int]:
    """Re-send the rows of the suspect buckets that Base B lacks (every comparison of keys) or, when
    the `versions` were compared, holds older than Base A: a key changed by an UPDATE that left the
    cursor as it was (app-set stamps: no window reads the new key, only its old one's delete is seen),
    a commit later than the run that read its window (a long transaction), a row imported with an old
    stamp, a change in the repeated hour of a daylight-saving change. The window never sees them
    again, nor a row without a usable version that no read refused yet (a stamp with a zero part
    written after the first load, `SourceView.unreal`): re-sent, the mapping refuses it with the reason.
    Read after Base B's versions, as a repair is (restore_ties). Rows in quarantine stay there.
    A live row Base B holds newer than Base A (Base A's stamp went back: an update that waited for
    a lock commits later with an earlier stamp) is sent as Base A holds it now, replacing the exact
    version Base B was read at (`replaces_version`, a compare-and-set: a write since keeps its
    own). What still loses (a tombstone, or a row written since) is counted `ahead` and logged.
    {"resent": n applied, "replaced": n, "ahead": n}."""
    size = settings.bucket_size
    rejected: set[int] | None = None
    resent, replaced, ahead = 0, 0, 0
    for bucket in suspects:
        low, high = bucket * size, bucket * size + size - 1
        held = dict(api.versions_between(entity, low, high))
        behind, newer = [], {}
        for key, version in base_a.versions_between(entity, low, high):
            theirs = held.get(key)
            if theirs is None:
                behind.append(key)
            elif not versions:
                continue  # keys only: a version Base B holds otherwise is the window's or the next comparison's
            elif version is None or theirs < version:
                behind.append(key)
            elif theirs > version:
                newer[key] = theirs
        if newer:
            rows = _replacing(base_a.records_by_keys(entity, sorted(newer), settings.chunk_size), newer)
            counts = push_chunks(api, entity, rows, settings.push_concurrency, restore_ties=True)
            log.warning(
                "%s: Base B held %d rows of keys %d..%d newer than Base A (its stamp went back): sent as "
                "Base A holds them, replacing Base B's version: %s",
                entity,
                len(newer),
                low,
                high,
                dict(counts),
            )
            replaced += counts["updated"]
            ahead += counts["stale"]
        if behind:
            rejected = _open_rejections(api, entity) if rejected is None else rejected
            behind = [key for key in behind if key not in rejected]
        if behind:
            rows = base_a.records_by_keys(entity, behind, settings.chunk_size)
            counts = push_chunks(api, entity, rows, settings.push_concurrency, restore_ties=True)
            log.warning(
                "%s: re-sent %d rows of keys %d..%d that Base B lacked%s (behind the window): %s",
                entity,
                len(behind),
                low,
                high,
                " or held older" if versions else "",
                dict(counts),
            )
            # Stale: Base B holds the key newer, as a tombstone (a row put back under an older stamp).
            resent += counts["inserted"] + counts["updated"] + counts["quarantined"]
            ahead += counts["stale"]
    if ahead:
        log.warning(
            "%s: Base B holds %d rows newer than Base A that no write mended: a tombstone newer than Base A's "
            "live row (a row put back under an older stamp), or a row written again since this comparison read "
            "it. Base A's next change of each row mends it, or a full refresh after deleting them",
            entity,
            ahead,
        )
    return {"resent": resent, "replaced": replaced, "ahead": ahead}


def _replacing(chunks: Iterator[list], versions: dict[int, datetime]) -> Iterator[list]:
    """Base A's records, each naming the version of Base B's row it replaces."""
    for chunk in chunks:
        yield [
            {**record, REPLACES_VERSION: versions[record["source_id"]]} if isinstance(record, dict) else record
            for record in chunk
        ]


def deletes_withheld(entity: str, store: StateStore, plan: dict | None) -> dict:
    """The delete statistics a run commits when its deletes were withheld (a rejected mass delete):
    none applied, and the last committed delete log position and key comparison time kept, so the
    next run reads the same deletes again and the circuit breaker asks again. The rows that left the
    scope are read from the watermark, which moves on: the one this run read them after is kept
    (`left_scope_after`, the earliest while runs keep withholding), until a run deletes them."""
    last = store.last_stats(entity).get("deletes") or {}
    read_after = store.get(entity)  # not yet moved: this run's commit comes after
    left_scope_after = last.get("left_scope_after") or (read_after.to_json() if read_after else None)
    log.warning("%s: deletes withheld (not approved): %s", entity, (plan or {}).get("message"))
    return {
        "deleted": 0,
        "not_applied": 0,
        "from_log": 0,
        "log_position": last.get("log_position"),
        "keys_compared_at": last.get("keys_compared_at"),
        "left_scope_after": left_scope_after,
        "withheld": plan,
    }


def _resend_freed_unique_values(entity: str, base_a: BaseA, api: BaseBApi, settings: SyncSettings) -> Resent | None:
    """After the load and the deletes: send again the rows the API rejected because another row held
    their unique value (an email; reason code UNIQUE_TAKEN), since the holder may have let it go: it
    was deleted, or the load brought its new value (a key changed in Base A: the load sends the new
    key before this step deletes the old one, which still held the value; or the other row's email
    was corrected). Rows still in conflict are rejected again, as before. A rejected row Base A no
    longer holds, for any reason, gets a delete, which closes its rejection (`rejected_rows`). One
    read of the open rejections per run, and a write only while rejections are open."""
    if not ENTITIES[entity].unique_fields:
        return None
    rejections = list(api.open_rejections(entity))
    if not rejections:
        return None
    resent = rejected_rows.resend(entity, base_a, api, settings, rejections, only=_taken)
    if resent.resent:
        log.info(
            "%s: re-sent %d rows rejected for a unique value another row held: %s", entity, resent.resent, resent.counts
        )
    return resent


def _taken(rejection: dict) -> bool:
    return any(why.get("code") == UNIQUE_TAKEN for why in rejection["reasons"])


def replay_rejections(entity: str, base_a: BaseA, api: BaseBApi, settings: SyncSettings) -> ReplayReport:
    """Send the current Base A rows of every open rejection again (after its cause was fixed); a
    delete for each key Base A no longer holds, which closes its rejection."""
    rejections = list(api.open_rejections(entity))
    resent = rejected_rows.resend(entity, base_a, api, settings, rejections)
    still_open = sum(1 for _ in api.open_rejections(entity))
    log.info(
        "%s: replayed %d rejected rows: %s; %d gone from Base A, their deletes sent; %d still rejected",
        entity,
        resent.resent,
        resent.counts,
        resent.closed_gone,
        still_open,
    )
    return ReplayReport(len(rejections), resent.counts, still_open, resent.closed_gone)


def commit(
    entity: str,
    store: StateStore,
    report: LoadReport,
    stats: dict,
    api: BaseBApi | None = None,
    run_mark: RunMark | None = None,
) -> Cursor | None:
    """Move the watermark to the end of the verified window (never backwards); record the run's stats,
    and with `api` and the run's mark (`mark_run`) a new sync mark, written in Base B over the run's
    and kept here (`base_b_went_back`). Without them the last commit's token is kept.

    `stats["deletes"]` (`propagate_deletes`'s report, as JSON) holds the delete log position the next
    run reads from; without it, the next run compares every key instead.
    """
    watermark = report.previous
    if report.scan is not None:  # a table without a cursor: the checksums the next run compares with
        from base_sync import checksummed

        stats = checksummed.commit_stats(report, stats)
    if report.until is not None:
        reached = report.until
        if report.clock is not None and reached.updated_at > report.clock:
            # A row stamped in the future: stop at Base A's clock, or rows changed between now and
            # that stamp would fall behind the watermark. Future rows are re-read until then.
            reached = Cursor(report.clock, 0)
            log.warning("%s: rows stamped after Base A's clock %s; the watermark stops there", entity, report.clock)
        watermark = max(reached, report.previous) if report.previous else reached
    current = store.get(entity)
    if current is not None and current != report.previous and (watermark is None or current >= watermark):
        # Another run committed past this one since it read (this run's task cleared and run again
        # later): its window is inside the newer one's. Moving back would re-read, and its older
        # stats (delete log position, checksums) would replace newer ones.
        log.warning(
            "%s: a later run committed the watermark %s since this run read from %s: this commit changes nothing",
            entity,
            current,
            report.previous,
        )
        return current
    kept = _committed_mark(entity, store, stats, api, run_mark)
    if kept is not None:
        stats = {**stats, BASE_B_MARK: kept}
    store.set(entity, watermark, {**stats, "committed_at": datetime.now(UTC).isoformat()})
    log.info("%s: watermark now %s", entity, watermark)
    return watermark


def _committed_mark(
    entity: str, store: StateStore, stats: dict, api: BaseBApi | None, run_mark: RunMark | None
) -> str | None:
    """The token the commit keeps for the next run to compare Base B's mark with: its own, written in
    Base B over the run's mark (first there: a failure between the two costs one extra comparison);
    the run's mark, not written, when Base B no longer holds it (restored during the run: Base B holds
    no mark the next run accepts, so it compares every key and version); the last commit's when the
    run wrote no mark, or found a restore whose deletes were withheld (a rejected mass delete), not
    mended: the next run finds it again."""
    last = _last_mark(entity, store)
    if api is None or run_mark is None or run_mark.token is None:
        return last
    if base_b_went_back(entity, api.sync_mark(entity), run_mark.token, during_run=True):
        return run_mark.token
    if run_mark.went_back and "withheld" in (stats.get("deletes") or {}):
        return last
    own = _commit_token(run_mark.token)
    return own if api.set_sync_mark(entity, own) else last
