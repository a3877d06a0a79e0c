"""The state DB: migrations (only on purpose, one migrator at a time), the schema check every other path
makes, the engine, reading tables back with their canonical schema."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from core.config import Settings
from core.schema import DIMENSION_TABLES, TABLES
from datastore import db, users
from liftboard.cli import EXIT_DB_NOT_CURRENT, app
from tests.builders import canonical, valid_tables, write_all

WIDE = {"COLUMNS": "250"}
OLDER = "0002"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _wait_until(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not true after {seconds:.0f}s"
        time.sleep(0.05)


def _in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _hold_upgrade_lock(connection: sa.Connection) -> None:
    """Take the upgrade lock in ``connection``'s transaction (released at its commit or rollback)."""
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": db.UPGRADE_LOCK_KEY})


def _waiting_for_upgrade_lock(connection: sa.Connection) -> int:
    """How many sessions wait for the upgrade lock (PostgreSQL splits a bigint key in two 32-bit halves)."""
    high, low = divmod(db.UPGRADE_LOCK_KEY, 2**32)
    query = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND classid::bigint = :high AND objid::bigint = :low AND objsubid = 1"
    )
    return int(connection.execute(query, {"high": high, "low": low}).scalar_one())


def test_upgrade_creates_every_table_and_matches_the_metadata(empty_settings: Settings) -> None:
    settings = empty_settings
    db.upgrade_db(settings)
    db.upgrade_db(settings)  # idempotent

    with db.engine_for(settings).connect() as connection:
        names = set(sa.inspect(connection).get_table_names())
        ours = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                # later migrations add other modules' tables; this test owns the ingest ones
                "include_name": lambda name, kind, _parents: kind != "table" or name in db.metadata.tables,
            },
        )
        drift = compare_metadata(ours, db.metadata)
        revision = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    assert {*DIMENSION_TABLES, "ingestion_runs", "ingestion_loads", "alembic_version"} <= names
    assert drift == []
    assert revision == ScriptDirectory.from_config(db.alembic_config(settings)).get_current_head()


def test_upgrade_keeps_existing_rows(settings: Settings) -> None:
    with db.connect(settings) as connection:
        connection.execute(sa.insert(db.metadata.tables["merchants"]), valid_tables()["merchants"].to_dicts())

    db.upgrade_db(settings)

    assert db.count_rows("merchants", settings) == 2


def test_downgrade_is_refused(sqlite_settings: Settings) -> None:
    with pytest.raises(NotImplementedError, match="users' data"):
        command.downgrade(db.alembic_config(sqlite_settings), "base")


@pytest.mark.parametrize("name", DIMENSION_TABLES)
def test_read_table_round_trips_the_canonical_schema(settings: Settings, name: str) -> None:
    assert_frame_equal(db.read_table(name, settings), TABLES[name].empty())
    frames = valid_tables()
    with db.connect(settings) as connection:
        for table in DIMENSION_TABLES:  # parents first, so foreign keys hold
            connection.execute(sa.insert(db.metadata.tables[table]), frames[table].to_dicts())

    assert_frame_equal(db.read_table(name, settings), canonical(frames[name], name))


def test_read_table_refuses_lake_tables(sqlite_settings: Settings) -> None:
    with pytest.raises(ValueError, match="lake table"):
        db.read_table("orders", sqlite_settings)
    with pytest.raises(KeyError, match="unknown table 'buyers'"):
        db.read_table("buyers", sqlite_settings)


def test_engine_is_cached_per_url(sqlite_settings: Settings) -> None:
    assert db.engine_for(sqlite_settings) is db.engine_for(sqlite_settings)
    other = Settings.from_env(home=sqlite_settings.home / "other")
    assert db.engine_for(other) is not db.engine_for(sqlite_settings)


