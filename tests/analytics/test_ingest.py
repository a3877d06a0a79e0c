"""Ingest: formats, coercions, quarantine, duplicates, whole-file errors, SQL sources, atomicity."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analytics import db, lake
from analytics.ingest import IngestError, IngestReport, ingest_files, ingest_sql, recover, table_for_file
from analytics.schema import DIMENSION_TABLES, TABLES
from liftboard.config import Settings
from tests.builders import NOW, as_text, canonical, valid_tables, write, write_all

REPO = Path(__file__).resolve().parents[2]


def lake_snapshot(settings: Settings) -> dict[str, str]:
    """Every file under the lake (staging included) with a hash of its bytes."""
    if not settings.lake.exists():
        return {}
    return {
        str(path.relative_to(settings.lake)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(settings.lake.rglob("*"))
        if path.is_file()
    }


def db_snapshot(settings: Settings) -> dict[str, pl.DataFrame]:
    db.ensure_db(settings)
    return {name: db.read_table(name, settings) for name in DIMENSION_TABLES}


def assert_same_db(left: dict[str, pl.DataFrame], right: dict[str, pl.DataFrame]) -> None:
    assert left.keys() == right.keys()
    for name in left:
        assert_frame_equal(left[name], right[name])


def ledger(settings: Settings) -> list[sa.Row]:
    with db.engine_for(settings).connect() as connection:
        runs = connection.execute(sa.select(db.ingestion_runs).order_by(db.ingestion_runs.c.started_at)).all()
    return list(runs)


def ledger_loads(settings: Settings, run_id: str) -> list[sa.Row]:
    with db.engine_for(settings).connect() as connection:
        query = sa.select(db.ingestion_loads).where(db.ingestion_loads.c.run_id == run_id)
        return list(connection.execute(query.order_by(db.ingestion_loads.c.load_id)).all())


def load_valid(settings: Settings, directory: Path, fmt: str = "parquet") -> IngestReport:
    return ingest_files(write_all(directory, fmt), settings, now=NOW)


def assert_counts_add_up(report: IngestReport) -> None:
    for load in report.loads:
        assert load.rows_read == load.rows_loaded + load.rows_quarantined + load.rows_duplicate


def assert_lake_holds(settings: Settings, expected: dict[str, pl.DataFrame]) -> None:
    for name, frame in expected.items():
        stored = lake.scan_table(name, settings).collect()
        assert stored.schema == TABLES[name].schema
        assert_frame_equal(canonical(stored, name), canonical(frame, name))
        if TABLES[name].storage == "db":
            assert_frame_equal(db.read_table(name, settings), canonical(frame, name))


def quarantine(report: IngestReport, table: str) -> pl.DataFrame:
    paths = [load.quarantine_path for load in report.loads if load.table == table and load.quarantine_path]
    assert len(paths) == 1, report
    return pl.read_parquet(paths[0])


# ---------------------------------------------------------------------------------------------------------
# Happy paths


@pytest.mark.parametrize("fmt", ["parquet", "csv", "ndjson", "jsonl"])
def test_valid_tables_load_in_every_format(settings: Settings, tmp_path: Path, fmt: str) -> None:
    report = load_valid(settings, tmp_path / "in", fmt)

    assert report.status == "committed"
    assert report.rows_loaded == report.rows_read == sum(frame.height for frame in valid_tables().values())
    assert report.rows_quarantined == report.rows_duplicate == 0
    assert [load.table for load in report.loads] == list(TABLES)
    assert_lake_holds(settings, valid_tables())
    (run,) = ledger(settings)
    assert (run.run_id, run.status, run.error) == (report.run_id, "committed", None)
    recorded = {
        (row.table_name, row.rows_read, row.rows_loaded) for row in ledger_loads(settings, report.run_id)
    }
    assert recorded == {(load.table, load.rows_read, load.rows_loaded) for load in report.loads}


def test_lake_layout_partitions_facts_by_day_and_mirrors_dimensions(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    report = load_valid(sqlite_settings, tmp_path / "in")

    files = set(lake_snapshot(sqlite_settings))
    part = f"part-{report.run_id}.parquet"
    assert {f"orders/date=2024-06-0{day}/{part}" for day in (1, 2, 3)} <= files
    assert {f"content/date=2024-06-0{day}/{part}" for day in (1, 2)} <= files
    assert {f"{name}/{name}.parquet" for name in DIMENSION_TABLES} <= files
    assert not any(name.startswith("_staging") for name in files)


def test_rerun_changes_nothing(settings: Settings, tmp_path: Path) -> None:
    files = write_all(tmp_path / "in", "csv")
    first = ingest_files(files, settings, now=NOW)
    lake_before, db_before = lake_snapshot(settings), db_snapshot(settings)

    second = ingest_files(files, settings, now=NOW)

    assert second.rows_loaded == 0
    assert second.rows_duplicate == second.rows_read == first.rows_read
    assert_counts_add_up(second)
    assert lake_snapshot(settings) == lake_before
    assert_same_db(db_snapshot(settings), db_before)
    assert [run.status for run in ledger(settings)] == ["committed", "committed"]


def test_files_of_one_table_in_one_run_and_names_pick_the_table(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    tables = valid_tables()
    files = write_all(tmp_path / "in", "parquet", {k: v for k, v in tables.items() if k != "orders"})
    files.append(write(tables["orders"].head(2), tmp_path / "in" / "orders-001.parquet"))
    files.append(write(tables["orders"].tail(2), tmp_path / "in" / "orders_week12.csv"))
    files.append(write(tables["orders"].tail(1), tmp_path / "in" / "orders.2024.ndjson"))

    report = ingest_files(files, sqlite_settings, now=NOW)

    orders = [load for load in report.loads if load.table == "orders"]
    assert [(load.rows_loaded, load.rows_duplicate) for load in orders] == [(2, 0), (2, 0), (0, 1)]
    assert_lake_holds(sqlite_settings, tables)


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("orders.parquet", "orders"),
        ("orders-003.parquet", "orders"),
        ("orders_week12.csv", "orders"),
        ("creators.2024.ndjson", "creators"),
        ("showcase.jsonl", "showcase"),
        ("notes.csv", None),
        ("order.csv", None),
    ],
)
def test_table_for_file(name: str, table: str | None) -> None:
    assert table_for_file(Path(name)) == table


def test_explicit_table_overrides_the_file_name(sqlite_settings: Settings, tmp_path: Path) -> None:
    path = write(valid_tables()["creators"], tmp_path / "export.csv")

    report = ingest_files([path], sqlite_settings, table="creators", now=NOW)

    assert report.loads[0].table == "creators"
    assert report.rows_loaded == 3


# ---------------------------------------------------------------------------------------------------------
# Coercions


def test_csv_coercions(sqlite_settings: Settings, tmp_path: Path) -> None:
    load_valid(sqlite_settings, tmp_path / "base")
    path = tmp_path / "orders-coerce.csv"
    path.write_text(
        "order_id,ordered_at,buyer_id,creator_id,content_id,product_id,merchant_id,quantity,gmv,commission,status\n"
        "x1,2024-06-04T10:00:00Z,b,c000001,,p0000001,m00001, 2 ,20,2,completed\n"
        "x2,2024-06-04T10:00:00+02:00,b,c000001,v0000001,p0000001,m00001,2.0,1.5e1,0,completed\n"
        "x3,2024-06-04 10:00,b,c000001,,p0000001,m00001,1,3.25,0.5,refunded\n"
        "x4,2024-06-05,b,c000001,,p0000001,m00001,1,3,0.5,cancelled\n",
        encoding="utf-8",
    )

    report = ingest_files([path], sqlite_settings, now=NOW)

    assert (report.rows_loaded, report.rows_quarantined) == (4, 0)
    got = lake.scan_table("orders", sqlite_settings).filter(pl.col("order_id").str.starts_with("x")).collect()
    got = got.sort("order_id")
    assert got["ordered_at"].to_list() == [
        datetime(2024, 6, 4, 10, tzinfo=UTC),
        datetime(2024, 6, 4, 8, tzinfo=UTC),
        datetime(2024, 6, 4, 10, tzinfo=UTC),
        datetime(2024, 6, 5, tzinfo=UTC),
    ]
    assert got["quantity"].to_list() == [2, 2, 1, 1]
    assert got["gmv"].to_list() == [20.0, 15.0, 3.25, 3.0]
    assert got["content_id"].to_list() == [None, "v0000001", None, None]


def test_parquet_with_castable_dtypes_is_coerced(sqlite_settings: Settings, tmp_path: Path) -> None:
    tables = valid_tables()
    tables["creators"] = tables["creators"].with_columns(
        pl.col("followers").cast(pl.Int32), pl.col("joined_on").cast(pl.Datetime("ns"))
    )
    tables["merchants"] = tables["merchants"].with_columns(
        pl.col("rating").cast(pl.Float32), pl.col("ships_in_days").cast(pl.Int16)
    )
    tables["orders"] = tables["orders"].with_columns(
        pl.col("ordered_at").dt.replace_time_zone(None).dt.cast_time_unit("ns"),
        pl.col("quantity").cast(pl.Float64),
        pl.col("status").cast(pl.Categorical),
    )
    tables["content"] = tables["content"].with_columns(
        pl.col("published_at").dt.convert_time_zone("Asia/Tokyo").dt.cast_time_unit("ms")
    )

    report = ingest_files(write_all(tmp_path / "in", "parquet", tables), sqlite_settings, now=NOW)

    assert report.rows_quarantined == 0
    expected = valid_tables()
    expected["merchants"] = expected["merchants"].with_columns(pl.col("ships_in_days").floor())
    assert_lake_holds(sqlite_settings, expected)


def test_ndjson_numbers_and_dates(sqlite_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "creators.ndjson"
    path.write_text(
        '{"creator_id": "c1", "handle": "@a", "joined_on": "2024-01-02T00:00:00", "region": "US", '
        '"followers": 10.0, "primary_category": "tech", "bio": null}\n'
        '{"creator_id": "c2", "handle": "@b", "joined_on": "2024-01-03", "region": "US", '
        '"followers": "12", "primary_category": "tech"}\n',
        encoding="utf-8",
    )

    report = ingest_files([path], sqlite_settings, now=NOW)

    assert report.rows_loaded == 2
    got = db.read_table("creators", sqlite_settings)
    assert got["joined_on"].to_list() == [date(2024, 1, 2), date(2024, 1, 3)]
    assert got["followers"].to_list() == [10, 12]


# ---------------------------------------------------------------------------------------------------------
# Quarantine


ORDER_HEADER = (
    "order_id,ordered_at,buyer_id,creator_id,content_id,product_id,merchant_id,quantity,gmv,commission,status"
)


def _orders_csv(path: Path, *rows: str) -> Path:
    path.write_text("\n".join([ORDER_HEADER, *rows]) + "\n", encoding="utf-8")
    return path


GOOD = {
    "order_id": "q1",
    "ordered_at": "2024-06-04T10:00:00",
    "buyer_id": "b9",
    "creator_id": "c000001",
    "content_id": "v0000001",
    "product_id": "p0000001",
    "merchant_id": "m00001",
    "quantity": "1",
    "gmv": "19.99",
    "commission": "2",
    "status": "completed",
}


def _row(**changes: str) -> str:
    return ",".join({**GOOD, **changes}.values())


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("quantity", "x", "quantity: 'x' is not a valid integer"),
        ("quantity", "1.5", "quantity: '1.5' is not a valid integer"),
        ("quantity", "0", "quantity: 0 is below the minimum 1"),
        ("gmv", "-3.5", "gmv: -3.5 is below the minimum 0.0"),
        ("gmv", "nan", "gmv: NaN is not a finite number"),
        (
            "ordered_at",
            "2024-13-01T00:00:00",
            "ordered_at: '2024-13-01T00:00:00' is not a valid timestamp (ISO 8601)",
        ),
        ("ordered_at", "2031-01-01T00:00:00", "ordered_at: 2031-01-01T00:00:00 is in the future"),
        ("status", "shipped", "status: 'shipped' is not one of completed, refunded, cancelled"),
        ("creator_id", "c999", "creator_id: 'c999' is not a known creators.creator_id"),
        ("content_id", "v999", "content_id: 'v999' is not a known content.content_id"),
        ("buyer_id", "", "buyer_id: value is missing (the column is required)"),
    ],
)
def test_bad_cells_are_quarantined_with_row_column_and_reason(
    sqlite_settings: Settings, tmp_path: Path, column: str, value: str, reason: str
) -> None:
    load_valid(sqlite_settings, tmp_path / "base")
    path = _orders_csv(
        tmp_path / "orders-new.csv", _row(order_id="q1"), _row(order_id="q2", **{column: value})
    )

    report = ingest_files([path], sqlite_settings, now=NOW)

    (load,) = report.loads
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined, load.rows_duplicate) == (2, 1, 1, 0)
    assert load.quarantine_path == str(sqlite_settings.quarantine / report.run_id / "orders-1.parquet")
    bad = pl.read_parquet(load.quarantine_path)
    assert bad.columns == [*TABLES["orders"].columns, "_row", "_column", "_reason"]
    assert bad.row(0, named=True) | {"_reason": None} == {
        **GOOD,
        "order_id": "q2",
        column: value or None,
        "_row": 2,
        "_column": column,
        "_reason": None,
    }
    assert bad["_reason"][0] == reason
    stored = (
        lake.scan_table("orders", sqlite_settings).filter(pl.col("order_id").is_in(["q1", "q2"])).collect()
    )
    assert stored["order_id"].to_list() == ["q1"]


def test_every_bad_column_of_a_row_is_named(sqlite_settings: Settings, tmp_path: Path) -> None:
    load_valid(sqlite_settings, tmp_path / "base")
    path = _orders_csv(tmp_path / "orders.csv", _row(gmv="-1", status="lost", creator_id="c404"))

    report = ingest_files([path], sqlite_settings, now=NOW)

    bad = quarantine(report, "orders")
    assert bad["_column"].to_list() == ["creator_id, gmv, status"]
    assert bad["_reason"].to_list() == [
        "creator_id: 'c404' is not a known creators.creator_id; gmv: -1.0 is below the minimum 0.0; "
        "status: 'lost' is not one of completed, refunded, cancelled"
    ]


def test_dimension_ranges_dates_and_required_columns(sqlite_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "merchants.csv"
    path.write_text(
        "merchant_id,name,joined_on,region,category,rating,ships_in_days\n"
        "m1,A,2024-01-01,US,home,6,1\n"
        "m2,B,2024-02-30,US,home,4,1\n"
        "m3,,2024-01-01,US,home,4,61\n"
        "m4,D,2030-01-01,US,home,1,0\n"
        "m5,E,2024-01-01,US,home,5,60\n",
        encoding="utf-8",
    )

    report = ingest_files([path], sqlite_settings, now=NOW)

    assert (report.rows_loaded, report.rows_quarantined) == (1, 4)
    bad = quarantine(report, "merchants")
    assert bad.select("_row", "_reason").rows() == [
        (1, "rating: 6.0 is above the maximum 5.0"),
        (2, "joined_on: '2024-02-30' is not a valid date (YYYY-MM-DD)"),
        (3, "name: value is missing (the column is required); ships_in_days: 61.0 is above the maximum 60.0"),
        (4, "joined_on: 2030-01-01 is in the future"),
    ]
    assert db.read_table("merchants", sqlite_settings)["merchant_id"].to_list() == ["m5"]


def test_foreign_keys_resolve_within_the_run_and_against_stored_data(
    settings: Settings, tmp_path: Path
) -> None:
    tables = valid_tables()
    first = ingest_files(
        write_all(tmp_path / "a", "csv", {"merchants": tables["merchants"]}), settings, now=NOW
    )
    assert first.rows_loaded == 2
    # products point at stored merchants; content and orders at creators of the same run
    batch = {name: tables[name] for name in ("creators", "products", "content", "orders")}
    batch["creators"] = batch["creators"].with_columns(
        pl.when(pl.col("creator_id") == "c000002").then(pl.lit(-5)).otherwise("followers").alias("followers")
    )

    report = ingest_files(write_all(tmp_path / "b", "csv", batch), settings, now=NOW)

    loaded = {load.table: (load.rows_loaded, load.rows_quarantined) for load in report.loads}
    # c000002 is quarantined, so its content v0000002 and the order referencing both are too
    assert loaded == {"creators": (2, 1), "products": (3, 0), "content": (2, 1), "orders": (3, 1)}
    assert quarantine(report, "content")["_reason"].to_list() == [
        "creator_id: 'c000002' is not a known creators.creator_id"
    ]
    assert quarantine(report, "orders")["_reason"].to_list() == [
        "creator_id: 'c000002' is not a known creators.creator_id; "
        "content_id: 'v0000002' is not a known content.content_id"
    ]


def test_polymorphic_intervention_entities(settings: Settings, tmp_path: Path) -> None:
    tables = valid_tables()
    base = {name: tables[name] for name in ("creators", "merchants")}
    ingest_files(write_all(tmp_path / "a", "parquet", base), settings, now=NOW)
    path = tmp_path / "interventions.csv"
    path.write_text(
        "intervention_id,entity_kind,entity_id,strategy,assigned_on,arm,assignment\n"
        "i1,creator,c000001,live_coaching,2024-05-01,treatment,randomized\n"
        "i2,merchant,m00001,free_samples,2024-05-01,control,targeted\n"
        "i3,creator,m00001,live_coaching,2024-05-01,treatment,randomized\n"
        "i4,merchant,c000001,free_samples,2024-05-01,control,targeted\n"
        "i5,brand,c000001,free_samples,2024-05-01,control,targeted\n",
        encoding="utf-8",
    )

    report = ingest_files([path], settings, now=NOW)

    assert (report.rows_loaded, report.rows_quarantined) == (2, 3)
    assert quarantine(report, "interventions").select("_row", "_reason").rows() == [
        (3, "entity_id: 'm00001' is not a known creators.creator_id"),
        (4, "entity_id: 'c000001' is not a known merchants.merchant_id"),
        (5, "entity_kind: 'brand' is not one of creator, merchant"),
    ]
    assert db.read_table("interventions", settings)["intervention_id"].to_list() == ["i1", "i2"]


# ---------------------------------------------------------------------------------------------------------
# Duplicates and updates


def test_fact_duplicates_within_the_file_and_against_stored_rows(settings: Settings, tmp_path: Path) -> None:
    load_valid(settings, tmp_path / "base")
    path = _orders_csv(
        tmp_path / "orders.csv",
        _row(order_id="d1"),
        _row(order_id="d1"),
        _row(order_id="d1", gmv="5"),  # same key: a duplicate of the first occurrence
        _row(order_id="o0000001"),  # already stored
        _row(order_id="d2"),
    )

    report = ingest_files([path], settings, now=NOW)

    (load,) = report.loads
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined, load.rows_duplicate) == (5, 2, 0, 3)
    orders = lake.scan_table("orders", settings).collect()
    assert orders["order_id"].is_unique().all()
    assert orders.filter(pl.col("order_id") == "d1")["gmv"].to_list() == [19.99]


def test_dimension_rows_update_in_place_and_identical_ones_are_duplicates(
    settings: Settings, tmp_path: Path
) -> None:
    load_valid(settings, tmp_path / "base")
    creators = valid_tables()["creators"]
    changed = creators.with_columns(
        pl.when(pl.col("creator_id") == "c000002").then(pl.lit(77)).otherwise("followers").alias("followers")
    )
    added = pl.DataFrame(
        {
            "creator_id": ["c000004", "c000004"],
            "handle": ["@dee", "@dee"],
            "joined_on": [date(2024, 4, 1)] * 2,
            "region": ["US", "US"],
            "followers": [1, 2],
            "primary_category": ["home", "home"],
            "bio": [None, None],
        },
        schema=TABLES["creators"].schema,
    )
    path = write(pl.concat([changed, added]), tmp_path / "creators.csv")

    report = ingest_files([path], settings, now=NOW)

    (load,) = report.loads
    # c000001, c000003 unchanged (duplicates); c000002 updated; c000004 inserted then updated
    assert (load.rows_read, load.rows_loaded, load.rows_duplicate) == (5, 3, 2)
    expected = pl.concat([changed, added.tail(1)]).sort("creator_id")
    assert_frame_equal(db.read_table("creators", settings), expected)
    assert_frame_equal(lake.scan_table("creators", settings).collect(), expected)


# ---------------------------------------------------------------------------------------------------------
# Whole-file errors


def _orders_parquet_bytes(tmp_path: Path) -> bytes:
    return write(valid_tables()["orders"], tmp_path / "src" / "orders.parquet").read_bytes()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("orders.csv", b"", r"orders\.csv: file is empty \(0 bytes\)"),
        ("orders.csv", (ORDER_HEADER + "\n").encode(), r"orders\.csv: file is empty \(header only"),
        ("orders.ndjson", b"\n\n", r"orders\.ndjson: file is empty"),
        (
            "orders.csv",
            (ORDER_HEADER + "\n" + _row()).encode()[:-1] + b"\x00\n",
            r"orders\.csv: binary file.*line 2",
        ),
        (
            "orders.csv",
            (ORDER_HEADER + "\n" + _row(buyer_id="caf\xe9") + "\n").encode("latin-1"),
            r"orders\.csv: not valid UTF-8 at line 2, byte offset 131",
        ),
        (
            "orders.csv",
            (ORDER_HEADER + "\n" + _row() + "\n" + _row(order_id="q2")[:30]).encode(),
            r"orders\.csv: truncated file: the last line \(line 3\) has 4 of 11 fields",
        ),
        ("orders.ndjson", b'{"order_id": "o1"}\n{"order_id": "o', r"orders\.ndjson: truncated file.*line 2"),
        (
            "orders.csv",
            b"order_id,ordered_at\no1,2024-01-01\n",
            r"orders\.csv: orders: missing column\(s\) buyer_id",
        ),
        (
            "orders.csv",
            (ORDER_HEADER + ",coupon\n" + _row() + ",X\n").encode(),
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
    data = _orders_parquet_bytes(tmp_path)
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


def _warehouse(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = sa.create_engine(url)
    frame = as_text(valid_tables()["creators"]).with_columns(pl.col("followers").cast(pl.Int64))
    frame = pl.concat(
        [
            frame,
            pl.DataFrame(
                [{**frame.row(0, named=True), "creator_id": "c000009", "followers": -1}], schema=frame.schema
            ),
        ]
    )
    metadata = sa.MetaData()
    table = sa.Table(
        "creator_export",
        metadata,
        *(sa.Column(name, sa.BigInteger if name == "followers" else sa.Text) for name in frame.columns),
    )
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(table), frame.to_dicts())
    engine.dispose()
    return url


def test_sql_source_by_table_and_by_query(settings: Settings, tmp_path: Path) -> None:
    url = _warehouse(tmp_path)

    report = ingest_sql(url, "creators", settings, source_table="creator_export", now=NOW)

    (load,) = report.loads
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (4, 3, 1)
    assert load.file.endswith("warehouse.db#creator_export")
    assert quarantine(report, "creators").select("_row", "_reason").rows() == [
        (4, "followers: -1 is below the minimum 0")
    ]
    assert_frame_equal(db.read_table("creators", settings), canonical(valid_tables()["creators"], "creators"))

    again = ingest_sql(
        url, "creators", settings, query="SELECT * FROM creator_export WHERE followers >= 0", now=NOW
    )
    assert (again.rows_read, again.rows_duplicate) == (3, 3)


def test_sql_source_errors(sqlite_settings: Settings, tmp_path: Path) -> None:
    url = _warehouse(tmp_path)
    with pytest.raises(IngestError, match="source table 'nope' not found"):
        ingest_sql(url, "creators", sqlite_settings, source_table="nope")
    with pytest.raises(IngestError, match=r"#query: could not read the source"):
        ingest_sql(url, "creators", sqlite_settings, query="SELECT nonsense FROM nowhere")
    with pytest.raises(IngestError, match="missing column"):
        ingest_sql(url, "creators", sqlite_settings, query="SELECT creator_id FROM creator_export")
    with pytest.raises(IngestError, match="exactly one of"):
        ingest_sql(url, "creators", sqlite_settings)


# ---------------------------------------------------------------------------------------------------------
# Atomicity: kill a real process at each stage


CRASH_SCRIPT = """
import sys
from datetime import datetime, timezone
from analytics.ingest import ingest_files
from liftboard.config import Settings
ingest_files(sys.argv[1:], Settings.from_env(), now=datetime(2025, 1, 1, tzinfo=timezone.utc))
"""


def _crash(settings: Settings, stage: str, files: list[Path]) -> None:
    env = {
        **os.environ,
        "LIFTBOARD_HOME": str(settings.home),
        "LIFTBOARD_DATABASE_URL": settings.database_url,
        "LIFTBOARD_FAULT_INJECT": stage,
        "PYTHONPATH": str(REPO),
    }
    completed = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, *map(str, files)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 137, completed.stderr


@pytest.mark.parametrize("stage", ["before_commit", "after_commit", "mid_move"])
def test_a_killed_run_is_undone_or_completed_by_recovery(
    settings: Settings, tmp_path: Path, stage: str
) -> None:
    tables = valid_tables()
    base = {name: tables[name] for name in ("creators", "merchants", "products")}
    ingest_files(write_all(tmp_path / "a", "parquet", base), settings, now=NOW)
    lake_before, db_before = lake_snapshot(settings), db_snapshot(settings)
    rest = {name: frame for name, frame in tables.items() if name not in base}
    rest["creators"] = tables["creators"].with_columns(pl.col("followers") * 2)  # an update to roll back
    files = write_all(tmp_path / "b", "csv", rest)

    _crash(settings, stage, files)

    assert lake.has_staging(settings)
    recover(settings)
    assert not lake.has_staging(settings)
    run = ledger(settings)[-1]
    if stage == "before_commit":
        assert lake_snapshot(settings) == lake_before
        assert_same_db(db_snapshot(settings), db_before)
        assert run.status == "failed"
        assert "interrupted" in run.error
        assert not (settings.quarantine / run.run_id).exists()
    else:
        assert run.status == "committed"
        assert_lake_holds(settings, {**tables, "creators": rest["creators"]})
    # either way, the next run starts from a consistent state and completes
    report = ingest_files(files, settings, now=NOW)
    assert_counts_add_up(report)
    assert_lake_holds(settings, {**tables, "creators": rest["creators"]})


def test_scan_table_recovers_a_committed_run(sqlite_settings: Settings, tmp_path: Path) -> None:
    files = write_all(tmp_path / "in", "parquet")

    _crash(sqlite_settings, "after_commit", files)

    assert lake.scan_committed("orders", sqlite_settings).collect().is_empty()
    assert lake.scan_table("orders", sqlite_settings).collect().height == valid_tables()["orders"].height


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
