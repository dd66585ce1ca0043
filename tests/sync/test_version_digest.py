"""The window checksum is one definition: MySQL's and PostgreSQL's aggregates equal the Python
hash of the same (key, version) pairs, so Base A and Base B agree whichever computes it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import BigInteger, Column, DateTime, MetaData, Table, create_engine
from sqlalchemy.dialects import mysql

from base_sync.source import source_engine
from baseab_contract.version_digest import (
    VersionDigest,
    bucket_digests,
    mysql_pair_hash,
    postgresql_pair_hash,
    window_digest,
)

VERSIONS = [
    datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
    datetime(2001, 9, 9, 1, 46, 40, 1, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
]
PG_ONLY = [datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]
KEYS = [1, 42, 2**31 + 7, 2**62 + 3]


def _pairs(versions):
    return [(key, version) for key in KEYS for version in versions]


def _python(pairs) -> VersionDigest:
    digest = VersionDigest()
    for key, version in pairs:
        digest.add(key, version)
    return digest


def _check(engine, stamp_type, pairs, sql_hash, key_type=BigInteger) -> None:
    table = Table("digest_pairs", MetaData(), Column("k", key_type), Column("v", stamp_type), Column("n", BigInteger))
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"k": k, "v": v, "n": n} for n, (k, v) in enumerate(pairs)])
        assert window_digest(conn, table.c.k, table.c.v, [], sql_hash).as_dict() == _python(pairs).as_dict()
        # a window: only the rows the conditions select
        some = window_digest(conn, table.c.k, table.c.v, [table.c.n % 3 == 0], sql_hash).as_dict()
        assert some == _python(pairs[::3]).as_dict()
        empty = window_digest(conn, table.c.k, table.c.v, [table.c.n < 0], sql_hash).as_dict()
        assert empty == VersionDigest().as_dict()
        _check_buckets(conn, table, pairs, sql_hash)


def _check_buckets(conn, table, pairs, sql_hash) -> None:
    """Per key bucket, the same digest as the pairs of the bucket; a row without a version in none."""
    conn.execute(table.insert(), [{"k": 5, "v": None, "n": -1}])
    size = 2**31
    digests = bucket_digests(conn, table.c.k, table.c.v, [], size, sql_hash)
    expected = {b: _python([p for p in pairs if p[0] // size == b]) for b in {k // size for k, _ in pairs}}
    assert {b: d.as_dict() for b, d in digests.items()} == {b: d.as_dict() for b, d in expected.items()}


@pytest.mark.postgres
def test_postgresql_sums_the_same_checksum(make_postgres_database):
    engine = create_engine(make_postgres_database())
    _check(engine, DateTime(timezone=True), _pairs(VERSIONS + PG_ONLY), postgresql_pair_hash)
    engine.dispose()


@pytest.mark.mariadb
def test_mariadb_sums_the_same_checksum(make_mariadb_database):
    engine = source_engine(make_mariadb_database())  # session time zone UTC, as the sync reads
    _check(engine, mysql.TIMESTAMP(fsp=6), _pairs(VERSIONS), mysql_pair_hash)
    engine.dispose()


@pytest.mark.mariadb
def test_mariadb_sums_a_zerofill_key_as_its_number(make_mariadb_database):
    """A legacy INT ZEROFILL key is text '000007' in MariaDB's CONCAT: hashed as such, every pair
    differed from Base B's 7 (each verify and key comparison then went key by key, warning)."""
    engine = source_engine(make_mariadb_database())
    key = mysql.BIGINT(display_width=20, unsigned=True, zerofill=True)
    _check(engine, mysql.TIMESTAMP(fsp=6), _pairs(VERSIONS), mysql_pair_hash, key_type=key)
    engine.dispose()


@pytest.mark.mariadb
def test_mariadb_sums_the_same_checksum_over_datetimes_past_2038(make_mariadb_database):
    """Base A's versions are mostly DATETIMEs read as UTC: they reach past TIMESTAMP's 2038 (a row
    stamped in the future) and before 1970, and must hash as Python does, never as NULL."""
    engine = source_engine(make_mariadb_database())
    _check(
        engine,
        mysql.DATETIME(fsp=6),
        _pairs([*VERSIONS, datetime(2040, 1, 1, 0, 0, 0, 5, tzinfo=UTC), *PG_ONLY]),
        mysql_pair_hash,
    )
    engine.dispose()


def test_sqlite_streams_the_rows_into_the_same_checksum(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'digest.db'}")
    pairs = _pairs(VERSIONS + PG_ONLY)
    table = Table("digest_pairs", MetaData(), Column("k", BigInteger), Column("v", DateTime), Column("n", BigInteger))
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"k": k, "v": v.replace(tzinfo=None), "n": n} for n, (k, v) in enumerate(pairs)])
        assert window_digest(conn, table.c.k, table.c.v, []).as_dict() == _python(pairs).as_dict()
        _check_buckets(conn, table, pairs, None)


def test_one_changed_version_or_missing_row_changes_the_checksum():
    pairs = _pairs(VERSIONS)
    moved = [*pairs[:-1], (pairs[-1][0], pairs[-1][1].replace(microsecond=1))]
    assert _python(moved).hexdigest != _python(pairs).hexdigest
    assert _python(pairs[:-1]).hexdigest != _python(pairs).hexdigest
    assert _python(reversed(pairs)).as_dict() == _python(pairs).as_dict()  # order does not matter