def test_foreign_keys_and_ledger_checks_are_enforced(settings: Settings) -> None:
    product = valid_tables()["products"].head(1).to_dicts()
    with pytest.raises(sa.exc.IntegrityError), db.connect(settings) as connection:
        connection.execute(sa.insert(db.metadata.tables["products"]), product)
    with db.connect(settings) as connection:
        connection.execute(
            sa.insert(db.ingestion_runs).values(run_id="r1", started_at=datetime.now(UTC), status="running")
        )
    with pytest.raises(sa.exc.IntegrityError), db.connect(settings) as connection:
        connection.execute(
            sa.insert(db.ingestion_loads).values(
                run_id="r1",
                table_name="orders",
                file="x",
                rows_read=3,
                rows_loaded=1,
                rows_quarantined=1,
                rows_duplicate=0,
            )
        )
    with pytest.raises(sa.exc.IntegrityError), db.connect(settings) as connection:
        connection.execute(
            sa.insert(db.ingestion_runs).values(run_id="r2", started_at=datetime.now(UTC), status="done")
        )


def test_values_reach_sql_as_parameters(settings: Settings) -> None:
    nasty = valid_tables()["merchants"].with_columns(pl.lit("x'); DROP TABLE merchants; --").alias("name"))
    with db.connect(settings) as connection:
        connection.execute(sa.insert(db.metadata.tables["merchants"]), nasty.to_dicts())
    assert db.read_table("merchants", settings)["name"].to_list() == ["x'); DROP TABLE merchants; --"] * 2


# --------------------------------------------------------------------------------------------------------
# Migrations only on purpose: every other path checks the schema and refuses an old one
# --------------------------------------------------------------------------------------------------------


def test_a_fresh_db_refuses_reads_until_db_upgrade(
    empty_settings: Settings, runner: CliRunner, tmp_path: Path
) -> None:
    head = db.head_revision()
    with pytest.raises(
        db.DatabaseNotCurrent, match="has no Liftboard schema yet .*run `liftboard db upgrade`"
    ):
        users.get_user(empty_settings, "ops")
    refused = runner.invoke(app, ["ingest", *map(str, write_all(tmp_path / "in", "csv"))], env=WIDE)
    assert refused.exit_code == EXIT_DB_NOT_CURRENT, refused.output
    assert (
        f"error: the state DB {db.display_url(empty_settings)} has no Liftboard schema yet" in refused.output
    )
    assert "Traceback" not in refused.output
    assert db.database_revision(empty_settings) is None  # refusing changed nothing

    upgraded = runner.invoke(app, ["db", "upgrade"], env=WIDE)

    assert upgraded.exit_code == 0, upgraded.output
    assert f"upgraded from revision (empty) to {head}" in upgraded.output
    assert users.get_user(empty_settings, "ops") is None
    again = runner.invoke(app, ["db", "upgrade"], env=WIDE)
    assert again.exit_code == 0, again.output
    assert f"already at revision {head}: nothing to do" in again.output


def test_db_current_shows_the_db_revision_and_the_code_head(
    empty_settings: Settings, runner: CliRunner
) -> None:
    head = db.head_revision()
    before = runner.invoke(app, ["db", "current"], env=WIDE)
    assert before.exit_code == 0, before.output
    assert "revision: (none: no Liftboard schema yet)" in before.output
    assert f"head:     {head}" in before.output
    assert "run `liftboard db upgrade`" in before.output

    db.upgrade_db(empty_settings, OLDER)
    behind = runner.invoke(app, ["db", "current"], env=WIDE)
    assert f"revision: {OLDER}" in behind.output
    assert "not current" in behind.output

    db.upgrade_db(empty_settings)
    after = runner.invoke(app, ["db", "current"], env=WIDE)
    assert after.exit_code == 0, after.output
    assert f"revision: {head}" in after.output
    assert "up to date" in after.output


def test_a_db_at_an_older_revision_is_refused_naming_both(
    empty_settings: Settings, runner: CliRunner
) -> None:
    head = db.head_revision()
    assert head != OLDER
    db.upgrade_db(empty_settings, OLDER)
    message = f"is at revision {OLDER}, this Liftboard needs {head}: run `liftboard db upgrade`"

    with pytest.raises(db.DatabaseNotCurrent, match=re.escape(message)):
        db.require_current(empty_settings)
    with pytest.raises(db.DatabaseNotCurrent, match=re.escape(message)):
        users.list_users(empty_settings)
    refused = runner.invoke(app, ["users", "list"], env=WIDE)
    assert refused.exit_code == EXIT_DB_NOT_CURRENT
    assert message in refused.output
    assert "Traceback" not in refused.output

    upgraded = runner.invoke(app, ["db", "upgrade"], env=WIDE)
    assert upgraded.exit_code == 0, upgraded.output
    assert f"upgraded from revision {OLDER} to {head}" in upgraded.output
    db.require_current(empty_settings)
    assert users.list_users(empty_settings).height == 0


