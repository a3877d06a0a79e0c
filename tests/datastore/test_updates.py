"""Orders as an update stream: a changed row updates the stored one (a Delta MERGE) and leaves its
history; an identical row is a duplicate; two different rows with one key in one input are a conflict."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl

from analytics import sources
from core.config import Settings
from datastore import lake
from datastore.ingest import ingest_files
from tests.builders import NOW
from tests.datastore.ingest_support import (
    assert_counts_add_up,
    ledger_loads,
    load_valid,
    order_row,
    orders_csv,
    quarantine,
)

DAY = "2024-06-04"


def _order_day(settings: Settings) -> dict[str, float]:
    """GMV and refunded GMV of the order's day, as the analytics compute them."""
    inputs = sources.load_inputs(settings)
    daily = sources.creator_daily(inputs, NOW.date()).collect()
    day = daily.filter(pl.col("date") == pl.lit(DAY).str.to_date())
    return {"gmv": day["gmv"].sum(), "refunded_gmv": day["refunded_gmv"].sum()}


def test_a_refund_a_week_later_updates_the_order_and_its_days_refund_rate(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    load_valid(sqlite_settings, tmp_path / "base")
    first = ingest_files(
        [orders_csv(tmp_path / "orders-1.csv", order_row(order_id="r1"), order_row(order_id="r2", gmv="30"))],
        sqlite_settings,
        now=NOW,
    )
    before = _order_day(sqlite_settings)
    refund = orders_csv(tmp_path / "orders-2.csv", order_row(order_id="r1", status="refunded"))

    second = ingest_files([refund], sqlite_settings, now=NOW + timedelta(days=7))

    (load,) = second.loads
    assert (load.rows_loaded, load.rows_updated, load.rows_quarantined, load.rows_duplicate) == (0, 1, 0, 0)
    assert [(row.rows_loaded, row.rows_updated) for row in ledger_loads(sqlite_settings, second.run_id)] == [
        (0, 1)
    ]
    orders = lake.scan_table("orders", sqlite_settings).filter(pl.col("order_id").is_in(["r1", "r2"]))
    assert dict(orders.select("order_id", "status").collect().sort("order_id").iter_rows()) == {
        "r1": "refunded",
        "r2": "completed",
    }
    assert lake.scan_table("orders", sqlite_settings).select(pl.len()).collect().item() == 6  # no new row
    after = _order_day(sqlite_settings)
    assert before == {"gmv": 19.99 + 30, "refunded_gmv": 0}
    assert after == {"gmv": 19.99 + 30, "refunded_gmv": 19.99}  # the order's day, not the refund's
    # the history: which run changed what, when; and the lake as the first run left it
    history = lake.scan_changes("orders", sqlite_settings).collect()
    assert history.select("order_id", "run_id", "previous_status", "status").rows() == [
        ("r1", second.run_id, "completed", "refunded")
    ]
    assert history["changed_at"][0] is not None
    old = lake.lake_version(sqlite_settings, first.run_id)
    was = lake.scan_table("orders", sqlite_settings, old).filter(pl.col("order_id") == "r1").collect()
    assert was["status"].to_list() == ["completed"]
    # sending the refund again changes nothing
    again = ingest_files([refund], sqlite_settings, now=NOW + timedelta(days=8))
    assert again.loads[0].rows_duplicate == 1
    assert lake.scan_changes("orders", sqlite_settings).collect().height == 1


def test_two_different_rows_with_one_key_in_one_input_are_a_conflict(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    load_valid(sqlite_settings, tmp_path / "base")
    path = orders_csv(
        tmp_path / "orders.csv",
        order_row(order_id="k1", gmv="58"),
        order_row(order_id="k2"),
        order_row(order_id="k1", gmv="48"),
    )

    report = ingest_files([path], sqlite_settings, now=NOW)

    (load,) = report.loads
    assert_counts_add_up(report)
    assert (load.rows_loaded, load.rows_quarantined, load.rows_duplicate) == (1, 2, 0)
    kept = quarantine(report, "orders")
    assert kept["_row"].to_list() == [1, 3]
    assert kept["_line"].to_list() == [2, 4]
    assert kept["gmv"].to_list() == ["58", "48"]  # as the input wrote them
    assert set(kept["_column"]) == {"gmv"}
    assert set(kept["_reason"]) == {"conflict: order_id k1 has different values in rows 1, 3 of this input"}
    stored = lake.scan_table("orders", sqlite_settings).filter(pl.col("order_id").is_in(["k1", "k2"]))
    assert stored.select("order_id").collect()["order_id"].to_list() == ["k2"]


def test_an_amount_corrected_in_a_later_input_of_the_same_run_wins(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    load_valid(sqlite_settings, tmp_path / "base")
    files = [
        orders_csv(tmp_path / "orders-a.csv", order_row(order_id="u1", gmv="10")),
        orders_csv(tmp_path / "orders-b.csv", order_row(order_id="u1", gmv="12")),
    ]

    report = ingest_files(files, sqlite_settings, now=NOW)

    assert [(load.rows_loaded, load.rows_updated) for load in report.loads] == [(1, 0), (0, 1)]
    ledger = ledger_loads(sqlite_settings, report.run_id)
    assert [(row.rows_loaded, row.rows_updated) for row in ledger] == [(1, 0), (0, 1)]
    stored = lake.scan_table("orders", sqlite_settings).filter(pl.col("order_id") == "u1").collect()
    assert stored["gmv"].to_list() == [12.0]
    history = lake.scan_changes("orders", sqlite_settings).collect()
    assert history.select("previous_gmv", "gmv").rows() == [(10.0, 12.0)]


def test_a_merchants_new_rating_replaces_the_row_and_leaves_its_history(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    load_valid(sqlite_settings, tmp_path / "base")
    stored = lake.scan_table("merchants", sqlite_settings).collect().sort("merchant_id")
    first, second = stored.row(0, named=True), stored.row(1, named=True)
    changed = stored.head(2).with_columns(
        pl.when(pl.col("merchant_id") == first["merchant_id"])
        .then(pl.col("rating") - 0.5)
        .otherwise(pl.col("rating"))
        .alias("rating")
    )
    path = tmp_path / "merchants-update.parquet"
    changed.write_parquet(path)

    report = ingest_files([path], sqlite_settings, now=NOW)

    (load,) = report.loads
    assert (load.rows_loaded, load.rows_updated, load.rows_duplicate) == (0, 1, 1)
    assert_counts_add_up(report)
    now = lake.scan_table("merchants", sqlite_settings).collect()
    assert now.height == stored.height
    rating = dict(now.select("merchant_id", "rating").iter_rows())
    assert rating[first["merchant_id"]] == first["rating"] - 0.5
    assert rating[second["merchant_id"]] == second["rating"]
    history = lake.scan_changes("merchants", sqlite_settings).collect()
    assert history.select("merchant_id", "run_id", "previous_rating", "rating").rows() == [
        (first["merchant_id"], report.run_id, first["rating"], first["rating"] - 0.5)
    ]
    assert history["previous_ships_in_days"].to_list() == history["ships_in_days"].to_list()
