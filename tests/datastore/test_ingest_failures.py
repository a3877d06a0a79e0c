"""Ingest failures: whole-file errors change nothing, killed runs are recovered, no row is ever lost."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from core.config import Settings
from core.schema import TABLES
from datastore import db, lake
from datastore.ingest import IngestError, ingest_files
from datastore.lake import recover
from tests.builders import NOW, canonical, valid_tables, write, write_all
from tests.datastore.ingest_support import (
    GOOD,
    ORDER_HEADER,
    assert_counts_add_up,
    assert_lake_holds,
    assert_same_db,
    crash_ingest,
    db_snapshot,
    lake_options,
    lake_snapshot,
    ledger,
    ledger_loads,
    load_valid,
    order_row,
    orders_parquet_bytes,
)

# ---------------------------------------------------------------------------------------------------------
# Whole-file errors


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("orders.csv", b"", r"orders\.csv: file is empty \(0 bytes\)"),
        ("orders.ndjson", b"\n\n", r"orders\.ndjson: file is empty"),
        (
            "orders.csv",
            (ORDER_HEADER + "\n" + order_row()).encode()[:-1] + b"\x00\n",
            r"orders\.csv: binary file.*line 2",
        ),
        (
            "orders.csv",
            (ORDER_HEADER + "\n" + order_row(buyer_id="caf\xe9") + "\n").encode("latin-1"),
            r"orders\.csv: not valid UTF-8 at line 2, byte offset 131",
        ),
        # the broken last line alone would be quarantined; the readable one lacks every other column
        (
            "orders.ndjson",
            b'{"order_id": "o1"}\n{"order_id": "o',
            r"orders\.ndjson: orders: missing column\(s\)",
        ),
        (
            "orders.csv",
            b"order_id,ordered_at\no1,2024-01-01\n",
            r"orders\.csv: orders: missing column\(s\) buyer_id",
        ),
        (
            "orders.csv",
            (ORDER_HEADER + ",coupon\n" + order_row() + ",X\n").encode(),
            r"orders\.csv: orders: unexpected column\(s\) coupon",
        ),
        ("notes.csv", b"a\n1\n", r"notes\.csv: cannot tell which table"),
        ("orders.xlsx", b"a\n1\n", r"orders\.xlsx: unknown format"),
    ],
)
def test_whole_file_errors_fail_the_run_and_change_nothing(
    settings: Settings, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    load_valid(settings, tmp_path / "base")
    lake_before, db_before = lake_snapshot(settings), db_snapshot(settings)
    path = tmp_path / "bad" / name
    path.parent.mkdir()
    path.write_bytes(content)
    good = write(
        valid_tables()["creators"].with_columns(pl.col("followers") + 1), tmp_path / "bad" / "creators.csv"
    )

    with pytest.raises(IngestError, match=message):
        ingest_files([good, path], settings, now=NOW)

    assert lake_snapshot(settings) == lake_before
    assert_same_db(db_snapshot(settings), db_before)
    last = ledger(settings)[-1]
    assert last.status == "failed"
    assert str(path) in last.error
    assert ledger_loads(settings, last.run_id) == []
    assert not (settings.quarantine / last.run_id).exists()


@pytest.mark.parametrize("cut", ["footer", "head"])
def test_truncated_parquet(sqlite_settings: Settings, tmp_path: Path, cut: str) -> None:
    data = orders_parquet_bytes(tmp_path)
    path = tmp_path / "orders.parquet"
    path.write_bytes(data[:-30] if cut == "footer" else data[:50])

    with pytest.raises(IngestError, match=r"orders\.parquet: truncated Parquet file \(footer missing\)"):
        ingest_files([path], sqlite_settings, now=NOW)


def test_missing_file(sqlite_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"nowhere\.csv: file not found"):
        ingest_files([tmp_path / "nowhere.csv"], sqlite_settings)
    assert ledger(sqlite_settings)[-1].status == "failed"


def test_unknown_table_argument(sqlite_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="unknown table 'buyers'"):
        ingest_files([tmp_path / "x.csv"], sqlite_settings, table="buyers")


def test_progress_is_reported(sqlite_settings: Settings, tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []

    ingest_files(write_all(tmp_path / "in"), sqlite_settings, now=NOW, progress=lambda *a: seen.append(a))

    assert ("validating", 0, len(TABLES)) in seen
    assert ("validating", len(TABLES), len(TABLES)) in seen
    assert seen[-1] == ("committing", 1, 1)


# ---------------------------------------------------------------------------------------------------------
# SQL sources


# ---------------------------------------------------------------------------------------------------------
# Atomicity: kill a real process at each stage


STAGES = ["mid_write", "before_commit", "after_commit"]


def lake_contents(settings: Settings) -> dict[str, pl.DataFrame]:
    """What a reader sees: every table at the pinned versions."""
    version = lake.lake_version(settings)
    return {name: canonical(lake.scan_table(name, settings, version).collect(), name) for name in TABLES}


def assert_same_contents(left: dict[str, pl.DataFrame], right: dict[str, pl.DataFrame]) -> None:
    assert left.keys() == right.keys()
    for name in left:
        assert_frame_equal(left[name], right[name])


@pytest.mark.parametrize("stage", STAGES)
def test_a_killed_run_is_invisible_or_complete_and_the_rerun_completes(
    settings: Settings, tmp_path: Path, stage: str
) -> None:
    tables = valid_tables()
    base = {name: tables[name] for name in ("creators", "merchants", "products")}
    ingest_files(write_all(tmp_path / "a", "parquet", base), settings, now=NOW)
    seen_before, db_before = lake_contents(settings), db_snapshot(settings)
    rest = {name: frame for name, frame in tables.items() if name not in base}
    rest["creators"] = tables["creators"].with_columns(pl.col("followers") * 2)  # an update to roll back
    files = write_all(tmp_path / "b", "csv", rest)

    crash_ingest(settings, stage, files)

    # readers need no repair: they read the versions of the last committed run
    run = ledger(settings)[-1]
    if stage == "after_commit":
        assert run.status == "committed"
        assert_lake_holds(settings, {**tables, "creators": rest["creators"]})
    else:
        assert run.status == "running"
        assert_same_contents(lake_contents(settings), seen_before)
        assert_same_db(db_snapshot(settings), db_before)
        recover(settings)  # what the next writer does first
        run = ledger(settings)[-1]
        assert run.status == "failed"
        assert "interrupted" in run.error
        assert not (settings.quarantine / run.run_id).exists()
        assert_same_contents(lake_contents(settings), seen_before)
        for name in TABLES:  # the tables' latest versions are the pinned ones again
            uri, options = lake.table_uri(settings, name), lake_options(settings)
            if DeltaTable.is_deltatable(uri, storage_options=options):
                latest = pl.scan_delta(uri, storage_options=options).select(TABLES[name].columns).collect()
                assert_frame_equal(canonical(latest, name), seen_before[name])
    # either way, the next run starts from a consistent state and completes
    report = ingest_files(files, settings, now=NOW)
    assert_counts_add_up(report)
    assert_lake_holds(settings, {**tables, "creators": rest["creators"]})


def test_kills_at_every_point_in_a_row_then_a_rerun(sqlite_settings: Settings, tmp_path: Path) -> None:
    files = write_all(tmp_path / "in", "parquet")
    for stage in ("mid_write", "before_commit", "mid_write"):
        crash_ingest(sqlite_settings, stage, files)
        assert lake.lake_version(sqlite_settings).run_id is None
        assert lake.scan_table("orders", sqlite_settings).collect().is_empty()

    report = ingest_files(files, sqlite_settings, now=NOW)

    assert [run.status for run in ledger(sqlite_settings)] == ["failed", "failed", "failed", "committed"]
    assert sum(load.rows_duplicate for load in report.loads) == 0
    assert_lake_holds(sqlite_settings, valid_tables())


def test_a_run_committed_before_a_kill_is_read_without_recovery(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    files = write_all(tmp_path / "in", "parquet")

    crash_ingest(sqlite_settings, "after_commit", files)

    assert lake.scan_table("orders", sqlite_settings).collect().height == valid_tables()["orders"].height


def _big_orders(path: Path, rows: int, tag: str) -> Path:
    frame = pl.select(
        order_id=pl.lit(tag) + pl.int_range(rows).cast(pl.String).str.zfill(9),
        ordered_at=pl.lit(datetime(2024, 6, 1, tzinfo=UTC))
        + pl.duration(minutes=pl.int_range(rows) % 40_000),
        buyer_id=pl.lit("b") + (pl.int_range(rows) % 997).cast(pl.String),
        creator_id=pl.lit("c000001"),
        content_id=pl.lit("v0000001"),
        product_id=pl.lit("p0000001"),
        merchant_id=pl.lit("m00001"),
        quantity=pl.lit(1, dtype=pl.Int64),
        gmv=pl.lit(19.99),
        commission=pl.lit(2.0),
        status=pl.lit("completed"),
    )
    frame.write_parquet(path)
    return path


def test_a_reader_during_an_ingest_sees_all_of_a_run_or_none_of_it(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    ingest_files(write_all(tmp_path / "in", "parquet"), sqlite_settings, now=NOW)
    rows = 400_000
    followers = valid_tables()["creators"].with_columns(pl.col("followers") + 1)
    files = [
        _big_orders(tmp_path / "orders.parquet", rows, "big"),
        write(followers, tmp_path / "creators.parquet"),
    ]
    old = (valid_tables()["orders"].height, int(valid_tables()["creators"]["followers"].sum()))
    new = (old[0] + rows, int(followers["followers"].sum()))
    seen: list[tuple[int, int]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            version = lake.lake_version(sqlite_settings)  # one run's versions for both tables
            orders = lake.scan_table("orders", sqlite_settings, version).select(pl.len()).collect().item()
            total = lake.scan_table("creators", sqlite_settings, version).select(pl.col("followers").sum())
            seen.append((orders, int(total.collect().item())))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        ingest_files(files, sqlite_settings, now=NOW)
    finally:
        time.sleep(0.2)
        done.set()
        reader.join()

    assert set(seen) <= {old, new}, set(seen) - {old, new}
    assert seen[0] == old
    assert seen[-1] == new
    assert len(seen) > 3


# ---------------------------------------------------------------------------------------------------------
# Property: nothing is lost


CORRUPTIONS = {
    "valid": {},
    "quantity_text": {"quantity": "many"},
    "negative_gmv": {"gmv": "-1"},
    "unknown_creator": {"creator_id": "c404"},
    "future": {"ordered_at": "2030-05-05T00:00:00"},
    "bad_status": {"status": "lost"},
    "missing_buyer": {"buyer_id": ""},
}


@pytest.fixture(scope="module")
def property_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings.from_env(home=tmp_path_factory.mktemp("property"))
    db.upgrade_db(settings)
    ingest_files(write_all(settings.home / "base", "parquet"), settings, now=NOW)
    return settings


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kinds=st.lists(st.sampled_from(sorted(CORRUPTIONS)), min_size=1, max_size=30),
    repeats=st.lists(st.integers(min_value=0, max_value=29), max_size=5),
    fmt=st.sampled_from(["csv", "ndjson"]),
)
def test_every_row_is_loaded_quarantined_or_a_duplicate(
    property_home: Settings, kinds: list[str], repeats: list[int], fmt: str
) -> None:
    prefix = os.urandom(6).hex()
    rows = [
        {**GOOD, "order_id": f"{prefix}-{index}", **CORRUPTIONS[kind]} for index, kind in enumerate(kinds)
    ]
    rows += [rows[index] for index in repeats if index < len(rows)]
    frame = pl.DataFrame(rows, schema=dict.fromkeys(GOOD, pl.String)).with_columns(
        pl.col(name).replace("", None) for name in GOOD
    )
    path = property_home.home / f"orders-{prefix}.{fmt}"
    frame.write_csv(path) if fmt == "csv" else frame.write_ndjson(path)

    report = ingest_files([path], property_home, now=NOW)

    (load,) = report.loads
    assert load.rows_read == len(rows) == load.rows_loaded + load.rows_quarantined + load.rows_duplicate
    loaded = set(
        lake.scan_table("orders", property_home)
        .filter(pl.col("order_id").str.starts_with(prefix))
        .collect()["order_id"]
    )
    quarantined = (
        pl.read_parquet(load.quarantine_path) if load.quarantine_path else pl.DataFrame({"order_id": []})
    )
    expected_valid = {row["order_id"] for row, kind in zip(rows, kinds, strict=False) if kind == "valid"}
    assert loaded == expected_valid
    assert load.rows_loaded == len(loaded)
    bad_ids = [row["order_id"] for row in rows if row["order_id"] not in expected_valid]
    assert sorted(quarantined["order_id"].to_list()) == sorted(bad_ids)
    assert load.rows_duplicate == len(rows) - len(loaded) - len(bad_ids)
