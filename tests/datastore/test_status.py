"""The installation's data state (`datastore.status`): freshness per table, the ledger, the quarantine."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from core.config import Settings
from core.schema import TABLES
from datastore.ingest import ingest_files
from datastore.status import FRESHNESS_SCHEMA, ingestion_runs, quarantine_files, table_freshness
from tests.builders import valid_tables, write_all


def test_freshness_of_an_empty_home(sqlite_settings: Settings) -> None:
    fresh = table_freshness(sqlite_settings)

    assert fresh.schema == pl.Schema(FRESHNESS_SCHEMA)
    assert fresh["table"].to_list() == list(TABLES)
    assert fresh["rows"].to_list() == [0] * len(TABLES)
    assert fresh["last_day"].null_count() == len(TABLES)
    assert quarantine_files(sqlite_settings).height == 0


def test_freshness_after_an_ingest(sqlite_settings: Settings, tmp_path: Path) -> None:
    tables = valid_tables()
    ingest_files(write_all(tmp_path / "in"), sqlite_settings, user="tester")

    fresh = {row["table"]: row for row in table_freshness(sqlite_settings).iter_rows(named=True)}

    orders = fresh["orders"]
    assert orders["rows"] == tables["orders"].height
    assert (orders["first_day"], orders["last_day"]) == (date(2024, 6, 1), date(2024, 6, 3))
    assert orders["files"] >= 1
    assert orders["last_written"] is not None
    creators = fresh["creators"]  # counted in the state DB, days from its joined_on
    assert creators["storage"] == "db"
    assert creators["rows"] == tables["creators"].height
    assert creators["last_day"] == tables["creators"]["joined_on"].max()
    runs = ingestion_runs(sqlite_settings)
    assert runs["user"].to_list() == ["tester"]
    assert runs["rows_loaded"].to_list() == [sum(frame.height for frame in tables.values())]
