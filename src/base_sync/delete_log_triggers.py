"""Base A's delete-log triggers judged by what they are now, not by their names.

A trigger lives on in the catalogue after its table changed under it: MySQL/MariaDB track no
dependencies, so the owners may rename or drop a column its body names (every DELETE on their table
then fails, `Unknown column ... in 'OLD'`), and a table swap (gh-ost's cut-over, `RENAME TABLE a TO
_a_del, _a_gho TO a`) takes the triggers along to the old table, leaving the mapped one without.
So a trigger counts only where it is on the mapped table, fires AFTER the right event, runs the
statement `base-a install-delete-log` would create today from the mapping, and names columns the
table has. `state` says whether the log is in place, absent, stale (broken: with the reason) or
outdated: it works and logs the mapping's key of the right entity, but is not what the install
creates now (a trigger an earlier version made, or the key-change trigger missing beside a working
delete trigger). The batch trusts a log in place or outdated, `base-a check` fails on a stale one
and warns of an outdated one, and the install replaces both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import Connection

from base_sync.backends import BaseABackend, LiveTrigger
from base_sync.server_names import ServerNames

DELETE_LOG = "delete_log"
IN_PLACE, ABSENT, STALE, OUTDATED = "in place", "absent", "stale", "outdated"
UNSEEN = "unseen"  # this account sees no trigger (MySQL shows them only with the TRIGGER privilege)
INSTALL = "`base-a install-delete-log`"
# The columns a body reads of the row: OLD.x or NEW.x, quoted or not.
_ROW_COLUMN = re.compile(r"\b(?:OLD|NEW)\s*\.\s*(?:`((?:[^`]|``)+)`|\"([^\"]+)\"|(\w+))", re.IGNORECASE)
# What a delete-log trigger writes: INSERT INTO delete_log (entity, id, ...) VALUES ('<entity>', OLD.<key>, ...).
_LOGGED = re.compile(
    rf"INSERT\s+INTO\s+[`\"]?{DELETE_LOG}[`\"]?\s*\(\s*[`\"]?entity[`\"]?\s*,\s*[`\"]?id[`\"]?\s*[,)]"
    r".*?VALUES\s*\(\s*'([^']*)'\s*,\s*OLD\s*\.\s*[`\"]?(\w+)[`\"]?\s*[,)]",
    re.IGNORECASE | re.DOTALL,
)


def delete_trigger_name(table: str) -> str:
    """The delete-log trigger of a source table (named after the table: an entity's mapped table
    may differ from the platform's own table of the same entity in one database)."""
    return f"{table}_log_delete"


def key_change_trigger_name(table: str) -> str:
    """The trigger logging the old key of an UPDATE that changes a row's key: for Base B that key
    is gone as surely as a deleted one (Debezium's MySQL connector emits a delete for it too)."""
    return f"{table}_log_key_change"


@dataclass(frozen=True)
class WantedTrigger:
    """A trigger as the install creates it: on `table`, AFTER `event`, FOR EACH ROW `body`."""

    name: str
    table: str
    event: str  # DELETE or UPDATE
    body: str

    @property
    def create(self) -> str:
        return f"CREATE TRIGGER {self.name} AFTER {self.event} ON {self.table} FOR EACH ROW {self.body}"

    def works_like(self, live: LiveTrigger, names: ServerNames, entity: str, key: str) -> bool:
        """Whether the live trigger, on this table AFTER this event, logs `entity` and the row's `key`
        as this one does, though its statement differs (one an earlier version created: its version
        expression, or its layout). An UPDATE trigger must log only a changed key, or it would log
        live rows as deleted."""
        logged = _LOGGED.search(live.body)
        if not (
            names.same(live.table, self.table)
            and (live.timing.upper(), live.event.upper()) == ("AFTER", self.event)
            and logged
            and logged[1] == entity
            and logged[2].lower() == key.lower()
        ):
            return False
        return self.event != "UPDATE" or _key_changed(key).search(live.body) is not None

    def is_(self, live: LiveTrigger, names: ServerNames) -> bool:
        """Whether the live trigger does what this one does (whatever its name: a tool may add a suffix)."""
        return (
            names.same(live.table, self.table)
            and (live.timing.upper(), live.event.upper()) == ("AFTER", self.event)
            and _spaced(live.body) == _spaced(self.body)
        )


def wanted_triggers(table: str, entity: str, key: str, version: str, backend: BaseABackend) -> list[WantedTrigger]:
    """The triggers that write a table's vanished keys to the delete log: the key of a deleted row,
    and the old key of a row whose key an UPDATE changed, each with `version` (an expression over
    OLD) as the version the delete carries."""
    logged = f"INSERT INTO {DELETE_LOG} (entity, id, updated_at) VALUES ('{entity}', OLD.{key}, {version})"
    # A nullable key column: a row without a key was never synced, and the log's id may not be NULL
    # (the owner's DELETE would fail). A key set to NULL is gone from Base B like a changed one.
    keyed = f"OLD.{key} IS NOT NULL"
    changed = f"{keyed} AND (NEW.{key} IS NULL OR OLD.{key} <> NEW.{key})"
    return [
        WantedTrigger(delete_trigger_name(table), table, "DELETE", backend.trigger_body(logged, when=keyed)),
        WantedTrigger(key_change_trigger_name(table), table, "UPDATE", backend.trigger_body(logged, when=changed)),
    ]


def entity_triggers(mapping, entity: str, backend: BaseABackend) -> list[WantedTrigger]:
    """The triggers `base-a install-delete-log` creates for an entity from its mapping now.

    The version is the row's UTC cursor when it is a TIMESTAMP (as the platform's own trigger logs
    it), else the time of the delete (`now_sql`): a local DATETIME's wall time cannot become UTC in a
    trigger portably, and the delete's time is at or after any version the row had, unless its stamp
    lies in the future: that version beats the delete, and the row stays in Base B until the key
    comparison (the run warns, naming the key: `sync._warn_held_newer`). A row whose cursor is NULL gets
    the delete's time too, so a trigger never makes the owner's DELETE fail."""
    spec = mapping.spec.entities[entity]
    stamps = [s.column for s in spec.cursor or [] if s.type == "timestamp"]
    version = backend.now_sql
    if stamps and len(stamps) == len(spec.cursor or []):
        version = f"COALESCE({', '.join(f'OLD.{c}' for c in stamps)}, {backend.now_sql})"
    return wanted_triggers(spec.table, entity, spec.key, version, backend)


@dataclass
class DeleteLogState:
    """What an entity's delete log is now. `status`: IN_PLACE (every trigger matches), ABSENT (none of
    them is there), STALE (broken: one is on another table, names a column its table lacks or logs
    another key or entity, the delete trigger or `delete_log` is missing), OUTDATED (works, but a
    statement differs from today's, or only the key-change trigger is missing); `reason` says which
    and what it breaks; `replace` the live triggers the install drops before creating the wanted
    ones, `outdated` the working ones it drops after (those not named like a wanted one)."""

    entity: str
    table: str
    status: str
    reason: str = ""
    log_table: bool = True  # whether `delete_log` itself is there (triggers writing to none fail every DELETE)
    replace: list[LiveTrigger] = field(default_factory=list)
    missing: list[WantedTrigger] = field(default_factory=list)
    outdated: list[LiveTrigger] = field(default_factory=list)


@dataclass
class _Verdict:
    """What `state` found so far: broken (`reasons`, `replace`), outdated (`notes`, `outdated`), `missing`."""

    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    replace: list[LiveTrigger] = field(default_factory=list)
    missing: list[WantedTrigger] = field(default_factory=list)
    outdated: list[LiveTrigger] = field(default_factory=list)


def state(conn: Connection, backend: BaseABackend, mapping, entity: str) -> DeleteLogState:
    """The entity's delete log as the catalogue shows it: three catalogue reads, no DDL."""
    wanted = entity_triggers(mapping, entity, backend)
    table = wanted[0].table
    names = backend.server_names(conn)
    live = backend.live_triggers(conn)
    tables = sorted({table, *(t.table for t in live if t.name in {w.name for w in wanted})}, key=str)
    columns = {t: {c.name.lower() for c in cs} for t, cs in backend.live_columns(conn, [*tables, DELETE_LOG]).items()}
    log_table = any(names.same(t, DELETE_LOG) for t in columns)
    verdict = _Verdict()
    for w in wanted:
        _judge(verdict, w, live, columns, names, entity, mapping.spec.entities[entity].key)
    reasons, missing = verdict.reasons, verdict.missing
    if len(missing) == len(wanted) and not verdict.replace and not verdict.outdated:
        return DeleteLogState(entity, table, ABSENT, f"no delete-log trigger on {table}", log_table, [], missing)
    if not log_table:
        reasons.append(f"the triggers write to {DELETE_LOG}, which Base A lacks: every DELETE on {table} fails")
    status = STALE if reasons else OUTDATED if missing else IN_PLACE
    if status == IN_PLACE:
        return DeleteLogState(entity, table, IN_PLACE, "", log_table)
    why = "; ".join(reasons + verdict.notes)
    return DeleteLogState(entity, table, status, why, log_table, verdict.replace, missing, verdict.outdated)


def _judge(verdict: _Verdict, w: WantedTrigger, live, columns, names: ServerNames, entity: str, key: str) -> None:
    """Judge the live triggers against one wanted trigger: matching, working but outdated, or broken."""
    found = [t for t in live if w.is_(t, names)]
    good = []
    for trigger in found:
        why = _unreadable(trigger, columns, names)
        if why:
            verdict.reasons.append(why)
            verdict.replace.append(trigger)
        else:
            good.append(trigger)
    works = []
    if not good:  # one an earlier version made: it logs the right key of the right entity
        works = [
            t
            for t in live
            if w.works_like(t, names, entity, key) and t not in found and not _unreadable(t, columns, names)
        ]
    stray = next((t for t in live if names.same(t.name, w.name)), None)
    if stray is not None and stray not in found and stray not in works:
        # Its name on another table or statement: it logs nothing right, and holds the name. Beside
        # a working trigger under another name (a tool's suffix) it matters only if it breaks writes.
        why = _unreadable(stray, columns, names) or (None if good or works else _mismatch(stray, w, names))
        if why:
            verdict.reasons.append(why)
            verdict.replace.append(stray)
    if good:
        return
    verdict.missing.append(w)
    verdict.outdated += works
    if works:
        verdict.notes += [_older(t, w) for t in works]
    elif w.event == "UPDATE":  # as before that trigger existed: the periodic key comparison finds key changes
        verdict.notes.append(_no_key_change_trigger(w))
    elif not found and stray is None:
        verdict.reasons.append(f"no trigger logs {_what(w)} (wanted: {w.name})")


def stale_remedy(found: DeleteLogState) -> str:
    """A stale log's reason and what to do, as the batch's warning and `base-a check` say it."""
    return (
        f"the delete log on {found.table} is stale: {found.reason}. Recreate its triggers from the mapping with "
        f"{INSTALL} (an account allowed to create triggers; fix the mapping first if it names a column the "
        f"table no longer has); until then every batch run compares every key"
    )


def outdated_remedy(found: DeleteLogState) -> str:
    """An outdated log's reason and what to do: it is trusted for what it logs, so a warning only."""
    return (
        f"the delete log on {found.table} is outdated (it works, and is trusted for what it logs): {found.reason}. "
        f"Recreate its triggers from the mapping with {INSTALL} (an account allowed to create triggers)"
    )


def _older(trigger: LiveTrigger, wanted: WantedTrigger) -> str:
    return (
        f"{trigger.name} on {trigger.table} logs {_what(wanted)} but is not the trigger the install creates now "
        f"({_spaced(trigger.body)}; wanted: {wanted.body})"
    )


def _no_key_change_trigger(wanted: WantedTrigger) -> str:
    return (
        f"no trigger logs {_what(wanted)} (wanted: {wanted.name}, added by a later version): a key changed by an "
        f"UPDATE is found only by the periodic key comparison (SYNC_KEY_CHECK_HOURS)"
    )


def _key_changed(key: str) -> re.Pattern:
    """OLD.<key> <> NEW.<key> (or !=): the condition that an UPDATE changed the key."""
    column = rf"[`\"]?{re.escape(key)}[`\"]?"
    return re.compile(rf"OLD\s*\.\s*{column}\s*(?:<>|!=)\s*NEW\s*\.\s*{column}", re.IGNORECASE)


def _what(wanted: WantedTrigger) -> str:
    return f"the deletes of {wanted.table}" if wanted.event == "DELETE" else f"the key changes of {wanted.table}"


def _unreadable(trigger: LiveTrigger, columns: dict[str, set[str]], names: ServerNames) -> str | None:
    """Why a trigger breaks its table's writes: it names columns the table no longer has."""
    held = next((cs for t, cs in columns.items() if names.same(t, trigger.table)), None)
    if held is None:
        return None  # its table is gone (or not readable): it fires on nothing
    lacking = sorted({c for c in row_columns(trigger.body) if c.lower() not in held})
    if not lacking:
        return None
    named = ", ".join(f"OLD.{c}" for c in lacking)
    return (
        f"{trigger.name} on {trigger.table} names {named}, which {trigger.table} no longer has (a column "
        f"renamed or dropped): every {trigger.event.upper()} on {trigger.table} fails with "
        f"Unknown column '{lacking[0]}' in 'OLD', Base A's own writes included"
    )


def _mismatch(trigger: LiveTrigger, wanted: WantedTrigger, names: ServerNames) -> str:
    if not names.same(trigger.table, wanted.table):
        return (
            f"{trigger.name} is on {trigger.table}, not on {wanted.table} (a table swap, such as gh-ost's "
            f"cut-over or a RENAME TABLE, took it along): nothing logs {_what(wanted)}"
        )
    return (
        f"{trigger.name} on {trigger.table} is not the trigger the mapping wants now "
        f"({trigger.timing} {trigger.event}: {_spaced(trigger.body)}; wanted AFTER {wanted.event}: {wanted.body})"
    )


def row_columns(body: str) -> list[str]:
    """The columns a trigger body reads as OLD.x or NEW.x, in order, once each."""
    found = [a.replace("``", "`") if a else b or c for a, b, c in _ROW_COLUMN.findall(body)]
    return list(dict.fromkeys(found))


def _spaced(sql: str) -> str:
    return " ".join(sql.split())
