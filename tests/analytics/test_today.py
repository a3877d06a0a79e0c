"""Today so far against the same hours of the last same weekdays (analytics.today), on hand-made lakes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from analytics.sources import Inputs
from analytics.today import FIGURES, TodayWindow, today_figures, today_window
from core.schema import TABLES
from tests.builders import valid_tables

TODAY = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)  # a Thursday; its last 4 Thursdays are normal days
"""The newest order's time: "now" for the figures."""
SALE_WEEK = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # a Wednesday: 3 weeks before it is 11.11, a sale day


def _orders(rows: list[tuple[datetime, str, float, str]]) -> pl.DataFrame:
    """Orders (time, merchant, gmv, status) by creator c000001 (m00001's product) or c000002 (m00002's)."""
    product = {"m00001": "p0000001", "m00002": "p0000003"}
    creator = {"m00001": "c000001", "m00002": "c000002"}
    return pl.DataFrame(
        {
            "order_id": [f"o{i:07d}" for i in range(len(rows))],
            "ordered_at": [at for at, *_ in rows],
            "buyer_id": ["b1"] * len(rows),
            "creator_id": [creator[m] for _, m, _, _ in rows],
            "content_id": [None] * len(rows),
            "product_id": [product[m] for _, m, _, _ in rows],
            "merchant_id": [m for _, m, _, _ in rows],
            "quantity": [1] * len(rows),
            "gmv": [g for _, _, g, _ in rows],
            "commission": [g * 0.1 for _, _, g, _ in rows],
            "status": [s for *_, s in rows],
        },
        schema=TABLES["orders"].schema,
    )


def _inputs(orders: pl.DataFrame, engagement: pl.DataFrame | None = None) -> Inputs:
    """The little marketplace of `valid_tables` with these orders (and this engagement, default none)."""
    tables = valid_tables()
    dimensions = {
        name: tables[name].lazy() for name in ("creators", "merchants", "products", "showcase", "content")
    }
    if engagement is None:
        engagement = tables["engagement"].clear()
    return Inputs(**dimensions, engagement=engagement.lazy(), orders=orders.lazy())


Order = tuple[datetime, str, float, str]


def _four_weeks(today: datetime = TODAY) -> list[Order]:
    """m00001's orders on the 4 same weekdays before ``today``: k weeks back, k orders of 100 placed before
    today's time of day (GMV 100, 200, 300, 400) and 3 orders of 999 placed after it (no reference counts
    those)."""
    rows: list[Order] = []
    for k in range(1, 5):
        day = today - timedelta(days=7 * k)
        rows += [(day.replace(hour=9, minute=i), "m00001", 100.0, "completed") for i in range(k)]
        rows += [(day.replace(hour=18, minute=i), "m00001", 999.0, "completed") for i in range(3)]
    return rows


def _figure(frame: pl.DataFrame, name: str) -> dict:
    return frame.filter(pl.col("metric") == name).row(0, named=True)


def _figures(rows: list[Order], engagement: pl.DataFrame | None = None) -> pl.DataFrame:
    inputs = _inputs(_orders(rows), engagement)
    window = today_window(inputs)
    assert window is not None
    return today_figures(inputs, window)


def test_so_far_today_counts_the_same_hours_of_the_last_four_same_weekdays() -> None:
    rows = _four_weeks() + [
        (TODAY.replace(hour=8), "m00001", 50.0, "completed"),
        (TODAY.replace(hour=13), "m00001", 70.0, "refunded"),
        (TODAY, "m00001", 30.0, "completed"),  # the newest order: "now", included
        (TODAY.replace(hour=11), "m00001", 500.0, "cancelled"),  # cancelled: no order, no GMV
    ]
    inputs = _inputs(_orders(rows))
    window = today_window(inputs)
    assert window is not None
    assert window.now == TODAY
    assert window.day == date(2026, 12, 3)
    assert window.order_days() == [date(2026, 12, 3) - timedelta(days=7 * k) for k in range(5)]
    figures = today_figures(inputs, window)
    assert figures["metric"].to_list() == list(FIGURES)
    gmv = _figure(figures, "gmv")
    # today: 50 + 70 + 30 (the refunded order was completed first: in GMV); references 100·k for k orders
    assert gmv["value"] == pytest.approx(150.0)
    assert gmv["usual"] == pytest.approx(250.0)  # median of 100, 200, 300, 400
    assert (gmv["usual_low"], gmv["usual_high"]) == (pytest.approx(100.0), pytest.approx(400.0))
    assert gmv["change_pct"] == pytest.approx(150.0 / 250.0 - 1)
    assert gmv["references"] == 4
    assert "00:00–14:00 UTC" in gmv["period"]
    orders = _figure(figures, "orders")
    assert (orders["value"], orders["usual"]) == (pytest.approx(3.0), pytest.approx(2.5))
    refund = _figure(figures, "refund_rate")
    assert refund["value"] == pytest.approx(70.0 / 150.0)
    assert refund["usual"] == pytest.approx(0.0)
    assert refund["change_pct"] is None  # no change against a usual of zero
    assert refund["higher_is_better"] is False


def test_a_refund_sent_later_changes_the_refund_rate_of_the_orders_day() -> None:
    base = _four_weeks() + [
        (TODAY.replace(hour=10), "m00001", 80.0, "completed"),
        (TODAY, "m00001", 20.0, "completed"),
    ]
    before = _figures(base)
    # the same order sent again later, now refunded (the lake updates the stored row: same order, same day)
    after = _figures([(at, m, g, "refunded" if g == 80.0 else s) for at, m, g, s in base])
    assert _figure(before, "refund_rate")["value"] == pytest.approx(0.0)
    assert _figure(after, "refund_rate")["value"] == pytest.approx(0.8)
    assert _figure(after, "gmv")["value"] == _figure(before, "gmv")["value"] == pytest.approx(100.0)


