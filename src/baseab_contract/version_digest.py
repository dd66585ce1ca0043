"""The checksum the pipelines and the API compute the same way over (source_id, version) pairs,
and the version window both sides compute it over.

It is a sum, modulo 2**64, of a 64-bit hash of each pair: independent of order, so each side can
add its rows up as its database returns them, and a single missing, extra or differently versioned
row changes it. The hash is the first 8 bytes of MD5("<source_id>:<version in microseconds since
the epoch>"), which MySQL and PostgreSQL compute themselves: there the database sums a window in
one aggregate and sends two numbers (a checksum, not a defence against a forger). Elsewhere
(SQLite) the rows are streamed and hashed here. The sync library (src/base_sync) imports this module,
so both sides share one definition.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from hashlib import md5

from sqlalchemy import BigInteger, Connection, Numeric, Text, cast, func, literal_column, or_, select, type_coerce
from sqlalchemy.dialects import mysql, postgresql

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MASK = (1 << 64) - 1


def version_micros(version: datetime) -> int:
    """Microseconds since the epoch of a version (naive values are UTC)."""
    if version.tzinfo is None:
        version = version.replace(tzinfo=UTC)
    return (version - _EPOCH) // _MICROSECOND


def pair_hash(source_id: int, version: datetime) -> int:
    pair = b"%d:%d" % (source_id, version_micros(version))
    return int.from_bytes(md5(pair, usedforsecurity=False).digest()[:8], "big")


class VersionDigest:
    """Count and order-independent checksum of (source_id, version) pairs."""

    __slots__ = ("count", "total")

    def __init__(self, count: int = 0, total: int = 0) -> None:
        self.count = count
        self.total = total & _MASK

    def add(self, source_id: int, version: datetime) -> None:
        self.total = (self.total + pair_hash(source_id, version)) & _MASK
        self.count += 1

    @property
    def hexdigest(self) -> str:
        return f"{self.total:016x}"

    def as_dict(self) -> dict:
        return {"count": self.count, "digest": self.hexdigest}


def mysql_pair_hash(key, version):
    """`pair_hash` as a MySQL/MariaDB expression (version: UTC, a TIMESTAMP column read in a UTC
    session or a DATETIME expression)."""
    # Not UNIX_TIMESTAMP: NULL after 2038-01-19 (MariaDB before 11.5, MySQL before 8.0.28), and a
    # row stamped later would fail every comparison. TIMESTAMPDIFF reaches 9999 and is cheaper.
    micros = func.timestampdiff(
        literal_column("MICROSECOND"), literal_column("TIMESTAMP'1970-01-01 00:00:00'"), version
    )
    # key + 0: a ZEROFILL column's text is padded ('000007'), and every pair would differ from Base B's
    prefix = func.left(func.md5(func.concat(key + 0, ":", micros)), 16)
    return cast(func.conv(prefix, 16, 10), mysql.BIGINT(unsigned=True))


def postgresql_pair_hash(key, version):
    """`pair_hash` as a PostgreSQL expression: the signed reading of the same 64 bits, which the
    sum modulo 2**64 does not tell apart."""
    micros = cast(func.extract("epoch", version) * 1_000_000, BigInteger)
    prefix = func.left(func.md5(func.concat(cast(key, Text), ":", cast(micros, Text))), 16)
    return cast(cast(func.concat("x", prefix), postgresql.BIT(64)), BigInteger)


def version_window(version, key, since: tuple | None, until: tuple | None) -> list:
    """Conditions for since < (version, key) <= until, each bound a (version, key) pair or None, in a
    form a (version, key) index serves as one range: the plain bounds on the version first, the key
    only where the version ties. Base A's reads and Base B's use the same window."""
    conditions = []
    if since is not None:
        low, low_key = since
        conditions += [version >= low, or_(version > low, key > low_key)]
    if until is not None:
        high, high_key = until
        conditions += [version <= high, or_(version < high, key <= high_key)]
    return conditions


def window_digest(
    conn: Connection, key, version, conditions: list, sql_hash=None, stream_rows: int = 50_000
) -> VersionDigest:
    """The digest of the (key, version) pairs that meet `conditions`: one aggregate where the
    database can hash (`sql_hash`, one of the `*_pair_hash` functions, from the caller's database
    backend), else the rows streamed and hashed here."""
    hashed = sql_hash(key, version) if sql_hash is not None else None
    if hashed is not None:
        total = type_coerce(func.sum(hashed), Numeric(asdecimal=True))
        count, checksum = conn.execute(select(func.count(), total).where(*conditions)).one()
        return VersionDigest(int(count), int(checksum or 0))
    digest = VersionDigest()
    statement = select(key, version).where(*conditions)
    for rows in conn.execution_options(stream_results=True, yield_per=stream_rows).execute(statement).partitions():
        for source_id, stamp in rows:
            digest.add(source_id, stamp)
    return digest


def bucket_digests(
    conn: Connection, key, version, conditions: list, size: int, sql_hash=None, stream_rows: int = 50_000
) -> dict[int, VersionDigest]:
    """`window_digest` per key bucket (bucket = key // size): {bucket: digest}. A row without a
    version (NULL: a dirty source row Base B never holds) counts in no digest."""
    conditions = [*conditions, version.is_not(None)]
    hashed = sql_hash(key, version) if sql_hash is not None else None
    if hashed is not None:
        bucket = (key // size).label("bucket")
        total = type_coerce(func.sum(hashed), Numeric(asdecimal=True))
        statement = select(bucket, func.count(), total).where(*conditions).group_by(bucket)
        return {int(b): VersionDigest(int(count), int(checksum or 0)) for b, count, checksum in conn.execute(statement)}
    digests: dict[int, VersionDigest] = {}
    statement = select(key, version).where(*conditions)
    for rows in conn.execution_options(stream_results=True, yield_per=stream_rows).execute(statement).partitions():
        for source_id, stamp in rows:
            digests.setdefault(source_id // size, VersionDigest()).add(source_id, stamp)
    return digests
