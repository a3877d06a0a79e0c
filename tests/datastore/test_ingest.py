"""Ingest: formats, coercions, quarantine, duplicates and updates, foreign keys, SQL sources."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.config import Settings
from core.schema import DIMENSION_TABLES, TABLES
from datastore import db, lake
from datastore.ingest import IngestError, MappedAlias, ingest_files, ingest_sql, table_for_file
from tests.builders import NOW, canonical, valid_tables, write, write_all
from tests.datastore.ingest_support import (
    GOOD,
    assert_counts_add_up,
    assert_lake_holds,
    assert_same_db,
    db_snapshot,
    lake_snapshot,
    ledger,
    ledger_loads,
    load_valid,
    order_row,
    orders_csv,
    quarantine,
    warehouse,
)

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
    days = {name.split("/")[1] for name in files if name.startswith("orders/day=")}
    assert days == {f"day=2024-06-0{day}" for day in (1, 2, 3)}
    assert {name.split("/")[1] for name in files if name.startswith("content/day=")} == {
        f"day=2024-06-0{day}" for day in (1, 2)
    }
    for name in DIMENSION_TABLES:  # an unpartitioned Delta mirror
        assert f"{name}/_delta_log/00000000000000000001.json" in files
        assert not any(file.startswith(f"{name}/day=") for file in files)
    assert lake.lake_version(sqlite_settings).run_id == report.run_id


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
    tables["products"] = tables["products"].with_columns(pl.col("price").cast(pl.Decimal(10, 2)))
    tables["content"] = tables["content"].with_columns(
        pl.col("published_at").dt.convert_time_zone("Asia/Tokyo").dt.cast_time_unit("ms")
    )

    report = ingest_files(write_all(tmp_path / "in", "parquet", tables), sqlite_settings, now=NOW)

    assert report.rows_quarantined == 0
    expected = valid_tables()
    expected["merchants"] = expected["merchants"].with_columns(pl.col("ships_in_days").floor())
    assert_lake_holds(sqlite_settings, expected)


def test_parquet_values_that_would_need_truncation_are_quarantined(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    load_valid(sqlite_settings, tmp_path / "base")
    orders = valid_tables()["orders"].with_columns(
        pl.Series("quantity", [1.0, 2.5, 1.0, 3.0]), pl.col("order_id") + "-f"
    )

    report = ingest_files([write(orders, tmp_path / "orders.parquet")], sqlite_settings, now=NOW)

    assert (report.rows_loaded, report.rows_quarantined) == (3, 1)
    assert quarantine(report, "orders").select("_row", "quantity", "_reason").rows() == [
        (2, "2.5", "quantity: '2.5' is not a valid integer")
    ]


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
    path = orders_csv(
        tmp_path / "orders-new.csv", order_row(order_id="q1"), order_row(order_id="q2", **{column: value})
    )

    report = ingest_files([path], sqlite_settings, now=NOW)

    (load,) = report.loads
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined, load.rows_duplicate) == (2, 1, 1, 0)
    # one quarantine file per run and input, named after the input's digest
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert load.quarantine_path == str(
        sqlite_settings.quarantine / report.run_id / f"orders-{digest}.parquet"
    )
    bad = pl.read_parquet(load.quarantine_path)
    assert bad.columns == [*TABLES["orders"].columns, "_row", "_line", "_column", "_reason", "_raw"]
    assert bad.row(0, named=True) | {"_reason": None} == {
        **GOOD,
        "order_id": "q2",
        column: value or None,
        "_row": 2,
        "_line": 3,
        "_column": column,
        "_reason": None,
        "_raw": None,
    }
    assert bad["_reason"][0] == reason
    stored = (
        lake.scan_table("orders", sqlite_settings).filter(pl.col("order_id").is_in(["q1", "q2"])).collect()
    )
    assert stored["order_id"].to_list() == ["q1"]


def test_every_bad_column_of_a_row_is_named(sqlite_settings: Settings, tmp_path: Path) -> None:
    load_valid(sqlite_settings, tmp_path / "base")
    path = orders_csv(tmp_path / "orders.csv", order_row(gmv="-1", status="lost", creator_id="c404"))

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


INTERVENTIONS_HEADER = "intervention_id,entity_kind,entity_id,strategy,assigned_on,arm,assignment"


def interventions_csv(path: Path, *rows: str) -> Path:
    """An interventions file; each row gives id, entity kind, entity id and strategy (the rest is fixed)."""
    lines = [INTERVENTIONS_HEADER, *(f"{row},2024-05-01,treatment,randomized" for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load_entities(settings: Settings, directory: Path) -> None:
    tables = valid_tables()
    ingest_files(
        write_all(directory, "parquet", {name: tables[name] for name in ("creators", "merchants")}),
        settings,
        now=NOW,
    )


def test_strategy_aliases_are_stored_as_the_catalog_id_and_counted(
    settings: Settings, tmp_path: Path
) -> None:
    # core/strategies.toml: live_coaching has aliases = ["livestream_coaching", "live_training"]
    load_entities(settings, tmp_path / "a")
    path = interventions_csv(
        tmp_path / "interventions.csv",
        "i1,creator,c000001,livestream_coaching",
        "i2,creator,c000002,live_training",
        "i3,creator,c000003,livestream_coaching",
        "i4,merchant,m00001,free_samples",
        "i5,creator,c999,live_training",
    )

    report = ingest_files([path], settings, now=NOW)

    assert (report.rows_loaded, report.rows_quarantined) == (4, 1)
    assert report.aliases_mapped == (
        MappedAlias("interventions", "strategy", "live_training", "live_coaching", 2),
        MappedAlias("interventions", "strategy", "livestream_coaching", "live_coaching", 2),
    )
    assert report.loads[0].aliases_mapped == report.aliases_mapped
    assert [mapped.text() for mapped in report.aliases_mapped] == [
        "interventions: 2 row(s) with strategy 'live_training' read as live_coaching "
        "(an alias in the catalog)",
        "interventions: 2 row(s) with strategy 'livestream_coaching' read as live_coaching "
        "(an alias in the catalog)",
    ]
    stored = db.read_table("interventions", settings).select("intervention_id", "strategy")
    assert stored.rows() == [
        ("i1", "live_coaching"),
        ("i2", "live_coaching"),
        ("i3", "live_coaching"),
        ("i4", "free_samples"),
    ]
    mirrored = lake.scan_table("interventions", settings).sort("intervention_id").collect()
    assert mirrored["strategy"].to_list() == stored["strategy"].to_list()
    # a quarantined row keeps the name it was read with
    assert quarantine(report, "interventions").select("intervention_id", "strategy", "_reason").rows() == [
        ("i5", "live_training", "entity_id: 'c999' is not a known creators.creator_id")
    ]

    lake_before, db_before = lake_snapshot(settings), db_snapshot(settings)
    again = ingest_files([path], settings, now=NOW)

    assert (again.rows_loaded, again.rows_duplicate, again.rows_quarantined) == (0, 4, 1)
    assert again.aliases_mapped == report.aliases_mapped
    assert lake_snapshot(settings) == lake_before
    assert_same_db(db_snapshot(settings), db_before)


def test_an_unknown_strategy_is_quarantined_with_how_to_add_or_map_it(
    settings: Settings, tmp_path: Path
) -> None:
    load_entities(settings, tmp_path / "a")
    path = interventions_csv(
        tmp_path / "interventions.csv",
        "i1,creator,c000001,live_coaching",
        "i2,merchant,m00001,sampling_program",
    )

    report = ingest_files([path], settings, now=NOW)

    assert (report.rows_loaded, report.rows_quarantined) == (1, 1)
    assert report.aliases_mapped == ()
    bad = quarantine(report, "interventions")
    assert bad.select("_row", "_column", "strategy").rows() == [(2, "strategy", "sampling_program")]
    assert bad["_reason"].to_list() == [
        "strategy: 'sampling_program' is not a known strategy; add it to the strategy catalog "
        "(core/strategies.toml) as a [[strategy]] entry with its id and target, or map it to a known "
        'strategy by adding "sampling_program" to that strategy\'s aliases (known: live_coaching, '
        "commission_boost, matched_product_showcase, posting_schedule_advice, "
        "commission_to_category_median, matched_creator_recruitment, free_samples, fulfilment_fix)"
    ]
    assert db.read_table("interventions", settings)["intervention_id"].to_list() == ["i1"]


def test_a_strategy_of_the_other_entity_kind_is_quarantined(settings: Settings, tmp_path: Path) -> None:
    load_entities(settings, tmp_path / "a")
    path = interventions_csv(
        tmp_path / "interventions.csv",
        "i1,creator,c000001,free_samples",
        "i2,merchant,m00001,commission_boost",
        "i3,merchant,m00002,livestream_coaching",
        "i4,merchant,m00002,free_samples",
    )

    report = ingest_files([path], settings, now=NOW)

    assert (report.rows_loaded, report.rows_quarantined) == (1, 3)
    assert quarantine(report, "interventions").select("_row", "_column", "_reason").rows() == [
        (
            1,
            "strategy",
            "strategy: 'free_samples' is a merchant strategy and cannot apply to a creator (entity_kind)",
        ),
        (
            2,
            "strategy",
            "strategy: 'commission_boost' is a creator strategy and cannot apply to a merchant (entity_kind)",
        ),
        (
            3,
            "strategy",
            "strategy: 'livestream_coaching' (an alias of live_coaching) is a creator strategy "
            "and cannot apply to a merchant (entity_kind)",
        ),
    ]
    assert db.read_table("interventions", settings)["intervention_id"].to_list() == ["i4"]


# ---------------------------------------------------------------------------------------------------------
# Duplicates and updates


def test_fact_duplicates_within_the_file_and_against_stored_rows(settings: Settings, tmp_path: Path) -> None:
    load_valid(settings, tmp_path / "base")
    stored = lake.scan_table("orders", settings).filter(pl.col("order_id") == "o0000001").collect()
    as_stored = {
        name: (value.strftime("%Y-%m-%dT%H:%M:%S") if hasattr(value, "strftime") else str(value))
        for name, value in stored.row(0, named=True).items()
    }
    path = orders_csv(
        tmp_path / "orders.csv",
        order_row(order_id="d1"),
        order_row(order_id="d1"),  # identical: a duplicate of the first occurrence
        order_row(**as_stored),  # identical to the stored row: a duplicate
        order_row(order_id="d2"),
    )

    report = ingest_files([path], settings, now=NOW)

    (load,) = report.loads
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined, load.rows_duplicate) == (4, 2, 0, 2)
    orders = lake.scan_table("orders", settings).collect()
    assert orders["order_id"].is_unique().all()
    assert orders.filter(pl.col("order_id") == "d1")["gmv"].to_list() == [19.99]


def test_dimension_rows_update_in_place_and_identical_ones_are_duplicates(
    settings: Settings, tmp_path: Path
) -> None:
    load_valid(settings, tmp_path / "base")
    creators = valid_tables()["creators"]
    followers_before = creators.filter(pl.col("creator_id") == "c000002")["followers"].item()
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
    assert (load.rows_read, load.rows_loaded, load.rows_updated, load.rows_duplicate) == (5, 1, 2, 2)
    expected = pl.concat([changed, added.tail(1)]).sort("creator_id")
    assert_frame_equal(db.read_table("creators", settings), expected)
    assert_frame_equal(lake.scan_table("creators", settings).collect(), expected)
    history = lake.scan_changes("creators", settings).collect().sort("creator_id", "followers")
    assert history.select("creator_id", "previous_followers", "followers").rows() == [
        ("c000002", followers_before, 77),
        ("c000004", 1, 2),
    ]


def test_sql_source_by_table_and_by_query(settings: Settings, tmp_path: Path) -> None:
    url = warehouse(tmp_path)

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
    url = warehouse(tmp_path)
    with pytest.raises(IngestError, match="source table 'nope' not found"):
        ingest_sql(url, "creators", sqlite_settings, source_table="nope")
    with pytest.raises(IngestError, match=r"#query: could not read the source"):
        ingest_sql(url, "creators", sqlite_settings, query="SELECT nonsense FROM nowhere")
    with pytest.raises(IngestError, match="missing column"):
        ingest_sql(url, "creators", sqlite_settings, query="SELECT creator_id FROM creator_export")
    with pytest.raises(IngestError, match="exactly one of"):
        ingest_sql(url, "creators", sqlite_settings)
