"""The lake: scanning tables lazily with their canonical schema, layout, staging and recovery."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from core.config import Settings
from core.schema import TABLES
from datastore import lake
from datastore.ingest import ingest_files
from tests.builders import NOW, canonical, valid_tables, write_all
from tests.datastore.ingest_support import lake_options


@pytest.mark.parametrize("name", list(TABLES))
def test_empty_lake_scans_as_an_empty_frame_with_the_schema(sqlite_settings: Settings, name: str) -> None:
    scanned = lake.scan_table(name, sqlite_settings)

    assert isinstance(scanned, pl.LazyFrame)
    assert_frame_equal(scanned.collect(), TABLES[name].empty())


def test_settings_default_to_the_environment(sqlite_settings: Settings, tmp_path: Path) -> None:
    ingest_files(write_all(tmp_path / "in"), sqlite_settings, now=NOW)

    assert lake.scan_table("orders").collect().height == valid_tables()["orders"].height


def test_scan_pushes_filters_down_to_the_parquet_scan(sqlite_settings: Settings, tmp_path: Path) -> None:
    ingest_files(write_all(tmp_path / "in"), sqlite_settings, now=NOW)
    since = datetime(2024, 6, 2, tzinfo=UTC)

    query = (
        lake.scan_table("orders", sqlite_settings).filter(pl.col("ordered_at") >= since).select("order_id")
    )

    plan = query.explain()
    assert "SCAN" in plan
    assert "SELECTION" in plan
    assert sorted(query.collect()["order_id"]) == ["o0000003", "o0000004"]
    assert "date=" not in str(lake.scan_table("engagement", sqlite_settings).collect_schema())


def test_scan_returns_exactly_the_spec_schema(sqlite_settings: Settings, tmp_path: Path) -> None:
    ingest_files(write_all(tmp_path / "in", "csv"), sqlite_settings, now=NOW)

    for name, spec in TABLES.items():
        frame = lake.scan_table(name, sqlite_settings).collect()
        assert frame.schema == spec.schema
        assert_frame_equal(canonical(frame, name), canonical(valid_tables()[name], name))


def test_facts_are_delta_tables_partitioned_by_day(sqlite_settings: Settings, tmp_path: Path) -> None:
    report = ingest_files(write_all(tmp_path / "in"), sqlite_settings, now=NOW)

    delta = DeltaTable(
        lake.table_uri(sqlite_settings, "orders"), storage_options=lake_options(sqlite_settings)
    )
    assert sorted(partition["day"] for partition in delta.partitions()) == [
        "2024-06-01",
        "2024-06-02",
        "2024-06-03",
    ]
    assert all(uri.split("/")[-2].startswith("day=") for uri in delta.file_uris())
    version = lake.lake_version(sqlite_settings)
    assert version.run_id == report.run_id
    assert set(version.versions) == set(TABLES)  # every table at the version this run left it
    assert lake.table_details("orders", sqlite_settings, version)["files"] == 3


def test_a_version_no_run_committed_is_invisible_and_rolled_back(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    ingest_files(write_all(tmp_path / "in"), sqlite_settings, now=NOW)
    before = lake.lake_version(sqlite_settings)
    extra = valid_tables()["orders"].with_columns(pl.col("order_id") + "-x")
    lake.append_facts(sqlite_settings, "orders", [extra])  # written, but no run recorded it

    assert lake.scan_table("orders", sqlite_settings).collect().height == extra.height
    lake.recover(sqlite_settings)
    assert lake.lake_version(sqlite_settings) == before
    latest = pl.scan_delta(
        lake.table_uri(sqlite_settings, "orders"), storage_options=lake_options(sqlite_settings)
    )
    assert latest.collect().height == extra.height
    ingest_files(write_all(tmp_path / "in"), sqlite_settings, now=NOW)  # a re-run: all duplicates
    assert lake.scan_table("orders", sqlite_settings).collect().height == extra.height


def test_scan_does_not_wait_for_a_running_ingest(sqlite_settings: Settings, tmp_path: Path) -> None:
    ingest_files(write_all(tmp_path / "in"), sqlite_settings, now=NOW)
    with lake.ingest_lock(sqlite_settings):
        assert lake.scan_table("orders", sqlite_settings).collect().height == valid_tables()["orders"].height
        with pytest.raises(lake.LakeBusy), lake.ingest_lock(sqlite_settings, blocking=False):
            pass


def test_time_travel_reads_the_lake_as_an_earlier_run_left_it(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    first = ingest_files(write_all(tmp_path / "in"), sqlite_settings, now=NOW)
    more = valid_tables()["orders"].with_columns(pl.col("order_id") + "-2")
    ingest_files(write_all(tmp_path / "more", "parquet", {"orders": more}), sqlite_settings, now=NOW)

    old = lake.lake_version(sqlite_settings, first.run_id)
    assert lake.scan_table("orders", sqlite_settings, old).collect().height == more.height
    assert lake.scan_table("orders", sqlite_settings).collect().height == 2 * more.height
    pinned = lake.pinned(sqlite_settings, first.run_id)
    assert lake.scan_table("orders", pinned).collect().height == more.height
    with pytest.raises(lake.UnknownLakeVersion, match="nope"):
        lake.lake_version(sqlite_settings, "nope")


def test_optimize_and_vacuum_keep_what_readers_read(sqlite_settings: Settings, tmp_path: Path) -> None:
    ingest_files(write_all(tmp_path / "in"), sqlite_settings, now=NOW)
    more = valid_tables()["orders"].with_columns(pl.col("order_id") + "-2")
    ingest_files(write_all(tmp_path / "more", "parquet", {"orders": more}), sqlite_settings, now=NOW)
    expected = canonical(lake.scan_table("orders", sqlite_settings).collect(), "orders")

    done = lake.optimize(sqlite_settings)
    removed = lake.vacuum(sqlite_settings, retention_hours=0)

    assert done["orders"]["numFilesRemoved"] == 6
    assert lake.lake_version(sqlite_settings).run_id == done["run_id"]
    assert removed["orders"] == 6
    assert_frame_equal(canonical(lake.scan_table("orders", sqlite_settings).collect(), "orders"), expected)


def test_a_lake_from_before_the_delta_tables_is_refused_with_what_to_do(sqlite_settings: Settings) -> None:
    """A state DB whose committed runs predate lake versions (migration 0005 left them null) belongs to a
    Parquet lake this version cannot read: say so, instead of reading an empty lake."""
    from datastore import db as state_db

    with state_db.engine_for(sqlite_settings).begin() as connection:
        connection.execute(
            state_db.ingestion_runs.insert().values(
                run_id="old-run", status="committed", started_at=datetime.now(UTC), source="before"
            )
        )
    with pytest.raises(lake.LakeFromEarlierVersion, match="ingest its source files again"):
        lake.lake_version(sqlite_settings)
