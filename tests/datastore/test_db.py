"""The state DB: migrations, engine, reading tables back with their canonical schema."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from polars.testing import assert_frame_equal

from core.config import Settings
from core.schema import DIMENSION_TABLES, TABLES
from datastore import db
from tests.builders import canonical, valid_tables


def test_upgrade_creates_every_table_and_matches_the_metadata(settings: Settings) -> None:
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
    db.upgrade_db(settings)
    with db.connect(settings) as connection:
        connection.execute(sa.insert(db.metadata.tables["merchants"]), valid_tables()["merchants"].to_dicts())

    db.upgrade_db(settings)

    assert db.count_rows("merchants", settings) == 2


def test_downgrade_is_refused(sqlite_settings: Settings) -> None:
    db.upgrade_db(sqlite_settings)
    with pytest.raises(NotImplementedError, match="users' data"):
        command.downgrade(db.alembic_config(sqlite_settings), "base")


@pytest.mark.parametrize("name", DIMENSION_TABLES)
def test_read_table_round_trips_the_canonical_schema(settings: Settings, name: str) -> None:
    db.upgrade_db(settings)
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
    db.upgrade_db(settings)
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
    db.upgrade_db(settings)
    nasty = valid_tables()["merchants"].with_columns(pl.lit("x'); DROP TABLE merchants; --").alias("name"))
    with db.connect(settings) as connection:
        connection.execute(sa.insert(db.metadata.tables["merchants"]), nasty.to_dicts())
    assert db.read_table("merchants", settings)["name"].to_list() == ["x'); DROP TABLE merchants; --"] * 2
