"""The lake: scanning tables lazily with their canonical schema, layout, staging and recovery."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.config import Settings
from core.schema import TABLES
from datastore import lake
from datastore.ingest import ingest_files
from tests.builders import NOW, canonical, valid_tables, write_all


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


def test_staging_of_an_unknown_run_is_ignored_and_discarded(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    ingest_files(write_all(tmp_path / "in"), sqlite_settings, now=NOW)
    stray = (
        lake.staging_dir(sqlite_settings, "20200101T000000-deadbeef") / "lake" / "orders" / "date=2024-06-09"
    )
    stray.mkdir(parents=True)
    valid_tables()["orders"].write_parquet(stray / "part-x.parquet")

    assert lake.scan_table("orders", sqlite_settings).collect().height == valid_tables()["orders"].height
    assert not lake.has_staging(sqlite_settings)


def test_scan_does_not_wait_for_a_running_ingest(sqlite_settings: Settings) -> None:
    lake.staging_dir(sqlite_settings, "running-run").mkdir(parents=True)
    with lake.ingest_lock(sqlite_settings):
        assert lake.scan_table("orders", sqlite_settings).collect().is_empty()
        with pytest.raises(lake.LakeBusy), lake.ingest_lock(sqlite_settings, blocking=False):
            pass
    assert lake.has_staging(sqlite_settings)  # left for the running ingest to finish


def test_roll_forward_is_idempotent(sqlite_settings: Settings) -> None:
    staging = lake.Staging(sqlite_settings, "r1")
    staging.add_dimension(TABLES["merchants"], valid_tables()["merchants"])
    staging.add_fact_partitions(TABLES["orders"], valid_tables()["orders"])
    staging.seal()
    moves = list(staging.moves)
    # a crash after the first move leaves a half-moved run; replaying finishes it
    first_source = staging.root / moves[0][0]
    Path(moves[0][1]).parent.mkdir(parents=True, exist_ok=True)
    first_source.rename(moves[0][1])

    lake.roll_forward(sqlite_settings, "r1")

    assert all(Path(destination).is_file() for _, destination in moves)
    assert not staging.root.exists()
    assert lake.scan_committed("orders", sqlite_settings).collect().height == 4
    assert [p.parent.name for p in lake.table_files("orders", sqlite_settings)] == [
        "date=2024-06-01",
        "date=2024-06-02",
        "date=2024-06-03",
    ]
