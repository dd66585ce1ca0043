"""XA transactions in the binlog: a prepared XA's row changes wait for its outcome.

MariaDB (10.5 on) and MySQL write an XA transaction's rows at XA PREPARE, as a binlog group of its
own: MariaDB flags the group's GTID event as a prepared XA (MySQL opens it with an `XA START`
query), then come the rows, `XA END` and an XA_PREPARE event naming the XID. The outcome is a later
group, a query `XA COMMIT X'<gtrid>',X'<bqual>',<formatID>` or `XA ROLLBACK ...`, possibly from
another session, long after. Published at PREPARE, a rolled-back change would reach Base B, and a
pending one be read before Base A's readers see it. `XA COMMIT ... ONE PHASE` is an ordinary
transaction in MariaDB's binlog (MySQL: an XA_PREPARE event marked one-phase): published at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from base_sync.debezium import EnvelopeWriter
from base_sync.relay.rows import RowChange

FL_PREPARED_XA = 0x40  # MariaDB's GTID event flag: the group is an XA's rows, written at XA PREPARE

Xid = tuple[int, bytes, bytes]  # formatID, gtrid, bqual

_OUTCOME = re.compile(r"\s*XA\s+(COMMIT|ROLLBACK)\s+X'([0-9a-f]*)'\s*,\s*X'([0-9a-f]*)'\s*,\s*(\d+)", re.I)
_START = re.compile(r"\s*XA\s+(START|BEGIN)\b", re.I)


def opens_prepared_group(event) -> bool:
    """The GTID event starts a prepared XA's rows (MariaDB's flag; MySQL's come with `XA START`)."""
    return bool(getattr(event, "flags", 0) & FL_PREPARED_XA)


def starts_xa(query: str) -> bool:
    return bool(_START.match(query))


def outcome(query: str) -> tuple[bool, Xid] | None:
    """(committed, xid) of an `XA COMMIT` or `XA ROLLBACK` query as the binlog writes it; else None."""
    found = _OUTCOME.match(query)
    if found is None:
        return None
    verb, gtrid, bqual, format_id = found.groups()
    return verb.upper() == "COMMIT", (int(format_id), bytes.fromhex(gtrid), bytes.fromhex(bqual))


def prepared_xid(event) -> Xid:
    """The XID of an XA_PREPARE event (mysql-replication's XAPrepareEvent)."""
    return event.xid_format_id, event.xid_gtrid, event.xid_bqual


def readable(xid: Xid) -> str:
    format_id, gtrid, bqual = xid
    return f"'{gtrid.decode('utf-8', 'replace')}','{bqual.decode('utf-8', 'replace')}',{format_id}"


@dataclass(frozen=True)
class HeldChange:
    """A row change of a prepared XA, enveloped again with its commit's source when published."""

    entity: str
    topic: str
    change: RowChange
    writer: EnvelopeWriter


@dataclass
class Prepared:
    """A prepared XA's changes and the release of the hold on its binlog group's position: the
    relay's saved position stays before the group until the outcome is read, so a restart reads the
    prepare again instead of losing its changes."""

    changes: list[HeldChange] = field(default_factory=list)
    release: Callable[[object, object], None] | None = None
