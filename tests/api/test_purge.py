"""`flask --app api_service purge`: old tombstones and closed rejections go, in batches; live rows,
recent tombstones, open rejections and a table's newest row stay (on SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from api_service import create_app, migrate, purge
from testbed.servers import venv_bin
from tests.api.conftest import AUTH, make_settings, raw_rows
from tests.api.test_bulk import V1, V2, V3, article, upsert

LONG_AGO = datetime.now(UTC) - timedelta(days=40)


def _age(db, table: str, column: str, where: str) -> None:
    db.rollback()
    db.execute(text(f"UPDATE {table} SET {column} = :at WHERE {where}"), {"at": LONG_AGO})
    db.commit()


def _base_b(client, db) -> None:
    """Articles 1-6; 1-3 and 6 deleted, 1, 2 and 6 (the newest row) long ago; rejections of 7 (closed
    long ago), 8 (closed now) and 9 (open)."""
    assert upsert(client, "articles", [article(n, V2, title="") for n in (7, 8, 9)])["rejected"] == 3
    upsert(client, "articles", [article(n, V3) for n in (7, 8)])  # settles their rejections
    _age(db, "sync_rejections", "resolved_at", "source_id = 7")
    upsert(client, "articles", [article(n, V1) for n in range(1, 7)])
    deletes = [{"source_id": n, "source_updated_at": V2} for n in (1, 2, 3, 6)]
    assert client.post("/articles/bulk/delete", json=deletes, headers=AUTH).status_code == 200
    _age(db, "articles", "deleted_at", "source_id IN (1, 2, 6)")
    _age(db, "articles", "synced_at", "source_id IN (1, 2, 6)")  # their last write too


def test_old_tombstones_and_closed_rejections_go_the_rest_stays(app, client, db):
    _base_b(client, db)
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["purge", "--older-than", "30", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would remove tombstones" in dry.output and "2 of articles, 0 of employees" in dry.output
    assert dry.output.rstrip().endswith("rejections closed before then: 1")
    assert len(raw_rows(db, "articles")) == 8  # nothing removed

    done = runner.invoke(args=["purge", "--older-than", "30"])
    assert done.exit_code == 0, done.output
    assert "removed tombstones" in done.output and "2 of articles" in done.output
    rows = {r["source_id"]: r["deleted_at"] is not None for r in raw_rows(db, "articles")}
    assert rows == {3: True, 4: False, 5: False, 6: True, 7: False, 8: False}  # 6: the newest row
    db.rollback()
    left = db.execute(text("SELECT source_id, resolved_at IS NULL FROM sync_rejections ORDER BY source_id")).all()
    assert [tuple(r) for r in left] == [(8, False), (9, True)]
    # The purged keys are new keys again: a write of theirs is an insert (the horizon's trade, README).
    assert upsert(client, "articles", [article(1, V1)])["inserted"] == 1


def test_batches_remove_everything_old(app, client, db):
    _base_b(client, db)
    db.rollback()
    purged = purge.purge(app.extensions["base_b_engine"], datetime.now(UTC) - timedelta(days=30), batch_rows=1)
    assert purged.tombstones == {"articles": 2, "employees": 0} and purged.rejections == 1


def test_the_horizon_is_at_least_a_day(app):
    refused = app.test_cli_runner().invoke(args=["purge", "--older-than", "0"])
    assert refused.exit_code == 2 and "0 is not in the range 1<=x<=36500" in refused.output


def test_an_unmigrated_base_b_is_said_with_what_to_run(tmp_path):
    app = create_app(make_settings(f"sqlite:///{tmp_path}/empty.sqlite"))
    refused = app.test_cli_runner().invoke(args=["purge", "--older-than", "90"])
    assert refused.exit_code == 1
    assert "Base B is not migrated to this version: run `flask --app api_service migrate` first" in refused.output


def test_a_tombstone_brought_back_while_the_purge_waits_for_it_stays(make_postgres_database):
    """PostgreSQL re-checks a row a concurrent write changed against the DELETE's own conditions: a
    merge reviving a tombstone (deleted_at NULL again, as ON CONFLICT DO UPDATE writes it) while the
    purge waits for its lock must not lose the row it just wrote (the review: it was deleted)."""
    url = make_postgres_database()
    migrate.upgrade(url)
    app = create_app(make_settings(url))
    client, engine = app.test_client(), app.extensions["base_b_engine"]
    upsert(client, "articles", [article(n, V1) for n in (1, 2)])
    assert (
        client.post("/articles/bulk/delete", json=[{"source_id": 1, "source_updated_at": V2}], headers=AUTH).status_code
        == 200
    )
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE articles SET deleted_at = :at, synced_at = :at WHERE source_id = 1"), {"at": LONG_AGO}
        )
    with engine.connect() as writer:
        revived = writer.begin()
        writer.execute(text("UPDATE articles SET deleted_at = NULL, title = 'back' WHERE source_id = 1"))
        outcome = {}
        purging = threading.Thread(target=lambda: outcome.update(purged=purge.purge(engine, LONG_AGO + timedelta(1))))
        purging.start()
        time.sleep(2)
        assert purging.is_alive(), "the purge did not wait for the row's lock"
        revived.commit()
    purging.join(30)
    assert outcome["purged"].tombstones["articles"] == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT title, deleted_at FROM articles WHERE source_id = 1")).one() == ("back", None)
    engine.dispose()


def test_the_purge_finds_old_tombstones_by_their_index_not_by_reading_the_table(make_postgres_database):
    """Each batch of the purge read the whole table to find tombstones (no index on deleted_at): a
    table of millions of live rows was scanned once per 5,000 tombstones removed."""
    url = make_postgres_database()
    migrate.upgrade(url)
    engine = create_app(make_settings(url)).extensions["base_b_engine"]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO articles (source_id, title, created_at, updated_at, deleted_at) "
                "SELECT n, 't', now(), now(), CASE WHEN n % 5000 = 0 THEN :at END FROM generate_series(1, 50000) n"
            ),
            {"at": LONG_AGO},
        )
        conn.execute(text("ANALYZE articles"))
        table = purge.TABLES["articles"]
        batch = select(table.c.id).where(*purge.old_tombstones(table, LONG_AGO + timedelta(1))).limit(purge.BATCH_ROWS)
        plan = "\n".join(
            conn.execute(text(f"EXPLAIN {batch.compile(engine, compile_kwargs={'literal_binds': True})}")).scalars()
        )
    engine.dispose()
    assert "ix_articles_deleted_at" in plan, plan


def test_a_tombstone_a_newer_delete_rewrote_is_as_young_as_that_delete(app, client, db):
    """deleted_at keeps the first delete; a newer delete rewrites the version and synced_at: a replay
    younger than the horizon must still meet the tombstone (the review)."""
    upsert(client, "articles", [article(n, V1) for n in (1, 2)])
    assert (
        client.post("/articles/bulk/delete", json=[{"source_id": 1, "source_updated_at": V2}], headers=AUTH).status_code
        == 200
    )
    _age(db, "articles", "deleted_at", "source_id = 1")  # first deleted long ago, rewritten now
    purged = purge.purge(app.extensions["base_b_engine"], datetime.now(UTC) - timedelta(days=30))
    assert purged.tombstones["articles"] == 0


def test_a_password_base_b_refuses_is_said_with_what_to_fix_not_run_it_again(password_base_b):
    app = create_app(make_settings(password_base_b.wrong_password_url))
    refused = app.test_cli_runner().invoke(args=["purge", "--older-than", "90"])
    app.extensions["base_b_engine"].dispose()
    assert refused.exit_code == 1 and "password authentication failed" in refused.output, refused.output
    assert "ALTER ROLE" in refused.output and "run it again" not in refused.output
    assert password_base_b.wrong_password not in refused.output


def test_the_purge_says_nothing_of_write_tokens_and_the_served_api_still_does(make_postgres_database):
    """Found from outside: compose's housekeeping container (no API_TOKENS: it serves no request)
    logged "API_TOKENS is empty: every write will be refused with 403" at every Base B purge, which
    reads as a misconfiguration. The warning is the serving app's (api_service.wsgi) alone."""
    url = make_postgres_database()
    migrate.upgrade(url)
    env = {key: value for key, value in os.environ.items() if key != "API_TOKENS"} | {"API_DATABASE_URL": url}
    purged = subprocess.run(
        [venv_bin("flask"), "--app", "api_service", "purge", "--older-than", "90"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert "rejections closed before then: 0" in purged.stdout
    assert "API_TOKENS" not in purged.stdout + purged.stderr
    served = subprocess.run(
        [sys.executable, "-c", "import api_service.wsgi"], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert served.returncode == 0, served.stderr
    assert "API_TOKENS is empty: every write will be refused with 403" in served.stderr