def test_a_db_upgraded_by_a_newer_liftboard_is_refused(settings: Settings) -> None:
    with db.connect(settings) as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(db.DatabaseNotCurrent, match="revision 9999, which this Liftboard does not know"):
        db.require_current(settings)


def test_require_current_checks_the_db_once_per_process(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.require_current(settings)

    def no_second_look(_settings: Settings) -> str | None:
        raise AssertionError("the schema was checked again")

    monkeypatch.setattr(db, "database_revision", no_second_look)
    db.require_current(settings)
    users.get_user(settings, "ops")


@pytest.mark.postgres
def test_the_message_hides_the_password(pg_url: str, tmp_path: Path) -> None:
    url = sa.make_url(pg_url).set(password="s3cret").render_as_string(hide_password=False)
    settings = Settings.from_env(home=tmp_path / "home", database_url=url)
    try:
        with pytest.raises(db.DatabaseNotCurrent) as refused:
            db.require_current(settings)
    finally:
        db.dispose_engine(settings)
    assert "s3cret" not in str(refused.value)
    assert ":***@" in str(refused.value)


@pytest.mark.postgres
def test_upgrade_waits_for_the_advisory_lock(pg_url: str, tmp_path: Path) -> None:
    settings = Settings.from_env(home=tmp_path / "home", database_url=pg_url)
    other = sa.create_engine(pg_url)
    try:
        with other.connect() as holder, other.connect() as observer:
            _hold_upgrade_lock(holder)
            thread, errors = _in_thread(lambda: db.upgrade_db(settings))
            _wait_until(lambda: _waiting_for_upgrade_lock(observer) == 1)
            time.sleep(0.3)
            assert thread.is_alive()
            assert db.database_revision(settings) is None  # nothing migrated while the lock is held
            holder.commit()  # ends the transaction: releases the lock
            thread.join(timeout=120)
    finally:
        other.dispose()
    assert not thread.is_alive()
    assert errors == []
    assert db.database_revision(settings) == db.head_revision()


UPGRADE_IN_A_PROCESS = "from liftboard.cli import app; app(['db', 'upgrade'], prog_name='liftboard')"


@pytest.mark.postgres
def test_two_concurrent_upgrades_take_turns(pg_url: str, tmp_path: Path) -> None:
    """Two processes started together: both wait for the lock, one migrates, the other finds nothing to do."""
    head = db.head_revision()
    env = {
        **os.environ,
        "LIFTBOARD_HOME": str(tmp_path / "home"),
        "LIFTBOARD_DATABASE_URL": pg_url,
        "COLUMNS": "250",
    }
    other = sa.create_engine(pg_url)
    processes: list[subprocess.Popen[str]] = []
    try:
        with other.connect() as holder, other.connect() as observer:
            _hold_upgrade_lock(holder)
            processes = [
                subprocess.Popen(
                    [sys.executable, "-c", UPGRADE_IN_A_PROCESS],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for _ in range(2)
            ]
            _wait_until(lambda: _waiting_for_upgrade_lock(observer) == 2, seconds=180)
            holder.commit()
            outputs = sorted(process.communicate(timeout=180)[0] for process in processes)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        other.dispose()

    assert [process.returncode for process in processes] == [0, 0], outputs
    assert f"already at revision {head}: nothing to do" in outputs[0]
    assert f"upgraded from revision (empty) to {head}" in outputs[1]
    with db.engine_for(Settings.from_env(home=tmp_path, database_url=pg_url)).connect() as connection:
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    assert versions == [head]


def test_sqlite_upgrade_waits_for_the_write_lock(tmp_path: Path) -> None:
    settings = Settings.from_env(home=tmp_path / "home")
    settings.home.mkdir(parents=True)
    path = sa.make_url(settings.database_url).database
    assert path is not None
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        thread, errors = _in_thread(lambda: db.upgrade_db(settings))
        time.sleep(0.5)
        assert thread.is_alive()
        assert writer.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
        writer.execute("COMMIT")
        thread.join(timeout=60)
    finally:
        writer.close()
    assert not thread.is_alive()
    assert errors == []
    assert db.database_revision(settings) == db.head_revision()