def test_mega_sale_days_and_days_before_the_data_are_no_references() -> None:
    rows = _four_weeks(SALE_WEEK) + [(SALE_WEEK, "m00001", 30.0, "completed")]
    inputs = _inputs(_orders(rows))
    window = today_window(inputs)
    assert window is not None
    sale_day = date(2026, 11, 11)
    assert sale_day == window.day - timedelta(days=21)
    assert sale_day not in window.order_days()  # its orders are in the data, the calendar leaves it out
    gmv = _figure(today_figures(inputs, window), "gmv")
    assert gmv["references"] == 3
    assert gmv["usual"] == pytest.approx(200.0)  # median of 100, 200, 400 (300 was the sale day)
    # data starting 15 days ago: two references, one and two weeks back
    recent = [row for row in _four_weeks() if row[0] >= TODAY - timedelta(days=15)] + [
        (TODAY, "m00001", 1.0, "x")
    ]
    short = today_window(_inputs(_orders([(at, m, g, "completed") for at, m, g, _ in recent])))
    assert short is not None
    assert short.order_days() == [TODAY.date() - timedelta(days=7 * k) for k in range(3)]
    # one week of history: fewer references than needed, so no usual value and no change
    last_week = [row for row in _four_weeks() if row[0] >= TODAY - timedelta(days=8)] + [
        (TODAY, "m00001", 30.0, "completed")
    ]
    lone = _figure(_figures(last_week), "gmv")
    assert lone["references"] == 1
    assert lone["usual"] is None
    assert lone["change_pct"] is None


def test_a_reference_day_without_orders_counts_as_zero() -> None:
    one_week_back = (TODAY - timedelta(days=7)).date()
    rows = [r for r in _four_weeks() if r[0].date() != one_week_back] + [(TODAY, "m00001", 30.0, "completed")]
    gmv = _figure(_figures(rows), "gmv")
    assert gmv["references"] == 4  # the week that sold nothing is a reference of 0
    assert gmv["usual_low"] == pytest.approx(0.0)
    assert gmv["usual"] == pytest.approx(250.0)  # median of 0, 200, 300, 400


def test_engagement_figures_are_of_the_latest_whole_day_with_counts() -> None:
    yesterday = date(2026, 12, 2)
    rows = _four_weeks() + [
        (datetime(2026, 12, 2, 9, tzinfo=UTC), "m00001", 10.0, "completed"),
        (datetime(2026, 12, 2, 22, tzinfo=UTC), "m00001", 10.0, "completed"),  # after 14:00: still counts
        (datetime(2026, 11, 25, 9, tzinfo=UTC), "m00001", 10.0, "completed"),
        (TODAY, "m00001", 30.0, "completed"),
    ]
    engagement = pl.DataFrame(
        {
            "date": [yesterday, date(2026, 11, 25), date(2026, 11, 18)],
            "content_id": ["v0000001"] * 3,
            "product_id": ["p0000001"] * 3,
            "impressions": [1000, 1000, 1000],
            "views": [500, 400, 400],
            "clicks": [40, 10, 20],
            "add_to_carts": [5, 5, 5],
        },
        schema=TABLES["engagement"].schema,
    )
    inputs = _inputs(_orders(rows), engagement)
    window = today_window(inputs)
    assert window is not None
    assert window.engagement_day == yesterday
    figures = today_figures(inputs, window)
    ctr, cvr = _figure(figures, "ctr"), _figure(figures, "cvr")
    assert ctr["value"] == pytest.approx(40 / 500)
    # references: the Wednesdays before it, but 11-11 is a sale day and 11-04 is before the first order
    assert window.engagement_days() == [yesterday, date(2026, 11, 25), date(2026, 11, 18)]
    assert ctr["references"] == 2
    assert ctr["usual"] == pytest.approx((10 / 400 + 20 / 400) / 2)
    assert cvr["value"] == pytest.approx(2 / 40)  # both of yesterday's orders, the whole day
    assert "02 Dec" in ctr["period"]
    assert "whole day" in ctr["period"]
    # without any engagement: the figures say so instead of showing zeros
    bare = _figures(rows)
    assert _figure(bare, "ctr")["value"] is None
    assert _figure(bare, "ctr")["period"] == "no engagement counts yet"


def test_scopes_restrict_to_a_merchant_or_a_creator() -> None:
    rows = _four_weeks() + [
        (TODAY.replace(hour=10), "m00002", 35.0, "completed"),
        (TODAY, "m00001", 30.0, "completed"),
    ]
    inputs = _inputs(_orders(rows))
    window = today_window(inputs)
    assert window is not None
    everyone = _figure(today_figures(inputs, window), "gmv")
    mine = _figure(today_figures(inputs, window, pl.col("merchant_id").is_in(["m00002"])), "gmv")
    creator = _figure(today_figures(inputs, window, pl.col("creator_id") == "c000001"), "gmv")
    assert everyone["value"] == pytest.approx(65.0)
    assert mine["value"] == pytest.approx(35.0)
    assert mine["usual"] == pytest.approx(0.0)  # m00002 sold nothing on the reference days
    assert creator["value"] == pytest.approx(30.0)
    assert creator["usual"] == pytest.approx(250.0)  # all of m00001's orders are c000001's


def test_an_empty_lake_has_no_window() -> None:
    assert today_window(_inputs(_orders([]))) is None
    assert isinstance(TodayWindow(TODAY, None, TODAY.date()).order_period(), str)
